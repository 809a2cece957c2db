# Vision transformers (ScatterND and Einsum in src/ops/scatter.c and einsum.c, and the attention
# graphs around them) against PyTorch: small ViT, DeiT-like, Swin v1/v2 and MaxViT configurations
# exported at opsets 13 and 17 at test time and run through libgradcam with ctypes; outputs and the
# top class's input gradient against float64 autograd. Fails (never skips) when /usr/bin/python3 has
# no torch, torchvision or onnx.
add_test(NAME transformers_parity COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/transformers_parity.py
         $<TARGET_FILE:gradcam> ${CMAKE_CURRENT_BINARY_DIR}/transformers_parity)
set_tests_properties(transformers_parity PROPERTIES TIMEOUT 600 PROCESSORS 2)
