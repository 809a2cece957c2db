"""gradcam explain --task caption | vqa against PyTorch on small seeded models made here (a CNN whose
pooled features start an LSTM; a CNN times an LSTM question encoder): the records (words, steps,
log-probabilities, answers), Grad-CAM per word, per caption and per answer within 1e-4 of the max,
the greedy caption token for token, the report's rows, the in-process tool, `gradcam serve` with
caption and VQA models (loopback, a port the system picks), and every bad input (one line, exit 2
or 3, nothing written): unknown words, special tokens, a 10^6-token vocabulary, outputs that are not
log-probabilities.

    /usr/bin/python3 tests/caption_cli.py GRADCAM_BINARY WORKDIR
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

FAILS = []
COUNT = [0]
WORDS = ["<pad>", "<bos>", "<eos>", "<unk>", "a", "red", "blue", "star", "circle", "above", "below", "square"]


def check(ok, what):
    COUNT[0] += 1
    if not ok:
        FAILS.append(what)
        print("FAIL:", what)
    return ok


class Captioner(nn.Module):
    def __init__(self, V=len(WORDS)):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU())
        self.init = nn.Linear(32, 32)
        self.emb = nn.Embedding(V, 16)
        self.lstm = nn.LSTM(16, 32, batch_first=True)
        self.out = nn.Linear(32, V)

    def forward(self, image, tokens):
        h0 = torch.tanh(self.init(self.cnn(image).mean(dim=(2, 3)))).unsqueeze(0)
        y, _ = self.lstm(self.emb(tokens), (h0, torch.zeros_like(h0)))
        return torch.log_softmax(self.out(y), -1)


class Vqa(nn.Module):
    def __init__(self):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU())
        self.emb = nn.Embedding(10, 16)
        self.lstm = nn.LSTM(16, 32, batch_first=True)
        self.out = nn.Linear(32, 6)

    def forward(self, image, question):
        _, (h, _) = self.lstm(self.emb(question))
        return self.out(self.cnn(image).mean(dim=(2, 3)) * h[0])


def run(cli, args, out=None):
    if out:
        shutil.rmtree(out, ignore_errors=True)
        args = args + ["-o", out, "-q"]
    return subprocess.run([cli, "explain"] + args, capture_output=True, text=True, timeout=300)


def gradcam_ref(model, layer, x, score_fn):
    """Grad-CAM (h, w) of score_fn(output) at the module `layer`'s output, in float64."""
    st = {}

    def hook(mod, i, o):
        st["a"] = o
        o.register_hook(lambda g: st.__setitem__("g", g))

    h = layer.register_forward_hook(hook)
    model.zero_grad()
    score_fn(model(*x)).backward()
    h.remove()
    A, G = st["a"][0].detach().double(), st["g"][0].double()
    return torch.relu((G.mean((1, 2), keepdim=True) * A).sum(0)).numpy()


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def make(work):
    torch.manual_seed(7)
    cap, vqa = Captioner().eval(), Vqa().eval()
    pic = os.path.join(work, "pic.png")
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(pic)
    x = torch.from_numpy(np.asarray(Image.open(pic), dtype=np.float32).transpose(2, 0, 1)[None] / 255)
    torch.onnx.export(cap, (x, torch.tensor([[1, 4, 5]])), os.path.join(work, "cap.onnx"), input_names=["image", "tokens"],
                      output_names=["logprobs"], opset_version=17, dynamic_axes={"tokens": {1: "L"}, "logprobs": {1: "L"}})
    torch.onnx.export(vqa, (x, torch.tensor([[2, 3, 4]])), os.path.join(work, "vqa.onnx"),
                      input_names=["image", "question"], output_names=["answer"], opset_version=17,
                      dynamic_axes={"question": {1: "Lq"}})
    with open(os.path.join(work, "vocab.txt"), "w") as f:
        f.write("\n".join(WORDS) + "\n")
    with open(os.path.join(work, "qvocab.txt"), "w") as f:
        f.write("\n".join(["<pad>", "<unk>", "what", "color", "is", "the", "star", "shape", "red", "there"]) + "\n")
    with open(os.path.join(work, "answers.txt"), "w") as f:
        f.write("red\nblue\ngreen\nstar\nyes\nno\n")
    return cap, vqa, pic, x


