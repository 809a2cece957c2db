# The Python package (python/gradcam, issue #21): each tests/python/test_*.py is one pytest run with
# Debian's /usr/bin/python3 against this build's libgradcam_tool and command. Bit-for-bit parity
# with the command uses tests/test_cli.py's seeded models (fixture cli_models).
file(GLOB GCAM_PY_TESTS CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/python/test_*.py)
foreach(f ${GCAM_PY_TESTS})
  get_filename_component(name ${f} NAME_WE)
  string(REGEX REPLACE "^test_" "python_" name ${name})
  add_test(NAME ${name} COMMAND ${SYSTEM_PYTHON} -m pytest -q -p no:cacheprovider -rA ${f})
  set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED cli_models TIMEOUT 600
    ENVIRONMENT "GRADCAM_LIBRARY=$<TARGET_FILE:gradcam_tool>;GRADCAM_CLI=$<TARGET_FILE:gradcam_cli>;GRADCAM_CLI_FIXTURES=${CMAKE_CURRENT_BINARY_DIR}/cli/fixtures;PYTHONPATH=${CMAKE_SOURCE_DIR}/python;PYTHONDONTWRITEBYTECODE=1;OMP_WAIT_POLICY=passive")
endforeach()
