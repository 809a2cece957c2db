#!/usr/bin/python3
"""PyTorch parity of the recurrent ops (src/ops/rnn.c) and of the graphs PyTorch exports around them.

Usage: /usr/bin/python3 tests/rnn_parity.py LIBGRADCAM_SO WORKDIR

Run with Debian's /usr/bin/python3 (python3-torch 1.13, python3-onnx). Models with seeded random
weights are exported to ONNX at every opset from 13 to 17 and run through libgradcam (ctypes):
  * nn.LSTM and nn.GRU: 1 and 2 layers, uni- and bidirectional, batch_first both ways, with and
    without initial states. The model's one output concatenates Y, h_n (and c_n), so a random seed
    gradient on it reaches every output of every layer;
  * a captioner: nn.Embedding + 2-layer nn.LSTM + nn.Linear + LogSoftmax over integer token ids;
  * a small attention decoder: nn.Embedding + bidirectional nn.GRU + dot-product attention over
    image features (batched MatMul, Softmax on the last axis) + LogSoftmax;
  * an attention decoder of PyTorch's modules: nn.Embedding, causal self-attention and cross-attention
    over image features (nn.MultiheadAttention), LayerNorm, a GELU feed-forward, LogSoftmax.
The truth is the same model in float64 (PyTorch autograd for the gradients). Checks: outputs within
1e-5 of the reference's max |value|, gradients to the inputs, initial states and (captioner) the
embedding output within 1e-4 of the reference gradient's max |value|. Everything is smooth (sigmoid,
tanh, softmax): no kink can flip between float32 and float64. Exits 1 on any failure."""
import copy
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_ctypes import Engine  # noqa: E402

OUT_TOL, GRAD_TOL = 1e-5, 1e-4


class Rec(nn.Module):
    """nn.LSTM / nn.GRU whose one output is cat(Y, h_n[, c_n]) flattened."""

    def __init__(self, cell, layers, bidir, batch_first, states, I=5, H=7):
        super().__init__()
        self.lstm, self.states = cell == "lstm", states
        self.rnn = (nn.LSTM if self.lstm else nn.GRU)(I, H, num_layers=layers, bidirectional=bidir,
                                                       batch_first=batch_first)

    def forward(self, x, h0=None, c0=None):
        st = ((h0, c0) if self.lstm else h0) if self.states else None
        y, s = self.rnn(x, st)
        parts = [y.reshape(-1)] + ([t.reshape(-1) for t in s] if self.lstm else [s.reshape(-1)])
        return torch.cat(parts)


class Captioner(nn.Module):
    def __init__(self, V=20, E=8, H=16):
        super().__init__()
        self.emb, self.fc = nn.Embedding(V, E), nn.Linear(H, V)
        self.lstm = nn.LSTM(E, H, num_layers=2, batch_first=True)
        self.e = None

    def forward(self, ids, h0, c0):
        e = self.emb(ids)
        if e.requires_grad and not torch.jit.is_tracing():
            e.retain_grad()
            self.e = e
        y, _ = self.lstm(e, (h0, c0))
        return torch.log_softmax(self.fc(y), -1)


class Attention(nn.Module):
    def __init__(self, V=20, H=8):
        super().__init__()
        self.emb, self.q, self.fc = nn.Embedding(V, 2 * H), nn.Linear(2 * H, 2 * H), nn.Linear(4 * H, V)
        self.gru = nn.GRU(2 * H, H, bidirectional=True)

    def forward(self, ids, feats):  # ids (T, B), feats (B, N, 2H)
        y, _ = self.gru(self.emb(ids))
        q = self.q(y).transpose(0, 1)                                        # (B, T, 2H)
        a = torch.softmax(q @ feats.transpose(1, 2) / 4.0, dim=-1)         # (B, T, N)
        return torch.log_softmax(self.fc(torch.cat([a @ feats, q], -1)), -1)


class MhaDecoder(nn.Module):
    """A small attention decoder as PyTorch's own modules make it: embeddings and learned positions,
    causal self-attention (nn.MultiheadAttention, 2 heads, an additive mask), cross-attention over
    image features, LayerNorms, a GELU feed-forward (smooth: no kink), LogSoftmax."""

    def __init__(self, V=20, E=16, T=5):
        super().__init__()
        self.emb, self.pos = nn.Embedding(V, E), nn.Parameter(torch.randn(T, E) * 0.3)
        self.self_att = nn.MultiheadAttention(E, 2, batch_first=True)
        self.cross = nn.MultiheadAttention(E, 2, batch_first=True)
        self.n1, self.n2, self.n3 = nn.LayerNorm(E), nn.LayerNorm(E), nn.LayerNorm(E)
        self.ff = nn.Sequential(nn.Linear(E, 32), nn.GELU(), nn.Linear(32, E))
        self.fc = nn.Linear(E, V)
        self.register_buffer("mask", torch.triu(torch.full((T, T), -1e4), 1))

    def forward(self, ids, feats):  # ids (B, T), feats (B, N, E)
        x = self.emb(ids) + self.pos
        x = self.n1(x + self.self_att(x, x, x, attn_mask=self.mask, need_weights=False)[0])
        x = self.n2(x + self.cross(x, feats, feats, need_weights=False)[0])
        x = self.n3(x + self.ff(x))
        return torch.log_softmax(self.fc(x), -1)


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def check(eng, label, path, model, args, names, grad_names, extra=None):
    """Exports model(args) to path, compares output and gradients; returns the failures."""
    model.eval()
    torch.onnx.export(model, tuple(args), path, opset_version=int(label.split("@")[1]), input_names=names,
                      output_names=["out"], do_constant_folding=True)
    ref = copy.deepcopy(model).double()
    targs = [a.clone().double().requires_grad_(True) if a.is_floating_point() else a.clone() for a in args]
    out = ref(*targs)
    gen = torch.Generator().manual_seed(7)
    seed = torch.rand(out.shape, generator=gen, dtype=torch.float64) * 2 - 1
    (out * seed).sum().backward()
    want = {n: a.grad.numpy() for n, a in zip(names, targs) if n in grad_names}
    if extra:
        want[extra[0]] = ref.e.grad.numpy()
        grad_names = grad_names + [extra[0]]
    feeds = {n: a.numpy() for n, a in zip(names, args)}
    got_out, got = eng.run(path, feeds, "out", seed.numpy(), grad_names)
    eo = rel(got_out, out.detach().numpy())
    eg = {n: rel(got[n], want[n]) for n in grad_names}
    ok = eo <= OUT_TOL and all(e <= GRAD_TOL for e in eg.values())
    print("%-4s %-52s out %.1e  grads %s" % ("ok" if ok else "FAIL", label, eo,
                                           " ".join("%s %.1e" % (n, e) for n, e in eg.items())))
    return (not ok), eo, max(eg.values())