def test_caption(cli, work, cap, pic, x):
    M = os.path.join(work, "cap.onnx")
    V = os.path.join(work, "vocab.txt")
    text = "A red star, above a blue circle."
    out = os.path.join(work, "c1")
    p = run(cli, [M, pic, "--vocab", V, "--caption", text, "-m", "gradcam,guided-backprop,guided-gradcam", "--npy"], out)
    if not check(p.returncode == 0, "--caption: exit 0 (%s)" % p.stderr.strip()):
        return
    doc = json.load(open(os.path.join(out, "results.json")))
    rec = doc["inputs"][0]
    c = rec["caption"]
    ids = [WORDS.index(w) for w in "a red star above a blue circle".split()]
    toks = torch.tensor([[1] + ids])
    with torch.no_grad():
        lp = cap(x, toks)[0].double().numpy()
    check(doc["options"]["task"] == "caption" and c["text"] == "a red star above a blue circle" and not c["generated"],
          "the caption's text (lower-cased, punctuation dropped) and task")
    check([w["word"] for w in c["words"]] == c["text"].split() and [w["step"] for w in c["words"]] == list(range(7)) and
          [w["id"] for w in c["words"]] == ids, "words, steps and ids")
    want = [lp[t, ids[t]] for t in range(7)]
    check(max(abs(w["logprob"] - v) for w, v in zip(c["words"], want)) < 1e-5 and abs(c["logprob"] - sum(want)) < 1e-4,
          "each word's log-probability and their sum equal PyTorch's")
    check("predictions" not in rec and "maps" not in rec, "a caption's record has no predictions/maps of its own")
    worst = 0.0
    for w in c["words"] + [None]:
        maps = (w or c)["maps"]
        check([m["method"] for m in maps] == ["gradcam", "guided-backprop", "guided-gradcam"], "three maps per word")
        gm = next(m for m in maps if m["method"] == "gradcam")
        check(gm["layer"] == "/cnn/cnn.3/Relu_output_0", "the CAM layer is the CNN's map (%s)" % gm["layer"])
        if w:
            ref = gradcam_ref(cap, cap.cnn[3], (x, toks), lambda y, t=w["step"], i=w["id"]: y[0, t, i])
            check(gm["class"] == {"index": w["id"], "label": w["word"]}, "a word map's class is the word")
        else:
            ref = gradcam_ref(cap, cap.cnn[3], (x, toks), lambda y: sum(y[0, t, ids[t]] for t in range(7)))
            check(gm["class"] is None and gm["npy"].endswith("_caption_gradcam.npy"), "the whole caption's map")
        worst = max(worst, rel(np.load(os.path.join(out, gm["npy"])).astype(np.float64), ref))
    check(worst <= 1e-4, "Grad-CAM per word and per caption against PyTorch: %.2e of the max" % worst)
    html = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    check('caption: &quot;a red star above a blue circle&quot;' in html and "word 7 \u00b7 circle" in html and
          "the whole caption" in html, "report.html: the caption and a row per word")
    # greedy: token for token what PyTorch's greedy decoding gives (margins checked, so no near-tie)
    out2 = os.path.join(work, "c2")
    p = run(cli, [M, pic, "--vocab", V, "-m", "gradcam", "--max-words", "6"], out2)
    seq, margins = [1], []
    with torch.no_grad():
        for _ in range(6):
            row = cap(x, torch.tensor([seq]))[0, -1]
            top = torch.topk(row, 2).values
            margins.append(float(top[0] - top[1]))
            nxt = int(row.argmax())
            if nxt == 2:
                break
            seq.append(nxt)
    if check(p.returncode == 0, "greedy: exit 0 (%s)" % p.stderr.strip()):
        g = json.load(open(os.path.join(out2, "results.json")))["inputs"][0]["caption"]
        check(min(margins) > 1e-3, "the greedy steps' top-2 margins exceed 1e-3 (%.2e): no float tie" % min(margins))
        check(g["generated"] and [w["id"] for w in g["words"]] == seq[1:],
              "greedy caption equals PyTorch's token for token (%r vs %r)" % ([w["id"] for w in g["words"]], seq[1:]))


