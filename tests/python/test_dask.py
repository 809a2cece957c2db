"""gradcam.dask.explain_images on a real dask.distributed LocalCluster (two worker processes on
127.0.0.1) against the command on the same pictures: every file byte for byte, results.json's records
and failures equal, a corrupt picture reported in its record while the others are explained, the
model loaded once per worker, each explainer on its share of the cores."""
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
    opts = dict(top_k=2, npy=True, threads=1)
    methods = ["gradcam", "gradcam++", "scorecam", "guided-backprop", "guided-gradcam"]
    cmd = os.path.join(work, "dask_cmd")
    shutil.rmtree(cmd, ignore_errors=True)
    p = subprocess.run([cli, "explain", DEMO, pictures, "-m", ",".join(methods), "-k", "2", "--npy", "--threads", "1",
                        "-o", cmd, "-q"], capture_output=True, text=True, timeout=300)
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
