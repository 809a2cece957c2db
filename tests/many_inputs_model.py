#!/usr/bin/python3
"""Writes a model with more graph inputs than any fixed table would hold (tests/test_api.c):
y = in0 + in1 + ... + in{N-1}, each input float32 (1, 4). Usage: many_inputs_model.py OUT.onnx [N]"""
import os
import sys

try:
    import onnx
    from onnx import TensorProto, helper
except ImportError as e:
    sys.stderr.write("many_inputs_model.py: FAILED: /usr/bin/python3 lacks onnx (%s)\n" % e)
    sys.exit(1)

out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 70
ins = [helper.make_tensor_value_info("in%d" % i, TensorProto.FLOAT, [1, 4]) for i in range(n)]
nodes, prev = [], "in0"
for i in range(1, n):
    name = "y" if i == n - 1 else "s%d" % i
    nodes.append(helper.make_node("Add", [prev, "in%d" % i], [name], name="add%d" % i))
    prev = name
graph = helper.make_graph(nodes, "many_inputs", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="gradcam-tests")
onnx.checker.check_model(model)
onnx.save(model, out + ".tmp")
os.replace(out + ".tmp", out)
