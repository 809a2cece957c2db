# gradcam explain: the report writers' unit test, the end-to-end CLI suite (PyTorch as the truth)
# and report.html in headless Chromium (Debian's `chromium`).

add_executable(test_report ${CMAKE_CURRENT_SOURCE_DIR}/test_report.c)
target_link_libraries(test_report PRIVATE opcheck)
target_compile_options(test_report PRIVATE ${GCAM_WARN})
add_test(NAME test_report COMMAND test_report)

set(GCAM_CLI_WORK ${CMAKE_CURRENT_BINARY_DIR}/cli)
# Seeded random-weight models and generated images, made once (a stamp file says which version).
add_test(NAME cli_fixtures COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_cli.py fixtures ${GCAM_CLI_WORK})
set_tests_properties(cli_fixtures PROPERTIES FIXTURES_SETUP cli_models TIMEOUT 600)

add_test(NAME cli_explain
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_cli.py run $<TARGET_FILE:gradcam_cli> ${GCAM_CLI_WORK})
set_tests_properties(cli_explain PROPERTIES FIXTURES_REQUIRED cli_models TIMEOUT 1800)

# Screenshots land in ${GCAM_CLI_WORK}/report_screenshot.png and report_fullpage.png.
add_test(NAME report_chromium
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_report_chromium.py $<TARGET_FILE:gradcam_cli>
                 ${GCAM_CLI_WORK})
set_tests_properties(report_chromium PROPERTIES FIXTURES_REQUIRED cli_models TIMEOUT 900)

# Large runs (issue #23): a linked report.html of 1000 inputs of a tiny model in headless Chromium
# (Selenium, chromium-driver): paging by keyboard, pictures from relative files, bytes per input,
# peak RSS flat; a small run still embedded.
add_test(NAME report_link
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/report_link.py $<TARGET_FILE:gradcam_cli>
                 ${CMAKE_CURRENT_BINARY_DIR}/report_link)
set_tests_properties(report_link PROPERTIES TIMEOUT 1200)
