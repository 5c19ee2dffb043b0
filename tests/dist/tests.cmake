# MPI tests of framework/dist, included at the end of tests/CMakeLists.txt:
#   include(${CMAKE_CURRENT_SOURCE_DIR}/dist/tests.cmake)
#
# The sources are named *_mpitest.cpp (not *_test.cpp) so that the generic per-folder rule
# of tests/CMakeLists.txt never builds them into a plain gtest_main binary: they need
# MPI_Init and run under mpirun, at 1, 2 and 4 ranks, and once without mpirun (world size 1
# through the self communicator).
if(NOT TARGET ssm_dist OR NOT TARGET ssm_test_support)
  return()
endif()

file(GLOB _ssm_dist_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*_mpitest.cpp)
add_executable(ssm_test_dist ${CMAKE_CURRENT_LIST_DIR}/mpi_main.cpp ${_ssm_dist_tests})
target_link_libraries(ssm_test_dist PRIVATE ssm_dist ssm_optim ssm_test_support GTest::gtest)
target_include_directories(ssm_test_dist PRIVATE ${CMAKE_SOURCE_DIR})

# A tiny job that loses a rank (killed, or hung) in the middle of a collective loop.
add_executable(ssm_dist_fault ${CMAKE_CURRENT_LIST_DIR}/fault_main.cpp)
target_link_libraries(ssm_dist_fault PRIVATE ssm_dist)
target_include_directories(ssm_dist_fault PRIVATE ${CMAKE_SOURCE_DIR})

set(_ssm_mpiexec ${MPIEXEC_EXECUTABLE})
if(NOT _ssm_mpiexec)
  set(_ssm_mpiexec mpirun)
endif()
# Open MPI refuses root without the two variables; one OpenMP thread per rank because CI
# machines have 2 cores and the 4-rank run oversubscribes them.
set(_ssm_mpi_env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE)

add_test(NAME dist.self COMMAND ssm_test_dist)
set_tests_properties(dist.self PROPERTIES LABELS dist TIMEOUT 120 ENVIRONMENT "OMP_NUM_THREADS=2")
foreach(_np 1 2 4)
  add_test(NAME dist.np${_np} COMMAND ${_ssm_mpiexec} -np ${_np} --oversubscribe $<TARGET_FILE:ssm_test_dist>)
  # A test that desynchronises the ranks fails after 20 s instead of hanging until TIMEOUT.
  set_tests_properties(dist.np${_np} PROPERTIES LABELS dist TIMEOUT 300
                       ENVIRONMENT "${_ssm_mpi_env};SSM_COLLECTIVE_TIMEOUT_S=20")
endforeach()

# Faults: the job must end non-zero, within 60 s, with a message naming the lost rank: from
# the collective watchdog ("No answer from rank 1") or, for a dead process, from mpirun
# ("process rank 1 ... exited on signal 9"), whichever comes first.
set(_ssm_expect_kill "(No answer from rank 1|process rank 1 .*exited on signal)")
set(_ssm_expect_hang "No answer from rank 1")
foreach(_mode kill hang)
  add_test(NAME dist.fault_${_mode}
           COMMAND ${CMAKE_COMMAND} -DMPIEXEC=${_ssm_mpiexec} -DNP=3 -DBIN=$<TARGET_FILE:ssm_dist_fault>
                   -DMODE=${_mode} "-DEXPECT=${_ssm_expect_${_mode}}" -DLIMIT=60
                   -P ${CMAKE_CURRENT_LIST_DIR}/expect_failure.cmake)
  set_tests_properties(dist.fault_${_mode} PROPERTIES LABELS dist TIMEOUT 90
                       ENVIRONMENT "${_ssm_mpi_env};SSM_COLLECTIVE_TIMEOUT_S=4")
endforeach()

# Models, trainer and checkpoints under every layout (*_mpitrain.cpp): a binary of its own
# since it links the whole framework. One 4-rank job covers world 1 (each rank alone),
# dp 2, tp 2 and dp 2 × tp 2 as sub-worlds; the 2-rank job covers the layouts of 2.
if(TARGET ssm_train)
  file(GLOB _ssm_dist_train_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*_mpitrain.cpp)
  add_executable(ssm_test_dist_train ${CMAKE_CURRENT_LIST_DIR}/mpi_main.cpp ${_ssm_dist_train_tests})
  target_link_libraries(ssm_test_dist_train PRIVATE ssm_train ssm_test_support GTest::gtest)
  target_include_directories(ssm_test_dist_train PRIVATE ${CMAKE_SOURCE_DIR})
  foreach(_np 2 4)
    add_test(NAME dist.train.np${_np}
             COMMAND ${_ssm_mpiexec} -np ${_np} --oversubscribe $<TARGET_FILE:ssm_test_dist_train>)
    set_tests_properties(dist.train.np${_np} PROPERTIES LABELS dist TIMEOUT 600
                         ENVIRONMENT "${_ssm_mpi_env};SSM_COLLECTIVE_TIMEOUT_S=60")
  endforeach()
endif()

# The `ssm` CLI under mpirun: train at tp 2, resume in one process, layout errors; and a
# rank SIGKILLed in the middle of `ssm train` ends the job non-zero within 60 s, naming it.
if(TARGET ssm)
  add_test(NAME dist.cli_tp COMMAND ${CMAKE_CURRENT_LIST_DIR}/cli_tp.sh ${_ssm_mpiexec} $<TARGET_FILE:ssm>)
  set_tests_properties(dist.cli_tp PROPERTIES LABELS dist TIMEOUT 180 ENVIRONMENT "${_ssm_mpi_env}")
  add_test(NAME dist.train_kill_rank COMMAND ${CMAKE_CURRENT_LIST_DIR}/kill_rank.sh ${_ssm_mpiexec} $<TARGET_FILE:ssm>)
  set_tests_properties(dist.train_kill_rank PROPERTIES LABELS dist TIMEOUT 120
                       ENVIRONMENT "${_ssm_mpi_env};SSM_COLLECTIVE_TIMEOUT_S=20")
endif()
