#!/usr/bin/python3
"""Writes the seed corpus of every fuzz target from real files: small ONNX models (built here with
python3-onnx, plus the ONNX backend test models Debian ships in libonnx-testdata), PNG and JPEG
variants written by Pillow, .npy files written by NumPy, command lines and label files.

Usage: make_corpus.py OUT_DIR   (creates OUT_DIR/{onnx,image,npy,cli,labels}/)
"""
import glob
import io
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

out = sys.argv[1]
rng = np.random.default_rng(1)
dirs = {k: os.path.join(out, k) for k in ("onnx", "image", "npy", "cli", "labels", "csv", "voc")}
for d in dirs.values():
    os.makedirs(d, exist_ok=True)


def put(kind, name, data):
    with open(os.path.join(dirs[kind], name), "wb") as f:
        f.write(data)


# ---- ONNX ------------------------------------------------------------------------------------
def f32(shape, name):
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def model(nodes, inputs, outputs, inits, opset=13):
    g = helper.make_graph(nodes, "g", inputs, outputs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


x4 = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
xdyn = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
# the malformed-model test's good.onnx: conv, relu, global pooling
put("onnx", "good.onnx", model(
    [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
     helper.make_node("Relu", ["c"], ["r"], name="relu1"),
     helper.make_node("GlobalAveragePool", ["r"], ["y"], name="gap")],
    [x4], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 1, 1])],
    [f32((4, 3, 3, 3), "w"), f32((4,), "b")]))
# a small classifier: conv, batchnorm, relu, maxpool, conv, gap, flatten, gemm, softmax
put("onnx", "classifier.onnx", model(
    [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
     helper.make_node("BatchNormalization", ["c1", "s", "bb", "mu", "var"], ["n1"]),
     helper.make_node("Relu", ["n1"], ["r1"]),
     helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
     helper.make_node("Conv", ["p1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[1, 1]),
     helper.make_node("Relu", ["c2"], ["r2"]),
     helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
     helper.make_node("Flatten", ["g"], ["f"]),
     helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], transB=1),
     helper.make_node("Softmax", ["logits"], ["prob"], axis=1)],
    [xdyn], [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 5])],
    [f32((4, 3, 3, 3), "w1"), f32((4,), "b1"), f32((4,), "s"), f32((4,), "bb"), f32((4,), "mu"),
     numpy_helper.from_array(np.abs(rng.standard_normal(4)).astype(np.float32) + 0.5, "var"),
     f32((6, 4, 3, 3), "w2"), f32((5, 6), "wf"), f32((5,), "bf")]))
# exporter-style shape arithmetic: Shape -> Gather -> Unsqueeze -> Concat -> Reshape
put("onnx", "reshape_chain.onnx", model(
    [helper.make_node("Shape", ["x"], ["s"]),
     helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
     helper.make_node("Unsqueeze", ["n", "ax"], ["nu"]),
     helper.make_node("Concat", ["nu", "m1"], ["shape"], axis=0),
     helper.make_node("Reshape", ["x", "shape"], ["flat"]),
     helper.make_node("MatMul", ["flat", "wm"], ["y"])],
    [x4], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    [numpy_helper.from_array(np.array(0, np.int64), "i0"), numpy_helper.from_array(np.array([0], np.int64), "ax"),
     numpy_helper.from_array(np.array([-1], np.int64), "m1"), f32((192, 2), "wm")]))
# resize, concat, add, sigmoid (a segmentation-like head)
put("onnx", "seg.onnx", model(
    [helper.make_node("Conv", ["x", "w"], ["c"], strides=[2, 2]),
     helper.make_node("Resize", ["c", "", "sc"], ["u"], mode="linear"),
     helper.make_node("Concat", ["u", "u"], ["cc"], axis=1),
     helper.make_node("Add", ["cc", "bias"], ["a"]),
     helper.make_node("Sigmoid", ["a"], ["y"])],
    [x4], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    [f32((2, 3, 2, 2), "w"), numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc"),
     f32((1, 4, 1, 1), "bias")]))
# external data: an initialiser read from weights.bin (the fuzz target provides that file)
ext = onnx.TensorProto()
ext.name, ext.data_type = "w", TensorProto.FLOAT
ext.dims.extend([4, 3, 1, 1])
ext.data_location = TensorProto.EXTERNAL
for k, v in (("location", "weights.bin"), ("offset", "64"), ("length", "48")):
    e = ext.external_data.add()
    e.key, e.value = k, v
put("onnx", "external.onnx", model([helper.make_node("Conv", ["x", "w"], ["y"])], [x4],
                                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [ext]))
# older and newer opsets, float16 / int8 / double initialisers, Constant nodes
put("onnx", "opset7.onnx", model(
    [helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.ones((1, 3, 1, 1), np.float16))),
     helper.make_node("Cast", ["k"], ["kf"], to=TensorProto.FLOAT),
     helper.make_node("Mul", ["x", "kf"], ["m"]),
     helper.make_node("AveragePool", ["m"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])],
    [x4], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [], opset=9))
