#!/usr/bin/python3
"""Malformed models give one clear error line and exit status 3 -- never a crash.

Builds each broken model with the onnx Python package (Debian's python3-onnx) from a small valid
one, then runs `gradcam info` and `gradcam run` on it. Usage: test_malformed_models.py GRADCAM WORKDIR
"""
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

gradcam, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
rng = np.random.default_rng(0)


def base_model(opset=13):
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal((4,)).astype(np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu1"),
        helper.make_node("GlobalAveragePool", ["r"], ["y"], name="gap"),
    ]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 1, 1])], [w, b])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def save(m, name):
    p = os.path.join(work, name)
    with open(p, "wb") as f:
        f.write(m.SerializeToString() if not isinstance(m, bytes) else m)
    return p


cases = []  # (file, expected substring in the error)
good = base_model()
save(good, "good.onnx")
raw = good.SerializeToString()
cases.append((save(raw[: len(raw) // 2], "truncated.onnx"), "not a valid ONNX model"))
cases.append((save(b"\x89PNG\r\n\x1a\n" + raw[8:40], "wrong_magic.onnx"), "not a valid ONNX model"))
cases.append((save(b"", "empty.onnx"), "no graph"))

m = base_model()
m.graph.initializer[0].dims[0] = 5  # dims disagree with the data
cases.append((save(m, "wrong_dims.onnx"), "raw_data holds"))

m = base_model()
m.graph.initializer[0].dims[1] = -3
cases.append((save(m, "negative_dim.onnx"), "negative dimension"))

m = base_model()
del m.graph.initializer[1]  # conv bias missing
cases.append((save(m, "missing_initialiser.onnx"), "input 'b' is not produced"))

m = base_model()
m.graph.node[0].input[0] = "r"  # conv reads relu's output: a cycle
cases.append((save(m, "cycle.onnx"), "cycle"))

m = base_model()
m.graph.node[1].output[0] = "c"  # two producers of one name
cases.append((save(m, "duplicate_name.onnx"), "duplicate tensor name"))

m = base_model()
m.graph.node.append(helper.make_node("FancyOp", ["y"], ["z"], name="fancy", domain="com.example"))
m.graph.node.append(helper.make_node("NonMaxSuppression", ["z"], ["q"], name="nms"))
m.graph.output[0].name = "q"
cases.append((save(m, "unsupported.onnx"), "2 unsupported ops"))

m = base_model()
m.graph.node[0].attribute.append(helper.make_attribute("strides", [0, 0]))
cases.append((save(m, "zero_stride.onnx"), "conv1"))

fails = 0
x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
np.save(os.path.join(work, "x.npy"), x)
for path, expect in cases:
    for cmd in (["info", path], ["run", path, os.path.join(work, "x.npy"), "-o", os.path.join(work, "out.npy")]):
        if os.path.exists(os.path.join(work, "out.npy")):
            os.remove(os.path.join(work, "out.npy"))
        p = subprocess.run([gradcam] + cmd, capture_output=True, text=True, timeout=60)
        err = p.stderr.strip().splitlines()
        ok = p.returncode == 3 and len(err) == 1 and expect in err[0] and os.path.basename(path) in err[0] \
            and not os.path.exists(os.path.join(work, "out.npy"))
        if cmd[0] == "info" and "unsupported" in path:
            # info lists unsupported ops instead of failing to load
            ok = p.returncode == 3 and "FancyOp" in p.stdout and "NonMaxSuppression" in p.stdout
        print(("ok   " if ok else "FAIL ") + f"{cmd[0]} {os.path.basename(path)}: exit {p.returncode}: {' | '.join(err)}")
        fails += not ok
# the valid model works
p = subprocess.run([gradcam, "run", os.path.join(work, "good.onnx"), os.path.join(work, "x.npy"), "-o",
                    os.path.join(work, "out.npy")], capture_output=True, text=True)
ok = p.returncode == 0 and np.load(os.path.join(work, "out.npy")).shape == (1, 4, 1, 1)
print(("ok   " if ok else "FAIL ") + f"run good.onnx: exit {p.returncode} {p.stderr.strip()}")
fails += not ok
total = 2 * len(cases) + 1
print(f"{total - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