def test_vqa(cli, work, vqa, pic, x):
    M = os.path.join(work, "vqa.onnx")
    out = os.path.join(work, "v1")
    p = run(cli, [M, pic, "--vocab", os.path.join(work, "qvocab.txt"), "--labels", os.path.join(work, "answers.txt"),
                  "--question", "What color is the star?", "-k", "2", "-m", "gradcam", "--npy"], out)
    if not check(p.returncode == 0, "--question: exit 0 (%s)" % p.stderr.strip()):
        return
    rec = json.load(open(os.path.join(out, "results.json")))["inputs"][0]
    q = torch.tensor([[2, 3, 4, 5, 6]])
    with torch.no_grad():
        y = vqa(x, q)[0].double().numpy()
    order = list(np.argsort(-y, kind="stable"))
    check(rec["question"] == "what color is the star", "the question")
    check([a["index"] for a in rec["answers"]] == order[:2] and
          all(abs(a["score"] - y[a["index"]]) < 1e-5 for a in rec["answers"]), "the top answers and their scores")
    check(rec["answers"][0]["label"] == ["red", "blue", "green", "star", "yes", "no"][order[0]], "answer labels")
    worst = 0.0
    for a in rec["answers"]:
        ref = gradcam_ref(vqa, vqa.cnn[3], (x, q), lambda o, c=a["index"]: o[0, c])
        worst = max(worst, rel(np.load(os.path.join(out, a["maps"][0]["npy"])).astype(np.float64), ref))
    check(worst <= 1e-4, "Grad-CAM per answer against PyTorch: %.2e of the max" % worst)
    html = open(os.path.join(out, "report.html"), encoding="utf-8").read()
    labels = ["red", "blue", "green", "star", "yes", "no"]
    check("question: &quot;what color is the star&quot;" in html and
          all("class %d \u00b7 %s" % (i, labels[i]) in html for i in order[:2]),
          "report.html: the question and a row per answer explained")


def test_bad_input(cli, work, pic):
    M, V = os.path.join(work, "cap.onnx"), os.path.join(work, "vocab.txt")
    nounk = os.path.join(work, "nounk.txt")
    with open(nounk, "w") as f:
        f.write("\n".join(w for w in WORDS if w != "<unk>") + "\n")
    dup = os.path.join(work, "dup.txt")
    with open(dup, "w") as f:
        f.write("<bos>\n<eos>\na\na\n")
    empty_line = os.path.join(work, "empty_line.txt")
    with open(empty_line, "w") as f:
        f.write("<bos>\n\n<eos>\n")
    nul = os.path.join(work, "nul.txt")
    with open(nul, "wb") as f:
        f.write(b"<bos>\n<eos>\na\x00b\n")
    small = os.path.join(work, "small.txt")
    with open(small, "w") as f:
        f.write("<pad>\n<bos>\n<eos>\n<unk>\na\n")
    cases = [
        ([M, pic, "--vocab", nounk, "--caption", "a purple star"], 2, "'purple' is not in the vocabulary"),
        ([M, pic, "--vocab", V, "--caption", " , . ?"], 2, "no word"),
        ([M, pic, "--vocab", V, "--caption", " ".join(["a"] * 64)], 2, "more than 63 words"),
        ([M, pic, "--caption", "a red star"], 2, "needs --vocab"),
        ([M, pic, "--vocab", dup, "--caption", "a"], 3, "line 4: 'a' is line 3 already"),
        ([M, pic, "--vocab", empty_line, "--caption", "a"], 3, "line 2 is empty"),
        ([M, pic, "--vocab", nul, "--caption", "a"], 3, "line 3: a token has no blank or control character"),
        ([M, pic, "--vocab", os.path.join(work, "nope.txt")], 3, "cannot open the vocabulary"),
        ([M, pic, "--vocab", V, "--task", "vqa"], 2, "needs --question"),
        ([M, pic, "--vocab", V, "--caption", "a", "--question", "what"], 2, "needs --task"),
        ([M, pic, "--vocab", V, "--caption", "a", "-c", "3"], 2, "--class does not apply"),
        ([M, pic, "--vocab", small, "--caption", "a"], 3, "(1, L, V)"),
        ([os.path.join(work, "..", "no_model.onnx"), pic, "--vocab", V], 3, "cannot open"),
    ]
    for args, code, words in cases:
        out = os.path.join(work, "bad")
        p = run(cli, args, out)
        lines = [ln for ln in p.stderr.strip().splitlines() if not ln.startswith("Try ")]
        check(p.returncode == code and words in p.stderr and len(lines) <= 2 and
              not os.path.exists(os.path.join(out, "results.json")),
              "bad input %r: exit %d, one line with %r (got %d: %r)" % (args[2:], code, words, p.returncode, p.stderr.strip()))


