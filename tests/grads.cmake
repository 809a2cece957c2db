# Gradient parity with PyTorch autograd (tests/export_grads.py + tests/test_grad_parity.c):
# whole-model input and Grad-CAM-layer gradients for every torchvision family, batch 2, a region
# seed on a segmentation model, Guided Backpropagation / Deconvnet rules, and backward pruning.
# The export fails (never skips) when /usr/bin/python3 has no torch/torchvision/onnx; it does
# nothing when its stamp shows the files are up to date. Both use the 2 cores (PROCESSORS 2).
set(GCAM_GRADS_DIR ${CMAKE_CURRENT_BINARY_DIR}/grads)
add_test(NAME export_grads
         COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/export_grads.py ${GCAM_GRADS_DIR})
set_tests_properties(export_grads PROPERTIES FIXTURES_SETUP grads TIMEOUT 2400 PROCESSORS 2)

add_executable(test_grad_parity ${CMAKE_CURRENT_SOURCE_DIR}/test_grad_parity.c)
target_link_libraries(test_grad_parity PRIVATE opcheck)
target_compile_options(test_grad_parity PRIVATE ${GCAM_WARN})
add_test(NAME test_grad_parity COMMAND test_grad_parity ${GCAM_GRADS_DIR}/manifest.tsv)
set_tests_properties(test_grad_parity PROPERTIES FIXTURES_REQUIRED grads TIMEOUT 2400 PROCESSORS 2)
