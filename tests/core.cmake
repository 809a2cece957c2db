# Engine tests written by the lead: ONNX conformance, API, CLI.
add_executable(test_onnx_conformance test_onnx_conformance.c)
target_link_libraries(test_onnx_conformance PRIVATE opcheck)
target_include_directories(test_onnx_conformance PRIVATE ${GEN_DIR})
target_compile_options(test_onnx_conformance PRIVATE ${GCAM_WARN})
add_test(NAME onnx_conformance COMMAND test_onnx_conformance /usr/share/libonnx-testdata/data)
set_tests_properties(onnx_conformance PROPERTIES TIMEOUT 900)

add_test(NAME malformed_models COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_malformed_models.py
         $<TARGET_FILE:gradcam_cli> ${CMAKE_CURRENT_BINARY_DIR}/malformed)
set_tests_properties(malformed_models PROPERTIES TIMEOUT 300)

# `cmake --install` into a temporary prefix, then build a tiny C program against it twice:
# with pkg-config and with find_package(gradcam).
add_test(NAME install_and_link COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/install_test.sh ${CMAKE_BINARY_DIR}
         ${CMAKE_CURRENT_BINARY_DIR}/install-test)
set_tests_properties(install_and_link PROPERTIES TIMEOUT 600)
