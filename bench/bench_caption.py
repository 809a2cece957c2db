#!/usr/bin/python3
"""Grad-CAM of every word of a caption: gradcam against PyTorch's hook-and-backward loop (issue #19).

    GRADCAM_LIBRARY=build/libgradcam_tool.so PYTHONPATH=python \\
        /usr/bin/python3 bench/bench_caption.py [--words 6] [--reps 15] [--threads 2] [--check]

The demo captioner (examples/caption/captioner.onnx) on one generated scene, teacher-forced on the
first N words of its true caption (tokens <bos> w1 .. wN); one map per word (the word's
log-probability after the LogSoftmax, the CAM layer /cnn/cnn.14/Relu_output_0, upsampled to 128x128):

  gradcam  one forward of the whole caption (Explainer.forward), then one gcam_explain per word
           (each a backward from that word's log-probability to the CAM layer only);
  PyTorch  per word, as pytorch-grad-cam does: a forward with hooks on the CAM layer, zero_grad,
           backward of that word's log-probability, the map from the hooked activation and gradient.

The same float32 weights on both sides (Captioner.from_onnx), the same thread count; the two run
turn by turn (one repetition of each, alternately), medians of the repetitions; the maps are
checked equal (1e-3 of max) once. --check exits 1 when the ratio exceeds 0.3.
"""
import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "python"))
sys.path.insert(0, os.path.join(TOP, "examples", "caption"))
import gradcam  # noqa: E402
import scenes  # noqa: E402
import train_captioner as tc  # noqa: E402

ONNX = os.path.join(TOP, "examples", "caption", "captioner.onnx")
CAM = "/cnn/cnn.14/Relu_output_0"
TARGET_RATIO = 0.3


def engine_turn(ex, feeds, words):
    ex.forward(feeds)
    return [ex.explain("gradcam", gradcam.Target.element((0, t, w))).upsampled[0, 0] for t, w in enumerate(words)]


def torch_turn(model, x, toks, words, store):
    maps = []
    for t, w in enumerate(words):
        lp = model(x, toks)
        model.zero_grad(set_to_none=True)
        lp[0, t, w].backward()
        a, g = store["a"], store["g"]
        cam = F.relu((g.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True))
        maps.append(F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[0, 0].detach().numpy())
    return maps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--words", type=int, default=6)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scene", type=int, default=0, help="scene (3, i) of the held-out set")
    ap.add_argument("--check", action="store_true", help="exit 1 when gradcam / PyTorch > %.1f" % TARGET_RATIO)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    s = scenes.scene((tc.TEST_SEED, a.scene))
    words = tc.encode(s["caption"])[:a.words]
    xn = np.ascontiguousarray(tc.to_input(s["rgb"][None]).numpy())
    toks = np.array([[tc.BOS] + words], np.int64)
    feeds = {"image": xn, "tokens": toks}

    model = gradcam.Model(ONNX)
    ex = gradcam.Explainer(model, {"image": xn.shape, "tokens": toks.shape}, layers=[CAM], output="logprobs",
                           explain_probability=True, n_threads=a.threads)
    pt = tc.Captioner.from_onnx(ONNX)
    store = {}

    def keep(mod, inp, out):
        store["a"] = out.detach()
        out.register_hook(lambda g: store.__setitem__("g", g.detach()))

    pt.cnn.register_forward_hook(keep)
    x, tt = torch.from_numpy(xn), torch.from_numpy(toks)

    ours, ref = engine_turn(ex, feeds, words), torch_turn(pt, x, tt, words, store)   # warm-up and check
    err = max(float(np.abs(o - r).max() / max(np.abs(r).max(), 1e-30)) for o, r in zip(ours, ref))
    te, tp = [], []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        engine_turn(ex, feeds, words)
        te.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        torch_turn(pt, x, tt, words, store)
        tp.append(time.perf_counter() - t0)
    me, mp = statistics.median(te), statistics.median(tp)
    ratio = me / mp
    print("caption '%s' (%d words explained, Grad-CAM), %d threads, %d turns" %
          (tc.decode(words), len(words), a.threads, a.reps))
    print("  gradcam  (1 forward + %d explains): median %.2f ms" % (len(words), 1e3 * me))
    print("  PyTorch  (%d x forward + backward): median %.2f ms" % (len(words), 1e3 * mp))
    print("  ratio %.3f (target <= %.1f); maps equal within %.1e of max" % (ratio, TARGET_RATIO, err))
    bad = err > 1e-3 or (a.check and ratio > TARGET_RATIO)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
