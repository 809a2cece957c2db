#!/usr/bin/python3
"""gradcam vs ONNX Runtime (issue #23; bench/run.sh runs it unless BENCH_ORT=0). Standard library only.

  bench_ort.py BUILD_DIR --node-modules DIR [--models "resnet50 ..."] [--batches "1 8"] [--runs R]
               [--threads T] [--budget SECONDS] [--min-runs K] [--size S] [--cold-runs C]
               [--doc FILE|none] [--section ort|ort-unset] [--label TEXT] [--command TEXT] [--results FILE] [--from-results]

Rows, per model and batch, each a pair of processes run turn by turn by bench/lockstep.py (one side
runs while the other waits, alternating run by run; the side going first alternating from pair to
pair), ONNX Runtime's forward (bench/ort/ort_bench.js, onnxruntime-node from DIR) beside:
  forward   gradcam's forward (bench_gradcam --rows forward: an inference context)
  gradcam   gradcam's Grad-CAM (forward + top class + the map upsampled and normalised)
  guided    gradcam's Guided Backprop
so each ratio compares two medians measured within the same seconds (the ORT forward of its own pair).
Models: the CNNs as bench_torch.py exports them for the PyTorch rows (BUILD/bench/models, opset 13,
dynamic batch), vit_b_16 and swin_t as bench_transformers.py exports them with a dynamic batch
(BUILD/bench/models/dynbatch, opset 17).
Cold start (resnet50 and vit_b_16 when listed; gradcam alone, no other side): `gradcam info MODEL`,
median wall time of C runs after one untimed run (the file in the page cache) and its peak RSS; peak
RSS of one forward (bench_gradcam --rows forward --smoke: load, an inference context, one forward)
against the file's size + the planned activations (gcam_ctx_planned_bytes, printed by the driver)
+ 30 MiB (--cold-runs 0: no cold start).
Order: the cold start, then batch by batch (every model's batch-1 rows first). Each finished row is
saved to BUILD/bench/ort/results.json; --from-results makes the table from it without measuring (an
interrupted run). BENCH_CLOCK=cpu in the environment: both drivers time with the process's CPU time
(with --threads 1, the work done whatever else runs on a busy machine; labelled). Prints a markdown
table and the targets; with --doc, writes them into FILE between
<!-- SECTION:begin --> and <!-- SECTION:end --> (appended at the end if they are not there yet).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
TRANSFORMERS = ("vit_b_16", "swin_t")
GROUPS = ("forward", "gradcam", "guided")
LABEL = {"forward": "forward", "gradcam": "Grad-CAM", "guided": "Guided Backprop"}
LIMIT = {"forward": 1.0, "gradcam": 1.15, "guided": 2.5}
COLD_LIMIT = {"resnet50": 0.15, "vit_b_16": 0.4}  # seconds, `gradcam info`
RSS_SLACK_MIB = 30.0
ENV_KEYS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_WAIT_POLICY", "BENCH_CLOCK")
ARG_KEYS = ("threads", "runs", "budget", "min_runs", "size", "cold_runs")


def model_path(build, name):
    """Export the model if needed (the scripts do nothing when their stamp matches) and return its path."""
    mdir = os.path.join(build, "bench", "models")
    if name in TRANSFORMERS:
        mdir = os.path.join(mdir, "dynbatch")
        cmd = [PY, os.path.join(SRC, "bench", "bench_transformers.py"), "export", name, mdir]
    else:
        cmd = [PY, os.path.join(SRC, "bench", "bench_torch.py"), "export", name, mdir]
    subprocess.run(cmd, check=True)
    return os.path.join(mdir, name + ".onnx")


def parse(path):
    """RESULT / RSS / RSS_BASE / PLANNED lines of a driver's output: {kind: value}."""
    out = {}
    with open(path) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if p[0] == "RESULT" and len(p) == 8:
                out[p[3]] = (float(p[4]), float(p[5]), float(p[6]), int(p[7]))
            elif p[0] in ("RSS", "RSS_BASE", "PLANNED") and len(p) == 4:
                out[p[0]] = float(p[3])
    return out


def pair(a, build, path, name, batch, group, ort_first, env):
    """One group: ORT's forward beside gradcam's row, turn by turn. Returns (ort, gradcam) parsed."""
    out = os.path.join(build, "bench", "ort")
    files = [os.path.join(out, f) for f in ("ort.out", "ort.err", "gradcam.out", "gradcam.err")]
    common = ["--batch", str(batch), "--size", str(a.size), "--runs", str(a.runs), "--threads", str(a.threads),
              "--budget", str(a.budget), "--min-runs", str(a.min_runs)]
    ort = ["node", os.path.join(SRC, "bench", "ort", "ort_bench.js"), path, "--name", name] + common
    gc = [os.path.join(build, "bench", "bench_gradcam"), path, "--name", name, "--rows", group] + common
    r = subprocess.run([PY, os.path.join(SRC, "bench", "lockstep.py"), "--first", "a" if ort_first else "b"] + files +
                       ["--"] + ort + ["::"] + gc, env=env)
    if r.returncode != 0:
        for f in files:
            with open(f) as fh:
                sys.stderr.write(fh.read())
        sys.exit("bench_ort.py: FAILED: %s batch %d, %s" % (name, batch, group))
    return parse(files[0]), parse(files[2])


