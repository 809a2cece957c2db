#!/usr/bin/python3
"""The demo captioner and VQA model (examples/caption, examples/vqa; issue #19) through the engine
(python/gradcam over libgradcam_tool), against PyTorch running the same weights (rebuilt from the ONNX
files by the train scripts' from_onnx).

Usage: GRADCAM_LIBRARY=build/libgradcam_tool.so GRADCAM_CLI=build/gradcam PYTHONPATH=python \\
           /usr/bin/python3 tests/caption_vqa_ref.py

1. Greedy captions on 20 scenes: the engine run with L = 1, 2, ... (argmax of the last position, stop
   at <eos> or 16 words) gives PyTorch's captions token for token.
2. Maps against a float64 PyTorch reference written from docs/methods.md (hooks on the CAM layer, the
   CNN's last conv map; autograd of the word's log-probability after the LogSoftmax / of the answer's
   logit): Grad-CAM, Guided Backpropagation (every ReLU guided, as the engine does; the LSTM's
   sigmoids and tanhs keep their derivatives) and Guided Grad-CAM, max|ours - ref| <= 1e-4 max|ref|,
   on 5 scenes x every word of the greedy caption (and <eos>), and 5 scenes x the top-3 answers.
   ReLU kinks: a ReLU input within 1e-4 of its tensor's max|.| from 0 (float64) takes the engine's
   own decision (its float32 ReLU output > 0), so float32 rounding on any CPU cannot make the two sides
   differ; elsewhere the decisions must agree (counted and checked).
   PyTorch's own float32 maps (the same formulas and pinned kinks) are measured against the float64
   reference too and printed beside the engine's: what float32 itself can do on these models. The
   tolerance is a plain 1e-4 for both models, with no float32 allowance: the captioner is trained to
   be well conditioned instead. A word's log-probability has the gradient (one-hot - p) at the
   logits, and 1 - p computed from a float32 p near 1 keeps only ~6e-8 / (1 - p) of relative
   accuracy: on a model trained without label smoothing, a word at 1 - p = 1e-6 put PyTorch's own
   float32 maps 3e-2 of max from float64, and over this check's words the engine's worst (1.9e-3)
   equalled PyTorch float32's (the LSTM's recurrence was not the cause). Label smoothing (train_captioner.py --smooth 0.1) keeps p at about 0.9 at most.
3. The paper's claims on 100 held-out scenes: the Grad-CAM map (upsampled to 128x128) of each shape
   word of the caption has its maximum inside that shape's box (>= 90%; for the true caption
   teacher-forced and for the greedy caption's shape words present in the picture); for VQA, "what
   color is the X" for every shape X: the predicted answer's map has its maximum inside X's box (>= 90%).
4. The command (GRADCAM_CLI): its own greedy decoding and PNG reading on 8 scenes, captions token for
   token and log-probabilities against PyTorch; the top answer to each type of question.
Fails (never skips) when torch, onnx, the library or the command are missing.
"""
import copy
import os
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import onnx  # noqa: F401  (the train scripts' from_onnx reads the files with it)
except ImportError as e:  # fail, never skip
    sys.stderr.write("caption_vqa_ref.py: FAILED: cannot import numpy/torch/onnx (%s)\n" % e)
    sys.exit(1)

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "python"))
sys.path.insert(0, os.path.join(TOP, "examples", "caption"))
sys.path.insert(0, os.path.join(TOP, "examples", "vqa"))
try:
    import gradcam
except Exception as e:  # noqa: BLE001  (no library: fail)
    sys.stderr.write("caption_vqa_ref.py: FAILED: cannot load the gradcam package (%s)\n" % e)
    sys.exit(1)
import onnx_load  # noqa: E402
import scenes  # noqa: E402
import train_captioner as tc  # noqa: E402
import train_vqa as tv  # noqa: E402

