# gradcam serve (docs/serve.md): the API over loopback, the page in headless Chromium (Selenium),
# load and faults, the load test under AddressSanitizer (the tree of tests/asan.cmake) and a
# valgrind leak check of a short session. Servers listen on 127.0.0.1 with a port the system
# picks; every script has its own watchdog.
set(SERVE_WORK ${CMAKE_CURRENT_BINARY_DIR}/serve)
set(SERVE_ENV "OMP_WAIT_POLICY=passive")

add_test(NAME serve_api
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/serve_api.py $<TARGET_FILE:gradcam_cli> ${SERVE_WORK}/api)
add_test(NAME serve_page
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/serve_page.py $<TARGET_FILE:gradcam_cli> ${SERVE_WORK}/page)
# the limits (default body cap, results memory, deadline, connections), /metrics' counts, the
# non-loopback check, no file touched by a request (strace), the SIGTERM drain with a queue
add_test(NAME serve_limits
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/serve_limits.py $<TARGET_FILE:gradcam_cli>
                 ${SERVE_WORK}/limits)
add_test(NAME serve_load
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/serve_load.py $<TARGET_FILE:gradcam_cli> ${SERVE_WORK}/load)
add_test(NAME serve_valgrind
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/serve_valgrind.py $<TARGET_FILE:gradcam_cli>
                 ${SERVE_WORK}/valgrind)
set_tests_properties(serve_api serve_page serve_load serve_limits PROPERTIES TIMEOUT 900 ENVIRONMENT "${SERVE_ENV}")
set_tests_properties(serve_valgrind PROPERTIES TIMEOUT 1000 ENVIRONMENT "${SERVE_ENV}")

# The load and fault test on the sanitizer build (every report fatal, leaks included).
if(NOT GCAM_SANITIZE)
  set(SERVE_ASAN_ENV
      "OMP_WAIT_POLICY=passive;OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1"
      "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
      "UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1"
      "LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_SOURCE_DIR}/lsan.supp:print_suppressions=0"
      "SERVE_TEST_TIMEOUT=1500")
  add_test(NAME asan_serve
           COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/serve_load.py ${CMAKE_BINARY_DIR}/build-asan/gradcam
                   ${SERVE_WORK}/asan)
  set_tests_properties(asan_serve PROPERTIES FIXTURES_REQUIRED asan TIMEOUT 1600 ENVIRONMENT "${SERVE_ASAN_ENV}")
endif()
