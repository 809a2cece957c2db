"""gradcam.dask.explain_images on a real dask.distributed LocalCluster (two worker processes on
127.0.0.1) against the command on the same pictures: every file byte for byte, results.json's records
and failures equal, a corrupt picture reported in its record while the others are explained, the
model loaded once per worker, each explainer on its share of the cores; Dask's progress bar; a task
that fails on one picture, or a cluster made for the call."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import gradcam
import gradcam.dask

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEMO = os.path.join(SRC, "examples", "demo", "shapes_cnn.onnx")
PICS = os.path.join(SRC, "examples", "demo", "images")


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=40)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def pictures(work):
    """The demo pictures, a copy under another folder (same file names: stems -2), a corrupt one."""
    d = os.path.join(work, "dask_pics")
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(PICS, os.path.join(d, "a"), ignore=shutil.ignore_patterns("*.csv"))
    os.makedirs(os.path.join(d, "b"))
    shutil.copy(os.path.join(PICS, "demo_2.png"), os.path.join(d, "b", "demo_2.png"))
    with open(os.path.join(d, "b", "broken.png"), "wb") as f:
        f.write(open(os.path.join(PICS, "demo_3.png"), "rb").read()[:300])  # cut short
    return d


def files_of(d):
    return sorted(f for f in os.listdir(d) if f != "report.html")


def test_explain_images_equals_command(client, pictures, cli, work):
    labels = os.path.join(SRC, "examples", "demo", "labels.txt")
    opts = dict(top_k=2, npy=True, threads=1, labels=labels, preprocess="raw", colormap="viridis")
    methods = ["gradcam", "gradcam++", "scorecam", "guided-backprop", "guided-gradcam"]
    cmd = os.path.join(work, "dask_cmd")
    shutil.rmtree(cmd, ignore_errors=True)
    p = subprocess.run([cli, "explain", DEMO, pictures, "-m", ",".join(methods), "-k", "2", "--npy", "--threads", "1",
                        "--labels", labels, "--preprocess", "raw", "--colormap", "viridis", "-o", cmd, "-q"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 3, p.stderr  # the broken picture: listed, the others explained
    out = os.path.join(work, "dask_out")
    shutil.rmtree(out, ignore_errors=True)
    records = gradcam.dask.explain_images(pictures, DEMO, methods=methods, out_dir=out, client=client, **opts)
    # every file the command wrote, byte for byte (results.json compared as JSON below)
    assert files_of(out) == files_of(cmd)
    for f in files_of(out):
        if f == "results.json":
            continue
        with open(os.path.join(out, f), "rb") as a, open(os.path.join(cmd, f), "rb") as b:
            assert a.read() == b.read(), f
    doc_c = json.load(open(os.path.join(cmd, "results.json")))
    doc_d = json.load(open(os.path.join(out, "results.json")))
    assert doc_d == doc_c
    # the records, in input order, failures among them
    listed = gradcam.list_inputs(pictures)
    assert [r["path"] for r in records] == [p for p, _ in listed]
    broken = [r for r in records if "error" in r]
    assert len(broken) == 1 and broken[0]["path"].endswith("broken.png") and "broken.png" in broken[0]["error"]
    assert [r for r in records if "error" not in r] == doc_c["inputs"]
    assert len(doc_c["inputs"]) == len(listed) - 1 >= 4
    assert doc_c["options"]["colormap"] == "viridis" and doc_c["model"]["labels"]
    assert all(p["label"] for r in doc_c["inputs"] for p in r["predictions"])
    assert any(r["path"].endswith("b/demo_2.png") and r["input_image"] == "demo_2-2_input.png" for r in records)


def test_workers_keep_the_model_and_share_cores(client, pictures, work):
    out = os.path.join(work, "dask_out2")
    for _ in range(2):
        recs = gradcam.dask.explain_images([os.path.join(pictures, "a")], DEMO, methods=["gradcam"], out_dir=out,
                                           client=client)
        assert all("error" not in r for r in recs)
        ids = client.run(lambda: {k: id(m) for k, m in gradcam.dask._models.items()})
        if _ == 0:
            first = ids
    assert ids == first and all(list(v) == [DEMO] for v in ids.values())  # loaded once per worker, kept
    # the default threads per explainer: this worker's share of its machine's cores
    host = "127.0.0.1"
    shares = client.run(lambda: gradcam.dask._threads_here({host: 2}))
    cores = client.run(lambda: len(os.sched_getaffinity(0)))
    for w in shares:
        assert shares[w] == max(1, cores[w] // 2)
    env = client.run(lambda: os.environ.get("OMP_WAIT_POLICY"))
    assert {v.lower() for v in env.values()} == {"passive"}
    # and the explainers were opened with it: every pipeline of every worker runs --threads <share>
    argvs = client.run(lambda: [list(k[2]) for k in gradcam.dask._pipes
                                if k[1] == DEMO and list(k[2][:2]) == ["--method", "gradcam"]])
    assert any(argvs.values()), argvs
    for w, av in argvs.items():
        assert av in ([], [["--method", "gradcam", "--threads", str(max(1, cores[w] // 2))]]), (w, av)


def test_calls_back_to_back_are_their_own(client, pictures, work):
    """Calls in a row on the same pictures with other options: each gets its own maps. The tasks' keys
    were once the same from call to call, and a key the scheduler still held handed back the earlier
    call's result: here the first call's exception, kept by pytest, keeps its futures (and keys)
    alive while the second call runs."""
    a = os.path.join(pictures, "a")
    with pytest.raises(gradcam.Error) as first:
        gradcam.dask.explain_images(a, DEMO, methods=["nope"], out_dir=os.path.join(work, "dask_out9"), client=client)
    recs = gradcam.dask.explain_images(a, DEMO, methods=["gradcam"], out_dir=os.path.join(work, "dask_out9"),
                                       client=client)
    assert first.value.status == "arg" and all("error" not in r for r in recs)
    for methods in (["gradcam"], ["hirescam"], ["gradcam"], ["layercam"]):
        recs = gradcam.dask.explain_images(a, DEMO, methods=methods, out_dir=os.path.join(work, "dask_out9"),
                                           client=client)
        assert {m["method"] for r in recs for m in r["maps"]} == set(methods), (methods, recs[0]["maps"])


def test_spinning_workers_are_warned_about(client, pictures, work):
    """Workers without OMP_WAIT_POLICY=PASSIVE whose explainers run several threads get a warning
    naming them (the variable cannot be set from the client: libgomp reads it when it loads); with
    one thread per explainer, or passive workers, nothing is said."""
    import warnings
    a = os.path.join(pictures, "a")
    out = os.path.join(work, "dask_out10")

    def calls():
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            gradcam.dask.explain_images(a, DEMO, methods=["gradcam"], out_dir=out, client=client, threads=2)
            gradcam.dask.explain_images(a, DEMO, methods=["gradcam"], out_dir=out, client=client, threads=1)
        return [str(w.message) for w in seen if issubclass(w.category, RuntimeWarning)]

    assert calls() == []  # the fixture's workers wait passively
    before = client.run(lambda: os.environ.pop("OMP_WAIT_POLICY", None))
    try:
        got = calls()
    finally:
        client.run(lambda v=next(iter(before.values())): os.environ.__setitem__("OMP_WAIT_POLICY", v))
    assert {v.lower() for v in before.values()} == {"passive"}
    assert len(got) == 1 and "2 worker(s)" in got[0] and "OMP_WAIT_POLICY=PASSIVE" in got[0], got


def test_progress_bar(client, pictures, work, capsys):
    """progress=True: Dask's own bar (distributed.progress), drawn to 100% in a console."""
    recs = gradcam.dask.explain_images([os.path.join(pictures, "a")], DEMO, methods=["gradcam"],
                                       out_dir=os.path.join(work, "dask_out5"), client=client, progress=True)
    out = capsys.readouterr().out
    assert "100% Completed" in out and "[####" in out, out
    assert len(recs) == len(gradcam.list_inputs(os.path.join(pictures, "a"))) and all("error" not in r for r in recs)