def cold(a, build, name, path, env):
    """`gradcam info` wall time (median of cold_runs after one untimed run) and peak RSS; peak RSS of
    one forward and its planned activations."""
    walls, rss = [], []
    for i in range(a.cold_runs + 1):
        t0 = time.perf_counter()
        p = subprocess.Popen([os.path.join(build, "gradcam"), "info", path], stdout=subprocess.DEVNULL, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            sys.exit("bench_ort.py: FAILED: gradcam info %s exited %d" % (path, p.returncode))
        if i:
            walls.append(dt)
            rss.append(ru.ru_maxrss / 1024.0)
    out = os.path.join(build, "bench", "ort", "cold.out")
    with open(out, "w") as f:
        subprocess.run([os.path.join(build, "bench", "bench_gradcam"), path, "--name", name, "--rows", "forward",
                        "--size", str(a.size), "--threads", str(a.threads), "--smoke"], stdout=f, env=env, check=True)
    fw = parse(out)
    return {"info_s": statistics.median(walls), "info_rss": max(rss), "fwd_rss": fw["RSS"],
            "planned": fw.get("PLANNED", 0.0) / 1048576.0, "file": os.path.getsize(path) / 1048576.0}


def fmt_ms(v):
    return "%.0f" % v if v >= 100 else "%.1f" % v if v >= 10 else "%.2f" % v


def verdict(r, lim):
    return "%.2f%s" % (r, "" if r <= lim else " ✗")


def table(rows):
    out = ["| model | batch | ORT forward | gradcam forward | gradcam Grad-CAM | gradcam Guided Backprop | "
           "forward / ORT (≤ 1.0) (of the minima) | Grad-CAM / ORT fwd (≤ 1.15) (minima) | GBP / ORT fwd (≤ 2.5) (minima) | peak RSS ORT (node alone) | "
           "peak RSS gradcam |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    checks = {g: [] for g in GROUPS}
    for (name, batch), res in rows:
        cells, ratios = [], []
        for g in GROUPS:
            o, c = res[g]
            cells.append("%s ms (%d)" % (fmt_ms(c[g][0]), c[g][3]))
            r = c[g][0] / o["forward"][0]
            ratios.append("%s (%.2f)" % (verdict(r, LIMIT[g]), c[g][1] / o["forward"][1]))
            checks[g].append(("%s b%d" % (name, batch), r))
        ort = res["forward"][0]["forward"]
        ort_rss = max(res[g][0]["RSS"] for g in GROUPS)
        base = min(res[g][0].get("RSS_BASE", 0.0) for g in GROUPS)
        gc_rss = max(res[g][1]["RSS"] for g in GROUPS)
        out.append("| %s | %d | %s ms (%d) | %s | %s | %.0f MiB (%.0f) | %.0f MiB |" % (
            name, batch, fmt_ms(ort[0]), ort[3], " | ".join(cells), " | ".join(ratios), ort_rss, base, gc_rss))
    return "\n".join(out), checks


def cold_table(colds):
    out = ["| model | file | `gradcam info` (median of runs) | its peak RSS | one forward's peak RSS | planned activations | "
           "RSS target: file + planned + 30 MiB |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    items = []
    for name, c in colds:
        lim = c["file"] + c["planned"] + RSS_SLACK_MIB
        out.append("| %s | %.0f MiB | %.3f s (≤ %.2f s%s) | %.0f MiB | %.0f MiB | %.1f MiB | %.0f MiB%s |" % (
            name, c["file"], c["info_s"], COLD_LIMIT[name], "" if c["info_s"] <= COLD_LIMIT[name] else " ✗",
            c["info_rss"], c["fwd_rss"], c["planned"], lim, "" if c["fwd_rss"] <= lim else " ✗"))
        items.append(("%s info" % name, c["info_s"] / COLD_LIMIT[name]))
        items.append(("%s forward RSS" % name, c["fwd_rss"] / lim))
    return "\n".join(out), items


def targets(checks, cold_items):
    out = []
    for g in GROUPS:
        it = checks[g]
        if not it:
            continue
        ok = all(r <= LIMIT[g] for _, r in it)
        worst = max(it, key=lambda x: x[1])
        out.append("- **%s** gradcam %s ≤ %.2f × ONNX Runtime's forward (worst %s: %.2f). %s" % (
            "PASS" if ok else "FAIL", LABEL[g], LIMIT[g], worst[0], worst[1],
            ", ".join("%s %s" % (w, verdict(r, LIMIT[g])) for w, r in it)))
    if cold_items:
        ok = all(r <= 1.0 for _, r in cold_items)
        out.append("- **%s** cold start (`gradcam info` ≤ 0.15 s resnet50, ≤ 0.4 s vit_b_16; a forward's peak RSS ≤ "
                   "file + planned activations + 30 MiB): %s (value / target)" % (
                       "PASS" if ok else "FAIL", ", ".join("%s %s" % (w, verdict(r, 1.0)) for w, r in cold_items)))
    return "\n".join(out)


def write_doc(doc, section, body):
    begin, end = "<!-- %s:begin -->" % section, "<!-- %s:end -->" % section
    block = begin + "\n" + body + "\n" + end
    try:
        with open(doc) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    if begin in old and end in old:
        new = old[:old.index(begin)] + block + old[old.index(end) + len(end):]
    elif section != "ort" and "<!-- ort:end -->" in old:  # a labelled extra run after the last one so far
        k = max(m.end() for m in re.finditer(r"<!-- ort(-[a-z0-9]+)?:end -->", old))
        new = old[:k] + "\n\n" + block + old[k:]
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + block + "\n"
    tmp = doc + ".tmp"
    with open(tmp, "w") as f:
        f.write(new.rstrip("\n") + "\n")
    os.replace(tmp, doc)
    print("\nwritten: %s" % doc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--node-modules", required=True)
    ap.add_argument("--models", default="resnet50 mobilenet_v2 efficientnet_b0 densenet121 vgg16 vit_b_16 swin_t")
    ap.add_argument("--batches", default="1 8")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=float, default=30.0)
    ap.add_argument("--min-runs", type=int, default=3)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--cold-runs", type=int, default=5)
    ap.add_argument("--doc", default="none")
    ap.add_argument("--section", default="ort")
    ap.add_argument("--label", default="")
    ap.add_argument("--command", default="")
    ap.add_argument("--from-results", action="store_true",
                    help="no measuring: the table of the last run from its results (--results)")
    ap.add_argument("--results", default="", help="where the rows are saved (default BUILD/bench/ort/results.json)")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    os.makedirs(os.path.join(build, "bench", "ort"), exist_ok=True)
    env = dict(os.environ, NODE_PATH=os.path.abspath(a.node_modules))
    with open(os.path.join(a.node_modules, "onnxruntime-node", "package.json")) as f:
        ort_version = json.load(f)["version"]
    load_before = open("/proc/loadavg").read().split()[:3]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    t0 = time.time()
    models = a.models.split()
    batches = [int(b) for b in a.batches.split()]
    # what the text says about the run: saved with its rows, so --from-results describes that run
    settings = {k: os.environ.get(k, "unset") for k in ENV_KEYS}
    settings.update({k: getattr(a, k) for k in ARG_KEYS})
    saved = a.results or os.path.join(build, "bench", "ort", "results.json")
    if a.from_results:  # the table of an earlier (perhaps interrupted) run, from what it saved
        with open(saved) as f:
            st = json.load(f)
        rows = [((r[0], r[1]), r[2]) for r in st["rows"]]
        colds, started, load_before = [tuple(c) for c in st["colds"]], st["started"], st["load_before"]
        load_after, minutes = st["load_after"], st["minutes"]
        settings.update(st.get("settings", {}))
        for k in ARG_KEYS:
            setattr(a, k, settings[k])
    else:
        paths = {m: model_path(build, m) for m in models}
        rows, colds, flip = [], [], 0

        def save():  # after every row: an interrupted run still has its table (--from-results)
            with open(saved + ".tmp", "w") as f:
                json.dump({"rows": [[k[0], k[1], v] for k, v in rows], "colds": colds, "started": started,
                           "load_before": load_before, "load_after": open("/proc/loadavg").read().split()[:3],
                           "minutes": (time.time() - t0 + 59) // 60, "settings": settings}, f)
            os.replace(saved + ".tmp", saved)

        for m in ("resnet50", "vit_b_16"):  # first: cheap, and gradcam alone
            if m in models and a.cold_runs > 0:
                print("bench ort: %s cold start ..." % m, flush=True)
                colds.append((m, cold(a, build, m, paths[m], env)))
                save()
        for b in batches:  # batch-major: the batch-1 rows of every model come first
            for m in models:
                print("bench ort: %s batch %d: %s (%d runs) ..." % (m, b, ",".join(GROUPS), a.runs), flush=True)
                res = {}
                for g in GROUPS:
                    res[g] = pair(a, build, paths[m], m, b, g, flip == 0, env)
                    flip = 1 - flip
                rows.append(((m, b), res))
                save()
                print("bench ort:   %d s so far" % (time.time() - t0), flush=True)
    tab, checks = table(rows)
    ctab, citems = cold_table(colds) if colds else ("", [])
    tgt = targets(checks, citems)
    print(tab)
    if ctab:
        print()
        print(ctab)
    print()
    print(tgt)
    if a.doc == "none":
        return
    if not a.from_results:
        load_after, minutes = open("/proc/loadavg").read().split()[:3], (time.time() - t0 + 59) // 60
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    title = "## gradcam vs ONNX Runtime" if a.section == "ort" else "### gradcam vs ONNX Runtime, %s" % a.label
    lines = [
        title, "",
        "Generated by `bench/bench_ort.py` (`make bench`, unless BENCH_ORT=0); re-running it rewrites only this section.", "",
        "- Date: %s (%d min); command: `%s`" % (started, minutes, a.command or "bench/bench_ort.py"),
        "- CPU: %s, %d logical cores; load average before / after: %s / %s" % (
            cpu, os.cpu_count(), " ".join(load_before), " ".join(load_after)),
        "- OPENBLAS_CORETYPE=%s, OPENBLAS_L2_SIZE=%s; threads each side: %d; OMP_WAIT_POLICY=%s%s" % (
            settings["OPENBLAS_CORETYPE"], settings["OPENBLAS_L2_SIZE"], a.threads, settings["OMP_WAIT_POLICY"],
            " (gradcam's OpenMP threads sleep between parallel regions; ORT's intra-op threads likewise, "
            "`session.intra_op.allow_spinning` 0)" if settings["OMP_WAIT_POLICY"].lower() == "passive" else
            " (both sides' threads spin a while between parallel regions, each library's default)"),
        "- Clock: %s" % ("each process's CPU time, every thread (BENCH_CLOCK=cpu, on both sides): the work done, "
                         "whatever else runs; not the time a user waits" if settings["BENCH_CLOCK"] == "cpu"
                         else "wall time (what a user waits for)"),
        "- ONNX Runtime %s (npm `onnxruntime-node`, its bundled CPU library), node %s: one InferenceSession, CPU "
        "provider, intraOpNumThreads %d, interOpNumThreads 1, sequential execution, graphOptimizationLevel all; a run "
        "is `await session.run(feeds)` (`bench/ort/ort_bench.js`). gradcam through `include/gradcam.h` "
        "(`bench/bench_gradcam.c`: forward = an inference context; Grad-CAM and Guided Backprop = an explainer, "
        "forward + top class + the map upsampled and normalised)." % (
            ort_version, subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip(), a.threads),
        "- Models: the same ONNX files on both sides: the CNNs as `bench_torch.py export` writes them (opset 13), "
        "vit_b_16 and swin_t as `bench_transformers.py export` does (opset 17), all with a dynamic batch axis; "
        "%d×%d input, the same image-like values on both sides." % (a.size, a.size),
        "- Turn by turn: each row is a pair of processes, ONNX Runtime's forward beside one gradcam row, run by "
        "`bench/lockstep.py` (one side runs while the other waits, alternating run by run; the side going first "
        "alternating from pair to pair), so each ratio divides by the ORT forward measured in the same seconds "
        "(the ORT forward column is the one beside gradcam's forward). A ratio divides the medians (the targets "
        "are checked on them); in brackets the ratio of the two sides' fastest runs, the least disturbed by other "
        "work on a busy machine. Medians of %d runs after one warm-up "
        "(run count in brackets; a row whose warm-up shows it would take over %.0f s gets fewer, at least %d). "
        "Peak RSS: `ru_maxrss`, the largest over a side's three processes; ONNX Runtime's includes node itself "
        "(its RSS once node and ONNX Runtime are loaded, before the session, in brackets)." % (
            a.runs, a.budget, a.min_runs),
        "- Cold start: gradcam alone (no other side), the file in the page cache: `gradcam info MODEL` (median of "
        "%d runs after one untimed run; peak RSS of those runs) and one forward's peak RSS (`bench_gradcam --rows "
        "forward --smoke`: load, an inference context, one forward) against the file's size + the activations "
        "the context planned (`gcam_ctx_planned_bytes`) + 30 MiB. MiB throughout." % a.cold_runs
        if colds else "- Cold start: not measured in this run.",
        "", tab, "",
    ]
    if ctab:
        lines += [ctab, ""]
    lines += ["Targets of issue #23 (from the ratios above):", "", tgt]
    write_doc(a.doc, a.section, "\n".join(lines))


if __name__ == "__main__":
    main()
