# Explanation methods against a PyTorch reference (tests/methods_ref.py), and examples/explain.c.

# Reference maps (skipped when its stamp, a hash of the script + versions, matches). Fails, never
# skips, when /usr/bin/python3 has no torch/torchvision/onnx.
set(GCAM_METHODS_DIR ${CMAKE_CURRENT_BINARY_DIR}/methods)
add_test(NAME methods_ref
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/methods_ref.py ${GCAM_METHODS_DIR})
set_tests_properties(methods_ref PROPERTIES FIXTURES_SETUP methods_ref TIMEOUT 1800)

add_executable(test_methods ${CMAKE_CURRENT_SOURCE_DIR}/test_methods.c)
target_link_libraries(test_methods PRIVATE opcheck)
target_compile_options(test_methods PRIVATE ${GCAM_WARN})
add_test(NAME test_methods COMMAND test_methods ${GCAM_METHODS_DIR})
set_tests_properties(test_methods PROPERTIES FIXTURES_REQUIRED methods_ref TIMEOUT 1800)

# The example: built as a user would (public header, static library), run on the reference's
# resnet18 with a synthetic input; the test checks that it exits 0 and writes a valid PGM.
add_executable(example_explain ${CMAKE_SOURCE_DIR}/examples/explain.c)
target_link_libraries(example_explain PRIVATE gradcam_static PkgConfig::PROTOBUFC PkgConfig::OPENBLAS
                      OpenMP::OpenMP_C m)
target_compile_options(example_explain PRIVATE ${GCAM_WARN})
set(EXAMPLE_PGM ${CMAKE_CURRENT_BINARY_DIR}/example_explain.pgm)
add_test(NAME example_explain
         COMMAND sh -c "rm -f \"$2\" && \"$0\" \"$1\" \"$2\" && test \"$(head -c 15 \"$2\")\" = \"$(printf 'P5\\n224 224\\n255')\" && test $(wc -c < \"$2\") -eq 50191"
                 $<TARGET_FILE:example_explain> ${GCAM_METHODS_DIR}/resnet18.onnx ${EXAMPLE_PGM})
set_tests_properties(example_explain PROPERTIES FIXTURES_REQUIRED methods_ref TIMEOUT 300)
