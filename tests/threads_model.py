#!/usr/bin/python3
"""A small CNN for tests/test_threads.c and tests/valgrind_explain.sh, built with python3-onnx:
conv(3->8, 3x3) + relu, conv(8->8, 3x3, stride 2) + relu, conv(8->16, 3x3) + relu, global average
pooling, flatten, gemm (16->10). Input (1, 3, 32, 32).

Usage: threads_model.py OUT.onnx [SIZE]   (SIZE: input height and width, default 32)
"""
import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
size = int(sys.argv[2]) if len(sys.argv) > 2 else 32
rng = np.random.default_rng(42)


def w(name, *shape, scale=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


nodes = [
    helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
    helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
    helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
    helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
    helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], name="conv3", pads=[1, 1, 1, 1]),
    helper.make_node("Relu", ["c3"], ["r3"], name="relu3"),
    helper.make_node("GlobalAveragePool", ["r3"], ["g"], name="gap"),
    helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
    helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="fc", transB=1),
]
inits = [w("w1", 8, 3, 3, 3), w("b1", 8, scale=0.1), w("w2", 8, 8, 3, 3), w("b2", 8, scale=0.1),
         w("w3", 16, 8, 3, 3), w("b3", 16, scale=0.1), w("wf", 10, 16), w("bf", 10, scale=0.1)]
g = helper.make_graph(nodes, "small_cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
                      [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="gradcam-tests")
os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)  # also when run alone (ctest -R)
with open(out, "wb") as f:
    f.write(m.SerializeToString())
