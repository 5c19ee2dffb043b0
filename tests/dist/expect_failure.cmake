# cmake -DMPIEXEC=mpirun -DNP=3 -DBIN=ssm_dist_fault -DMODE=kill "-DEXPECT=rank 1" -DLIMIT=60 -P expect_failure.cmake
#
# Passes when the job exits non-zero, within LIMIT seconds, and its output matches EXPECT.
string(TIMESTAMP _t0 "%s")
execute_process(COMMAND ${MPIEXEC} -np ${NP} --oversubscribe ${BIN} ${MODE}
                RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err TIMEOUT ${LIMIT})
string(TIMESTAMP _t1 "%s")
math(EXPR _dt "${_t1} - ${_t0}")
message("---- output of the ${MODE} job (exit: ${_rc}, ${_dt} s) ----\n${_out}${_err}----")
if(_rc MATCHES "timeout")
  message(FATAL_ERROR "the job was still running after ${LIMIT} s: a lost rank must end it sooner")
endif()
if(_rc STREQUAL "0")
  message(FATAL_ERROR "the job exited 0 although a rank was lost")
endif()
if(NOT "${_out}${_err}" MATCHES "${EXPECT}")
  message(FATAL_ERROR "the output does not name the lost rank (expected a match of '${EXPECT}')")
endif()
message("ok: exit ${_rc} after ${_dt} s, output names '${EXPECT}'")
