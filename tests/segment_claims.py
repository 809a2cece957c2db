#!/usr/bin/python3
"""What segment maps must show, on the demo segmenter (examples/segment/shapes_segmenter.onnx) and
generated scenes (examples/detect/scenes.py; segmenter class = scene class + 1, 0 background).

Usage: /usr/bin/python3 tests/segment_claims.py GRADCAM_BINARY WORKDIR

1. Segments: 100 scenes scene((SEG_SEED, i)) (1-4 shapes of any classes), `gradcam explain
   --task segment -m hirescam,gradcam --npy`. For every segment other than background, the default
   method's map (HiResCAM for --task segment) puts its positive energy inside the ground-truth mask
   of the segment's class (sem == class): the mean share over those segments is >= 0.70. The share
   of segments at >= 0.70 and Grad-CAM's numbers are printed (not asserted).
2. Instances: 100 scenes same_class_scene((INST_SEED, i)) (two shapes of one class).
   `--target region:C:y0,x0,y1,x1` over the first shape's box (rows y0..y1-1, columns x0..x1-1 of
   the 128x128 output; exclusive ends rounded up), C its segmenter class, automatic layer,
   -m hirescam,gradcam: the default method's (HiResCAM for a region target) maximum lies inside
   the first shape's box and not the second's in >= 90% of the scenes. Grad-CAM's rate on the same
   targets is printed (not asserted: its channel means light both shapes of the class).
3. The default methods: hirescam,guided-backprop,guided-gradcam for --task segment and for a
   region target; the automatic layer is /dec1/act/Relu_output_0 (the ConvTranspose's input).

A map: the raw map (.npy) upsampled bilinearly (half-pixel centres) to 128x128 when smaller,
then ReLU'd; its energy is its sum; its maximum is the first maximum in row-major order.
"""
import json
import math
import os
import subprocess
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image
except ImportError as e:  # fail, never skip
    sys.stderr.write("segment_claims.py: FAILED: cannot import numpy/torch/PIL (%s)\n" % e)
    sys.exit(1)

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEG = os.path.join(TOP, "examples", "segment")
sys.path.insert(0, os.path.join(TOP, "examples", "detect"))
import scenes  # noqa: E402

MODEL = os.path.join(SEG, "shapes_segmenter.onnx")
LABELS = os.path.join(SEG, "labels.txt")
SIZE = 128
N = 100
SEG_SEED, INST_SEED = 19001, 19002
LAYER = "/dec1/act/Relu_output_0"
DEFAULT = ["hirescam", "guided-backprop", "guided-gradcam"]
FAILS = []


def check(ok, msg):
    print(("ok   " if ok else "FAIL ") + msg, flush=True)
    if not ok:
        FAILS.append(msg)


