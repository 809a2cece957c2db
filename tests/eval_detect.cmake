# gradcam eval --task detect (tests/test_eval_detect.py): a tiny seeded detector whose detections
# are known exactly (YOLOv8 and YOLOv5 layouts), VOC / CSV ground truth and pictures made at test
# time; the matching's counts, recall, and each matched detection's pointing game and energy
# against the formula and against explain's raw maps. Fails, never skips, when /usr/bin/python3
# lacks numpy/torch/PIL.
add_test(NAME eval_detect
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_eval_detect.py $<TARGET_FILE:gradcam_cli>
                 ${CMAKE_CURRENT_BINARY_DIR}/eval_detect)
set_tests_properties(eval_detect PROPERTIES TIMEOUT 600)
