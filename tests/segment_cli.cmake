# gradcam explain --task segment: --box / --mask regions on the demo segmenter, and bad uses
# (tests/segment_cli.py).
add_test(NAME segment_cli
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/segment_cli.py $<TARGET_FILE:gradcam_cli>
                 ${CMAKE_CURRENT_BINARY_DIR}/segment_cli)
set_tests_properties(segment_cli PROPERTIES TIMEOUT 300)

# torchvision's FCN (seeded random weights) with its out/aux outputs: the first explained unless
# --output, segments equal PyTorch's argmax, CAM maps equal PyTorch's formulas (tests/segment_fcn.py).
add_test(NAME segment_fcn
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/segment_fcn.py $<TARGET_FILE:gradcam_cli>
                 ${CMAKE_CURRENT_BINARY_DIR}/segment_fcn)
set_tests_properties(segment_fcn PROPERTIES TIMEOUT 600)
