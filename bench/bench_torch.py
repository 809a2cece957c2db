#!/usr/bin/python3
"""PyTorch's side of `make bench` (bench/run.sh). Run with Debian's /usr/bin/python3 (python3-torch).

  bench_torch.py export NAME OUTDIR [--dyn-hw]
      seeded random-weight torchvision NAME (BatchNorm statistics calibrated on one seeded batch, so
      activations are realistic), eval mode: OUTDIR/NAME.pt (state dict) and OUTDIR/NAME.onnx (opset
      13, constant folding, dynamic batch, input "input", output "logits"). Nothing is done when both
      exist and OUTDIR/NAME.stamp matches EXPORT_VERSION and the library versions. --dyn-hw: height and
      width dynamic too (the smoke test runs at 64x64; only for models with global pooling).
  bench_torch.py run NAME STATE.pt [--batch N] [--size S] [--runs R] [--threads T] [--budget SECONDS]
                 [--min-runs K] [--rows ...] [--smoke]
      prints "RESULT NAME N ROW MEDIAN_MS MIN_MS MAX_MS RUNS" lines (tab separated) and
      "RSS NAME N PEAK_MIB" (getrusage of this process, torch import included), as bench_gradcam.

Each explanation is done the way pytorch-grad-cam (jacobgil) does it on an ordinary model whose
weights require gradients:
  gradcam        forward hook on the target layer storing its output and a tensor hook for its
                 gradient; one forward; the class is the argmax; model.zero_grad(); backward() of the
                 sum of the target scores (a full backward, weight gradients included); weights = mean
                 gradient per channel; ReLU of the weighted sum; bilinear resize to the input; min-max
                 normalisation per image.
  top5           one forward, then five such backward passes (retain_graph=True), one per rank.
  guided         Guided Backpropagation: full backward hooks on every nn.ReLU / nn.ReLU6 clamping the
                 gradient to >= 0 (in-place ReLUs made out-of-place while hooked); input gradient.
                 (DenseNet's last ReLU is functional, not a module: not hooked; EfficientNet has SiLU
                 only, so guided = the plain gradient there, as in gradcam's rule.)
  guided_gradcam gradcam, then guided, multiplied (two forward+backward, as pytorch-grad-cam's example).
  scorecam       ScoreCAM: forward with the activation hook; under no_grad the activations are upsampled
                 (UpsamplingBilinear2d), min-max scaled per channel, multiplied with the input (all
                 channels materialised at once) and run in batches of 16; softmax of the target scores
                 over channels weights the activations.
  forward        model(x) under torch.no_grad().
  load           torchvision constructor + torch.load(state dict) + load_state_dict + eval (the import
                 of torch itself is not counted).
"""
import hashlib
import os
import resource
import sys
import time


def _turn_fds():
    v = os.environ.get("BENCH_TURN_FDS")
    if not v:
        return None
    try:
        r, w = (int(f) for f in v.split(","))
    except ValueError:
        sys.exit("bench_torch.py: BENCH_TURN_FDS=%s is not R,W" % v)
    return r, w


_TURN = _turn_fds()


def turn():
    """Turn by turn with gradcam's side (bench/lockstep.py): give the machine back and wait for the
    next turn, so only one side runs at a time and the two alternate run by run. No-op outside it."""
    if _TURN is None:
        return
    os.write(_TURN[1], b"t")
    if not os.read(_TURN[0], 1):
        sys.exit("bench_torch.py: the turn pipe of bench/lockstep.py closed")


turn()  # before importing torch: nothing heavy before the first turn

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402

ROWS = ["load", "forward", "gradcam", "top5", "guided", "guided_gradcam", "scorecam"]
SCORECAM_BATCH = 16  # pytorch-grad-cam's default


def build(name):
    return getattr(torchvision.models, name)(weights=None)


def target_layer(name, model):
    if name.startswith("resnet"):
        return model.layer4
    return model.features[-1] if name != "vgg16" else model.features


def seed_of(name):
    return int(hashlib.md5(name.encode()).hexdigest()[:8], 16) % (2 ** 31)


