# Runs one fuzz target as a test: cmake -DFUZZER=... -DNAME=... -DSECONDS=... -DSOURCE=<fuzz/>
#   -DOUT=<build dir> -P run_target.cmake
# New inputs go to OUT/corpus/NAME, emptied first, so every run starts from the seeds; the seeds
# in SOURCE/corpus/NAME are only read (libFuzzer writes to its first corpus directory only).
# Crash, leak, timeout and out-of-memory reproducers land in OUT/artifacts/NAME/.
set(work "${OUT}/corpus/${NAME}")
set(artifacts "${OUT}/artifacts/${NAME}")
file(REMOVE_RECURSE "${work}")
file(MAKE_DIRECTORY "${work}" "${artifacts}")
set(args -max_total_time=${SECONDS} -timeout=5 -rss_limit_mb=2048 -print_final_stats=1
    -artifact_prefix=${artifacts}/)
if(EXISTS "${SOURCE}/${NAME}.dict")
  list(APPEND args -dict=${SOURCE}/${NAME}.dict)
endif()
execute_process(COMMAND "${FUZZER}" ${args} "${work}" "${SOURCE}/corpus/${NAME}"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzz_${NAME} failed (${rc}); reproducer in ${artifacts}/")
endif()
