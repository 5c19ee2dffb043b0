# Python cross-check of `ssm export` with the reference safetensors library. Included from
# tests/CMakeLists.txt after tests/python/tests.cmake (whose python.pyenv fixture builds the
# venv from tools/requirements-test.txt, which lists safetensors):
#   include(${CMAKE_CURRENT_SOURCE_DIR}/checkpoint/export_py.cmake)
#
#   python.export_artifacts  ssm_test_checkpoint --gtest_filter=HfArtifacts.* exports a Mamba, a
#                            Mamba-2 and a sharded bf16 Jamba into <build>/export_artifacts
#   python.safetensors       tests/checkpoint/check_safetensors.py loads them with
#                            safetensors.numpy and checks names, shapes, dtypes, values,
#                            __metadata__ and strict-JSON config.json
# Both carry the label "python":  ctest --test-dir build -L python --output-on-failure
if(NOT TARGET ssm_test_checkpoint)
  return()
endif()
find_package(Python3 COMPONENTS Interpreter)
if(NOT Python3_Interpreter_FOUND)
  return()
endif()
set(_ssm_export_artifacts ${CMAKE_BINARY_DIR}/export_artifacts)
add_test(NAME python.export_artifacts
         COMMAND ${CMAKE_COMMAND} -E env SSM_TEST_ARTIFACT_DIR=${_ssm_export_artifacts}
                 $<TARGET_FILE:ssm_test_checkpoint> --gtest_filter=HfArtifacts.*)
set_tests_properties(python.export_artifacts PROPERTIES FIXTURES_SETUP ssm_export_artifacts LABELS python
                                                        TIMEOUT 120)
add_test(NAME python.safetensors
         COMMAND ${CMAKE_BINARY_DIR}/pyenv/bin/python ${CMAKE_CURRENT_LIST_DIR}/check_safetensors.py
                 ${_ssm_export_artifacts})
set_tests_properties(python.safetensors PROPERTIES FIXTURES_REQUIRED "ssm_pyenv;ssm_export_artifacts"
                                                   LABELS python TIMEOUT 120)