CAP_ONNX = os.path.join(TOP, "examples", "caption", "captioner.onnx")
VQA_ONNX = os.path.join(TOP, "examples", "vqa", "vqa.onnx")
CAM = "/cnn/cnn.14/Relu_output_0"
CLI = os.environ.get("GRADCAM_CLI")
TOL = 1e-4
KINK = 1e-4
RATE = 0.90
THREADS = 2
FAILS = []
STATS = {"forced": 0, "units": 0, "disagree": 0}


def check(ok, msg):
    print(("ok   " if ok else "FAIL ") + msg, flush=True)
    if not ok:
        FAILS.append(msg)


def rel(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(float(np.abs(b).max()), 1e-30))


def inside(m, box):
    """The (first) maximum of a (H, W) map lies in box x0, y0, x1, y1 (x1, y1 exclusive)."""
    y, x = np.unravel_index(int(np.argmax(m)), m.shape)
    return box[0] <= x < box[2] and box[1] <= y < box[3]


# ---------------------------------------------------------------- the float64 reference, kinks pinned

class _Relu(torch.autograd.Function):
    """ReLU with a given mask; backward standard (mask) or guided (mask and incoming gradient > 0)."""

    @staticmethod
    def forward(ctx, z, mask, guided):
        ctx.save_for_backward(mask)
        ctx.guided = guided
        return z * mask

    @staticmethod
    def backward(ctx, g):
        mask, = ctx.saved_tensors
        g = g * mask
        if ctx.guided:
            g = g * (g > 0)
        return g, None, None


class PinnedReLU(nn.Module):
    """Stands for one nn.ReLU of the float64 model: float64's decision, except within KINK x max|z|
    of 0, where the engine's float32 decision (its ReLU output > 0) is taken."""

    def __init__(self, tensor, count):
        super().__init__()
        self.tensor, self.engine, self.guided, self.count = tensor, None, False, count

    def forward(self, z):
        ours = z > 0
        eng = torch.from_numpy(self.engine[self.tensor] > 0)
        near = z.detach().abs() <= KINK * float(z.detach().abs().max())
        if self.count:
            STATS["forced"] += int(near.sum())
            STATS["units"] += z.numel()
            STATS["disagree"] += int(((ours != eng) & ~near).sum())
        mask = torch.where(near, eng, ours).to(z.dtype)
        return _Relu.apply(z, mask, self.guided)


def pinned_model(model, path, dtype=torch.float64):
    """A copy of `model` in `dtype` whose ReLUs are PinnedReLUs, and the ONNX names of their outputs."""
    g = onnx.load(path).graph
    relu_out = {onnx_load.module_path(n.name): n.output[0] for n in g.node if n.op_type == "Relu"}
    m = copy.deepcopy(model).to(dtype).eval()
    pins = []
    for name, mod in list(m.named_modules()):
        for child_name, child in list(mod.named_children()):
            full = (name + "." if name else "") + child_name
            if isinstance(child, nn.ReLU):
                p = PinnedReLU(relu_out[full], dtype == torch.float64)
                setattr(mod, child_name, p)
                pins.append(p)
    assert len(pins) == len(relu_out), (len(pins), sorted(relu_out))
    return m, pins


def set_pins(pins, engine_model, feeds, guided):
    out = engine_model.run(feeds, outputs=[p.tensor for p in pins], n_threads=THREADS)
    for p in pins:
        p.engine, p.guided = out, guided


def ref_maps(m, pins, engine_model, feeds, args, score_fn):
    """Grad-CAM raw (h, w), Guided Backprop (C, H, W), Guided Grad-CAM (C, H, W) in float64."""
    feats = []

    def keep(mod, inp, out):  # returns None: the output stays as it is
        out.retain_grad()
        feats.append(out)

    hook = m.cnn.register_forward_hook(keep)
    try:
        set_pins(pins, engine_model, feeds, False)
        score_fn(m(*args)).backward()
        A, G = feats[-1], feats[-1].grad
        alpha = G.mean((2, 3), keepdim=True)
        cam = F.relu((alpha * A).sum(1, keepdim=True)).detach()
        x = args[0].detach().clone().requires_grad_(True)
        set_pins(pins, engine_model, feeds, True)
        score_fn(m(x, *args[1:])).backward()
        gb = x.grad.detach()
        up = F.interpolate(cam, size=gb.shape[2:], mode="bilinear", align_corners=False)
        return cam[0, 0].numpy(), gb[0].numpy(), (gb * up)[0].numpy()
    finally:
        hook.remove()