def test_text_words(cli, work, pic):
    """A word not in a vocabulary that has <unk>: fed as <unk>, said once on stderr and in the
    record's warnings; <bos> / <pad> typed in the text refused."""
    M, V = os.path.join(work, "cap.onnx"), os.path.join(work, "vocab.txt")
    out = os.path.join(work, "unk")
    shutil.rmtree(out, ignore_errors=True)
    p = run(cli, [M, pic, "--vocab", V, "--caption", "a pink star above a mauve circle", "-m", "gradcam", "-o", out])
    if check(p.returncode == 0, "an unknown word with <unk> in the vocabulary: exit 0 (%s)" % p.stderr.strip()):
        rec = json.load(open(os.path.join(out, "results.json")))["inputs"][0]
        check(rec["caption"]["text"] == "a <unk> star above a <unk> circle" and
              [w["id"] for w in rec["caption"]["words"]][1] == WORDS.index("<unk>"), "the unknown words fed as <unk>")
        check(any("'pink', 'mauve' not in the vocabulary: fed as <unk>" in w for w in rec.get("warnings", [])),
              "the record's warnings name them (%r)" % rec.get("warnings"))
        check(p.stderr.count("'pink', 'mauve' not in the vocabulary") == 1 and "fed as <unk>" in p.stderr,
              "one note on stderr names them (%r)" % p.stderr)
    p = run(cli, [M, pic, "--vocab", V, "--caption", "a pink star", "-m", "gradcam", "-q"], os.path.join(work, "unkq"))
    check(p.returncode == 0 and p.stderr == "", "-q: no note (%r)" % p.stderr)
    for tok in ("<bos>", "<pad>"):
        p = run(cli, [M, pic, "--vocab", V, "--caption", "a %s star" % tok], os.path.join(work, "bad"))
        check(p.returncode == 2 and "'%s' is a special token" % tok in p.stderr, "%s in the text refused (%d: %r)"
              % (tok, p.returncode, p.stderr.strip()))


class Logits(nn.Module):
    """The captioner without its LogSoftmax (logits), or with a Softmax (probabilities)."""

    def __init__(self, cap, probs):
        super().__init__()
        self.cap, self.probs = cap, probs

    def forward(self, image, tokens):
        lp = self.cap(image, tokens)
        return lp.exp() if self.probs else lp * 1.5 + 0.25


def test_not_logprobs(cli, work, cap, pic, x):
    """A captioner's output that is not log-probabilities is refused (its words' "log-probabilities"
    would be something else), teacher-forced and greedy."""
    V = os.path.join(work, "vocab.txt")
    for probs in (False, True):
        M = os.path.join(work, "cap_%s.onnx" % ("probs" if probs else "logits"))
        torch.onnx.export(Logits(cap, probs).eval(), (x, torch.tensor([[1, 4, 5]])), M, input_names=["image", "tokens"],
                          output_names=["scores"], opset_version=17, dynamic_axes={"tokens": {1: "L"}, "scores": {1: "L"}})
        for extra in (["--caption", "a red star"], []):
            out = os.path.join(work, "bad")
            p = run(cli, [M, pic, "--vocab", V, "-m", "gradcam"] + extra, out)
            lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
            check(p.returncode == 3 and "a captioner's output is log-probabilities" in p.stderr and len(lines) <= 2 and
                  not os.path.exists(os.path.join(out, "results.json")),
                  "%s refused %s (exit %d: %r)" % ("probabilities" if probs else "logits",
                                                  "teacher-forced" if extra else "greedy", p.returncode, p.stderr.strip()))


def test_big_vocab(cli, work, pic):
    """A vocabulary of 10^6 tokens (the limit) is checked in one pass: its repeated last token is named
    at once (the former pairwise check took ~10^12 comparisons); one more token is refused."""
    M = os.path.join(work, "cap.onnx")
    big = os.path.join(work, "big_vocab.txt")
    with open(big, "w") as f:
        f.write("\n".join(WORDS + ["w%d" % i for i in range(1000000 - len(WORDS) - 1)] + ["w17"]) + "\n")
    try:
        p = run(cli, [M, pic, "--vocab", big, "--caption", "a"], os.path.join(work, "bad"))
        check(p.returncode == 3 and "line 1000000: 'w17' is line %d already" % (len(WORDS) + 18) in p.stderr,
              "10^6 tokens, the last repeated: named (%d: %r)" % (p.returncode, p.stderr.strip()))
    except subprocess.TimeoutExpired:
        check(False, "10^6 tokens: still checking the vocabulary after 300 s")
    with open(big, "a") as f:
        f.write("one_more\n")
    p = run(cli, [M, pic, "--vocab", big, "--caption", "a"], os.path.join(work, "bad"))
    check(p.returncode == 3 and "1 to 1000000 tokens" in p.stderr, "10^6 + 1 tokens refused (%r)" % p.stderr.strip())


