# Python cross-checks of files ssm writes, with independent readers: TensorBoard itself for
# the event files, zlib for the PNG plot. Included from tests/CMakeLists.txt after the
# ssm_test_dir() calls:
#   include(${CMAKE_CURRENT_SOURCE_DIR}/python/tests.cmake)
#
# Three CTest fixtures run first:
#   python.pyenv      tools/pyenv.sh makes <build>/pyenv with tools/requirements-test.txt
#                     (pip, so it needs PyPI the first time; later runs reuse the venv)
#   python.artifacts  ssm_test_train --gtest_filter=PythonArtifacts.* writes the files into
#                     <build>/python_artifacts (SSM_TEST_ARTIFACT_DIR)
# then python.tensorboard and python.png check them. All carry the label "python":
#   ctest --test-dir build -L python --output-on-failure
if(NOT TARGET ssm_test_train)
  return()
endif()
find_package(Python3 COMPONENTS Interpreter)
if(NOT Python3_Interpreter_FOUND)
  message(STATUS "ssm: no Python 3 interpreter, the tests/python cross-checks are not registered")
  return()
endif()

cmake_path(SET _ssm_root NORMALIZE "${CMAKE_CURRENT_LIST_DIR}/../..")
set(_ssm_pyenv ${CMAKE_BINARY_DIR}/pyenv)
set(_ssm_artifacts ${CMAKE_BINARY_DIR}/python_artifacts)

add_test(NAME python.pyenv COMMAND ${CMAKE_COMMAND} -E env PYTHON=${Python3_EXECUTABLE}
                                   ${_ssm_root}/tools/pyenv.sh ${_ssm_pyenv})
set_tests_properties(python.pyenv PROPERTIES FIXTURES_SETUP ssm_pyenv LABELS python TIMEOUT 900
                                             RESOURCE_LOCK ssm_pyenv)

add_test(NAME python.artifacts COMMAND ${CMAKE_COMMAND} -E env SSM_TEST_ARTIFACT_DIR=${_ssm_artifacts}
                                       $<TARGET_FILE:ssm_test_train> --gtest_filter=PythonArtifacts.*)
set_tests_properties(python.artifacts PROPERTIES FIXTURES_SETUP ssm_py_artifacts LABELS python TIMEOUT 120)

add_test(NAME python.tensorboard
         COMMAND ${_ssm_pyenv}/bin/python ${CMAKE_CURRENT_LIST_DIR}/check_tensorboard.py ${_ssm_artifacts})
set_tests_properties(python.tensorboard PROPERTIES FIXTURES_REQUIRED "ssm_pyenv;ssm_py_artifacts"
                                                   LABELS python TIMEOUT 120)

# Standard library only: runs with the system interpreter, even where the venv cannot be made.
add_test(NAME python.png COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_png.py ${_ssm_artifacts})
set_tests_properties(python.png PROPERTIES FIXTURES_REQUIRED ssm_py_artifacts LABELS python TIMEOUT 120)
