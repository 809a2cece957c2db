# --task segment: every segment's maps against PyTorch (tests/segment_maps_ref.py): the demo
# segmenter on a generated scene, and torchvision's LR-ASPP (MobileNetV3, seeded random weights,
# exported at test time) at its automatic layer and at the backbone's last map; eight methods and
# Score-CAM, the segments' classes and pixel counts.
add_test(NAME segment_maps_ref
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/segment_maps_ref.py $<TARGET_FILE:gradcam_cli>
                 ${CMAKE_CURRENT_BINARY_DIR}/segment_maps)
set_tests_properties(segment_maps_ref PROPERTIES TIMEOUT 600)

# What the maps show on the demo segmenter (examples/segment): over 100 generated scenes each
# segment's energy inside its true class mask, and instances (a region target over one of two shapes
# of a class: the default method's maximum must be in that shape); the default methods.
add_test(NAME segment_claims
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/segment_claims.py $<TARGET_FILE:gradcam_cli>
                 ${CMAKE_CURRENT_BINARY_DIR}/segment_claims)
set_tests_properties(segment_claims PROPERTIES TIMEOUT 600)
