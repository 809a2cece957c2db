#!/usr/bin/python3
"""Formats bench/run.sh's results: the markdown table on stdout and, with --doc FILE, the measured
part of docs/performance.md (between the bench:begin / bench:end markers; text outside them is
kept, so notes on what was tried survive a re-run).

  report.py RESULTS.tsv META.tsv [--doc FILE]

RESULTS.tsv lines: SIDE RESULT MODEL BATCH ROW MEDIAN_MS MIN_MS MAX_MS RUNS, or
SIDE RSS|RSS_SCORECAM|RSS_DETECT MODEL BATCH MIB, or SIDE DETS MODEL BATCH ROW K LIST (the detections
a detection row explained; SIDE: gradcam or torch). META.tsv: KEY VALUE lines.
"""
import sys

ROWS = ["load", "forward", "gradcam", "top5", "guided", "guided_gradcam", "scorecam", "detect_hirescam",
        "detect_gradcam"]
LABEL = {"load": "model load", "forward": "forward only", "gradcam": "Grad-CAM",
         "top5": "Grad-CAM top-5 (one forward)", "guided": "Guided Backprop",
         "guided_gradcam": "Guided Grad-CAM", "scorecam": "Score-CAM",
         "detect_hirescam": "every detection of one picture, HiResCAM",
         "detect_gradcam": "every detection of one picture, Grad-CAM",
         "rss": "peak RSS", "rss_scorecam": "peak RSS, Score-CAM process",
         "rss_detect": "peak RSS, detection process"}
DETECT_ROWS = ("detect_hirescam", "detect_gradcam")
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def fmt_ms(v, ref=None):
    """v in ms, printed in the unit and precision that suit ref (default v itself)."""
    ref = v if ref is None else ref
    if ref >= 10000:
        return "%.1f s" % (v / 1e3)
    if ref >= 100:
        return "%.0f ms" % v
    if ref >= 10:
        return "%.1f ms" % v
    return "%.2f ms" % v


def fmt_cell(r):
    if r is None:
        return "–"
    if r[0] == "rss":
        return "%.0f MiB" % r[1]
    med, mn, mx, runs = r[1:]
    return "%s [%s–%s] (%d)" % (fmt_ms(med), fmt_ms(mn, med).split()[0], fmt_ms(mx, med), runs)


def load(path):
    res, order = {}, []
    with open(path) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) < 2:
                continue
            side, kind = p[0], p[1]
            if kind == "RESULT" and len(p) == 9:
                key = (p[2], int(p[3]), p[4])
                res[(side,) + key] = ("ms", float(p[5]), float(p[6]), float(p[7]), int(p[8]))
            elif kind == "DETS" and len(p) >= 6:
                res[(side, p[2], int(p[3]), p[4], "dets")] = int(p[5])
                continue
            elif kind in ("RSS", "RSS_SCORECAM", "RSS_DETECT") and len(p) == 5:
                key = (p[2], int(p[3]), kind.lower())
                prev = res.get((side,) + key)  # one line per process (row): the largest counts
                res[(side,) + key] = ("rss", max(float(p[4]), prev[1] if prev else 0.0))
            else:
                continue
            if key[:2] not in order:
                order.append(key[:2])
    return res, order


def table(res, order):
    out = ["| model | batch | row | gradcam median [min–max] (runs) | PyTorch median [min–max] (runs) | gradcam / PyTorch |",
           "| --- | ---: | --- | ---: | ---: | ---: |"]
    for model, batch in order:
        for row in ROWS + ["rss", "rss_scorecam", "rss_detect"]:
            g = res.get(("gradcam", model, batch, row))
            t = res.get(("torch", model, batch, row))
            if g is None and t is None:
                continue
            ratio = "%.3f" % (g[1] / t[1]) if g and t and t[1] > 0 else "–"
            label = LABEL[row]
            if row in DETECT_ROWS:  # how many detections each side explained (run.sh checks they agree)
                kg, kt = (res.get((s, model, batch, row, "dets")) for s in ("gradcam", "torch"))
                if kg is not None and kg == kt:
                    label += " (%d detections)" % kg
                else:
                    label += " (detections: gradcam %s, PyTorch %s ✗)" % (kg, kt)
            out.append("| %s | %d | %s | %s | %s | %s |" % (model, batch, label, fmt_cell(g), fmt_cell(t), ratio))
    return "\n".join(out)


