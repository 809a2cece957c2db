#!/usr/bin/python3
"""Train the small captioner (CNN + LSTM + soft attention) and export it to ONNX (Debian's /usr/bin/python3).

    nice -n 10 /usr/bin/python3 examples/caption/train_captioner.py [--threads 1]
        # writes captioner.onnx and vocab.txt next to this file, prints the measures

Inputs: "image" float32 (1, 3, 128, 128), RGB / 255; "tokens" int64 (1, L), L dynamic: <bos> then the
caption's words so far. Output: "logprobs" float32 (1, L, V), LogSoftmax over vocab.txt; position t is
the distribution of token t + 1 (teacher forcing). The CNN's last conv map ("/cnn/cnn.14/Relu_output_0",
(1, 48, 16, 16)) is the CAM layer; a summary of it starts the LSTM, and each position's LSTM output
attends over its 256 cells to choose the next word (class Captioner). Training adds, unexported,
per-cell, background, attention and readout losses and label smoothing (see the functions' notes).

Data: scenes.scene((1, i)) for training, (2, i) validation, (3, i) the 200 held-out scenes.
Deterministic: fixed seeds, torch.use_deterministic_algorithms, a fixed thread count.
"""
import argparse
import os
import sys
import time

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import onnx_load  # noqa: E402
import scenes  # noqa: E402

SIZE = 128
VOCAB = scenes.vocabulary()
PAD, BOS, EOS, UNK = 0, 1, 2, 3
WID = {w: i for i, w in enumerate(VOCAB)}
MAX_WORDS = 16
TRAIN_SEED, VAL_SEED, TEST_SEED = 1, 2, 3
CAM_LAYER = "cnn.14"


def cnn(widths=(16, 32, 48, 48, 48), fused=False):
    """Conv + BatchNorm + ReLU blocks, strided convolutions (no max-pool: no ties for the gradient to
    choose between): 128 -> 64 -> 32 -> 16, then one more 3x3 conv at 16x16 (the CAM layer). fused:
    BatchNorm folded into the conv (as exported), an Identity in its place so that module paths stay."""
    layers, cin = [], 3
    for k, w in enumerate(widths):  # the last conv dilated: a receptive field (63 px) wider than a shape
        d = 2 if k == 4 else 1
        layers += [nn.Conv2d(cin, w, 3, 2 if k < 3 else 1, d, dilation=d, bias=fused),
                   nn.Identity() if fused else nn.BatchNorm2d(w), nn.ReLU()]
        cin = w
    return nn.Sequential(*layers)


def fold_batchnorm(model, fused):
    """Copies `model`'s weights into `fused` (the same class built with fused=True), each BatchNorm
    (eval statistics) folded into the conv before it."""
    fm = dict(fused.named_modules())
    src = dict(model.named_modules())
    with torch.no_grad():
        for name, p in fused.named_parameters():
            mod, attr = name.rsplit(".", 1)
            conv = src[mod]
            nxt = mod.rsplit(".", 1)
            bn = src.get("%s.%d" % (nxt[0], int(nxt[1]) + 1)) if len(nxt) == 2 and nxt[1].isdigit() else None
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                if attr == "weight":
                    p.copy_(conv.weight * s[:, None, None, None])
                else:
                    b = conv.bias if conv.bias is not None else torch.zeros_like(s)
                    p.copy_((b - bn.running_mean) * s + bn.bias)
            else:
                p.copy_(getattr(src[mod], attr))
    assert set(fm) <= set(src)
    return fused.eval()