def test_serve(cli, work, pic):
    """gradcam serve with --task caption --vocab and --task vqa --vocab (the question per request):
    the answers are the command's records; a VQA request without a question is a 400."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from serve_util import Server
    body = open(pic, "rb").read()
    ref = json.load(open(os.path.join(work, "c1", "results.json")))["inputs"][0]["caption"]
    s = Server([cli, "serve", os.path.join(work, "cap.onnx"), "--vocab", os.path.join(work, "vocab.txt"),
                "--task", "caption", "-m", "gradcam,guided-backprop,guided-gradcam", os.path.join(work, "vqa.onnx"),
                "--task", "vqa", "--vocab", os.path.join(work, "qvocab.txt"), "--labels",
                os.path.join(work, "answers.txt"), "-m", "gradcam", "--port", "0", "-q"],
               log=os.path.join(work, "serve.log"))
    try:
        st, _, rec = s.explain("model=cap&caption=A%20red%20star,%20above%20a%20blue%20circle.", body)
        c = rec.get("caption", {})
        check(st == 200 and c.get("text") == ref["text"] and
              [(w["word"], w["step"]) for w in c.get("words", [])] == [(w["word"], w["step"]) for w in ref["words"]] and
              max(abs(a["logprob"] - b["logprob"]) for a, b in zip(c["words"], ref["words"])) < 1e-5 and
              len(c["words"][0]["maps"]) == 3 and "png" in c["words"][0]["maps"][0],
              "serve: a caption's record as the command's (%d, %r)" % (st, rec.get("error")))
        st, _, rec = s.explain("model=cap&max_words=3", body)
        check(st == 200 and rec["caption"]["generated"] and len(rec["caption"]["words"]) <= 3,
              "serve: a greedy caption (%d, %r)" % (st, rec.get("error")))
        st, _, rec = s.explain("model=vqa&k=2&question=what%20color%20is%20the%20star", body)
        check(st == 200 and rec.get("question") == "what color is the star" and len(rec.get("answers", [])) == 2,
              "serve: a question's answers (%d, %r)" % (st, rec.get("error")))
        st, _, rec = s.explain("model=vqa", body)
        check(st == 400 and "question" in str(rec), "serve: a VQA request without a question: 400 (%d, %r)" % (st, rec))
        st, _, rec = s.explain("model=cap&caption=a%20purple%20%3Cpad%3E", body)
        check(st == 400 and "special token" in rec.get("error", ""), "serve: a bad caption: 400 (%d, %r)" % (st, rec))
    finally:
        check(s.stop() == 0, "serve: stopped cleanly")


def test_tool(work, pic):
    """The same through the command as a library (the Python package's Pipeline): the caption given
    per request; files in memory equal the command's."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import gradcam
    out = os.path.join(work, "c1")
    with gradcam.Pipeline(os.path.join(work, "cap.onnx"), vocab=os.path.join(work, "vocab.txt"), task="caption",
                          methods=["gradcam", "guided-backprop", "guided-gradcam"], npy=True) as p:
        r = p.explain(pic, caption="A red star, above a blue circle.")
    check(not r.failed and r.record["caption"]["text"] == "a red star above a blue circle", "the tool: the caption")
    same = all(b == open(os.path.join(out, n), "rb").read() for n, b in r.files.items() if n.endswith(".npy"))
    check(same and len(r.files) > 8, "the tool's maps equal the command's, byte for byte")
    with gradcam.Pipeline(os.path.join(work, "vqa.onnx"), vocab=os.path.join(work, "qvocab.txt"), task="vqa",
                          labels=os.path.join(work, "answers.txt"), methods=["gradcam"]) as p:
        r = p.explain(pic, question="what color is the star", top_k=2)
        check(not r.failed and r.record["question"] == "what color is the star" and len(r.record["answers"]) == 2,
              "the tool: a VQA model opened without a question, the question per request")
        try:
            r = p.explain(pic)
            check(r.failed and "question" in str(r.record), "the tool: no question: that input fails (%r)" % r.record)
        except Exception as e:  # noqa: BLE001  (an error raised is as good, when it names the question)
            check("question" in str(e), "the tool: no question: %s" % e)


def main():
    cli, work = sys.argv[1], os.path.abspath(sys.argv[2])
    os.makedirs(work, exist_ok=True)
    torch.set_num_threads(2)
    cap, vqa, pic, x = make(work)
    test_caption(cli, work, cap, pic, x)
    test_vqa(cli, work, vqa, pic, x)
    test_bad_input(cli, work, pic)
    test_text_words(cli, work, pic)
    test_not_logprobs(cli, work, cap, pic, x)
    test_big_vocab(cli, work, pic)
    test_serve(cli, work, pic)
    if os.environ.get("GRADCAM_LIBRARY"):
        test_tool(work, pic)
    else:
        check(False, "GRADCAM_LIBRARY is not set (tests/caption_cli.cmake sets it)")
    print("caption_cli: %d passed, %d failed" % (COUNT[0] - len(FAILS), len(FAILS)))
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
