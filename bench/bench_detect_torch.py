#!/usr/bin/python3
"""PyTorch's side of `make bench`'s detection rows (bench/run.sh, issue #18): explain every
detection of one picture. Run with Debian's /usr/bin/python3 (python3-torch, torchvision, onnx).

  bench_detect_torch.py picture OUT.f32
      the picture both sides explain: scene DETECT_SCENE of examples/detect/scenes.py, DETECT_SHAPES
      shapes of DETECT_SIZES px (the demo detector's usual scenes have 1-4 shapes; this one has 16,
      so that one picture has 10-20 detections), as the model input (1, 3, 128, 128) float32 raw
      (pixel / 255, the detector's whole preprocessing); OUT.png beside it, to look at. Prints one
      line saying which scene it is.
  bench_detect_torch.py run NAME MODEL.onnx PICTURE.f32 --layers L1,L2 [--runs R] [--threads T]
                        [--budget SECONDS] [--min-runs K] [--rows detect_hirescam,detect_gradcam]
                        [--score-threshold X] [--smoke]
      --layers: the CAM layers as ONNX tensor names, those gradcam picks automatically
      (`bench_detect MODEL PICTURE --layers-only` prints them; run.sh passes them here). Prints, as bench/bench_detect.c, "RESULT NAME 1 ROW MEDIAN_MS MIN_MS MAX_MS RUNS",
      "DETS NAME 1 ROW K ANCHOR:CLASS,..." (by anchor), "LAYERS NAME 1 L1,L2" and "RSS NAME 1 PEAK_MIB".

The model: examples/detect/train_detector.py's Detector with the ONNX file's weights
(Detector.from_onnx: each Conv's weights by its node name, batch norms folded as in the file), so
both sides compute the same function. Its weights require gradients, as any nn.Module's.

A run is what a pytorch-grad-cam user does to explain every detection of a picture with one target
per call (BaseCAM.__call__ on one target):
  detections  model(x) under torch.no_grad(); per column the best class (ties: the lower index),
              kept when its score >= the threshold (0.25), then torchvision's batched_nms at IoU
              0.45 (class-wise), at most 100 (examples/detect's predict, gcam_detect_decode's rule);
  each one    forward with pytorch-grad-cam's hooks on the CAM layers (one per pyramid level: the
              modules whose outputs are the --layers tensors, e.g. '/cv3.0/cv3.0.1/act/Mul_output_0'
              is module cv3.0.1.act's output); model.zero_grad(); backward(retain_graph=True) of
              the detection's score output[0, 4 + class, anchor] (a full backward, weight gradients
              included); per layer the map (HiResCAM: sum over channels of gradient x activation;
              Grad-CAM: channel means of the gradient as weights), ReLU, bilinear resize to the
              input and min-max (bench_torch.scale_cam); the layers' maps averaged and min-max
              scaled again (pytorch-grad-cam's aggregate_multi_layers).
The maps are kept in torch tensors (pytorch-grad-cam moves them to numpy and resizes with cv2; the
same arithmetic, and a few ms at most on 16x16 and 8x8 maps).
"""
import os
import resource
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.join(os.path.dirname(HERE), "examples", "detect"))

DETECT_SCENE = (18, 5)      # (set seed, index): 16 shapes, 16 detections at score >= 0.25
DETECT_SHAPES = 16
DETECT_SIZES = (14.0, 24.0)
SIZE = 128                  # train_detector.SIZE
NMS_IOU, MAX_DET = 0.45, 100
ROWS = {"detect_hirescam": "hirescam", "detect_gradcam": "gradcam"}


def picture(out):
    """numpy, PIL and scenes.py only (no torch: quick)."""
    import numpy as np
    from PIL import Image
    import scenes
    rgb, boxes, _, _, _ = scenes.scene(DETECT_SCENE, SIZE, n=DETECT_SHAPES, sizes=DETECT_SIZES)
    # train_detector.to_input: float32, / 255 in float32 (the same rounding as torch's div_)
    x = (rgb.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0)).astype("<f4")
    tmp = out + ".tmp"
    x.tofile(tmp)
    os.replace(tmp, out)
    Image.fromarray(rgb).save(os.path.splitext(out)[0] + ".png")
    # one line, for run.sh's note
    print("scene %s of examples/detect/scenes.py, %d shapes of %g-%g px" % (DETECT_SCENE, len(boxes), *DETECT_SIZES))


def heavy_imports():
    """torch and the detector, once bench/lockstep.py has given the first turn: bench_torch gives
    the machine back once on import, before it imports torch (the start-up turn), and has the
    timing helpers and pytorch-grad-cam's pieces."""
    global bt, np, torch, batched_nms, Detector, module_path, xyxy
    import bench_torch as bt
    import numpy as np
    import torch
    from torchvision.ops import batched_nms
    from train_detector import Detector, module_path, xyxy
    import train_detector
    assert train_detector.SIZE == SIZE


