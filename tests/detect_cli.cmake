# gradcam explain --task detect, end to end (tests/test_detect_cli.py): tiny YOLOv8- and YOLOv5-layout
# detectors exported with seeded random weights at test time, their detections decoded independently
# with torch + torchvision (batched_nms), the letterbox geometry by hand, error exits, and report.html
# in headless Chromium (Debian's `chromium`). Fails, never skips, when /usr/bin/python3 lacks
# numpy/torch/torchvision/PIL/onnx or Chromium is missing. About 20 s on 2 cores.
add_test(NAME detect_cli
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_detect_cli.py $<TARGET_FILE:gradcam_cli>
                 ${CMAKE_CURRENT_BINARY_DIR}/detect_cli)
set_tests_properties(detect_cli PROPERTIES TIMEOUT 300)
