#!/usr/bin/python3
"""The loader walks the protobuf wire format itself down to the initialisers' raw_data (src/onnx/wire.c)
before protobuf-c sees the rest. Every model file is untrusted: truncated at any byte of the graph,
overlong varints, lengths past the end of their message, invalid tags and wire types, markers forged
in the file -- each must give one clear error line naming the file and exit status 3 from
`gradcam info` and `gradcam run`, never a crash. Files that are odd but valid protobuf (a raw_data
given twice, the graph in two parts, unknown fields) load as protobuf says and give the same output.

Usage: test_load_wire.py GRADCAM WORKDIR
"""
import os
import shutil
import subprocess
import sys

import numpy as np
from onnx import TensorProto, helper

gradcam, work = (os.path.abspath(a) for a in sys.argv[1:3])
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
os.chdir(work)
rng = np.random.default_rng(5)
BAD = 3
MARKER = 536870000  # GC_WIRE_MARKER_FIELD in src/onnx/wire.h

w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
b = rng.standard_normal(4).astype(np.float32)
x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
np.save("x.npy", x)


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def tag(num, wt):
    return varint(num << 3 | wt)


def ld(num, payload):  # a length-delimited field
    return tag(num, 2) + varint(len(payload)) + payload


def tensor(name, arr, raws=None, extra=b""):
    """A TensorProto's bytes: dims, type, name, then extra fields and the raw_data fields given."""
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=arr.shape).SerializeToString()
    raws = [arr.tobytes()] if raws is None else raws
    return t + extra + b"".join(ld(9, r) for r in raws)


def graph_head():
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu1"),
             helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["y"], name="flat")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    return g.SerializeToString()


def model(tensors=None, graph_extra=b"", graphs=None):
    """ModelProto bytes with the graph last: opset, then field 7 (or several, when graphs is given)."""
    tensors = [tensor("w", w), tensor("b", b)] if tensors is None else tensors
    m = helper.make_model(helper.make_graph([], "g", [], []), opset_imports=[helper.make_opsetid("", 13)])
    m.ClearField("graph")
    if graphs is None:
        graphs = [graph_head() + graph_extra + b"".join(ld(5, t) for t in tensors)]
    return m.SerializeToString() + b"".join(ld(7, g) for g in graphs)


good = model()
graph_at = len(good) - len(ld(7, graph_head() + b"".join(ld(5, t) for t in [tensor("w", w), tensor("b", b)])))
results = []


def save(name, data):
    with open(name, "wb") as f:
        f.write(data)
    return name


def bad(name, data, expect):
    p = save(name, data)
    for argv in (["info", p], ["run", p, "x.npy", "-o", "out.npy"]):
        r = subprocess.run([gradcam] + argv, capture_output=True, text=True, timeout=120)
        err = [ln for ln in r.stderr.splitlines() if ln.strip()]
        problems = []
        if r.returncode < 0:
            problems.append(f"killed by signal {-r.returncode}")
        elif r.returncode != BAD:
            problems.append(f"exit {r.returncode}, expected {BAD}")
        if len(err) != 1:
            problems.append(f"{len(err)} error lines")
        else:
            problems += [f"no '{e}' in the message" for e in (p, expect) if e not in err[0]]
        if os.path.exists("out.npy"):
            problems.append("out.npy left behind")
            os.remove("out.npy")
        results.append((not problems, f"{name} ({argv[0]}): {' | '.join(err)}", problems))


reference = None


def loads(name, data):
    """Valid protobuf: loads, and gives good.onnx's output exactly."""
    global reference
    p = save(name, data)
    r = subprocess.run([gradcam, "run", p, "x.npy", "-o", name + ".npy"], capture_output=True, text=True, timeout=120)
    ok = r.returncode == 0 and os.path.exists(name + ".npy")
    y = np.load(name + ".npy") if ok else None
    if reference is None and ok:
        reference = y
    same = ok and y.shape == reference.shape and np.array_equal(y, reference)
    results.append((same, f"{name}: exit {r.returncode} {r.stderr.strip()}", [] if same else ["output differs or missing"]))


loads("good.onnx", good)
# the reference itself against numpy: conv (pad 1) + relu + mean
xp = np.pad(x[0].astype(np.float64), ((0, 0), (1, 1), (1, 1)))
conv = np.array([[[(xp[:, i:i + 3, j:j + 3] * w[o]).sum() + b[o] for j in range(8)] for i in range(8)] for o in range(4)])
expect_y = np.maximum(conv, 0).mean(axis=(1, 2))
results.append((reference is not None and np.allclose(reference[0], expect_y, rtol=1e-5, atol=1e-5),
                "good.onnx matches numpy", ["differs from numpy"]))

# ---- truncated: every cut inside the graph (cuts between top-level fields can be valid protobuf) --
payload_w = good.find(w.tobytes())
cuts = set(range(graph_at + 1, graph_at + 40)) | set(range(payload_w - 6, payload_w + 6))
cuts |= set(range(len(good) - 40, len(good))) | set(range(graph_at, len(good), 97))
for cut in sorted(c for c in cuts if graph_at < c < len(good)):
    bad(f"cut_{cut}.onnx", good[:cut], "not a valid ONNX model")

