# The bundled demo (examples/demo/, issue #5): on the committed model, Grad-CAM's argmax falls in the
# box of the class asked for on each demo picture, and the files `make demo` shows decode; and
# tests/demo.sh, what `make demo` runs, exits 0 in under a minute.
set(GCAM_DEMO_WORK ${CMAKE_CURRENT_BINARY_DIR}/demo)
add_test(NAME demo_explain
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_demo.py explain $<TARGET_FILE:gradcam_cli>
                 ${GCAM_DEMO_WORK})
set_tests_properties(demo_explain PROPERTIES TIMEOUT 300)
add_test(NAME demo_script
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_demo.py script $<TARGET_FILE_DIR:gradcam_cli>
                 ${GCAM_DEMO_WORK})
set_tests_properties(demo_script PROPERTIES TIMEOUT 120)