def test_a_failing_task_is_its_record(client, pictures, work):
    """A task that raises on one picture (patched into the workers: e.g. an OSError writing, a worker
    out of memory) gives that picture a failure record; the others are explained and results.json
    lists it among the failures."""
    def patch(on):
        from gradcam import _tool
        orig = getattr(_tool.Pipeline, "_orig_explain", None)
        if orig is None:
            orig = _tool.Pipeline._orig_explain = _tool.Pipeline.explain
        if not on:
            _tool.Pipeline.explain = orig
            return True

        def explain(self, source, *a, **kw):
            if str(source).endswith("demo_3.png"):
                raise OSError(28, "No space left on device (injected by the test)")
            return orig(self, source, *a, **kw)
        _tool.Pipeline.explain = explain
        return True

    out = os.path.join(work, "dask_out6")
    assert all(client.run(patch, True).values())
    try:
        recs = gradcam.dask.explain_images([os.path.join(pictures, "a")], DEMO, methods=["gradcam"], out_dir=out,
                                           client=client)
    finally:
        assert all(client.run(patch, False).values())
    listed = gradcam.list_inputs(os.path.join(pictures, "a"))
    assert [r["path"] for r in recs] == [p for p, _ in listed]
    bad = [r for r in recs if "error" in r]
    assert len(bad) == 1 and bad[0]["path"].endswith("demo_3.png"), recs
    assert "No space left on device" in bad[0]["error"] and "OSError" in bad[0]["error"]
    doc = json.load(open(os.path.join(out, "results.json")))
    assert doc["failures"] == [{"path": bad[0]["path"], "error": bad[0]["error"]}]
    assert len(doc["inputs"]) == len(listed) - 1
    assert not any(f.startswith("demo_3_") for f in os.listdir(out))