def compare_maps(ex, target, ref, ref32, label, worst):
    """The engine's maps against the float64 reference; PyTorch's float32 maps (the same formulas and
    pinned kinks, float32) against it too, which measures what float32 itself can do on this model."""
    for method, want, p32 in zip(("gradcam", "guided-backprop", "guided-gradcam"), ref, ref32):
        got = ex.explain(method, target).raw[0]
        if method == "gradcam":
            got = got[0]
        e, e32 = rel(got, want), rel(p32, want)
        w = worst.setdefault(method, [0.0, 0.0])
        w[0], w[1] = max(w[0], e), max(w[1], e32)
        if e > TOL:
            check(False, "%s %s: max|ours - ref| = %.2e of max|ref| (PyTorch float32: %.2e)" % (label, method, e, e32))


def fmt_worst(worst):
    return ", ".join("%s %.1e (PyTorch float32 %.1e)" % (k, v[0], v[1]) for k, v in worst.items())


# ------------------------------------------------------------------------------------- captioner

def engine_greedy(model, x):
    toks = [tc.BOS]
    lp_last = []
    for _ in range(tc.MAX_WORDS + 1):
        t = np.array([toks], np.int64)
        lp = model.run({"image": x, "tokens": t}, n_threads=THREADS)["logprobs"][0, -1]
        lp_last.append(lp)
        w = int(np.argmax(lp))
        if w == tc.EOS or len(toks) > tc.MAX_WORDS:
            break
        toks.append(w)
    return toks[1:], lp_last


@torch.no_grad()
def torch_greedy(model, x):
    toks = [tc.BOS]
    margins = []
    for _ in range(tc.MAX_WORDS + 1):
        lp = model(torch.from_numpy(x), torch.tensor([toks]))[0, -1]
        top = torch.topk(lp.double(), 2).values
        margins.append(float(top[0] - top[1]))
        w = int(lp.argmax())
        if w == tc.EOS or len(toks) > tc.MAX_WORDS:
            break
        toks.append(w)
    return toks[1:], margins


def image(s):
    return np.ascontiguousarray(tc.to_input(s["rgb"][None]).numpy())


