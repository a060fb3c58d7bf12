# cmake -DEXE=program [-DARGS=a;b] -DEXPECTED=file.regex -P check_output.cmake
#
# Runs EXE and fails unless it exits 0 and its whole stdout matches the CMake
# regular expression in EXPECTED (trailing newlines of the file are ignored;
# stderr is passed through).

execute_process(COMMAND ${EXE} ${ARGS}
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${EXE} exited with ${rc}")
endif()
file(READ "${EXPECTED}" expected)
string(REGEX REPLACE "\n+$" "" expected "${expected}")
string(REGEX REPLACE "\n+$" "" out "${out}")
if(NOT out MATCHES "^${expected}$")
  message(FATAL_ERROR "the output of ${EXE} does not match ${EXPECTED}:\n${expected}")
endif()