def targets(res, order):
    """Each target of issue #6 checked on every (model, batch) measured: PASS only if all pass."""
    def val(side, m, b, row):
        r = res.get((side, m, b, row))
        return r[1] if r else None

    checks = []  # (target text, [(where, ratio, limit)])

    def ratio_check(text, limit, num, den, models=None):
        items = []
        for m, b in order:
            if models and m not in models:
                continue
            a, c = val(*num(m, b)), val(*den(m, b))
            if a is not None and c:
                items.append(("%s b%d" % (m, b), a / c, limit))
        checks.append((text, items))

    ratio_check("Grad-CAM ≤ 0.25 × PyTorch's Grad-CAM, every model", 0.25,
                lambda m, b: ("gradcam", m, b, "gradcam"), lambda m, b: ("torch", m, b, "gradcam"))
    ratio_check("resnet50: Grad-CAM ≤ 1.0 × PyTorch's forward only", 1.0,
                lambda m, b: ("gradcam", m, b, "gradcam"), lambda m, b: ("torch", m, b, "forward"), {"resnet50"})
    ratio_check("Forward only ≤ 1.0 × PyTorch, every model", 1.0,
                lambda m, b: ("gradcam", m, b, "forward"), lambda m, b: ("torch", m, b, "forward"))
    ratio_check("Guided Backprop ≤ 0.5 × PyTorch's", 0.5,
                lambda m, b: ("gradcam", m, b, "guided"), lambda m, b: ("torch", m, b, "guided"))
    ratio_check("Guided Grad-CAM ≤ 0.5 × PyTorch's", 0.5,
                lambda m, b: ("gradcam", m, b, "guided_gradcam"), lambda m, b: ("torch", m, b, "guided_gradcam"))
    ratio_check("Top-5 Grad-CAM ≤ 1.3 × top-1 Grad-CAM (gradcam's own)", 1.3,
                lambda m, b: ("gradcam", m, b, "top5"), lambda m, b: ("gradcam", m, b, "gradcam"))
    ratio_check("Peak RSS ≤ PyTorch's", 1.0,
                lambda m, b: ("gradcam", m, b, "rss"), lambda m, b: ("torch", m, b, "rss"))
    items = []
    for m, b in order:
        v = val("gradcam", m, b, "load")
        if m == "resnet50" and v is not None:
            items.append(("resnet50 b%d (%.0f ms / 300 ms)" % (b, v), v / 300.0, 1.0))
    checks.append(("resnet50 load ≤ 0.3 s", items))
    items = []  # issue #18: the detection rows, both methods
    for m, b in order:
        for row in DETECT_ROWS:
            a, c = val("gradcam", m, b, row), val("torch", m, b, row)
            if a is not None and c:
                items.append(("%s %s" % (m, LABEL[row].split(", ")[-1]), a / c, 0.3))
    checks.append(("Every detection of one picture ≤ 0.3 × PyTorch's loop (issue #18)", items))

    out = []
    for text, items in checks:
        if not items:
            out.append("- **n/a** %s: not measured in this run" % text)
            continue
        ok = all(r <= lim for _, r, lim in items)
        worst = max(items, key=lambda it: it[1] / it[2])
        detail = ", ".join("%s %.3f%s" % (w, r, "" if r <= lim else " ✗") for w, r, lim in items)
        out.append("- **%s** %s (worst %s: %.3f). %s" % ("PASS" if ok else "FAIL", text, worst[0], worst[1], detail))
    out.append("- **not measured here** Accuracy is not traded: the parity suites of `make test` "
               "(test_model_parity, test_grad_parity, test_methods) check it.")
    return "\n".join(out)


