#!/usr/bin/python3
"""The bundled demo (examples/demo/): the committed model does what the demo says it does.

Usage:
  test_demo.py explain GRADCAM WORKDIR    gradcam explain on the 4 demo pictures (top-2, --npy), and
                                          the command's exit codes and folder batches on the demo model
  test_demo.py script BUILD_DIR WORKDIR   tests/demo.sh (what `make demo` runs) exits 0 in < 60 s

explain: for every demo picture the model's top-2 classes are exactly the two shapes in it, and
for each of them the Grad-CAM map (the raw --npy map, upsampled bilinearly with half-pixel centres
as the library does) has its argmax inside that class's box from images/boxes.csv (no tolerance;
the pointing game would allow 15 px) and equals a PyTorch Grad-CAM (hooks on block5) of the same
model; Guided Backprop puts a real share of its energy on both shapes, Guided Grad-CAM mostly on the
asked-for one; every PNG named in results.json and every image embedded in report.html decodes
with PIL at the right size.

Run with Debian's /usr/bin/python3 (numpy, PIL, torch, onnx). Prints one line per failed check and
"N passed, M failed"; exits non-zero on any failure.
"""
import base64
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import Checks  # noqa: E402
import time

try:
    import numpy as np
    from PIL import Image
except ImportError as e:
    sys.stderr.write("test_demo.py: FAILED: /usr/bin/python3 lacks numpy/PIL (%s)\n" % e)
    sys.exit(1)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEMO = os.path.join(ROOT, "examples", "demo")
MODEL = os.path.join(DEMO, "shapes_cnn.onnx")
LABELS = os.path.join(DEMO, "labels.txt")
IMAGES = os.path.join(DEMO, "images")
SIZE = 128
# Guided Backprop "lights both": each shape gets at least this share of the energy inside the two
# boxes; Guided Grad-CAM "only the asked-for one": the asked-for shape gets at least GGC_MIN.
GBP_MIN_EACH = 0.2
GGC_MIN = 0.7

check = Checks('FAILED: ')


def upsample(raw, h, w):
    """(h1, w1) -> (h, w), bilinear with half-pixel centres, edges clamped (gc_resize_bilinear)."""
    h1, w1 = raw.shape

    def axis(n2, n1):
        s = np.clip((np.arange(n2) + 0.5) * n1 / n2 - 0.5, 0, n1 - 1)
        i0 = np.floor(s).astype(np.int64)
        i1 = np.minimum(i0 + 1, n1 - 1)
        return i0, i1, (s - i0).astype(np.float64)

    y0, y1, fy = axis(h, h1)
    x0, x1, fx = axis(w, w1)
    r = raw.astype(np.float64)
    top = r[y0][:, x0] * (1 - fx) + r[y0][:, x1] * fx
    bot = r[y1][:, x0] * (1 - fx) + r[y1][:, x1] * fx
    return top * (1 - fy[:, None]) + bot * fy[:, None]


def read_boxes():
    objs = {}
    with open(os.path.join(IMAGES, "boxes.csv")) as f:
        for r in csv.DictReader(f):
            objs.setdefault(r["image"], []).append((r["class"], tuple(int(r[k]) for k in ("x0", "y0", "x1", "y1"))))
    return objs


def box_sum(m, b):
    return float(m[b[1]:b[3], b[0]:b[2]].sum())


def decode_png(data_or_path, what, size=None):
    try:
        im = Image.open(data_or_path if isinstance(data_or_path, str) else io.BytesIO(data_or_path))
        im.load()
    except Exception as e:  # noqa: BLE001 - any decoder error is a failure to report
        return check(False, "%s does not decode: %s" % (what, e))
    ok = check(im.format == "PNG", "%s is a PNG (%s)" % (what, im.format))
    if size is not None:
        ok &= check(im.size == size, "%s is %s, not %s" % (what, im.size, size))
    return ok


def pytorch_gradcams(images):
    """{(image, label): Grad-CAM (128, 128)} from PyTorch on the ONNX file's weights."""
    sys.path.insert(0, DEMO)
    import torch
    from check_gradcam import gradcam, load_model
    from train import to_input
    torch.set_num_threads(1)
    model = load_model(MODEL)
    labels = open(LABELS).read().split()
    out = {}
    for name, objs in images.items():
        x = to_input(np.asarray(Image.open(os.path.join(IMAGES, name)).convert("RGB"))[None])
        for label, _ in objs:
            out[(name, label)] = gradcam(model, x, labels.index(label))[0].numpy().astype(np.float64)
    return out


