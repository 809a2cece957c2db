# Images (src/image): decoding against Pillow, malformed files, PNG writing, preprocessing against
# torchvision, colour maps against matplotlib, overlays and labels. The fixtures are written at
# test time by tests/image_fixtures.py with the system python (Pillow, torchvision, matplotlib).
add_executable(test_image ${CMAKE_CURRENT_SOURCE_DIR}/test_image.c)
target_link_libraries(test_image PRIVATE opcheck)
target_compile_options(test_image PRIVATE ${GCAM_WARN})
add_test(NAME test_image
         COMMAND test_image ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/image_fixtures.py
                 ${CMAKE_CURRENT_BINARY_DIR}/image-fixtures)
set_tests_properties(test_image PROPERTIES TIMEOUT 600)
