# Recurrent ops (src/ops/rnn.c) against PyTorch: nn.LSTM / nn.GRU (1-2 layers, uni- and
# bidirectional, batch_first both ways, with and without initial states) at opsets 13 to 17, a
# captioner (Embedding + LSTM + Linear + LogSoftmax) and two attention decoders (a GRU's; one of
# nn.MultiheadAttention), exported at test time and run through libgradcam with ctypes; outputs
# and input/state gradients against float64 autograd. Fails (never skips) when /usr/bin/python3
# has no torch or onnx.
add_test(NAME rnn_parity COMMAND ${SYSTEM_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/rnn_parity.py
         $<TARGET_FILE:gradcam> ${CMAKE_CURRENT_BINARY_DIR}/rnn_parity)
set_tests_properties(rnn_parity PROPERTIES TIMEOUT 600 PROCESSORS 2)