def test_captioner():
    print("== captioner (%s)" % os.path.relpath(CAP_ONNX, TOP))
    model = gradcam.Model(CAP_ONNX)
    pt = tc.Captioner.from_onnx(CAP_ONNX)
    # 1. greedy decoding
    same, min_margin, worst_lp = 0, 1e9, 0.0
    caps = []
    for i in range(20):
        s = scenes.scene((5, i))
        x = image(s)
        ours, lps = engine_greedy(model, x)
        ref, margins = torch_greedy(pt, x)
        min_margin = min(min_margin, min(margins))
        with torch.no_grad():
            full = pt(torch.from_numpy(x), torch.tensor([[tc.BOS] + ref]))[0].numpy()
        if ours == ref:
            same += 1
            worst_lp = max(worst_lp, max(float(np.abs(lp - full[k]).max()) for k, lp in enumerate(lps)))
        else:
            check(False, "scene (5, %d): engine '%s', PyTorch '%s'" % (i, tc.decode(ours), tc.decode(ref)))
        caps.append((s, x, ref))
    check(same == 20, "greedy captions identical token for token on %d/20 scenes (PyTorch's smallest top-1/top-2 "
          "margin %.3f nats; log-probabilities of each step within %.1e)" % (same, min_margin, worst_lp))
    for s, _, ref in caps[:3]:
        print("     true '%s', greedy '%s'" % (s["caption"], tc.decode(ref)))

    # 2. maps against the float64 reference, every word of 5 captions (+ <eos>)
    m64, pins = pinned_model(pt, CAP_ONNX)
    m32, pins32 = pinned_model(pt, CAP_ONNX, torch.float32)
    worst, n = {}, 0
    explainers = {}
    for s, x, ref in caps[:5]:
        toks = np.array([[tc.BOS] + ref], np.int64)
        L = toks.shape[1]
        if L not in explainers:
            explainers[L] = gradcam.Explainer(model, {"image": x.shape, "tokens": toks.shape}, layers=[CAM],
                                              output="logprobs", explain_probability=True, input_gradient=True,
                                              n_threads=THREADS)
        ex = explainers[L]
        feeds = {"image": x, "tokens": toks}
        ex.forward(feeds)
        for t, w in enumerate(ref + [tc.EOS]):
            score = (lambda lp, t=t, w=w: lp[0, t, w])
            r = ref_maps(m64, pins, model, feeds, (torch.from_numpy(x).double(), torch.from_numpy(toks)), score)
            r32 = ref_maps(m32, pins32, model, feeds, (torch.from_numpy(x), torch.from_numpy(toks)), score)
            compare_maps(ex, gradcam.Target.element((0, t, w)), r, r32, "caption word %d '%s'" % (t, tc.VOCAB[w]),
                         worst)
            n += 1
    check(all(v[0] <= TOL for v in worst.values()),
          "captioner maps on %d words of 5 captions: worst %s (tol %.0e of max)" % (n, fmt_worst(worst), TOL))

    # 3. the claim: each shape word's Grad-CAM maximum inside that shape's box
    hits_t = hits_g = tot_g = 0
    exact = 0
    explainers = {}

    def word_maps(x, words):
        toks = np.array([[tc.BOS] + words], np.int64)
        L = toks.shape[1]
        if L not in explainers:
            explainers[L] = gradcam.Explainer(model, {"image": x.shape, "tokens": toks.shape}, layers=[CAM],
                                              output="logprobs", explain_probability=True, n_threads=THREADS)
        ex = explainers[L]
        ex.forward({"image": x, "tokens": toks})
        return ex

    for i in range(100):
        s = scenes.scene((tc.TEST_SEED, i))
        x = image(s)
        true = tc.encode(s["caption"])
        ex = word_maps(x, true)
        for t, w in enumerate(true):
            if tc.VOCAB[w] in scenes.SHAPES:
                k = s["shapes"].index(scenes.SHAPES.index(tc.VOCAB[w]))
                mp = ex.explain("gradcam", gradcam.Target.element((0, t, w))).upsampled[0, 0]
                hits_t += inside(mp, s["boxes"][k])
        greedy, _ = torch_greedy(pt, x)
        exact += greedy == true
        ex = word_maps(x, greedy)
        for t, w in enumerate(greedy):
            name = tc.VOCAB[w]
            if name in scenes.SHAPES and scenes.SHAPES.index(name) in s["shapes"]:
                k = s["shapes"].index(scenes.SHAPES.index(name))
                mp = ex.explain("gradcam", gradcam.Target.element((0, t, w))).upsampled[0, 0]
                hits_g += inside(mp, s["boxes"][k])
                tot_g += 1
    rt, rg = hits_t / 200, hits_g / max(tot_g, 1)
    check(rt >= RATE, "true captions (teacher-forced) of 100 held-out scenes: the shape word's Grad-CAM maximum "
          "in its shape's box for %d/200 words (%.1f%%, needs >= %.0f%%)" % (hits_t, 100 * rt, 100 * RATE))
    check(rg >= RATE, "greedy captions (%d/100 exact): %d/%d shape words present in the picture localised (%.1f%%)"
          % (exact, hits_g, tot_g, 100 * rg))
    check(exact >= 80, "the captioner captions: %d/100 held-out scenes' greedy captions exactly the true one "
          "(needs >= 80; README: 0.925 on 200)" % exact)