class Captioner(nn.Module):
    """CNN -> CAM layer A (48, 16, 16), read as 256 cells of 48 features. Image code: a linear map of
    each cell to 16 values, their mean over cells (what) and their 4x4 block means (where); it sets
    the LSTM's initial state (h0 = tanh, c0 linear) and, projected, is fed beside each word. At each
    step the LSTM's output y attends over the cells (Show, Attend and Tell, after the LSTM: softmax over
    cells of (Wq y) . (keys), the attended values c), and [y, c] -> Linear gives the next word:
    a shape word reads the picture through the cells of one shape. Cells go through MatMuls, not 1x1
    convs, so that the CAM layer stays the graph's last (N, C, h, w) map (the command's choice)."""

    def __init__(self, V=len(VOCAB), E=32, H=96, C=48, D=64, fused=False):
        super().__init__()
        self.H, self.code_drop = H, 0.0
        self.cnn = cnn((16, 32, C, C, C), fused)
        if not fused:  # training only: each cell's (colour, shape) read from the CAM layer (dense supervision)
            self.aux = nn.Conv2d(C, 1 + len(scenes.SHAPES) * len(scenes.COLORS), 1)
        self.where = nn.Linear(C, 16)
        self.init = nn.Linear(16 + 16 * 16, 2 * H)
        self.step = nn.Linear(16 + 16 * 16, E)
        self.emb = nn.Embedding(V, E)
        self.lstm = nn.LSTM(2 * E, H, batch_first=True)
        self.query = nn.Linear(H, D)
        self.key = nn.Linear(C, D)
        self.val = nn.Linear(C, D)
        self.fc = nn.Linear(H + D, V)

    def image_code(self, image):
        a = self.cnn(image)
        cells = a.flatten(2).transpose(1, 2)                                # (N, 256, C), cell y * 16 + x
        u = self.where(cells)
        # 4x4 blocks of 4x4 cells: (N, block y, y in block, block x, x in block, 16), kept 6-D (not a map)
        blocks = u.reshape(-1, 4, 4, 4, 4, 16).mean((2, 4), keepdim=True).flatten(1)
        v = torch.cat([u.mean(1), blocks], 1)
        if self.training and self.code_drop > 0:  # some captions without the image code: words from attention
            v = v * (torch.rand(v.shape[0], 1) >= self.code_drop).to(v.dtype)
        s = self.init(v)
        return (torch.tanh(s[:, :self.H]).unsqueeze(0), s[:, self.H:].unsqueeze(0).contiguous()), self.step(v), cells

    def run_lstm(self, tokens, state, step):
        e = self.emb(tokens)
        x = torch.cat([e, step.unsqueeze(1).expand(-1, tokens.shape[1], -1)], 2)
        return self.lstm(x, state)

    def head(self, y, cells):
        """Next-word logits (N, L, V) from the LSTM's outputs y (N, L, H) and the cells; keeps the
        attention (N, L, 256) in self.att for the training's attention loss."""
        w = torch.softmax(torch.matmul(self.query(y), self.key(cells).transpose(1, 2)), -1)
        v = self.val(cells)
        self.att, self.vals = w, v
        # linear in the attended values (no squashing): a cell's share of a word's score is what its
        # values would give it, the reading Grad-CAM's linearisation makes
        return self.fc(torch.cat([y, torch.matmul(w, v)], 2))

    def forward(self, image, tokens):
        state, step, cells = self.image_code(image)
        y, _ = self.run_lstm(tokens, state, step)
        return F.log_softmax(self.head(y, cells), -1)

    @classmethod
    def from_onnx(cls, path):
        return onnx_load.load(cls(fused=True), path)


def encode(caption):
    return [WID.get(w, UNK) for w in caption.split()]


def decode(ids):
    return " ".join(VOCAB[i] for i in ids)


def aux_loss(model, a, shp, col):
    """Cross-entropy of each cell's (colour, shape) pair (scenes.cell_labels; 0 background) read from
    the CAM layer by a 1x1 conv that is not exported: it teaches the CNN features of coloured shapes,
    which the mean over positions keeps apart, much faster than the task's loss alone."""
    t = torch.where(shp > 0, (col - 1) * len(scenes.SHAPES) + shp, torch.zeros_like(shp))
    return F.cross_entropy(model.aux(a), t)


def background_loss(a, shp):
    """Mean CAM-layer activation on background cells (scenes.cell_labels 0): teaches the CNN to keep
    quiet away from shapes, so that Grad-CAM's weighted sum of channels is not lifted by the
    textured background (the maps then peak on shapes)."""
    bg = (shp == 0).to(a.dtype)[:, None]
    return (a * bg).sum() / (bg.sum() * a.shape[1]).clamp(min=1)


def attention_targets(caps, subj_obj, L):
    """(N, L): at the positions that predict the subject's colour and shape words, 1 + the subject's
    SHAPES index; the object's likewise; 0 elsewhere (no attention target)."""
    t = torch.zeros(len(caps), L, dtype=torch.int64)
    for k, c in enumerate(caps):
        n = len(c.split())
        t[k, 1:3] = subj_obj[k][0]
        t[k, n - 2:n] = subj_obj[k][1]
    return t


def attention_loss(att, shp, target):
    """-log of the attention on the described shape's cells (scenes.cell_labels) where `target`
    names one: it teaches the decoder to read colour and shape words from that shape's place."""
    on = (shp.flatten(1)[:, None, :] == target[:, :, None]).to(att.dtype)   # (N, L, 256)
    use = target > 0
    return -torch.log((att * on).sum(2)[use] + 1e-6).mean()


def readout_loss(model, shp, words, target):
    """Where `target` names a shape (as in attention_loss): the word's score read from each cell's
    values alone (the c part of fc), softmax over the cells, -log of its mass on that shape's cells.
    The word's readout then ranks cells by what they show, which is what its Grad-CAM map shows."""
    wc = model.fc.weight[:, model.H:][words]                       # (N, L, D)
    S = torch.matmul(wc, model.vals.transpose(1, 2))               # (N, L, 256)
    on = shp.flatten(1)[:, None, :] == target[:, :, None]
    use = (target > 0) & on.any(2)
    return (torch.logsumexp(S, 2) - torch.logsumexp(S.masked_fill(~on, float("-inf")), 2))[use].mean()