def doc_body(meta, tab, tgt):
    g = meta.get
    lines = [
        BEGIN,
        "## Measured: gradcam vs PyTorch, side by side",
        "",
        "Generated by `bench/run.sh` (`make bench`); re-running it rewrites only this section.",
        "",
        "- Date: %s" % g("date", "?"),
        "- Command: `%s`" % g("command", "?"),
        "- CPU: %s, %s logical cores (`nproc`); load average before / after: %s / %s" %
        (g("cpu", "?"), g("nproc", "?"), g("load_before", "?"), g("load_after", "?")),
        "- Threads: %s for each side (gradcam: explainer/context `n_threads`, OpenBLAS inside it 1; "
        "PyTorch: `torch.set_num_threads(%s)`); OMP_WAIT_POLICY=%s" % (g("threads", "?"), g("threads", "?"), g("omp_wait", "unset")),
        "- OPENBLAS_CORETYPE=%s" % g("coretype", "unset"),
        "- PyTorch %s, torchvision %s (Debian's /usr/bin/python3); gradcam %s (%s build)" %
        (g("torch", "?"), g("torchvision", "?"), g("gcam_version", "?"), g("build_type", "?")),
        "- Models: %s; batch %s; %s×%s input; seeded random weights (BatchNorm statistics calibrated on one "
        "seeded batch), exported once by `bench/bench_torch.py export` to opset 13 ONNX with constant "
        "folding (cached in `%s`)" % (g("models", "?"), g("batches", "?"), g("size", "?"), g("size", "?"), g("modeldir", "?")),
        "- Run by run: each side runs in a process of its own, both alive at once for a row, and "
        "`bench/lockstep.py` hands the machine to one at a time, alternating after every warm-up and every "
        "timed run (PyTorch first on every other row), each turn starting once the side that ran is quiet "
        "(its threads spin on after their work): the two sides of a ratio are measured within a second or "
        "two of each other, so the VM's drift hits both, and neither runs beside the other. Every run thus "
        "starts after the other side's, with cold caches, on both sides. Grad-CAM and its top-5 share a "
        "process on each side and a turn: one run of each per turn, the order alternating (one target "
        "compares them). Every row: 1 warm-up, then the median of %s runs and min–max "
        "(run count in brackets); model load: %s loads after one warm-up, measured in the batch-%s process. "
        "Time cap: %s — a row whose warm-up shows that %s runs would take longer than that gets fewer runs, "
        "never under %s (same rule on both sides; the counts in brackets say where it happened)."
        % (g("runs", "?"), g("runs", "?"), g("load_batch", "?"),
           "none" if g("budget", "0") in ("0", "0.0") else g("budget", "?") + " s per row", g("runs", "?"),
           g("min_runs", "?")),
        "- Score-CAM: %s. It runs in a process of its own (its own peak RSS row): pytorch-grad-cam "
        "materialises every masked input at once." % g("scorecam_note", "?"),
        "- A row is what a user waits for: forward + the class (argmax of the scores) + the map(s) raw, "
        "upsampled and normalised. PyTorch does it the way pytorch-grad-cam does (hooks, full `backward()` "
        "with weight gradients; see `bench/bench_torch.py`); gradcam through `include/gradcam.h` only "
        "(`bench/bench_gradcam.c`; forward only = an inference context, the rest = one explainer). "
        "Top-5 is one forward and five backward passes on both sides. Peak RSS: `getrusage` "
        "`ru_maxrss`, the largest over a side's processes of that (model, batch) (PyTorch's include the "
        "torch import).",
    ]
    if g("detect_note"):
        lines.append("- Every detection of one picture (issue #18): %s" % g("detect_note"))
    if g("note"):
        lines.append("- Note: %s" % g("note"))
    lines += ["", tab, "", "### Targets of issue%s (from the ratios above)" % ("s #6 and #18" if g("detect_note") else " #6"),
              "", tgt, END]
    return "\n".join(lines)


def main():
    args = sys.argv[1:]
    doc = None
    if "--doc" in args:
        i = args.index("--doc")
        doc = args[i + 1]
        del args[i:i + 2]
    res, order = load(args[0])
    meta = {}
    with open(args[1]) as f:
        for line in f:
            if "\t" in line:
                k, v = line.rstrip("\n").split("\t", 1)
                meta[k] = v
    tab = table(res, order)
    tgt = targets(res, order)
    print(tab)
    print()
    print(tgt)
    if doc:
        body = doc_body(meta, tab, tgt)
        try:
            with open(doc) as f:
                old = f.read()
        except FileNotFoundError:
            old = ""
        if BEGIN in old and END in old:
            new = old[:old.index(BEGIN)] + body + old[old.index(END) + len(END):]
        else:
            new = ("# Performance\n\nHow fast gradcam explains compared with PyTorch on the same machine "
                   "(issue #6), and how to measure it: `make bench` (all models; about 40 min on the quiet 2-core machine, by estimate) or a "
                   "subset, e.g. `BENCH_MODELS=resnet50 BENCH_BATCH=1 BENCH_RUNS=10 make bench`. "
                   "Options (environment): BENCH_MODELS, BENCH_BATCH, BENCH_RUNS, BENCH_ROW_BUDGET, "
                   "BENCH_MIN_RUNS, BENCH_SCORECAM_MODELS (\"none\" to skip Score-CAM), BENCH_SCORECAM_RUNS, BENCH_THREADS, BENCH_SIZE, "
                   "BENCH_DETECT (0 to skip the detection rows), BENCH_DOC "
                   "(where to write this section).\n\n" + body + "\n" + (("\n" + old) if old else ""))
        with open(doc, "w") as f:
            f.write(new.rstrip("\n") + "\n")
        print("\nwritten: %s" % doc)


if __name__ == "__main__":
    main()