def test_command():
    """`gradcam explain` itself (its own greedy decoding in C, the PNG read and --preprocess raw) on the
    demo models: 8 scenes' greedy captions token for token as PyTorch's, with each word's
    log-probability, and the top answer to each type of question with its score."""
    print("== the command (%s)" % CLI)
    import json
    import subprocess
    import tempfile
    from PIL import Image
    pt, pq = tc.Captioner.from_onnx(CAP_ONNX), tv.VQA.from_onnx(VQA_ONNX)
    same_cap, same_ans, worst_lp, worst_score, n_q = 0, 0, 0.0, 0.0, 0
    with tempfile.TemporaryDirectory() as work:
        for i in range(8):
            s = scenes.scene((7, i))
            pic = os.path.join(work, "scene%d.png" % i)
            Image.fromarray(s["rgb"]).save(pic)
            x = image(s)
            ref, _ = torch_greedy(pt, x)
            out = os.path.join(work, "c%d" % i)
            p = subprocess.run([CLI, "explain", CAP_ONNX, pic, "--vocab", os.path.join(TOP, "examples", "caption", "vocab.txt"),
                                "--preprocess", "raw", "-m", "gradcam", "-q", "-o", out], capture_output=True, text=True,
                               timeout=300)
            if not p.returncode == 0:
                check(False, "scene (7, %d): gradcam explain exit %d: %s" % (i, p.returncode, p.stderr.strip()))
                continue
            c = json.load(open(os.path.join(out, "results.json")))["inputs"][0]["caption"]
            ours = [w["id"] for w in c["words"]]
            with torch.no_grad():
                lp = pt(torch.from_numpy(x), torch.tensor([[tc.BOS] + ref]))[0].double().numpy()
            if ours == ref:
                same_cap += 1
                worst_lp = max([worst_lp] + [abs(w["logprob"] - lp[t, ref[t]]) for t, w in enumerate(c["words"])])
            else:
                check(False, "scene (7, %d): the command's caption '%s', PyTorch's '%s'" % (i, c["text"], tc.decode(ref)))
            rng = np.random.default_rng([7, i])
            for qt in tv.QTYPES:
                q, _, _ = tv.question_for(s, qt, rng)
                qa = np.array([tv.encode(q)], np.int64)
                with torch.no_grad():
                    y = pq(torch.from_numpy(x), torch.from_numpy(qa))[0].double().numpy()
                out = os.path.join(work, "q%d" % n_q)
                n_q += 1
                p = subprocess.run([CLI, "explain", VQA_ONNX, pic, "--vocab", os.path.join(TOP, "examples", "vqa", "vocab.txt"),
                                    "--labels", os.path.join(TOP, "examples", "vqa", "answers.txt"), "--question", q,
                                    "--preprocess", "raw", "-m", "gradcam", "-q", "-o", out], capture_output=True,
                                   text=True, timeout=300)
                if not p.returncode == 0:
                    check(False, "'%s': gradcam explain exit %d: %s" % (q, p.returncode, p.stderr.strip()))
                    continue
                a = json.load(open(os.path.join(out, "results.json")))["inputs"][0]["answers"][0]
                same_ans += a["index"] == int(np.argmax(y)) and a["label"] == tv.ANSWERS[int(np.argmax(y))]
                worst_score = max(worst_score, abs(a["score"] - y[a["index"]]) / max(np.abs(y).max(), 1e-30))
    check(same_cap == 8 and worst_lp <= 1e-4, "the command's greedy captions equal PyTorch's token for token on %d/8 "
          "scenes (each word's log-probability within %.1e)" % (same_cap, worst_lp))
    check(same_ans == n_q and worst_score <= 1e-5, "the command's top answer is PyTorch's for %d/%d questions (scores "
          "within %.1e of max)" % (same_ans, n_q, worst_score))


# ------------------------------------------------------------------------------------------- VQA

