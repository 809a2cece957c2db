# Transformers explained like the CNNs (issue #20): token layers, the automatic layer, attention
# rollout, against PyTorch on small seeded models exported by the test itself.
add_test(NAME transformers_explain
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/transformers_explain.py $<TARGET_FILE:gradcam_cli>
                 ${CMAKE_CURRENT_BINARY_DIR}/transformers_explain)
set_tests_properties(transformers_explain PROPERTIES TIMEOUT 600)
