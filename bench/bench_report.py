#!/usr/bin/python3
"""report.html of a large run (issue #23): written, sized and opened in headless Chromium.

Usage: bench_report.py BUILD_DIR [--inputs N] [--loads L] [--cmd-inputs M] [--out FILE]

1. BUILD_DIR/bench/bench_report writes a linked report.html of N inputs (default 10 000) through
   the writer `gradcam explain` uses (src/report/, records shaped as the command makes them for
   -k 2 -m gradcam,guided-backprop,guided-gradcam on an ImageNet model; the PNG files hard links to
   six pictures), and one of 100 inputs: bytes per input = the difference / (N - 100).
2. Headless Chromium (Selenium, Debian's chromium-driver) opens it L times (default 5, a fresh
   navigation each): the time from navigation start to the first page of 50 inputs built
   (window.gcReadyMs), to the frame after it (gcPaintMs), DOMContentLoaded and the load event
   (navigation timing: the first page's 500 pictures load lazily, those in view count); then the
   time to build the next page (a click on Next). Medians, with the minimum and maximum.
3. The command itself (--cmd-inputs M, default 1000; 0: skip): `gradcam explain` with a tiny model
   (tests/report_link_model.py) on 4 and M 32x32 pictures, -k 2, three methods, linked: peak RSS of
   each (ru_maxrss, as tests/report_link.py measures it) and report.html's bytes per input.
The machine's load average is printed before and after. Writes the table to --out (default
BUILD_DIR/bench/report.md) and stdout."""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

TIMING = """
const n = performance.getEntriesByType('navigation')[0];
return {ready: window.gcReadyMs, paint: window.gcPaintMs || null, dcl: n.domContentLoadedEventEnd,
        load: n.loadEventEnd, sections: document.querySelectorAll('section.input').length,
        count: document.getElementById('gc-count').textContent};
"""
NEXT = """
const t = performance.now();
document.getElementById('gc-next').click();
return [performance.now() - t, document.querySelectorAll('section.input').length];
"""


def load_avg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def gen(build, out, n):
    shutil.rmtree(out, ignore_errors=True)
    p = subprocess.run([os.path.join(build, "bench", "bench_report"), out, str(n)], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("bench_report: FAILED: %s" % p.stderr.strip())
    v = p.stdout.split()
    return {v[i]: float(v[i + 1]) for i in range(0, len(v), 2)}


def open_page(page, loads):
    from selenium.webdriver.support.ui import WebDriverWait
    from chromium import chromium
    profile = tempfile.mkdtemp(prefix="gcam-bench-report-")
    d = chromium(profile, "1366,768", console=False)
    rows, nexts = [], []
    try:
        for _ in range(loads):
            d.get("about:blank")
            d.get("file://" + page)
            WebDriverWait(d, 120).until(lambda d: d.execute_script("return window.gcPaintMs"))
            WebDriverWait(d, 120).until(lambda d: d.execute_script(
                "return performance.getEntriesByType('navigation')[0].loadEventEnd > 0"))
            t = d.execute_script(TIMING)
            if t["sections"] != 50:
                sys.exit("bench_report: FAILED: %d sections on the first page" % t["sections"])
            rows.append(t)
            nexts.append(d.execute_script(NEXT)[0])
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return rows, nexts


def stat(v):
    return "%.0f (%.0f..%.0f)" % (statistics.median(v), min(v), max(v))


def command_rows(build, m):
    import report_link
    import report_link_model
    work = tempfile.mkdtemp(prefix="gcam-bench-report-cmd-")
    try:
        report_link_model.main(work)
        model = os.path.join(work, "tiny.onnx")
        big, small = os.path.join(work, "big"), os.path.join(work, "small")
        names = report_link_model.pictures(big, m)
        os.makedirs(small)
        for f in names[:4]:
            shutil.copy(f, small)
        gradcam = os.path.join(build, "gradcam")
        res = {}
        for tag, folder in (("4", small), (str(m), big)):
            t0 = time.time()
            rc, rss, err = report_link.run_rss(gradcam, model, [folder], os.path.join(work, "out" + tag), ["--report", "link"])
            if rc != 0:
                sys.exit("bench_report: FAILED: gradcam explain: %s" % err.strip())
            res[tag] = (rss, os.path.getsize(os.path.join(work, "out" + tag, "report.html")), time.time() - t0)
        return res
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--inputs", type=int, default=10000)
    ap.add_argument("--loads", type=int, default=5)
    ap.add_argument("--cmd-inputs", type=int, default=1000)
    ap.add_argument("--out")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    out = a.out or os.path.join(build, "bench", "report.md")
    la0 = load_avg()
    work = tempfile.mkdtemp(prefix="gcam-bench-report-")
    try:
        g = gen(build, os.path.join(work, "big"), a.inputs)
        g100 = gen(build, os.path.join(work, "small"), 100)
        per = (g["bytes"] - g100["bytes"]) / (a.inputs - 100)
        rows, nexts = open_page(os.path.join(work, "big", "report.html"), a.loads)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cmd = command_rows(build, a.cmd_inputs) if a.cmd_inputs > 0 else None
    la1 = load_avg()
    lines = ["| report.html, linked, %d inputs | |" % a.inputs, "|---|---|",
             "| size | %.2f MB (%.0f bytes per input) |" % (g["bytes"] / 1e6, per),
             "| written by the report writer in | %.2f s |" % g["seconds"],
             "| first page (50 inputs) built, ms after navigation start | %s |" % stat([r["ready"] for r in rows]),
             "| the frame after it, ms | %s |" % stat([r["paint"] for r in rows]),
             "| DOMContentLoaded, ms | %s |" % stat([r["dcl"] for r in rows]),
             "| load event (the pictures in view loaded), ms | %s |" % stat([r["load"] for r in rows]),
             "| next page built (click on Next), ms | %s |" % stat(nexts)]
    if cmd:
        m = str(a.cmd_inputs)
        lines += ["| `gradcam explain` (tiny model), peak RSS, 4 / %s inputs | %.1f / %.1f MB |" %
                  (m, cmd["4"][0] / 1024, cmd[m][0] / 1024),
                  "| `gradcam explain`, report.html bytes per input (4 -> %s inputs) | %.0f |" %
                  (m, (cmd[m][1] - cmd["4"][1]) / (a.cmd_inputs - 4)),
                  "| `gradcam explain`, %s inputs, wall time | %.1f s |" % (m, cmd[m][2])]
    lines += ["", "Chromium %s loads (median (min..max)); load average %s before, %s after." % (len(rows), la0, la1)]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
