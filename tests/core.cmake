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

# The public API's error contract and model-sized tables (tests/test_api.c).
add_test(NAME many_inputs_model COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/many_inputs_model.py
         ${CMAKE_CURRENT_BINARY_DIR}/many_inputs.onnx)
set_tests_properties(many_inputs_model PROPERTIES FIXTURES_SETUP many_inputs)
add_executable(test_api test_api.c)
target_link_libraries(test_api PRIVATE gradcam_static PkgConfig::PROTOBUFC PkgConfig::OPENBLAS OpenMP::OpenMP_C m)
target_compile_options(test_api PRIVATE ${GCAM_WARN})
add_test(NAME test_api COMMAND test_api ${CMAKE_SOURCE_DIR}/examples/demo/shapes_cnn.onnx
         ${CMAKE_CURRENT_BINARY_DIR}/many_inputs.onnx)
set_tests_properties(test_api PROPERTIES FIXTURES_REQUIRED many_inputs)
add_test(NAME valgrind_api COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/valgrind_run.sh $<TARGET_FILE:test_api>
         ${CMAKE_SOURCE_DIR}/examples/demo/shapes_cnn.onnx ${CMAKE_CURRENT_BINARY_DIR}/many_inputs.onnx)
set_tests_properties(valgrind_api PROPERTIES FIXTURES_REQUIRED many_inputs TIMEOUT 300)
