# Benchmark drivers (bench/: `make bench` runs bench/run.sh, not part of `make test`) and a smoke
# test that keeps them from rotting: both sides (C API driver and PyTorch script) and the report,
# one run of every row on mobilenet_v2 at 64x64 (exported once, dynamic size, into build/bench/smoke)
# and of each detection row (bench_detect and bench/bench_detect_torch.py on the demo detector).
foreach(b bench_gradcam bench_backward bench_detect bench_report)
  add_executable(${b} ${CMAKE_SOURCE_DIR}/bench/${b}.c)
  set_target_properties(${b} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench)
  target_link_libraries(${b} PRIVATE gradcam_app)
  target_compile_options(${b} PRIVATE ${GCAM_WARN} -O2)
endforeach()

add_test(NAME bench_smoke COMMAND sh ${CMAKE_SOURCE_DIR}/bench/run.sh ${CMAKE_BINARY_DIR} --smoke)
set_tests_properties(bench_smoke PROPERTIES TIMEOUT 300 PROCESSORS 2) # ~20 s quiet; 90 s seen under load
