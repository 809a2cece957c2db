# Loading by mapping the model file (issue #23): what is mapped, copied and converted, results
# whatever the payloads' alignment, external data mapped (test_load_map); the hand-walked protobuf
# wire format refusing truncated, overlong and corrupt files with one line (test_load_wire.py).
add_executable(test_load_map ${CMAKE_CURRENT_SOURCE_DIR}/test_load_map.c)
target_link_libraries(test_load_map PRIVATE opcheck)
target_compile_options(test_load_map PRIVATE ${GCAM_WARN})

if(GCAM_SANITIZE)
  return()
endif()

set(LOAD_DIR ${CMAKE_CURRENT_BINARY_DIR}/load)
add_test(NAME load_map
         COMMAND sh -c "\"$0\" \"$1\" \"$2\" && exec \"$3\" \"$2\"" ${SYSTEM_PYTHON}
                 ${CMAKE_CURRENT_SOURCE_DIR}/load_map_models.py ${LOAD_DIR}/map $<TARGET_FILE:test_load_map>)
add_test(NAME load_wire
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_load_wire.py $<TARGET_FILE:gradcam_cli>
                 ${LOAD_DIR}/wire)
set_tests_properties(load_map load_wire PROPERTIES TIMEOUT 600 ENVIRONMENT "OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")