def test_a_worker_dying_on_a_picture(pictures, work):
    """A worker process that dies on one picture (os._exit in the patched worker, as a crash or the
    kernel's OOM killer would): with allowed-failures 0 Dask gives up on that task (KilledWorker), and
    one task per worker thread at a time (worker-saturation 1.0) keeps the others off the dying
    worker; the nanny restarts it and the other pictures are explained."""
    import dask
    from distributed import Client, LocalCluster

    def bomb():
        from gradcam import _tool
        orig = _tool.Pipeline.explain

        def explain(self, source, *a, **kw):
            if str(source).endswith("demo_3.png"):
                os._exit(17)
            return orig(self, source, *a, **kw)
        _tool.Pipeline.explain = explain
        return True

    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.scheduler.worker-saturation": 1.0}):
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, silence_logs=50)
    c = Client(cluster)
    try:
        assert all(c.run(bomb).values())
        out = os.path.join(work, "dask_out8")
        recs = gradcam.dask.explain_images([os.path.join(pictures, "a")], DEMO, methods=["gradcam"], out_dir=out,
                                           client=c)
    finally:
        c.close()
        cluster.close()
    listed = gradcam.list_inputs(os.path.join(pictures, "a"))
    assert [r["path"] for r in recs] == [p for p, _ in listed]
    bad = [r for r in recs if "error" in r]
    assert len(bad) == 1 and bad[0]["path"].endswith("demo_3.png") and "KilledWorker" in bad[0]["error"], recs
    assert "\n" not in bad[0]["error"]  # one line, as the command's failures
    doc = json.load(open(os.path.join(out, "results.json")))
    assert len(doc["inputs"]) == len(listed) - 1 and [f["path"] for f in doc["failures"]] == [bad[0]["path"]]


def test_local_cluster_of_its_own(work):
    """client=None and no client around: explain_images makes a local cluster for the call (one
    single-threaded worker process per core, on 127.0.0.1, OpenMP waiting passively) and closes it.
    In a fresh interpreter, where no client of this module's is the default."""
    script = r"""
import os, sys, json
os.environ.pop("OMP_WAIT_POLICY", None)
import gradcam.dask
from distributed import Client
client, cluster = gradcam.dask._local_client()
info = client.scheduler_info()["workers"]
env = client.run(lambda: os.environ.get("OMP_WAIT_POLICY"))
client.close(); cluster.close()
assert "OMP_WAIT_POLICY" not in os.environ  # this process is left as it was
recs = gradcam.dask.explain_images(sys.argv[1], sys.argv[2], methods=["gradcam"], out_dir=sys.argv[3])
print(json.dumps({"addresses": sorted(info), "nthreads": [w["nthreads"] for w in info.values()],
                  "env": sorted(env.values()), "records": recs}))
"""
    out = os.path.join(work, "dask_out7")
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    p = subprocess.run(["/usr/bin/python3", "-c", script, PICS, DEMO, out], capture_output=True, text=True,
                       timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    cores = len(os.sched_getaffinity(0))
    assert len(got["addresses"]) == cores and all(a.startswith("tcp://127.0.0.1:") for a in got["addresses"])
    assert got["nthreads"] == [1] * cores and got["env"] == ["PASSIVE"] * cores
    assert [r["path"] for r in got["records"]] == [q for q, _ in gradcam.list_inputs(PICS)]
    assert all("error" not in r for r in got["records"])
    assert os.path.isfile(os.path.join(out, "results.json"))


def test_bad_calls(client, work):
    empty = os.path.join(work, "empty")
    os.makedirs(empty, exist_ok=True)
    with pytest.raises(ValueError):  # a folder without pictures, as the command refuses it
        gradcam.dask.explain_images(empty, DEMO, out_dir=os.path.join(work, "o3"), client=client)
    missing = os.path.join(work, "missing.png")  # a missing file is one failed record, as in the command
    recs = gradcam.dask.explain_images([missing, os.path.join(PICS, "demo_1.png")], DEMO, out_dir=os.path.join(work, "o4"),
                                       client=client)
    assert recs[0]["path"] == missing and "missing.png" in recs[0]["error"] and "error" not in recs[1]
    with pytest.raises(FileNotFoundError):
        gradcam.dask.explain_images(PICS, "/nonexistent.onnx", out_dir=os.path.join(work, "o3"), client=client)
    with pytest.raises(gradcam.Error) as e:  # the command's message, from the worker
        gradcam.dask.explain_images(PICS, DEMO, methods=["nope"], out_dir=os.path.join(work, "o3"), client=client)
    assert "nope" in str(e.value)
    with pytest.raises(ValueError):
        gradcam.dask.explain_images(PICS, DEMO, out_dir=os.path.join(work, "o3"), client=client, out="x")
