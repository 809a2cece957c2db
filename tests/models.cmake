# NumPy .npy reader/writer test and the torchvision parity suite (see tests/export_models.py).

add_executable(test_npy ${CMAKE_CURRENT_SOURCE_DIR}/test_npy.c)
target_link_libraries(test_npy PRIVATE opcheck)
target_compile_options(test_npy PRIVATE ${GCAM_WARN})
add_test(NAME test_npy
         COMMAND test_npy ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/export_npy_fixtures.py)

# Export (skipped when the models exist and the script is unchanged: see its stamp file). Fails,
# never skips, when /usr/bin/python3 has no torch/torchvision.
set(GCAM_MODELS_DIR ${CMAKE_CURRENT_BINARY_DIR}/models)
add_test(NAME export_models
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/export_models.py ${GCAM_MODELS_DIR})
set_tests_properties(export_models PROPERTIES FIXTURES_SETUP models TIMEOUT 1800)

add_executable(test_model_parity ${CMAKE_CURRENT_SOURCE_DIR}/test_model_parity.c)
target_link_libraries(test_model_parity PRIVATE opcheck)
target_compile_options(test_model_parity PRIVATE ${GCAM_WARN})
add_test(NAME test_model_parity COMMAND test_model_parity ${GCAM_MODELS_DIR}/manifest.tsv)
set_tests_properties(test_model_parity PROPERTIES FIXTURES_REQUIRED models TIMEOUT 1800)
