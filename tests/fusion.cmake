# Activations fused into Conv (src/graph/fuse.c): a Clip and a SiLU after every Conv path, fused vs
# GCAM_NO_FUSION / GCAM_NO_ACT_FUSION (tests/test_fusion_act.c on tests/fusion_act_model.py's model).
if(GCAM_SANITIZE)
  return()
endif()
add_executable(test_fusion_act ${CMAKE_CURRENT_SOURCE_DIR}/test_fusion_act.c)
target_link_libraries(test_fusion_act PRIVATE opcheck)
target_compile_options(test_fusion_act PRIVATE ${GCAM_WARN})
add_test(NAME test_fusion_act
         COMMAND sh -c "\"$0\" \"$1\" \"$2\" && exec \"$3\" \"$2\"" ${SYSTEM_PYTHON}
                 ${CMAKE_CURRENT_SOURCE_DIR}/fusion_act_model.py ${CMAKE_CURRENT_BINARY_DIR}/fusion/fusion_act.onnx
                 $<TARGET_FILE:test_fusion_act>)
set_tests_properties(test_fusion_act PROPERTIES TIMEOUT 300)
