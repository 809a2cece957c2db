#!/usr/bin/python3
"""A small MobileNet/EfficientNet-like CNN for tests/test_fusion_act.c, built with python3-onnx: every
Conv path followed by a Clip (ReLU6 and other constant bounds) or a SiLU (Sigmoid + Mul, both operand
orders), a residual Add before a Clip, then pooling and a Gemm. Input x (1, 8, 24, 24), output logits
(1, 10).

  c1  3x3 8->16 (im2col)          Clip [0, 6]
  c2  3x3 depthwise 16            Clip [0, 6]
  c3  1x1 16->32 (pointwise)      Mul(c3, Sigmoid(c3))
  c4  3x3 32->32 (Winograd)       Clip [-1, 1]
  c5  3x3 depthwise 32, stride 2  Mul(Sigmoid(c5), c5)
  c6  1x1 32->32, Add(y5, c6)     Clip [0, 6]   (the Add fused into c6, the Clip on its own)
  c7  1x1 32->48, no bias         Mul(c7, Sigmoid(c7))

Usage: fusion_act_model.py OUT.onnx
"""
import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
rng = np.random.default_rng(7)
inits = []


def w(name, *shape, scale=0.3):
    inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name))
    return name


def const(name, v):
    inits.append(numpy_helper.from_array(np.array(v, dtype=np.float32), name))
    return name


zero, six, m1, p1 = const("zero", 0.0), const("six", 6.0), const("m1", -1.0), const("p1", 1.0)
N = helper.make_node
nodes = [
    N("Conv", ["x", w("w1", 16, 8, 3, 3), w("b1", 16, scale=0.1)], ["c1"], pads=[1, 1, 1, 1]),
    N("Clip", ["c1", zero, six], ["y1"]),
    N("Conv", ["y1", w("w2", 16, 1, 3, 3), w("b2", 16, scale=0.1)], ["c2"], pads=[1, 1, 1, 1], group=16),
    N("Clip", ["c2", zero, six], ["y2"]),
    N("Conv", ["y2", w("w3", 32, 16, 1, 1), w("b3", 32, scale=0.1)], ["c3"]),
    N("Sigmoid", ["c3"], ["s3"]),
    N("Mul", ["c3", "s3"], ["y3"]),
    N("Conv", ["y3", w("w4", 32, 32, 3, 3, scale=0.1), w("b4", 32, scale=0.1)], ["c4"], pads=[1, 1, 1, 1]),
    N("Clip", ["c4", m1, p1], ["y4"]),
    N("Conv", ["y4", w("w5", 32, 1, 3, 3), w("b5", 32, scale=0.1)], ["c5"], pads=[1, 1, 1, 1], group=32,
      strides=[2, 2]),
    N("Sigmoid", ["c5"], ["s5"]),
    N("Mul", ["s5", "c5"], ["y5"]),
    N("Conv", ["y5", w("w6", 32, 32, 1, 1), w("b6", 32, scale=0.1)], ["c6"]),
    N("Add", ["y5", "c6"], ["a6"]),
    N("Clip", ["a6", zero, six], ["y6"]),
    N("Conv", ["y6", w("w7", 48, 32, 1, 1)], ["c7"]),
    N("Sigmoid", ["c7"], ["s7"]),
    N("Mul", ["c7", "s7"], ["y7"]),
    N("GlobalAveragePool", ["y7"], ["g"]),
    N("Flatten", ["g"], ["f"]),
    N("Gemm", ["f", w("wf", 10, 48), w("bf", 10, scale=0.1)], ["logits"], transB=1),
]
g = helper.make_graph(nodes, "fusion_act", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 24, 24])],
                      [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="gradcam-tests")
os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
with open(out, "wb") as f:
    f.write(m.SerializeToString())
