# gradcam explain --task caption | vqa (issue #19) against PyTorch on small seeded models made by the
# test; the command and the in-process tool (libgradcam_tool through the Python package).
add_test(NAME caption_cli
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/caption_cli.py $<TARGET_FILE:gradcam_cli>
                 ${CMAKE_CURRENT_BINARY_DIR}/caption_cli)
set_tests_properties(caption_cli PROPERTIES TIMEOUT 600
  ENVIRONMENT "GRADCAM_LIBRARY=$<TARGET_FILE:gradcam_tool>;PYTHONDONTWRITEBYTECODE=1")
# gradcam serve's page (headless Chromium, Selenium) with the demo captioner and VQA model: the text
# field, a row per word or answer, each one's panels; the server on 127.0.0.1, its own watchdog.
add_test(NAME caption_page
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/caption_page.py $<TARGET_FILE:gradcam_cli>
                 ${CMAKE_CURRENT_BINARY_DIR}/caption_page)
set_tests_properties(caption_page PROPERTIES TIMEOUT 600 ENVIRONMENT "OMP_WAIT_POLICY=passive;PYTHONDONTWRITEBYTECODE=1")