put("onnx", "int_types.onnx", model(
    [helper.make_node("Cast", ["q"], ["qf"], to=TensorProto.FLOAT),
     helper.make_node("Add", ["x", "qf"], ["a"]),
     helper.make_node("Cast", ["d"], ["df"], to=TensorProto.FLOAT),
     helper.make_node("Mul", ["a", "df"], ["y"])],
    [x4], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    [numpy_helper.from_array(np.arange(3, dtype=np.int8).reshape(1, 3, 1, 1), "q"),
     numpy_helper.from_array(np.ones((1, 1, 1, 8), np.float64), "d")], opset=17))
# the backend test models (small: every one is a few KiB)
seen = set()
for p in sorted(glob.glob("/usr/share/libonnx-testdata/data/*/*/model.onnx")):
    if os.path.getsize(p) > 65536:
        continue
    data = open(p, "rb").read()
    if data in seen:
        continue
    seen.add(data)
    put("onnx", "backend_" + os.path.basename(os.path.dirname(p)) + ".onnx", data)

# ---- images ----------------------------------------------------------------------------------
def img_bytes(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


base = Image.fromarray(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8), "RGB")
grad = Image.fromarray(np.tile(np.arange(0, 256, 16, dtype=np.uint8), (10, 1)), "L")
put("image", "rgb.png", img_bytes(base, "PNG"))
put("image", "rgb_optimized.png", img_bytes(base, "PNG", optimize=True))
put("image", "grey.png", img_bytes(grad, "PNG"))
put("image", "grey_alpha.png", img_bytes(Image.merge("LA", (grad, grad.point(lambda v: 255 - v))), "PNG"))
put("image", "rgba.png", img_bytes(base.convert("RGBA"), "PNG"))
pal = base.convert("P", palette=Image.ADAPTIVE, colors=8)
put("image", "palette.png", img_bytes(pal, "PNG"))
put("image", "palette_trns.png", img_bytes(pal, "PNG", transparency=2))
put("image", "bilevel.png", img_bytes(grad.convert("1"), "PNG"))
put("image", "grey16.png", img_bytes(Image.fromarray((np.arange(60, dtype=np.uint16) * 1000).reshape(6, 10)), "PNG"))
put("image", "rgb_big.png", img_bytes(base.resize((64, 48)), "PNG", compress_level=9))
put("image", "baseline.jpg", img_bytes(base, "JPEG", quality=80))
put("image", "progressive.jpg", img_bytes(base.resize((32, 24)), "JPEG", quality=60, progressive=True))
put("image", "grey.jpg", img_bytes(grad, "JPEG", quality=70))
put("image", "cmyk.jpg", img_bytes(base.convert("CMYK"), "JPEG", quality=70))
put("image", "subsampling444.jpg", img_bytes(base, "JPEG", quality=90, subsampling=0))
put("image", "subsampling422.jpg", img_bytes(base.resize((17, 11)), "JPEG", quality=50, subsampling=1))
for orient in (3, 6, 8):
    ex = Image.Exif()
    ex[0x0112] = orient
    put("image", f"exif{orient}.jpg", img_bytes(base, "JPEG", quality=70, exif=ex.tobytes()))