def keep_features(model):
    """A forward hook that keeps the CAM layer's output of the last forward in model.cam_out."""
    def hook(mod, inp, out):
        model.cam_out = out
    return model.cnn.register_forward_hook(hook)


def to_input(imgs):
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in 0..1: the model's whole preprocessing."""
    return torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float().div_(255.0)


def load_scenes(seed, n, labels=False):
    imgs = np.empty((n, SIZE, SIZE, 3), np.uint8)
    shp = np.zeros((n, SIZE // 8, SIZE // 8), np.int64)
    col = np.zeros_like(shp)
    caps, so = [], []
    for i in range(n):
        s = scenes.scene((seed, i), SIZE)
        imgs[i] = s["rgb"]
        caps.append(s["caption"])
        so.append((s["shapes"][0] + 1, s["shapes"][1] + 1))   # the caption's subject and object
        if labels:
            shp[i], col[i] = scenes.cell_labels(s)
    return (imgs, caps, shp, col, so) if labels else (imgs, caps)


def batch_tokens(caps):
    """Teacher forcing: inputs <bos> w1 .. wn, targets w1 .. wn <eos>, padded with <pad> (ignored)."""
    ids = [encode(c) for c in caps]
    L = max(len(i) for i in ids) + 1
    x = torch.full((len(ids), L), PAD, dtype=torch.int64)
    y = torch.full((len(ids), L), PAD, dtype=torch.int64)
    for k, i in enumerate(ids):
        x[k, :len(i) + 1] = torch.tensor([BOS] + i)
        y[k, :len(i) + 1] = torch.tensor(i + [EOS])
    return x, y


@torch.no_grad()
def greedy(model, imgs, bs=100):
    """Greedy captions (lists of word ids, without <eos>), up to MAX_WORDS words; the same as running
    the exported graph with L = 1, 2, ... and taking the argmax of the last position."""
    model.eval()
    out = []
    for s in range(0, len(imgs), bs):
        x = to_input(imgs[s:s + bs])
        (h, c), step, cells = model.image_code(x)
        tok = torch.full((len(x), 1), BOS, dtype=torch.int64)
        done = torch.zeros(len(x), dtype=torch.bool)
        seqs = [[] for _ in range(len(x))]
        for _ in range(MAX_WORDS + 1):
            y, (h, c) = model.run_lstm(tok, (h, c), step)
            nxt = model.head(y[:, -1:], cells)[:, 0].argmax(-1)
            for k in range(len(x)):
                if not done[k]:
                    if int(nxt[k]) == EOS:
                        done[k] = True
                    elif len(seqs[k]) < MAX_WORDS:
                        seqs[k].append(int(nxt[k]))
                    else:
                        done[k] = True
            if bool(done.all()):
                break
            tok = nxt[:, None]
        out += seqs
    return out


def evaluate(model, imgs, caps):
    """Exact match of the greedy caption, word accuracy (position by position against the true
    caption's words and <eos>), and per-slot accuracies."""
    pred = greedy(model, imgs)
    exact, right, total = 0, 0, 0
    slots = np.zeros(5)
    for p, c in zip(pred, caps):
        t = encode(c)
        exact += p == t
        pe, te = p + [EOS], t + [EOS]
        right += sum(1 for k in range(len(te)) if k < len(pe) and pe[k] == te[k])
        total += len(te)
        ws, wp = c.split(), decode(p).split()
        rel_t, rel_p = " ".join(ws[3:-3]), " ".join(wp[3:-3])
        slots += [len(wp) > 1 and wp[1] == ws[1], len(wp) > 2 and wp[2] == ws[2], rel_p == rel_t,
                  len(wp) > 3 and wp[-2] == ws[-2], len(wp) > 3 and wp[-1] == ws[-1]]
    n = len(caps)
    return {"exact": exact / n, "word": right / total, "slots": slots / n, "n": n, "pred": pred}


def fmt(m):
    return ("exact match %.3f, word accuracy %.3f (subject colour %.3f, shape %.3f, relation %.3f, object colour "
            "%.3f, shape %.3f)" % ((m["exact"], m["word"]) + tuple(m["slots"])))


def export(model, path):
    model.eval()
    img = torch.zeros(1, 3, SIZE, SIZE)
    tok = torch.tensor([[BOS, WID["a"], WID["red"]]])
    # gradients enabled during export (no torch.no_grad), as the lead asked
    torch.onnx.export(model, (img, tok), path, input_names=["image", "tokens"], output_names=["logprobs"],
                      dynamic_axes={"tokens": {1: "L"}, "logprobs": {1: "L"}}, opset_version=17,
                      do_constant_folding=True)
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m)
    ops = sorted({n.op_type for n in m.graph.node})
    cam = [n.output[0] for n in m.graph.node if n.op_type == "Relu" and onnx_load.module_path(n.name) == CAM_LAYER]
    print("ONNX ops: %s; CAM layer tensor: %s" % (", ".join(ops), cam))


def main():
    ap = argparse.ArgumentParser(description="train the demo captioner")
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-val", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--aux", type=float, default=0.5, help="weight of the per-cell shape/colour loss")
    ap.add_argument("--att", type=float, default=0.5, help="weight of the attention loss")
    ap.add_argument("--bg", type=float, default=1.0, help="weight of the background activation loss")
    ap.add_argument("--readout", type=float, default=1.0, help="weight of the per-cell readout loss")
    ap.add_argument("--code-drop", type=float, default=0.5, help="training captions without the image code")
    ap.add_argument("--smooth", type=float, default=0.1, help="label smoothing of the caption loss")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)  # (1 and the README's OPENBLAS_*: the committed files)
    ap.add_argument("--out", default=HERE, help="where captioner.onnx and vocab.txt go")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    torch.use_deterministic_algorithms(True)
    t0, c0 = time.time(), time.process_time()
    xtr, ctr, str_, ctr_col, so = load_scenes(TRAIN_SEED, a.n_train, labels=True)
    xva, cva = load_scenes(VAL_SEED, a.n_val)
    print("data: %d train, %d val scenes, %.0f s" % (len(xtr), len(xva), time.time() - t0), flush=True)

    model = Captioner()
    model.code_drop = a.code_drop
    keep_features(model)
    print("parameters: %d" % sum(p.numel() for p in model.parameters()))
    nb = len(xtr) // a.batch
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.epochs * nb, pct_start=0.15)
    gen = torch.Generator().manual_seed(a.seed + 1)
    t1 = time.time()
    for ep in range(a.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen).numpy()
        tot = 0.0
        for i in range(nb):
            idx = perm[i * a.batch:(i + 1) * a.batch]
            x, y = batch_tokens([ctr[j] for j in idx])
            lp = model(to_input(xtr[idx]), x)
            # label smoothing keeps every word's probability <= ~0.9: the gradient of log p is (one-hot - p),
            # and 1 - p computed from a float32 p near 1 keeps only eps32 / (1 - p) of relative accuracy
            loss = F.cross_entropy(lp.reshape(-1, lp.shape[-1]), y.reshape(-1), ignore_index=PAD,
                                   label_smoothing=a.smooth)
            shp = torch.from_numpy(str_[idx])
            loss = loss + a.aux * aux_loss(model, model.cam_out, shp, torch.from_numpy(ctr_col[idx]))
            loss = loss + a.bg * background_loss(model.cam_out, shp)
            tgt = attention_targets([ctr[j] for j in idx], [so[j] for j in idx], x.shape[1])
            loss = loss + a.att * attention_loss(model.att, shp, tgt) + a.readout * readout_loss(model, shp, y, tgt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            tot += loss.item()
        m = evaluate(model, xva, cva)
        print("epoch %d: loss %.4f, val %s, %.0f s" % (ep + 1, tot / nb, fmt(m), time.time() - t1), flush=True)
    print("training: %.0f s wall, %.0f s CPU in all" % (time.time() - t0, time.process_time() - c0))

    xte, cte = load_scenes(TEST_SEED, a.n_test)
    m = evaluate(model, xte, cte)
    print("test (%d held-out scenes, seed %d): %s" % (a.n_test, TEST_SEED, fmt(m)))
    for k in range(5):
        print("  true: %-40s greedy: %s" % (cte[k], decode(m["pred"][k])))

    path = os.path.join(a.out, "captioner.onnx")
    model = fold_batchnorm(model.eval(), Captioner(fused=True))
    m2 = evaluate(model, xte, cte)
    assert m2["pred"] == m["pred"], "folding the batch norms changed captions"
    export(model, path)
    with open(os.path.join(a.out, "vocab.txt"), "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    print("wrote %s (%d bytes) and vocab.txt (%d tokens)" % (path, os.path.getsize(path), len(VOCAB)))
    back = Captioner.from_onnx(path)
    x, t = to_input(xte[:4]), batch_tokens(cte[:4])[0]
    with torch.no_grad():
        err = float((back(x, t) - model.eval()(x, t)).abs().max())
    print("ONNX weights reloaded in PyTorch: max abs difference %.2e" % err)


if __name__ == "__main__":
    main()
