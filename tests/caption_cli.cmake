# gradcam explain --task caption | vqa (issue #19) against PyTorch on small seeded models made by the
# test; the command and the in-process tool (libgradcam_tool through the Python package).
add_test(NAME caption_cli
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/caption_cli.py $<TARGET_FILE:gradcam_cli>
                 ${CMAKE_CURRENT_BINARY_DIR}/caption_cli)
set_tests_properties(caption_cli PROPERTIES TIMEOUT 600
  ENVIRONMENT "GRADCAM_LIBRARY=$<TARGET_FILE:gradcam_tool>;PYTHONDONTWRITEBYTECODE=1")