def explain(binary, inputs, args, out):
    p = subprocess.run([binary, "explain", MODEL] + inputs + args +
                       ["--labels", LABELS, "--preprocess", "raw", "--npy", "-q", "-o", out],
                       capture_output=True, text=True, timeout=900)
    if p.returncode:
        raise RuntimeError("gradcam explain %s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return json.load(open(os.path.join(out, "results.json")))


def load_map(path):
    """The raw map at 128x128 (bilinear when smaller), ReLU'd, float64."""
    m = np.load(path).astype(np.float32)
    m = m.reshape(m.shape[-2:])
    if m.shape != (SIZE, SIZE):
        m = F.interpolate(torch.from_numpy(m)[None, None], size=(SIZE, SIZE), mode="bilinear",
                          align_corners=False)[0, 0].numpy()
    return np.maximum(m.astype(np.float64), 0.0)


def peak(m):
    i = int(np.argmax(m))  # the first maximum, row-major
    return i // SIZE, i % SIZE


def in_box(p, b):
    """Pixel (y, x) in box (x0, y0, x1, y1) with exclusive x1, y1."""
    return b[1] <= p[0] < b[3] and b[0] <= p[1] < b[2]


def claim_segments(binary, work):
    d = os.path.join(work, "scenes")
    os.makedirs(d, exist_ok=True)
    sem = {}
    for i in range(N):
        rgb, _, _, _, s = scenes.scene((SEG_SEED, i))
        name = "scene_%04d.png" % i
        Image.fromarray(rgb).save(os.path.join(d, name))
        sem[name] = s
    out = os.path.join(work, "out_scenes")
    t0 = time.time()
    res = explain(binary, [d], ["--task", "segment", "-m", "hirescam,gradcam"], out)
    print("     (segments: gradcam explain on %d scenes %.1fs)" % (N, time.time() - t0), flush=True)
    check(res["model"]["layers"] == [LAYER], "automatic layer %s" % res["model"]["layers"])
    share = {"hirescam": [], "gradcam": []}
    not_gt = 0
    for inp in res["inputs"]:
        s = sem[os.path.basename(inp["path"])]
        for seg in inp["segments"]:
            c = seg["class"]["index"]
            if c == 0:
                continue
            not_gt += not (s == c).any()
            maps = {m["method"]: m for m in seg["maps"]}
            for meth in share:
                m = load_map(os.path.join(out, maps[meth]["npy"]))
                tot = m.sum()
                share[meth].append(float(m[s == c].sum() / tot) if tot > 0 else 0.0)
    n = len(share["hirescam"])
    check(n >= N, "%d segments other than background in %d scenes (%d of a class absent from the truth)" %
          (n, N, not_gt))
    for meth, tag in (("hirescam", "the default method (HiResCAM)"), ("gradcam", "Grad-CAM")):
        v = np.array(share[meth])
        msg = ("%s: mean share of positive energy inside the segment's true class mask %.3f; segments at >= 0.7: "
               "%d/%d = %.2f" % (tag, v.mean(), int((v >= 0.7).sum()), n, (v >= 0.7).mean()))
        if meth == "hirescam":
            check(n > 0 and v.mean() >= 0.70, msg + " (mean >= 0.70)")
        else:
            print("info " + msg)


def claim_instances(binary, work):
    d = os.path.join(work, "same")
    os.makedirs(d, exist_ok=True)
    hits = {"hirescam": 0, "gradcam": 0}
    t0 = time.time()
    for i in range(N):
        rgb, boxes, classes, _, _ = scenes.same_class_scene((INST_SEED, i))
        name = "same_%04d" % i
        png = os.path.join(d, name + ".png")
        Image.fromarray(rgb).save(png)
        b1, b2 = boxes[0], boxes[1]
        x0, y0, x1, y1 = int(math.floor(b1[0])), int(math.floor(b1[1])), int(math.ceil(b1[2])), int(math.ceil(b1[3]))
        target = "region:%d:%d,%d,%d,%d" % (int(classes[0]) + 1, y0, x0, y1, x1)
        out = os.path.join(work, "out_same", name)
        res = explain(binary, [png], ["--target", target, "-m", "hirescam,gradcam"], out)
        maps = {m["method"]: m for m in res["inputs"][0]["maps"]}
        t = maps["hirescam"]["target"]
        if i == 0:
            check(t == {"kind": "region", "y0": y0, "x0": x0, "y1": y1, "x1": x1} and
                  maps["hirescam"]["class"]["index"] == int(classes[0]) + 1 and maps["hirescam"]["layer"] == LAYER,
                  "%s: the map's target %s, class %s, layer %s" % (target, t, maps["hirescam"]["class"],
                                                                 maps["hirescam"]["layer"]))
        for meth in hits:
            p = peak(load_map(os.path.join(out, maps[meth]["npy"])))
            hits[meth] += in_box(p, b1) and not in_box(p, b2)
    print("     (instances: %d gradcam explain runs %.1fs)" % (N, time.time() - t0), flush=True)
    check(hits["hirescam"] >= 0.9 * N, "instances: the default method's (HiResCAM) maximum inside the named shape's "
          "box, not the other's: %d/%d = %.2f (>= 0.90)" % (hits["hirescam"], N, hits["hirescam"] / N))
    print("info instances: Grad-CAM on the same targets: %d/%d = %.2f" % (hits["gradcam"], N, hits["gradcam"] / N))


def default_methods(binary, work):
    png = os.path.join(work, "same", "same_0000.png")
    res = explain(binary, [png], ["--task", "segment"], os.path.join(work, "out_default_segment"))
    check(res["options"]["methods"] == DEFAULT, "--task segment default methods %s" % res["options"]["methods"])
    check(res["model"]["layers"] == [LAYER], "--task segment automatic layer %s" % res["model"]["layers"])
    res = explain(binary, [png], ["--target", "region:1:0,0,64,64"], os.path.join(work, "out_default_region"))
    check(res["options"]["methods"] == DEFAULT, "--target region: default methods %s" % res["options"]["methods"])


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    binary, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    torch.set_num_threads(1)
    t0 = time.time()
    claim_segments(binary, work)
    claim_instances(binary, work)
    default_methods(binary, work)
    print("segment_claims: %d failed, %.1fs" % (len(FAILS), time.time() - t0))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
