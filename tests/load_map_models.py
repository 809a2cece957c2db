#!/usr/bin/python3
"""Models for tests/test_load_map.c: one small network whose raw_data payloads are placed at chosen
offsets in the file (64-byte aligned, or 1, 2, 3 bytes past a multiple of 4), the same weights in
external data files (aligned and not), the expected output computed here in float64 (numpy), and
what the loader should do with each model's bytes (mapped, copied, converted).

The protobuf is written by hand around the initialisers: the wire format lets fields come in any
order, so a padding field (doc_string) before each raw_data moves the payload where we want it.

Usage: load_map_models.py OUTDIR
"""
import os
import sys

import numpy as np
from onnx import TensorProto, helper

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(23)

# x (1, 3, 8, 8) -> Conv(w, b) -> Relu -> Reshape(shape) -> Gemm(W, bias, transB) -> MatMul(M) -> Add(c)
w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
b = rng.standard_normal(8).astype(np.float32)
shape = np.array([1, -1], np.int64)
W = (rng.standard_normal((10, 8 * 6 * 6)) * 0.1).astype(np.float32)
bias = rng.standard_normal(10).astype(np.float32)
M = rng.standard_normal((10, 6)).astype(np.float32)
c = rng.standard_normal(6).astype(np.float16)  # converted at load (float16 -> float32)
INITS = [("w", w, TensorProto.FLOAT), ("b", b, TensorProto.FLOAT), ("shape", shape, TensorProto.INT64),
         ("W", W, TensorProto.FLOAT), ("bias", bias, TensorProto.FLOAT), ("M", M, TensorProto.FLOAT),
         ("c", c, TensorProto.FLOAT16)]


def graph_without_initialisers():
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["conv"], name="conv"),
             helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
             helper.make_node("Reshape", ["relu", "shape"], ["flat"], name="flat"),
             helper.make_node("Gemm", ["flat", "W", "bias"], ["fc"], name="fc", transB=1),
             helper.make_node("MatMul", ["fc", "M"], ["mm"], name="mm"),
             helper.make_node("Add", ["mm", "c"], ["y"], name="add")]
    return helper.make_graph(nodes, "load_map", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                             [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])])


def varint(v):
    b = bytearray()
    while v >= 0x80:
        b.append(v & 0x7F | 0x80)
        v >>= 7
    b.append(v)
    return bytes(b)


def field(num, payload):  # a length-delimited field
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def tensor_bytes(name, arr, dtype, pad, external=None):
    t = TensorProto(name=name, data_type=dtype, dims=arr.shape)
    head = t.SerializeToString() + field(12, b"p" * pad)  # doc_string: the padding
    if external is None:
        return head + field(9, arr.tobytes()), len(head) + 1 + len(varint(arr.nbytes))
    loc, off = external
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", loc), ("offset", str(off)), ("length", str(arr.nbytes))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return t.SerializeToString(), None


def build(pads, external=None):
    """The model's bytes and each payload's offset in them (None for external data)."""
    model = helper.make_model(graph_without_initialisers(), opset_imports=[helper.make_opsetid("", 13)])
    gbytes = model.graph.SerializeToString()
    model.ClearField("graph")
    inits, rel = b"", []
    for i, (name, arr, dtype) in enumerate(INITS):
        tb, at = tensor_bytes(name, arr, dtype, pads[i], None if external is None else (external[0], external[1][i]))
        f = field(5, tb)
        rel.append(None if at is None else len(gbytes) + len(inits) + (len(f) - len(tb)) + at)
        inits += f
    graph = gbytes + inits
    head = model.SerializeToString() + varint(7 << 3 | 2) + varint(len(graph))
    return head + graph, [None if r is None else len(head) + r for r in rel]


def placed(residues):
    """Pads that put payload i at an offset = residues[i] (mod 64)."""
    pads = [0] * len(INITS)
    for _ in range(50):
        data, offs = build(pads)
        if all(o % 64 == r for o, r in zip(offs, residues)):
            return data, offs
        for i, (o, r) in enumerate(zip(offs, residues)):
            pads[i] = (pads[i] + (r - o) % 64) % 128
    raise SystemExit("could not place the payloads")


def save(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


F32 = [n for n, _, t in INITS if t == TensorProto.FLOAT]
f32_bytes = sum(a.nbytes for _, a, t in INITS if t == TensorProto.FLOAT)
as_is = f32_bytes + shape.nbytes  # float32 and int64 payloads are usable as they are when aligned
converted = c.size * 4
expect = []  # (file, mapped, copied, converted)

data, offs = placed([0] * len(INITS))
save("aligned.onnx", data)
expect.append(("aligned.onnx", as_is, 0, converted))
for k in (1, 2, 3):  # every float32 payload k bytes past a multiple of 4; the int64 one 4 past a multiple of 8
    res = [(16 + k) if t == TensorProto.FLOAT else (36 if t == TensorProto.INT64 else 0) for _, _, t in INITS]
    data, offs = placed(res)
    save(f"mis{k}.onnx", data)
    expect.append((f"mis{k}.onnx", 0, as_is, converted))

# External data: every tensor in one file, at 64-byte aligned offsets, or 2 bytes past them.
for name, skew in (("ext_aligned", 0), ("ext_mis", 2)):
    blob, offsets = bytearray(), []
    for _, arr, _ in INITS:
        blob += b"\0" * ((-len(blob)) % 64 + skew)
        offsets.append(len(blob))
        blob += arr.tobytes()
    save(name + ".bin", bytes(blob))
    data, _ = build([0] * len(INITS), (name + ".bin", offsets))
    save(name + ".onnx", data)
    expect.append((name + ".onnx", as_is if not skew else 0, as_is if skew else 0, converted))

# The input (exact in float32) and the expected output, in float64.
x = ((np.arange(3 * 8 * 8) * 7 % 13 - 6) / 8.0).reshape(1, 3, 8, 8)
conv = np.zeros((1, 8, 6, 6))
for o in range(8):
    for i in range(6):
        for j in range(6):
            conv[0, o, i, j] = (x[0, :, i:i + 3, j:j + 3] * w[o].astype(np.float64)).sum() + b[o]
h = np.maximum(conv, 0).reshape(1, -1) @ W.astype(np.float64).T + bias
y = h @ M.astype(np.float64) + c.astype(np.float64)
save("ref.bin", y.astype(np.float32).tobytes())
with open(os.path.join(out, "expect.txt"), "w") as f:
    for e in expect:
        f.write("%s %d %d %d\n" % e)
print(f"wrote {len(expect)} models to {out}")