def make_input(n, size):
    """The same values as bench_gradcam.c."""
    i = np.arange(n * 3 * size * size, dtype=np.int64)
    x = ((i * 7919 + i // 50177 * 104729) % 1000) / 500.0 - 1.0
    return torch.from_numpy(x.astype(np.float32).reshape(n, 3, size, size))


EXPORT_VERSION = "1"  # bump when export() changes what it writes


def stamp(dyn_hw):
    return "export %s dyn_hw %d torch %s torchvision %s" % (EXPORT_VERSION, dyn_hw, torch.__version__,
                                                             torchvision.__version__)


def export(name, outdir, dyn_hw=False):
    import warnings
    os.makedirs(outdir, exist_ok=True)
    pt, onnx_path, st = (os.path.join(outdir, name + e) for e in (".pt", ".onnx", ".stamp"))
    h = stamp(dyn_hw)
    if os.path.exists(pt) and os.path.exists(onnx_path) and os.path.exists(st):
        with open(st) as f:
            if f.read().strip() == h:
                return
    torch.manual_seed(seed_of(name))
    model = build(name)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    model.eval()
    for m in bns:  # running statistics of one seeded batch (random init leaves BN a no-op)
        m.reset_running_stats()
        m.momentum = None
        m.train()
    with torch.no_grad():
        model(make_input(2, 224) + 0.1 * torch.randn(2, 3, 224, 224))
    model.eval()
    with torch.no_grad():
        y = model(make_input(1, 224))
    if not torch.isfinite(y).all():
        raise RuntimeError("%s: non-finite outputs" % name)
    torch.save(model.state_dict(), pt + ".tmp")
    os.replace(pt + ".tmp", pt)
    warnings.filterwarnings("ignore")
    torch.onnx.export(model, make_input(1, 224), onnx_path + ".tmp", opset_version=13,
                      training=torch.onnx.TrainingMode.EVAL, do_constant_folding=True,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"} if dyn_hw else {0: "batch"},
                                    "logits": {0: "batch"}})
    os.replace(onnx_path + ".tmp", onnx_path)
    with open(st, "w") as f:
        f.write(h + "\n")


# ---- pytorch-grad-cam style methods ------------------------------------------------------------

class Hooks:
    """pytorch-grad-cam's ActivationsAndGradients: activation and gradient of the target layer."""

    def __init__(self, layer):
        self.act = self.grad = None
        self.h = layer.register_forward_hook(self.save)

    def save(self, module, inp, out):
        self.act = out.detach()
        if out.requires_grad:
            def store(g):
                self.grad = g.detach()
            out.register_hook(store)

    def remove(self):
        self.h.remove()


def scale_cam(cam, size):
    """ReLU'd (N, h, w) map -> bilinear (N, H, W), min-max per image (pytorch-grad-cam's
    scale_cam_image, with torch's resize instead of cv2's)."""
    up = F.interpolate(cam[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    flat = up.reshape(up.shape[0], -1)
    mn = flat.min(1)[0][:, None, None]
    up = up - mn
    mx = up.reshape(up.shape[0], -1).max(1)[0][:, None, None]
    return up / (1e-7 + mx)


def cam_from(hooks, size):
    w = hooks.grad.mean(dim=(2, 3), keepdim=True)
    return scale_cam(torch.relu((w * hooks.act).sum(1)), size)


def score_of(out, cls):
    return out.gather(1, cls[:, None]).sum()


def gradcam(model, hooks, x):
    out = model(x)
    cls = out.argmax(1)
    model.zero_grad()
    score_of(out, cls).backward(retain_graph=True)
    return cam_from(hooks, x.shape[-1])


def top5(model, hooks, x):
    out = model(x)
    ranks = out.topk(5, dim=1)[1]
    maps = []
    for j in range(5):
        model.zero_grad()
        score_of(out, ranks[:, j]).backward(retain_graph=True)
        maps.append(cam_from(hooks, x.shape[-1]))
    return maps


class Guided:
    """Full backward hooks on every ReLU/ReLU6 module, clamping the gradient to positive."""

    def __init__(self, model):
        self.mods = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
        self.inplace = [m.inplace for m in self.mods]
        self.hs = []
        for m in self.mods:
            m.inplace = False
            self.hs.append(m.register_full_backward_hook(lambda mod, gi, go: (gi[0].clamp(min=0),)))

    def remove(self):
        for h in self.hs:
            h.remove()
        for m, ip in zip(self.mods, self.inplace):
            m.inplace = ip


def guided(model, x):
    xi = x.clone().requires_grad_(True)
    out = model(xi)
    cls = out.argmax(1)
    model.zero_grad()
    score_of(out, cls).backward(retain_graph=True)
    return xi.grad


def scorecam(model, hooks, x):
    out = model(x)
    cls = out.argmax(1)
    n, size = x.shape[0], x.shape[-1]
    with torch.no_grad():
        up = nn.UpsamplingBilinear2d(size=(size, size))(hooks.act)
        b, c = up.shape[:2]
        maxs = up.view(b, c, -1).max(dim=-1)[0][:, :, None, None]
        mins = up.view(b, c, -1).min(dim=-1)[0][:, :, None, None]
        up = (up - mins) / (maxs - mins)
        inputs = x[:, None, :, :] * up[:, :, None, :, :]
        scores = []
        for s in range(n):
            for i in range(0, c, SCORECAM_BATCH):
                o = model(inputs[s, i:i + SCORECAM_BATCH])
                scores.extend(o[:, cls[s]].tolist())
        w = torch.softmax(torch.tensor(scores).view(n, c), dim=-1)[:, :, None, None]
        return scale_cam(torch.relu((w * hooks.act).sum(1)), size)


def warm_up(fn, runs, warm, budget, min_runs):
    """warm runs (a turn each); returns the timed-run count: with a budget (seconds), a row whose
    warm-up says `runs` runs would exceed it gets fewer, never under min_runs."""
    for _ in range(warm):
        turn()
        a = time.perf_counter()
        fn()
        w = time.perf_counter() - a
        if budget > 0 and w * runs > budget:
            runs = max(min_runs, min(runs, int(budget / w)))
    return runs


def timed(fn, runs, warm, budget=0.0, min_runs=3):
    """warm runs, then `runs` timed ones (the count as warm_up sets it); without warm-up (Score-CAM)
    the first timed run decides, down to 1 run (the same rule as bench_gradcam.c)."""
    runs = warm_up(fn, runs, warm, budget, min_runs)
    t = []
    r = 0
    while r < runs:
        turn()
        a = time.perf_counter()
        fn()
        t.append(time.perf_counter() - a)
        if not warm and r == 0 and budget > 0 and t[0] * runs > budget:  # no warm-up: the first run probes
            runs = max(1, min(runs, int(budget / t[0])))
        r += 1
    return t


def timed_rows(fns, runs, warm, budget=0.0, min_runs=3):
    """Several rows run by run (Grad-CAM and its top-5, as bench_gradcam.c's time_rows): each row's
    warm-up (warm_up: a turn each, and its count); then every turn runs one timed run of every
    row, the order reversed from one turn to the next. Returns one list of times per row."""
    n = [warm_up(fn, runs, warm, budget, min_runs) for fn in fns]
    t = [[] for _ in fns]
    for r in range(max(n)):
        turn()
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            if r < n[i]:
                a = time.perf_counter()
                fns[i]()
                t[i].append(time.perf_counter() - a)
    return t


def run(argv):
    name, state = argv[0], argv[1]
    opts = {"--batch": 1, "--size": 224, "--runs": 10, "--threads": 2, "--budget": 0, "--min-runs": 3}
    rows = "load,forward,gradcam,top5,guided,guided_gradcam"
    smoke = False
    i = 2
    while i < len(argv):
        a = argv[i]
        if a == "--smoke":
            smoke = True
        elif a == "--rows":
            rows = argv[i + 1]
            i += 1
        elif a in opts:
            opts[a] = float(argv[i + 1]) if a == "--budget" else int(argv[i + 1])
            i += 1
        else:
            sys.exit("bench_torch.py: unknown option %s" % a)
        i += 1
    want = rows.split(",")
    for w in want:
        if w not in ROWS:
            sys.exit("bench_torch.py: unknown row %s" % w)
    n, size, runs = opts["--batch"], opts["--size"], opts["--runs"]
    warm = 0 if smoke else 1
    if smoke:
        runs = 1
    torch.set_num_threads(opts["--threads"])
    res = {}
    cap = (opts["--budget"], opts["--min-runs"])

    model = None

    def load():
        nonlocal model
        model = build(name)
        model.load_state_dict(torch.load(state))
        model.eval()

    if "load" in want:
        res["load"] = timed(load, runs, warm, *cap)
    else:
        load()
    x = make_input(n, size)
    if "forward" in want:
        def fwd():
            with torch.no_grad():
                model(x)
        res["forward"] = timed(fwd, runs, warm, *cap)
    hooks = Hooks(target_layer(name, model))
    if "gradcam" in want and "top5" in want:  # run by run, alternating (timed_rows)
        res["gradcam"], res["top5"] = timed_rows([lambda: gradcam(model, hooks, x), lambda: top5(model, hooks, x)],
                                                 runs, warm, *cap)
    elif "gradcam" in want:
        res["gradcam"] = timed(lambda: gradcam(model, hooks, x), runs, warm, *cap)
    elif "top5" in want:
        res["top5"] = timed(lambda: top5(model, hooks, x), runs, warm, *cap)
    if "guided" in want or "guided_gradcam" in want:
        hooks.remove()  # pytorch-grad-cam's GuidedBackpropReLUModel works on the bare model
        if "guided" in want:
            g = Guided(model)
            res["guided"] = timed(lambda: guided(model, x), runs, warm, *cap)
            g.remove()
        if "guided_gradcam" in want:
            def ggc():
                hk = Hooks(target_layer(name, model))
                cam = gradcam(model, hk, x)
                hk.remove()
                g = Guided(model)
                gb = guided(model, x)
                g.remove()
                return cam[:, None] * gb
            res["guided_gradcam"] = timed(ggc, runs, warm, *cap)
        hooks = Hooks(target_layer(name, model))
    if "scorecam" in want:
        if warm:  # a whole Score-CAM run as warm-up would double the longest row: one batch of masks
            with torch.no_grad():
                model(x[:1].repeat(SCORECAM_BATCH, 1, 1, 1))
        res["scorecam"] = timed(lambda: scorecam(model, hooks, x), runs, 0, cap[0])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    for r in ROWS:
        if r in res:
            t = np.array(res[r]) * 1e3
            print("RESULT\t%s\t%d\t%s\t%.3f\t%.3f\t%.3f\t%d" % (name, n, r, np.median(t), t.min(), t.max(), len(t)))
    print("RSS\t%s\t%d\t%.1f" % (name, n, rss))
    sys.stdout.flush()


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "export":
        export(sys.argv[2], sys.argv[3], "--dyn-hw" in sys.argv[4:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "run":
        run(sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
