# --task detect: every detection's maps against PyTorch (tests/detect_maps_ref.py): two seeded
# two-level detectors (YOLOv8 and YOLOv5 layouts), nine methods, the automatic head layers.
add_test(NAME detect_maps_ref
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/detect_maps_ref.py $<TARGET_FILE:gradcam_cli>
                 ${CMAKE_CURRENT_BINARY_DIR}/detect_maps)
set_tests_properties(detect_maps_ref PROPERTIES TIMEOUT 600)

# The paper's claim on the demo detector (examples/detect) over 100 generated scenes, and instances:
# two shapes of one class, --box names one, the default method's maximum must be in that one.
add_test(NAME detect_claims
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/detect_claims.py $<TARGET_FILE:gradcam_cli>
                 ${CMAKE_CURRENT_BINARY_DIR}/detect_claims)
set_tests_properties(detect_claims PROPERTIES TIMEOUT 900)
