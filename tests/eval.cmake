# Evaluation (gradcam eval): the metrics on hand-made cases (tests/test_metrics.c), the command
# end to end (tests/test_eval.py), whose fixtures (a small exported model, images with boxes) also
# serve test_metrics' randomised-weights checks.
add_executable(test_metrics ${CMAKE_CURRENT_SOURCE_DIR}/test_metrics.c)
target_link_libraries(test_metrics PRIVATE opcheck)
target_compile_options(test_metrics PRIVATE ${GCAM_WARN})
add_test(NAME test_metrics COMMAND test_metrics)

set(GCAM_EVAL_DIR ${CMAKE_CURRENT_BINARY_DIR}/eval)
add_test(NAME eval_fixtures
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_eval.py fixtures ${GCAM_EVAL_DIR})
set_tests_properties(eval_fixtures PROPERTIES FIXTURES_SETUP eval_fx TIMEOUT 900)

add_test(NAME test_metrics_randomize COMMAND test_metrics ${GCAM_EVAL_DIR}/tiny.onnx)
set_tests_properties(test_metrics_randomize PROPERTIES FIXTURES_REQUIRED eval_fx TIMEOUT 300)

add_test(NAME test_eval
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_eval.py run $<TARGET_FILE:gradcam_cli> ${GCAM_EVAL_DIR})
set_tests_properties(test_eval PROPERTIES FIXTURES_REQUIRED eval_fx TIMEOUT 1800)

# Quality on the committed demo model (issue #7): a 100-image sample of the demo's evaluation set,
# generated at test time (seed 2024); fails when examples/demo/shapes_cnn.onnx is missing.
add_test(NAME eval_demo
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_eval.py demo $<TARGET_FILE:gradcam_cli>
                 ${CMAKE_CURRENT_BINARY_DIR}/eval_demo)
set_tests_properties(eval_demo PROPERTIES TIMEOUT 600)