put("image", "q30.jpg", img_bytes(base.resize((40, 40)), "JPEG", quality=30))
raw = img_bytes(base, "JPEG", quality=80)
put("image", "truncated.jpg", raw[: len(raw) * 2 // 3])
raw = img_bytes(base, "PNG")
put("image", "truncated.png", raw[: len(raw) // 2])

# ---- .npy ------------------------------------------------------------------------------------
def npy(a, **kw):
    b = io.BytesIO()
    np.save(b, a, **kw)
    return b.getvalue()


x = rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
put("npy", "f4.npy", npy(x))
put("npy", "f8.npy", npy(x.astype(np.float64)))
put("npy", "fortran.npy", npy(np.asfortranarray(rng.standard_normal((3, 5)).astype(np.float32))))
put("npy", "i8.npy", npy(np.arange(6, dtype=np.int64).reshape(2, 3)))
for t in ("<i4", "<i2", "|i1", "<u4", "<u2", "|u1", "|b1"):
    put("npy", f"{t[1:]}.npy", npy(np.arange(5).astype(t)))
put("npy", "scalar.npy", npy(np.float32(3.5)))
put("npy", "empty.npy", npy(np.zeros((0, 3), np.float32)))
put("npy", "nan_inf.npy", npy(np.array([np.nan, np.inf, -np.inf, 1e300], np.float64)))
put("npy", "big_endian.npy", npy(np.arange(3, dtype=">f4")))
v2 = npy(x)
hl = int.from_bytes(v2[8:10], "little")
put("npy", "v2.npy", b"\x93NUMPY\x02\x00" + (hl).to_bytes(4, "little") + v2[10:])
put("npy", "v3.npy", b"\x93NUMPY\x03\x00" + (hl).to_bytes(4, "little") + v2[10:])
put("npy", "rank8.npy", npy(np.zeros((1, 2, 1, 2, 1, 2, 1, 2), np.float32)))

# ---- command lines (one argument per line) ---------------------------------------------------
cli = [
    "info\nm.onnx",
    "info\n--help",
    "--version",
    "run\nm.onnx\nx.npy\n-o\nout.npy\n--threads\n2",
    "run\nm.onnx\nx.npy\n-t\nconv1\n-t\nrelu1\n-o\nfeats\n--feed\nids=ids.npy\n-",
    "run\nm.onnx\nx.npy\n--max-memory\n64M",
    "explain\nm.onnx\nimg.png\n-m\ngradcam,gradcam++,scorecam\n-c\n3,cat\n-k\n2\n-l\nconv1,relu1",
    "explain\nm.onnx\nimg.png\n--target\nregion:1:0,0,4,4\n--target\nelement:0,5\n--target\nclass:dog",
    "explain\nm.onnx\nx.npy\n--preprocess\nimagenet\n--size\n224x224\n--resize-mode\nletterbox\n--mean\n0.485,0.456,0.406\n"
    "--std\n0.229,0.224,0.225\n--scale\n255\n--bgr\n--nhwc",
    "explain\nm.onnx\nimgs\n--labels\nlabels.txt\n--colormap\nviridis\n--alpha=0.3\n--npy\n-q\n-o\nout\n--threads=1\n"
    "--max-memory\n2GiB\n--seed\n0x10\n--probability\n--output\nlogits\n--\n-weird.png",
    "explain\n-m\nall\nm.onnx\na.jpg\nb.jpg",
    "explain\nm.onnx\nimg.png\n--feed\nmask=mask.npy\n--max-memory=1.5k",
    "eval\nm.onnx\n--images\nimgs\n--boxes\nboxes.csv\n-m\ngradcam,scorecam\n--metrics\nlocalisation,pointing,sanity\n"
    "--threshold\n0.5\n--tolerance\n15\n--steps\n20\n--substrate\nblur\n--blur-sigma\n5\n--batch\n8",
    "eval\nm.onnx\n--images=imgs\n--boxes=voc\n--limit\n10\n--sanity-depths\n1,2,all\n--sanity-cases\n4\n--seed\n7\n"
    "--labels\nl.txt\n-l\nconv1\n-o\nev\n-q\n--size\n64x64\n--max-memory\n1G",
]
for i, c in enumerate(cli):
    put("cli", f"cmd{i}.txt", c.encode())

# ---- labels: the -c list, NUL, the file ------------------------------------------------------
labels = [
    b"0,cat\x00cat\ndog\nbird\n",
    b"tabby,2\x00\xef\xbb\xbftabby\r\ntiger\r\nbull mastiff\r\n\r\n",
    b"\x00",
    b"-1,99999999999999999999\x00a\n\nb\n",
    b"bull mastiff, Tabby \x00" + b"\n".join(f"class {i}".encode() for i in range(20)),
]
for i, c in enumerate(labels):
    put("labels", f"labels{i}.txt", c)

# ---- gradcam eval ground truth: CSV and Pascal VOC --------------------------------------------
csv = [
    b"image,class,x0,y0,x1,y1\ncat.jpg,281,10,20,110,220\ncat.jpg,tabby,0,0,5.5,7.25\ndog.png,bull mastiff,1,2,3,4\n",
    b"\xef\xbb\xbfx1,y1,image,x0,class,y0\r\n30,40,a.jpg,1,0,2\r\n",
    b'"we, ird.jpg","cat ""quoted""",1,1,9,9\n\n  \nb.jpg,3,0,0,1e3,2e2\n',
    b"a.jpg,1,5,5,5,9\n",
    b'a.jpg,"unterminated,1,2,3,4\n',
    b"a.jpg,1,nan,0,1,1\na.jpg,1,0,0,inf,1\n",
]
for i, c in enumerate(csv):
    put("csv", f"boxes{i}.csv", c)
voc = [
    b"""<annotation><folder>VOC2007</folder><filename>000001.jpg</filename>
<size><width>353</width><height>500</height><depth>3</depth></size>
<object><name>dog</name><pose>Left</pose><truncated>1</truncated><difficult>0</difficult>
<bndbox><xmin>48</xmin><ymin>240</ymin><xmax>195</xmax><ymax>371</ymax></bndbox></object>
<object><name>person</name><bndbox><xmin>8</xmin><ymin>12</ymin><xmax>352</xmax><ymax>498</ymax></bndbox></object>
</annotation>""",
    b"""<?xml version="1.0" encoding="utf-8"?><!DOCTYPE annotation [<!ENTITY x "y">]><!-- c -->
<annotation verified="yes"><filename><![CDATA[a&b.png]]></filename><object><name>caf&#233; &amp; bar</name>
<bndbox><xmin>1.5</xmin><ymin>2</ymin><xmax>10</xmax><ymax>20</ymax></bndbox><part/></object></annotation>""",
    b"<annotation><object><name>x</name></object></annotation>",
    b"<annotation><filename>../../etc/passwd</filename></annotation>",
    b"<root/>",
]
for i, c in enumerate(voc):
    put("voc", f"ann{i}.xml", c)

n = {k: len(os.listdir(d)) for k, d in dirs.items()}
print("seed corpus:", ", ".join(f"{k} {v}" for k, v in n.items()))