def gather_output(path):
    """Name of the embedding lookup's output (the Gather reading the table) in the exported graph."""
    import onnx
    g = onnx.load(path).graph
    inits = {i.name for i in g.initializer}
    return next(n.output[0] for n in g.node if n.op_type == "Gather" and n.input[0] in inits)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    eng, work = Engine(sys.argv[1]), sys.argv[2]
    os.makedirs(work, exist_ok=True)
    torch.set_num_threads(2)
    fails, worst_o, worst_g, n = 0, 0.0, 0.0, 0
    T, B, I, H = 6, 3, 5, 7
    for opset in (13, 14, 15, 16, 17):
        for cell in ("lstm", "gru"):
            for layers in (1, 2):
                for bidir in (False, True):
                    for bf in (False, True):
                        for states in ((True, False) if layers == 1 else (True,)):
                            torch.manual_seed(1000 * opset + 100 * layers + 10 * bidir + 2 * bf + states)
                            m = Rec(cell, layers, bidir, bf, states, I, H)
                            D = layers * (2 if bidir else 1)
                            x = torch.randn((B, T, I) if bf else (T, B, I))
                            args, names = [x], ["x"]
                            if states:
                                args += [torch.randn(D, B, H) * 0.5]
                                names += ["h0"]
                                if cell == "lstm":
                                    args += [torch.randn(D, B, H) * 0.5]
                                    names += ["c0"]
                            label = "%s %d layer%s %s%s%s@%d" % (cell, layers, "s" if layers > 1 else "",
                                                                 "bidirectional" if bidir else "forward",
                                                                 " batch_first" if bf else "",
                                                                 " initial states" if states else "", opset)
                            path = os.path.join(work, "%s_%d%d%d%d_%d.onnx" % (cell, layers, bidir, bf, states, opset))
                            f, eo, eg = check(eng, label, path, m, args, names, names)
                            fails, worst_o, worst_g, n = fails + f, max(worst_o, eo), max(worst_g, eg), n + 1
        torch.manual_seed(opset)
        cap = Captioner()
        ids = torch.randint(0, 20, (2, 5))
        h0, c0 = torch.randn(2, 2, 16) * 0.5, torch.randn(2, 2, 16) * 0.5
        path = os.path.join(work, "captioner_%d.onnx" % opset)
        cap.eval()
        torch.onnx.export(cap, (ids, h0, c0), path, opset_version=opset, input_names=["ids", "h0", "c0"],
                          output_names=["out"])
        f, eo, eg = check(eng, "captioner (Embedding+LSTM+Linear+LogSoftmax)@%d" % opset, path, cap,
                          [ids, h0, c0], ["ids", "h0", "c0"], ["h0", "c0"], extra=(gather_output(path),))
        fails, worst_o, worst_g, n = fails + f, max(worst_o, eo), max(worst_g, eg), n + 1
        torch.manual_seed(opset + 1)
        att = Attention()
        f, eo, eg = check(eng, "attention decoder (Embedding+biGRU+attention)@%d" % opset,
                          os.path.join(work, "attention_%d.onnx" % opset), att,
                          [torch.randint(0, 20, (5, 2)), torch.randn(2, 7, 16)], ["ids", "feats"], ["feats"])
        fails, worst_o, worst_g, n = fails + f, max(worst_o, eo), max(worst_g, eg), n + 1
        torch.manual_seed(opset + 2)
        f, eo, eg = check(eng, "attention decoder (nn.MultiheadAttention, causal)@%d" % opset,
                          os.path.join(work, "mha_%d.onnx" % opset), MhaDecoder(),
                          [torch.randint(0, 20, (2, 5)), torch.randn(2, 7, 16)], ["ids", "feats"], ["feats"])
        fails, worst_o, worst_g, n = fails + f, max(worst_o, eo), max(worst_g, eg), n + 1
    print("%d models: worst output error %.2e (tol %.0e), worst gradient error %.2e (tol %.0e); %d failed"
          % (n, worst_o, OUT_TOL, worst_g, GRAD_TOL, fails))
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