def test_vqa():
    print("== VQA (%s)" % os.path.relpath(VQA_ONNX, TOP))
    model = gradcam.Model(VQA_ONNX)
    pt = tv.VQA.from_onnx(VQA_ONNX)
    m64, pins = pinned_model(pt, VQA_ONNX)
    m32, pins32 = pinned_model(pt, VQA_ONNX, torch.float32)
    explainers = {}

    def explainer(x, q):
        if q.shape[1] not in explainers:
            explainers[q.shape[1]] = gradcam.Explainer(model, {"image": x.shape, "question": q.shape}, layers=[CAM],
                                                       output="answer", input_gradient=True, n_threads=THREADS)
        return explainers[q.shape[1]]

    # logits and 2. maps on 5 scenes x one question of each type x the top-3 answers
    worst, n, worst_logit = {}, 0, 0.0
    for i in range(5):
        s = scenes.scene((6, i))
        x = image(s)
        rng = np.random.default_rng([6, i])
        for qt in tv.QTYPES:
            q, _, _ = tv.question_for(s, qt, rng)
            qa = np.array([tv.encode(q)], np.int64)
            feeds = {"image": x, "question": qa}
            ex = explainer(x, qa)
            ex.forward(feeds)
            logits = ex.scores()[0]
            with torch.no_grad():
                want = pt(torch.from_numpy(x), torch.from_numpy(qa))[0].numpy()
            worst_logit = max(worst_logit, rel(logits, want))
            for a in np.argsort(-want)[:3]:
                score = (lambda y, a=int(a): y[0, a])
                r = ref_maps(m64, pins, model, feeds, (torch.from_numpy(x).double(), torch.from_numpy(qa)), score)
                r32 = ref_maps(m32, pins32, model, feeds, (torch.from_numpy(x), torch.from_numpy(qa)), score)
                compare_maps(ex, int(a), r, r32, "'%s' answer '%s'" % (q, tv.ANSWERS[a]), worst)
                n += 1
    check(worst_logit <= 1e-5, "VQA logits equal PyTorch's within %.1e of max" % worst_logit)
    check(all(v[0] <= TOL for v in worst.values()),
          "VQA maps on %d (question, answer) pairs: worst %s (tol %.0e of max)" % (n, fmt_worst(worst), TOL))

    # 3. the claim: "what color is the X": the predicted answer's map on X
    hits = tot = right = 0
    for i in range(100):
        s = scenes.scene((tv.TEST_SEED, i))
        x = image(s)
        for k, shp in enumerate(s["shapes"]):
            qa = np.array([tv.encode("what color is the %s" % scenes.SHAPES[shp])], np.int64)
            ex = explainer(x, qa)
            ex.forward({"image": x, "question": qa})
            a = int(np.argmax(ex.scores()[0]))
            right += tv.ANSWERS[a] == scenes.COLORS[s["colors"][k]]
            hits += inside(ex.explain("gradcam", a).upsampled[0, 0], s["boxes"][k])
            tot += 1
    r = hits / tot
    check(right >= RATE * tot, "the VQA model answers: %d/%d colour questions right (needs >= %.0f%%)"
          % (right, tot, 100 * RATE))
    check(r >= RATE, "'what color is the X' on 100 held-out scenes (%d questions, %d answered right): the answer's "
          "Grad-CAM maximum in X's box for %d (%.1f%%, needs >= %.0f%%)" % (tot, right, hits, 100 * r, 100 * RATE))


def main():
    torch.set_num_threads(THREADS)
    t0 = time.time()
    for path in (CAP_ONNX, VQA_ONNX):
        if not os.path.exists(path):
            check(False, "missing %s" % path)
    if not CLI or not os.access(CLI, os.X_OK):
        check(False, "GRADCAM_CLI is not the gradcam command (tests/caption_vqa.cmake sets it): %r" % CLI)
    if not FAILS:
        test_captioner()
        test_vqa()
        test_command()
    check(STATS["disagree"] == 0, "ReLU decisions: %d units, %d within the kink margin took the engine's, %d "
          "outside it disagreed" % (STATS["units"], STATS["forced"], STATS["disagree"]))
    print("%.0f s; %s" % (time.time() - t0, "%d FAILED" % len(FAILS) if FAILS else "all passed"))
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