def test_explain(g, work):
    boxes = read_boxes()
    check(len(boxes) == 4 and all(len(o) == 2 and o[0][0] != o[1][0] for o in boxes.values()),
          "images/boxes.csv: 4 pictures with two shapes of different classes: %s" % boxes)
    out = os.path.join(work, "explain")
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    p = subprocess.run([g, "explain", MODEL, IMAGES, "--labels", LABELS, "--preprocess", "raw", "-k", "2", "--npy",
                        "-q", "-o", out], capture_output=True, text=True)
    print("gradcam explain: %.1f s" % (time.time() - t0))
    if not check(p.returncode == 0, "explain exits 0 (%d): %s" % (p.returncode, p.stderr)):
        return
    js = json.load(open(os.path.join(out, "results.json")))
    ref = pytorch_gradcams(boxes)
    seen = set()
    for inp in js["inputs"]:
        name = os.path.basename(inp["path"])
        seen.add(name)
        if not check(name in boxes, "%s has boxes" % name):
            continue
        objs = dict(boxes[name])
        top2 = {q["label"] for q in inp["predictions"][:2]}
        check(top2 == set(objs), "%s: top-2 %s are the two shapes %s" % (name, sorted(top2), sorted(objs)))
        decode_png(os.path.join(out, inp["input_image"]), "%s input_image" % name, (SIZE, SIZE))
        maps = {(m["method"], m["class"]["label"]): m for m in inp["maps"]}
        check(len(maps) == 6, "%s: 3 methods x 2 classes = 6 maps, got %d" % (name, len(maps)))
        for m in inp["maps"]:
            for k in ("heatmap", "overlay", "photo", "image"):
                if k in m:
                    decode_png(os.path.join(out, m[k]), "%s %s %s %s" % (name, m["method"], m["class"]["label"], k),
                               (SIZE, SIZE))
        for label, box in objs.items():
            other = [b for c, b in objs.items() if c != label][0]
            gc = maps.get(("gradcam", label))
            if not check(gc is not None and "npy" in gc, "%s: a Grad-CAM map with npy for %s" % (name, label)):
                continue
            raw = np.load(os.path.join(out, gc["npy"]))
            check(list(raw.shape) == gc["raw_shape"] == [16, 16], "%s %s: raw map 16x16: %s" % (name, label, raw.shape))
            up = upsample(raw.reshape(raw.shape[-2:]), SIZE, SIZE)
            y, x = np.unravel_index(int(np.argmax(up)), up.shape)
            check(box[0] <= x < box[2] and box[1] <= y < box[3],
                  "%s: Grad-CAM argmax (x=%d, y=%d) for %s inside its box %s" % (name, x, y, label, box))
            r = ref[(name, label)]
            err = float(np.abs(up - r).max())
            check(err <= 1e-4 * max(float(r.max()), 1e-12),
                  "%s %s: Grad-CAM equals PyTorch's (max |diff| %.3g, max %.3g)" % (name, label, err, r.max()))
            # pixel-space maps: energy (max |.| over channels) in the two boxes
            for method in ("guided-backprop", "guided-gradcam"):
                pm = maps.get((method, label))
                if not check(pm is not None and "npy" in pm, "%s: %s map with npy for %s" % (name, method, label)):
                    continue
                e = np.abs(np.load(os.path.join(out, pm["npy"])).reshape(-1, SIZE, SIZE)).max(0)
                a, b = box_sum(e, box), box_sum(e, other)
                share = a / max(a + b, 1e-30)
                if method == "guided-backprop":
                    check(min(share, 1 - share) >= GBP_MIN_EACH,
                          "%s %s: Guided Backprop lights both shapes (asked-for share %.2f)" % (name, label, share))
                else:
                    check(share >= GGC_MIN, "%s %s: Guided Grad-CAM mostly on the asked-for shape (share %.2f)" % (
                        name, label, share))
                print("  %-10s %-8s %-15s share in the asked-for box %.2f" % (name, label, method, share))
            print("  %-10s %-8s gradcam         argmax (x=%d, y=%d) in %s" % (name, label, x, y, box))
    check(seen == set(boxes), "explained %s, boxes for %s" % (sorted(seen), sorted(boxes)))

    # report.html: every embedded image decodes; one input panel per picture at least
    page = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    imgs = re.findall(r'data:image/png;base64,([A-Za-z0-9+/=]+)', page)
    check(len(imgs) >= 4 * (1 + 2 * 3), "report.html embeds >= 28 PNGs (4 inputs, 2 classes x 3 methods): %d"
          % len(imgs))
    for i, b64 in enumerate(imgs):
        decode_png(base64.b64decode(b64), "report.html image %d" % i)
    for name, objs in boxes.items():
        check(os.path.splitext(name)[0] in page and all(c in page for c, _ in objs),
              "report.html names %s and its classes" % name)


def test_script(build, work):
    out = os.path.join(work, "demo-out")
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    p = subprocess.run([os.path.join(HERE, "demo.sh"), build, out], capture_output=True, text=True, timeout=60)
    dt = time.time() - t0
    print(p.stdout)
    check(p.returncode == 0, "tests/demo.sh exits 0 (%d): %s" % (p.returncode, p.stderr))
    check(dt < 60, "tests/demo.sh runs in < 60 s (%.1f s)" % dt)
    report = os.path.join(os.path.realpath(out), "report.html")
    check(os.path.getsize(report) > 0 if os.path.exists(report) else False, "%s written" % report)
    check(report in p.stdout, "the demo prints the report's path %s" % report)
    dreport = os.path.join(os.path.realpath(out), "detect", "report.html")
    check(os.path.exists(dreport) and os.path.getsize(dreport) > 0, "%s written" % dreport)
    check(dreport in p.stdout, "the demo prints the detector report's path %s" % dreport)
    res = os.path.join(out, "detect", "results.json")
    dets = [d for i in json.load(open(res))["inputs"] for d in i["detections"]] if os.path.exists(res) else []
    check(len(dets) >= 8, "the demo detector finds the scenes' shapes (%d detections on 4 scenes)" % len(dets))
    sres = os.path.join(out, "segment", "results.json")
    segs = [g for i in json.load(open(sres))["inputs"] for g in i["segments"]] if os.path.exists(sres) else []
    check(len(segs) >= 8, "the demo segmenter's segments (%d on 4 scenes)" % len(segs))
    check(os.path.join(os.path.realpath(out), "segment", "report.html") in p.stdout, "the demo prints the segmenter report's path")


