# Reliability and security: fuzzing, malformed inputs, limits, NaN/Inf, threads, valgrind.
# (tests/asan.cmake adds the sanitizer build.) In the sanitizer build itself (GCAM_SANITIZE=ON) only
# the programs are built: that build is driven by tests/run_asan.sh.

# API-level checks driven by test_malformed_inputs.py (NaN/Inf -> GCAM_E_NUMERIC, max_memory).
add_executable(malformed_driver ${CMAKE_CURRENT_SOURCE_DIR}/malformed_driver.c)
target_link_libraries(malformed_driver PRIVATE opcheck)
target_compile_options(malformed_driver PRIVATE ${GCAM_WARN})

# One model shared by 8 threads: results bit-identical to a single-threaded run.
find_package(Threads REQUIRED)
add_executable(test_threads ${CMAKE_CURRENT_SOURCE_DIR}/test_threads.c)
target_link_libraries(test_threads PRIVATE opcheck Threads::Threads)
target_compile_options(test_threads PRIVATE ${GCAM_WARN})

if(GCAM_SANITIZE)
  return()
endif()

set(REL_DIR ${CMAKE_CURRENT_BINARY_DIR}/reliability)
set(REL_ENV "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")

# Broken models, .npy files, images, labels and command lines: one clear error line, a non-zero
# status, no output left behind, never a crash; limits; NaN/Inf reported.
add_test(NAME malformed_inputs
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_malformed_inputs.py $<TARGET_FILE:gradcam_cli>
                 $<TARGET_FILE:malformed_driver> ${REL_DIR}/malformed)
set_tests_properties(malformed_inputs PROPERTIES TIMEOUT 600)

add_test(NAME test_threads
         COMMAND sh -c "\"$0\" \"$1\" \"$2\" && exec \"$3\" \"$2\"" ${SYSTEM_PYTHON}
                 ${CMAKE_CURRENT_SOURCE_DIR}/threads_model.py ${REL_DIR}/threads_cnn.onnx $<TARGET_FILE:test_threads>)
set_tests_properties(test_threads PROPERTIES TIMEOUT 600 ENVIRONMENT "OMP_WAIT_POLICY=passive")

# valgrind memcheck on one `gradcam explain` (fails, never skips, without valgrind).
add_test(NAME valgrind_explain
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/valgrind_explain.sh $<TARGET_FILE:gradcam_cli> ${REL_DIR}/valgrind)
set_tests_properties(valgrind_explain PROPERTIES TIMEOUT 600)

# libFuzzer targets (fuzz/): built with clang in their own folder (fails, never skips, without
# clang), the reproducers of past findings, then 30 s of fuzzing per target from the seed corpus.
set(FUZZ_BUILD ${CMAKE_BINARY_DIR}/build-fuzz)
add_test(NAME fuzz_build COMMAND ${CMAKE_SOURCE_DIR}/fuzz/run.sh build ${FUZZ_BUILD})
set_tests_properties(fuzz_build PROPERTIES FIXTURES_SETUP fuzz TIMEOUT 1500 ENVIRONMENT "FUZZ_BUILD_JOBS=2")
add_test(NAME fuzz_repro COMMAND ${CMAKE_SOURCE_DIR}/fuzz/run.sh repro ${FUZZ_BUILD})
set_tests_properties(fuzz_repro PROPERTIES FIXTURES_REQUIRED fuzz TIMEOUT 300)
foreach(t fuzz_onnx fuzz_image fuzz_npy fuzz_cli fuzz_labels fuzz_csv fuzz_voc)
  add_test(NAME ${t} COMMAND ${CMAKE_SOURCE_DIR}/fuzz/run.sh run ${FUZZ_BUILD} ${t} 30)
  set_tests_properties(${t} PROPERTIES FIXTURES_REQUIRED fuzz TIMEOUT 300 RESOURCE_LOCK fuzz_cpu ENVIRONMENT "FUZZ_SEED=1")
endforeach()
