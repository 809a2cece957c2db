#!/usr/bin/python3
"""Train the small VQA model (CNN + LSTM question encoder) and export it to ONNX (Debian's /usr/bin/python3).

    nice -n 10 /usr/bin/python3 examples/vqa/train_vqa.py [--threads 1]
        # writes vqa.onnx, vocab.txt and answers.txt next to this file, prints the measures

Inputs: "image" float32 (1, 3, 128, 128), RGB / 255; "question" int64 (1, Lq), Lq dynamic: the question's
word ids (vocab.txt, no <bos>). Output: "answer" float32 (1, A): logits over answers.txt (no softmax).

The CNN's last conv map ("/cnn/cnn.14/Relu_output_0", (1, 48, 16, 16)) is the CAM layer. The question's
embeddings go through an LSTM; its last hidden state q attends over the map's 256 cells, and the
attended features c, gated by q, give the answer logits (class VQA). Training adds, unexported, a
per-cell (colour, shape) loss, a background-silence loss and an attention loss (aux_loss,
background_loss, attention_loss).

Scenes: examples/caption/scenes.py (2-3 shapes of distinct shapes and colours); (11, i) training,
(12, i) validation, (13, i) the 200 held-out scenes. Questions (one answer each):
  "what color is the <shape>"   (a shape of the picture)     -> its colour
  "what shape is <colour>"      (a colour of the picture)    -> its shape
  "is there a <shape>"          (present or not, half each) -> yes / no
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
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "caption"))
import onnx_load  # noqa: E402
import scenes  # noqa: E402
from train_captioner import background_loss, fold_batchnorm  # noqa: E402

SIZE = 128
WORDS = ["<pad>", "<unk>", "what", "color", "is", "the", "shape", "there", "a"] + scenes.COLORS + scenes.SHAPES
WID = {w: i for i, w in enumerate(WORDS)}
ANSWERS = scenes.COLORS + scenes.SHAPES + ["yes", "no"]
AID = {w: i for i, w in enumerate(ANSWERS)}
QTYPES = ["color", "shape", "exists"]
TRAIN_SEED, VAL_SEED, TEST_SEED = 11, 12, 13
CAM_LAYER = "cnn.14"


def cnn(widths=(16, 32, 48, 48, 48), fused=False):
    """Conv + BatchNorm + ReLU blocks with strided convolutions (no max-pool): 128 -> 64 -> 32 -> 16,
    one more conv at 16x16. fused: BatchNorm folded into the conv, an Identity in its place."""
    layers, cin = [], 3
    for k, w in enumerate(widths):  # the last conv dilated: a receptive field (63 px) wider than a shape
        d = 2 if k == 4 else 1
        layers += [nn.Conv2d(cin, w, 3, 2 if k < 3 else 1, d, dilation=d, bias=fused),
                   nn.Identity() if fused else nn.BatchNorm2d(w), nn.ReLU()]
        cin = w
    return nn.Sequential(*layers)


class VQA(nn.Module):
    """CNN -> CAM layer A (48, 16, 16); question -> LSTM -> q (its last hidden state). Attention over
    the 256 cells: softmax over cells of (Wq q) . (keys: a linear map of each cell's features); the
    attended values (another linear map) make c; Wa (c * tanh(Wg q)) + Wp q: the answer's logits.
    The answer reads the picture only through the attended cells, so its evidence is one place."""

    def __init__(self, V=len(WORDS), A=len(ANSWERS), E=32, H=96, C=48, D=64, fused=False):
        super().__init__()
        self.cnn = cnn((16, 32, C, C, C), fused)
        if not fused:  # training only: each cell's (colour, shape) read from the CAM layer (dense supervision)
            self.aux = nn.Conv2d(C, 1 + len(scenes.SHAPES) * len(scenes.COLORS), 1)
        # keys and values: linear maps of each cell's features (MatMul on (N, 256, C), not 1x1 convs: then the
        # CAM layer stays the last (N, C, h, w) map, the command's automatic choice)
        self.key = nn.Linear(C, D)
        self.val = nn.Linear(C, D)
        self.emb = nn.Embedding(V, E)
        self.lstm = nn.LSTM(E, H, batch_first=True)
        self.query = nn.Linear(H, D)
        self.gate = nn.Linear(H, D)
        self.out = nn.Linear(D, A)
        self.prior = nn.Linear(H, A)

    def forward(self, image, question):
        a = self.cnn(image)
        _, (h, _) = self.lstm(self.emb(question))
        q = h[-1]
        cells = a.flatten(2).transpose(1, 2)                                              # (N, 256, C)
        w = torch.softmax(torch.matmul(self.query(q).unsqueeze(1), self.key(cells).transpose(1, 2)), -1)  # (N, 1, 256)
        c = torch.matmul(w, self.val(cells)).squeeze(1)
        self.att = w.squeeze(1)  # kept for the training's attention loss
        # linear in c (no squashing): a cell's share of an answer's score is what that cell's values
        # would give it, the reading Grad-CAM's linearisation makes
        return self.out(c * torch.tanh(self.gate(q))) + self.prior(q)

    @classmethod
    def from_onnx(cls, path):
        return onnx_load.load(cls(fused=True), path)


def encode(question):
    return [WID.get(w, WID["<unk>"]) for w in question.split()]


def question_for(s, qtype, rng):
    """(question, answer, the shape index it is about or None) for one scene."""
    n = len(s["shapes"])
    if qtype == "color":
        k = int(rng.integers(n))
        return "what color is the %s" % scenes.SHAPES[s["shapes"][k]], scenes.COLORS[s["colors"][k]], k
    if qtype == "shape":
        k = int(rng.integers(n))
        return "what shape is %s" % scenes.COLORS[s["colors"][k]], scenes.SHAPES[s["shapes"][k]], k
    if rng.random() < 0.5:
        k = int(rng.integers(n))
        return "is there a %s" % scenes.SHAPES[s["shapes"][k]], "yes", k
    absent = [c for c in range(len(scenes.SHAPES)) if c not in s["shapes"]]
    return "is there a %s" % scenes.SHAPES[absent[int(rng.integers(len(absent)))]], "no", None


def load_set(seed, n, per_scene=3):
    """Images (n, H, W, 3), per scene `per_scene` questions (one of each type, in a seeded order):
    lists of (image index, type, question, answer, shape index, 1 + its SHAPES index or 0), and the
    per-cell labels."""
    imgs = np.empty((n, SIZE, SIZE, 3), np.uint8)
    shp = np.zeros((n, SIZE // 8, SIZE // 8), np.int64)
    col = np.zeros_like(shp)
    qs = []
    for i in range(n):
        s = scenes.scene((seed, i), SIZE)
        imgs[i] = s["rgb"]
        shp[i], col[i] = scenes.cell_labels(s)
        rng = np.random.default_rng([seed, i, 7])
        for t in range(per_scene):
            qt = QTYPES[t % 3]
            q, ans, k = question_for(s, qt, rng)
            qs.append((i, qt, q, ans, k, 0 if k is None else s["shapes"][k] + 1))
    return imgs, qs, shp, col


def aux_loss(model, a, shp, col):
    """Cross-entropy of each cell's (colour, shape) pair (scenes.cell_labels; 0 background) read from
    the CAM layer by a 1x1 conv that is not exported: it teaches the CNN features of coloured shapes,
    which the mean over positions keeps apart, much faster than the task's loss alone."""
    t = torch.where(shp > 0, (col - 1) * len(scenes.SHAPES) + shp, torch.zeros_like(shp))
    return F.cross_entropy(model.aux(a), t)


def attention_loss(att, shp, target):
    """-log of the attention on the asked shape's cells (scenes.cell_labels), for questions about a
    shape of the picture: it teaches the question where to look in a few epochs."""
    on = (shp.flatten(1) == target[:, None]).to(att.dtype)
    use = target > 0
    if not bool(use.any()):
        return att.sum() * 0
    return -torch.log((att * on).sum(1)[use] + 1e-6).mean()


def keep_features(model):
    """A forward hook that keeps the CAM layer's output of the last forward in model.cam_out."""
    def hook(mod, inp, out):
        model.cam_out = out
    return model.cnn.register_forward_hook(hook)


def to_input(imgs):
    return torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float().div_(255.0)


def run(model, imgs, qs):
    """Logits for a list of questions; questions of one length go through the LSTM together (the
    model has no padding)."""
    out = torch.empty(len(qs), len(ANSWERS))
    feats = torch.empty(len(qs), model.cnn[-3].out_channels, SIZE // 8, SIZE // 8) if model.training else None
    att = torch.empty(len(qs), (SIZE // 8) ** 2) if model.training else None
    by_len = {}
    for j, q in enumerate(qs):
        by_len.setdefault(len(q[2].split()), []).append(j)
    for _, js in sorted(by_len.items()):
        x = to_input(imgs[[qs[j][0] for j in js]])
        t = torch.tensor([encode(qs[j][2]) for j in js])
        out[js] = model(x, t)
        if feats is not None:
            feats[js], att[js] = model.cam_out, model.att
    if feats is not None:
        model.cam_out, model.att = feats, att
    return out


@torch.no_grad()
def evaluate(model, imgs, qs, bs=150):
    model.eval()
    pred = torch.cat([run(model, imgs, qs[s:s + bs]).argmax(1) for s in range(0, len(qs), bs)])
    acc = {}
    for qt in QTYPES:
        js = [j for j, q in enumerate(qs) if q[1] == qt]
        acc[qt] = sum(ANSWERS[int(pred[j])] == qs[j][3] for j in js) / max(len(js), 1)
    acc["all"] = sum(ANSWERS[int(p)] == q[3] for p, q in zip(pred, qs)) / len(qs)
    return acc


def fmt(a):
    return "accuracy %.3f (what color %.3f, what shape %.3f, is there %.3f)" % (a["all"], a["color"], a["shape"],
                                                                            a["exists"])


def export(model, path):
    model.eval()
    img = torch.zeros(1, 3, SIZE, SIZE)
    q = torch.tensor([encode("what color is the star")])
    torch.onnx.export(model, (img, q), path, input_names=["image", "question"], output_names=["answer"],
                      dynamic_axes={"question": {1: "Lq"}}, opset_version=17, do_constant_folding=True)
    import onnx
    m = onnx.load(path)
    onnx.checker.check_model(m)
    print("ONNX ops: %s" % ", ".join(sorted({n.op_type for n in m.graph.node})))


def main():
    ap = argparse.ArgumentParser(description="train the demo VQA model")
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-val", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--aux", type=float, default=0.5, help="weight of the per-cell shape/colour loss")
    ap.add_argument("--att", type=float, default=0.5, help="weight of the attention loss")
    ap.add_argument("--bg", type=float, default=1.0, help="weight of the background activation loss")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)  # (1 and the README's OPENBLAS_*: the committed files)
    ap.add_argument("--out", default=HERE, help="where vqa.onnx, vocab.txt and answers.txt go")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    torch.use_deterministic_algorithms(True)
    t0, c0 = time.time(), time.process_time()
    xtr, qtr, str_, ctr_col = load_set(TRAIN_SEED, a.n_train)
    xva, qva = load_set(VAL_SEED, a.n_val)[:2]
    print("data: %d train scenes (%d questions), %d val, %.0f s" % (len(xtr), len(qtr), len(xva), time.time() - t0),
          flush=True)

    model = VQA()
    keep_features(model)
    print("parameters: %d" % sum(p.numel() for p in model.parameters()))
    nb = len(xtr) // a.batch
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.epochs * nb, pct_start=0.15)
    gen = torch.Generator().manual_seed(a.seed + 1)
    per = len(qtr) // len(xtr)
    t1 = time.time()
    for ep in range(a.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen).numpy()
        tot = 0.0
        for i in range(nb):
            # every scene of the batch with one of its questions (types in turn over the epochs)
            idx = perm[i * a.batch:(i + 1) * a.batch]
            qs = [qtr[j * per + (ep + k) % per] for k, j in enumerate(idx)]
            logits = run(model, xtr, qs)
            loss = F.cross_entropy(logits, torch.tensor([AID[q[3]] for q in qs]))
            im = [q[0] for q in qs]
            loss = loss + a.aux * aux_loss(model, model.cam_out, torch.from_numpy(str_[im]),
                                           torch.from_numpy(ctr_col[im]))
            loss = loss + a.bg * background_loss(model.cam_out, torch.from_numpy(str_[im]))
            loss = loss + a.att * attention_loss(model.att, torch.from_numpy(str_[im]),
                                                 torch.tensor([q[5] for q in qs]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            tot += loss.item()
        print("epoch %d: loss %.4f, val %s, %.0f s" % (ep + 1, tot / nb, fmt(evaluate(model, xva, qva)),
                                                      time.time() - t1), flush=True)
    print("training: %.0f s wall, %.0f s CPU in all" % (time.time() - t0, time.process_time() - c0))

    xte, qte = load_set(TEST_SEED, a.n_test)[:2]
    print("test (%d held-out scenes, seed %d, %d questions): %s" % (a.n_test, TEST_SEED, len(qte),
                                                                    fmt(evaluate(model, xte, qte))))
    path = os.path.join(a.out, "vqa.onnx")
    model = fold_batchnorm(model.eval(), VQA(fused=True))
    print("batch norms folded: test %s" % fmt(evaluate(model, xte, qte)))
    export(model, path)
    with open(os.path.join(a.out, "vocab.txt"), "w") as f:
        f.write("\n".join(WORDS) + "\n")
    with open(os.path.join(a.out, "answers.txt"), "w") as f:
        f.write("\n".join(ANSWERS) + "\n")
    print("wrote %s (%d bytes), vocab.txt (%d words), answers.txt (%d answers)" %
          (path, os.path.getsize(path), len(WORDS), len(ANSWERS)))
    back = VQA.from_onnx(path)
    with torch.no_grad():
        err = float((run(back, xte, qte[:12]) - run(model.eval(), xte, qte[:12])).abs().max())
    print("ONNX weights reloaded in PyTorch: max abs difference %.2e" % err)


if __name__ == "__main__":
    main()
