# Detector outputs (gcam_detect_decode, src/explain/detect.c): hand-made unit cases, and reference
# detections from PyTorch/torchvision (tests/detect_ref.py, fails, never skips, when
# /usr/bin/python3 lacks numpy/torch/torchvision).
set(GCAM_DETECT_DIR ${CMAKE_CURRENT_BINARY_DIR}/detect)
add_test(NAME detect_ref
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/detect_ref.py ${GCAM_DETECT_DIR})
set_tests_properties(detect_ref PROPERTIES FIXTURES_SETUP detect_ref TIMEOUT 600)

add_executable(test_detect ${CMAKE_CURRENT_SOURCE_DIR}/test_detect.c)
target_link_libraries(test_detect PRIVATE opcheck)
target_compile_options(test_detect PRIVATE ${GCAM_WARN})
# the unit cases alone (no fixture), then the unit cases and every reference case
add_test(NAME test_detect_unit COMMAND test_detect)
add_test(NAME test_detect COMMAND test_detect ${GCAM_DETECT_DIR})
set_tests_properties(test_detect PROPERTIES FIXTURES_REQUIRED detect_ref TIMEOUT 300)
