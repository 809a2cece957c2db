# gradcam explain --task segment: --box / --mask regions on the demo segmenter, and bad uses
# (tests/segment_cli.py).
add_test(NAME segment_cli
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/segment_cli.py $<TARGET_FILE:gradcam_cli>
                 ${CMAKE_CURRENT_BINARY_DIR}/segment_cli)
set_tests_properties(segment_cli PROPERTIES TIMEOUT 300)