def test_command(g, work):
    """The command on the demo model: exit codes, a folder batch past a corrupt file, results.json's
    schema, and no output for an input that fails."""
    run = lambda *a: subprocess.run([g] + list(a), capture_output=True, text=True)
    p = run("explain", MODEL)
    check(p.returncode == 2 and "no INPUT" in p.stderr, "explain without input: exit 2 (%d): %s" % (p.returncode, p.stderr))
    p = run("explain", MODEL, os.path.join(IMAGES, "demo_1.png"), "--method", "nosuch")
    check(p.returncode == 2 and "nosuch" in p.stderr, "unknown method: exit 2 (%d): %s" % (p.returncode, p.stderr))
    p = run("explain", MODEL, os.path.join(IMAGES, "demo_1.png"), "-c", "hexagon", "--labels", LABELS, "-o",
            os.path.join(work, "nolabel"))
    check(p.returncode == 2 and "hexagon" in p.stderr, "unknown class name: exit 2 (%d): %s" % (p.returncode, p.stderr))
    # a folder: two good pictures, one truncated PNG, one text file named .jpg
    d = os.path.join(work, "batch")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "sub"))
    shutil.copy(os.path.join(IMAGES, "demo_1.png"), os.path.join(d, "a.png"))
    shutil.copy(os.path.join(IMAGES, "demo_2.png"), os.path.join(d, "sub", "b.png"))
    data = open(os.path.join(IMAGES, "demo_3.png"), "rb").read()
    open(os.path.join(d, "broken.png"), "wb").write(data[: len(data) // 2])
    open(os.path.join(d, "notes.jpg"), "w").write("not a picture\n")
    out = os.path.join(work, "batch_out")
    shutil.rmtree(out, ignore_errors=True)
    p = run("explain", MODEL, d, "--labels", LABELS, "--preprocess", "raw", "-q", "-o", out, "-m", "gradcam")
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    check(p.returncode == 3, "folder with bad files: exit 3 (%d)" % p.returncode)
    check(any("broken.png" in l for l in lines) and any("notes.jpg" in l for l in lines),
          "the bad files are listed at the end: %s" % lines)
    try:
        js = json.load(open(os.path.join(out, "results.json")))
    except (OSError, ValueError) as e:
        check(False, "results.json of the batch: %s" % e)
        return
    for key in ("model", "inputs", "failures"):
        check(key in js, "results.json has '%s'" % key)
    paths = sorted(os.path.relpath(i.get("path", ""), d) for i in js.get("inputs", []))
    check(paths == ["a.png", os.path.join("sub", "b.png")], "the two good pictures are explained: %s" % paths)
    check(sorted(os.path.basename(f["path"]) for f in js.get("failures", [])) == ["broken.png", "notes.jpg"],
          "results.json lists the two failures: %s" % js.get("failures"))
    for inp in js.get("inputs", []):
        top = inp.get("predictions") or inp.get("top") or []
        check(len(top) >= 1 and all(k in top[0] for k in ("index", "label", "score", "probability")),
              "%s: predictions with index, label, score, probability: %s" % (inp.get("path"), top[:1]))
        for m in inp.get("maps", []):
            check(all(k in m for k in ("method", "class", "layer")), "map entry has method, class, layer: %s" % m)
            if m.get("method") == "gradcam":
                check(m.get("layer") == "/block5/block5.2/Relu_output_0", "Grad-CAM layer: %s" % m.get("layer"))
                b = m.get("box")
                check(isinstance(b, dict) and all(k in b for k in ("x0", "y0", "x1", "y1")),
                      "a localisation box per CAM map: %s" % b)
    left = sorted(f for f in os.listdir(out) if f.startswith(("broken", "notes")))
    check(not left, "nothing written for the failed inputs: %s" % left)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("explain", "script"):
        sys.stderr.write(__doc__)
        return 2
    os.makedirs(sys.argv[3], exist_ok=True)
    if not check(os.path.exists(MODEL) and os.path.exists(LABELS), "the demo model %s and labels are there" % MODEL):
        pass
    elif sys.argv[1] == "explain":
        test_explain(sys.argv[2], sys.argv[3])
        test_command(sys.argv[2], sys.argv[3])
    else:
        test_script(sys.argv[2], sys.argv[3])
    return check.summary()


if __name__ == "__main__":
    sys.exit(main())