# ---- lengths and varints ------------------------------------------------------------------------
glen = varint(len(good) - graph_at - 1 - len(varint(len(good) - graph_at)))
body = good[graph_at + 1 + len(glen):]
head = good[:graph_at]
bad("graph_len_overlong.onnx", head + b"\x3a" + b"\xff" * 11 + body, "overlong")
bad("graph_len_10th_byte.onnx", head + b"\x3a" + b"\x80" * 9 + b"\x02" + body, "overlong")
bad("graph_len_plus_one.onnx", head + b"\x3a" + varint(len(body) + 1) + body, "runs past")
bad("graph_len_huge.onnx", head + b"\x3a" + varint(1 << 62) + body, "runs past")
bad("graph_len_missing.onnx", head + b"\x3a", "runs past")
# raw_data's length one past its tensor's end (same varint width: the tensor's length is unchanged)
t = tensor("w", w)
raw_len = varint(w.nbytes)
cut_t = t[:-w.nbytes - len(raw_len)] + varint(w.nbytes + 1) + w.tobytes()
bad("raw_past_tensor.onnx", model([cut_t, tensor("b", b)]), "runs past the end of its message")
bad("raw_len_overlong.onnx", model([t[:-w.nbytes - len(raw_len)] + b"\xff" * 10 + b"\x01", tensor("b", b)]),
    "overlong")
# an initialiser's length past the graph's end
gbody = graph_head() + ld(5, tensor("w", w)) + tag(5, 2) + varint(len(tensor("b", b)) + 50) + tensor("b", b)
bad("tensor_past_graph.onnx", head + ld(7, gbody), "runs past the end of its message")

# ---- tags and wire types ------------------------------------------------------------------------
bad("field_zero_in_graph.onnx", model(graph_extra=b"\x00\x01"), "invalid field tag")
bad("field_zero_in_tensor.onnx", model([tensor("w", w, extra=b"\x02\x05"), tensor("b", b)]), "invalid field tag")
bad("tag_over_32_bits.onnx", model([tensor("w", w, extra=varint(1 << 35 | 0) + b"\x01"), tensor("b", b)]),
    "invalid field tag")
for wt in (3, 4, 6, 7):
    bad(f"wire_type_{wt}_in_graph.onnx", model(graph_extra=tag(20, wt) + b"\x00" * 8), "wire type")
    bad(f"wire_type_{wt}_in_tensor.onnx", model([tensor("w", w, extra=tag(20, wt) + b"\x00" * 8), tensor("b", b)]),
        "wire type")
bad("fixed64_truncated.onnx", model([tensor("w", w, [], extra=tag(20, 1) + b"\x00" * 3)]), "runs past")
bad("fixed32_truncated.onnx", head + ld(7, graph_head() + tag(20, 5) + b"\x00\x00"), "runs past")
bad("varint_truncated.onnx", head + ld(7, graph_head() + tag(20, 0) + b"\x80\x80"), "runs past")
# wrong wire type for a field the walk would enter: copied as is, refused by protobuf-c
bad("graph_as_varint.onnx", head + tag(7, 0) + b"\x05", "not a valid ONNX model")
bad("initializer_as_varint.onnx", head + ld(7, graph_head() + tag(5, 0) + b"\x05"), "not a valid ONNX model")
bad("raw_data_as_varint.onnx", model([tensor("w", w, [], extra=tag(9, 0) + b"\x05"), tensor("b", b)]),
    "not a valid ONNX model")

# ---- markers are the loader's own: one in the file is never followed ----------------------------
forged = tensor("w", w, [], extra=tag(MARKER, 0) + varint(0))
bad("forged_marker.onnx", model([tensor("b", b), forged]), "holds 0 values")
bad("forged_marker_len.onnx", model([tensor("b", b), tensor("w", w, [], extra=ld(MARKER, b"\x00"))]), "holds 0 values")

# ---- odd but valid protobuf ---------------------------------------------------------------------
loads("raw_twice_last_wins.onnx", model([tensor("w", w, [b"\x00" * 12, w.tobytes()]), tensor("b", b)]))
bad("raw_twice_last_short.onnx", model([tensor("w", w, [w.tobytes(), b"\x00" * 12]), tensor("b", b)]),
    "raw_data holds 12 bytes")
loads("graph_in_two_parts.onnx",
      model(graphs=[graph_head(), ld(5, tensor("w", w)) + ld(5, tensor("b", b))]))
loads("unknown_fields.onnx", model([tensor("w", w, extra=ld(21, b"junk") + tag(22, 0) + b"\x07"), tensor("b", b)],
                                   graph_extra=ld(30, b"\xff\xfe") + tag(31, 5) + b"abcd"))
loads("empty_raw_then_data.onnx", model([tensor("w", w, [b"", w.tobytes()]), tensor("b", b)]))
bad("empty_raw_last.onnx", model([tensor("w", w, [w.tobytes(), b""]), tensor("b", b)]), "raw_data holds 0 bytes")

fails = 0
for ok, line, problems in results:
    print(("ok   " if ok else "FAIL ") + line + ("" if ok else "  <- " + "; ".join(problems)))
    fails += not ok
print(f"{len(results) - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
