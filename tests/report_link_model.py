#!/usr/bin/python3
"""Writes a tiny seeded CNN for report tests and the report bench: x (1, 3, 32, 32) -> Conv 3x3 (8)
-> Relu -> Conv 3x3 (8) -> Relu -> GlobalAveragePool -> Flatten -> Gemm (5 classes), and its labels
(one with HTML specials). Explaining a picture with it costs little, so a run of a thousand inputs
is cheap. Usage: report_link_model.py OUT_DIR  (writes tiny.onnx, labels.txt)"""
import os
import sys

import numpy as np

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError as e:
    sys.stderr.write("report_link_model.py: FAILED: /usr/bin/python3 lacks onnx (%s)\n" % e)
    sys.exit(1)

LABELS = ["circle", "square", "tri<angle> & \"co\"", "star", "ring"]


def main(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    w = {"w1": rng.normal(0, 0.4, (8, 3, 3, 3)), "b1": rng.normal(0, 0.1, 8),
         "w2": rng.normal(0, 0.3, (8, 8, 3, 3)), "b2": rng.normal(0, 0.1, 8),
         "w3": rng.normal(0, 1.0, (5, 8)), "b3": rng.normal(0, 0.1, 5)}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in w.items()]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], transB=1, name="fc")]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="gradcam-tests")
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out, "tiny.onnx.tmp"))
    os.replace(os.path.join(out, "tiny.onnx.tmp"), os.path.join(out, "tiny.onnx"))
    with open(os.path.join(out, "labels.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(LABELS) + "\n")


def pictures(folder, n, first=0, size=32):
    """n small seeded pictures (a bright square on noise) named img_00000.png ..."""
    from PIL import Image
    os.makedirs(folder, exist_ok=True)
    names = []
    for i in range(first, first + n):
        rng = np.random.default_rng(i)
        a = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
        x, y, s = rng.integers(0, size // 2), rng.integers(0, size // 2), rng.integers(6, size // 2)
        a[y:y + s, x:x + s] = rng.integers(120, 256, 3, dtype=np.uint8)
        name = os.path.join(folder, "img_%05d.png" % i)
        Image.fromarray(a).save(name, compress_level=1)
        names.append(name)
    return names


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        sys.exit(2)
    main(sys.argv[1])
