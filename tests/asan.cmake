# AddressSanitizer + UndefinedBehaviorSanitizer: a second configuration (-DGCAM_SANITIZE=ON) in
# BUILD/build-asan, built and run by tests/run_asan.sh: the op unit tests, the ONNX conformance
# suite, the malformed-input suites, the threads test and the loader's tests, with every sanitizer
# report fatal (ASAN_OPTIONS=detect_leaks=1:abort_on_error=1, UBSAN_OPTIONS=halt_on_error=1).
if(GCAM_SANITIZE)
  return()
endif()
set(ASAN_BUILD ${CMAKE_BINARY_DIR}/build-asan)
set(RUN_ASAN ${CMAKE_CURRENT_SOURCE_DIR}/run_asan.sh)
add_test(NAME asan_build COMMAND ${RUN_ASAN} build ${CMAKE_SOURCE_DIR} ${ASAN_BUILD})
set_tests_properties(asan_build PROPERTIES FIXTURES_SETUP asan TIMEOUT 1500)
add_test(NAME asan_ops COMMAND ${RUN_ASAN} ops ${ASAN_BUILD})
add_test(NAME asan_conformance COMMAND ${RUN_ASAN} conformance ${ASAN_BUILD})
add_test(NAME asan_malformed COMMAND ${RUN_ASAN} malformed ${CMAKE_SOURCE_DIR} ${ASAN_BUILD})
add_test(NAME asan_threads COMMAND ${RUN_ASAN} threads ${CMAKE_SOURCE_DIR} ${ASAN_BUILD})
add_test(NAME asan_load COMMAND ${RUN_ASAN} load ${CMAKE_SOURCE_DIR} ${ASAN_BUILD})
set_tests_properties(asan_ops asan_conformance asan_malformed asan_threads asan_load
                     PROPERTIES FIXTURES_REQUIRED asan TIMEOUT 1200)
