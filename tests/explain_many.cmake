# gcam_explain_many (several targets, batched tail) against a loop of gcam_explain:
# tests/explain_many_models.py exports the models at test time (fails, never skips, without
# torch/torchvision/onnx), tests/test_explain_many.c compares.
set(GCAM_EXPLAIN_MANY_DIR ${CMAKE_CURRENT_BINARY_DIR}/explain_many)
add_test(NAME explain_many_models
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/explain_many_models.py ${GCAM_EXPLAIN_MANY_DIR})
set_tests_properties(explain_many_models PROPERTIES FIXTURES_SETUP explain_many TIMEOUT 300)

add_executable(test_explain_many ${CMAKE_CURRENT_SOURCE_DIR}/test_explain_many.c)
target_link_libraries(test_explain_many PRIVATE opcheck)
target_compile_options(test_explain_many PRIVATE ${GCAM_WARN})
add_test(NAME test_explain_many COMMAND test_explain_many ${GCAM_EXPLAIN_MANY_DIR})
set_tests_properties(test_explain_many PROPERTIES FIXTURES_REQUIRED explain_many TIMEOUT 300)