def hook_layers(model, names):
    """pytorch-grad-cam's hooks on the modules whose outputs are these ONNX tensors (the exporter's
    scope names: '/cv3.0/cv3.0.1/act/Mul_output_0' is the output of module cv3.0.1.act)."""
    hooks = []
    for n in names:
        path = module_path(n)
        try:
            mod = model.get_submodule(path)
        except AttributeError:
            sys.exit("bench_detect_torch.py: layer %s: no module %s in the detector" % (n, path))
        hooks.append(bt.Hooks(mod))
    return hooks


def decode(out, thr):
    """(anchors, classes) of the kept detections of output (1, 4 + C, A), best score first."""
    o = out[0]
    s, c = o[4:].max(0)
    keep = torch.nonzero(s >= thr)[:, 0]
    k = batched_nms(xyxy(o[:4, keep].T), s[keep], c[keep], NMS_IOU)[:MAX_DET]
    return keep[k], c[keep][k]


def layer_cam(h, method):
    if method == "hirescam":
        cam = (h.grad * h.act).sum(1)
    else:
        cam = (h.grad.mean(dim=(2, 3), keepdim=True) * h.act).sum(1)
    return bt.scale_cam(torch.relu(cam), SIZE)


def explain_all(model, hooks, x, method, thr):
    with torch.no_grad():
        anchors, classes = decode(model(x), thr)
    maps = []
    for a, c in zip(anchors.tolist(), classes.tolist()):
        out = model(x)
        model.zero_grad()
        out[0, 4 + c, a].backward(retain_graph=True)
        per = torch.stack([layer_cam(h, method) for h in hooks], 1)      # (1, L, H, W)
        cam = per.clamp(min=0).mean(1)
        flat = cam.reshape(1, -1)
        cam = cam - flat.min(1)[0][:, None, None]
        maps.append(cam / (1e-7 + cam.reshape(1, -1).max(1)[0][:, None, None]))
    return anchors, classes, maps


def run(argv):
    heavy_imports()
    name, onnx_path, pic = argv[:3]
    opts = {"--runs": 10, "--threads": 2, "--budget": 0.0, "--min-runs": 3, "--score-threshold": 0.25}
    layers = None
    rows = "detect_hirescam,detect_gradcam"
    smoke = False
    i = 3
    while i < len(argv):
        a = argv[i]
        if a == "--smoke":
            smoke = True
        elif a == "--rows":
            rows = argv[i + 1]
            i += 1
        elif a == "--layers":
            layers = argv[i + 1].split(",")
            i += 1
        elif a in opts:
            opts[a] = float(argv[i + 1]) if a in ("--budget", "--score-threshold") else int(argv[i + 1])
            i += 1
        else:
            sys.exit("bench_detect_torch.py: unknown option %s" % a)
        i += 1
    want = rows.split(",")
    for w in want:
        if w not in ROWS:
            sys.exit("bench_detect_torch.py: unknown row %s" % w)
    if not layers:
        sys.exit("bench_detect_torch.py: --layers is required (bench_detect --layers-only prints gradcam's)")
    runs, warm = (1, 0) if smoke else (opts["--runs"], 1)
    thr = opts["--score-threshold"]
    torch.set_num_threads(opts["--threads"])
    model = Detector.from_onnx(onnx_path)
    x = torch.from_numpy(np.fromfile(pic, dtype="<f4").reshape(1, 3, SIZE, SIZE))
    hooks = hook_layers(model, layers)
    res, dets = {}, {}
    for r in ROWS:
        if r not in want:
            continue
        seen = []

        def once():
            a, c, _ = explain_all(model, hooks, x, ROWS[r], thr)
            seen.append(sorted(zip(a.tolist(), c.tolist())))
        res[r] = bt.timed(once, runs, warm, opts["--budget"], opts["--min-runs"])
        if any(s != seen[0] for s in seen):
            sys.exit("bench_detect_torch.py: the detections changed from one run to the next")
        dets[r] = seen[0]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    for r in ROWS:
        if r in res:
            t = np.array(res[r]) * 1e3
            print("RESULT\t%s\t1\t%s\t%.3f\t%.3f\t%.3f\t%d" % (name, r, np.median(t), t.min(), t.max(), len(t)))
            print("DETS\t%s\t1\t%s\t%d\t%s" % (name, r, len(dets[r]), ",".join("%d:%d" % p for p in dets[r])))
    print("LAYERS\t%s\t1\t%s" % (name, ",".join(layers)))
    print("RSS\t%s\t1\t%.1f" % (name, rss))
    sys.stdout.flush()


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "picture":
        picture(sys.argv[2])
    elif len(sys.argv) >= 5 and sys.argv[1] == "run":
        run(sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
