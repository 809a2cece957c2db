"""Images per second: `gradcam explain` on a folder against gradcam.dask.explain_images on a local
dask.distributed cluster of 1 and 2 worker processes (docs/dask.md's table).

    /usr/bin/python3 bench/bench_dask.py BUILD_DIR [N_PICTURES]

Models: the demo classifier (128x128) and resnet50 with seeded random weights (224x224, exported here
unless `make bench` left BUILD_DIR/bench/models/resnet50.onnx). Methods: gradcam, guided-backprop,
guided-gradcam, top-1 (the command's defaults). Each configuration runs twice, the median printed;
cluster start-up is not timed, the workers' model loads are (each worker loads its model on its
first picture). The command uses every core with one process; the Dask runs split them."""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def pictures(folder, n, src_dir, size=None):
    os.makedirs(folder, exist_ok=True)
    from PIL import Image
    srcs = sorted(f for f in os.listdir(src_dir) if f.endswith(".png"))
    for i in range(n):
        im = Image.open(os.path.join(src_dir, srcs[i % len(srcs)])).convert("RGB")
        if size:
            im = im.resize((size, size))
        im.save(os.path.join(folder, "p%04d.png" % i))


def resnet50(build, work):
    cached = os.path.join(build, "bench", "models", "resnet50.onnx")
    if os.path.exists(cached):
        return cached
    import torch
    import torchvision
    torch.manual_seed(0)
    m = torchvision.models.resnet50(weights=None).eval()
    path = os.path.join(work, "resnet50.onnx")
    torch.onnx.export(m, torch.randn(1, 3, 224, 224), path, input_names=["input"], output_names=["logits"],
                      opset_version=13, dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path


def time_command(cli, model, folder, out, extra):
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    subprocess.run([cli, "explain", model, folder, "-o", out, "-q"] + extra, check=True)
    return time.perf_counter() - t


def time_dask(client, model, folder, out, extra_kw):
    import gradcam.dask
    shutil.rmtree(out, ignore_errors=True)
    client.restart()  # the workers start cold: the model load is part of the time
    t = time.perf_counter()
    recs = gradcam.dask.explain_images(folder, model, out_dir=out, client=client, **extra_kw)
    dt = time.perf_counter() - t
    assert all("error" not in r for r in recs)
    return dt


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    os.environ.setdefault("GRADCAM_LIBRARY", os.path.join(build, "libgradcam_tool.so"))
    sys.path.insert(0, os.path.join(SRC, "python"))
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # before the workers start (they inherit it)
    from distributed import Client, LocalCluster
    cli = os.path.join(build, "gradcam")
    work = tempfile.mkdtemp(prefix="bench_dask-")
    cores = len(os.sched_getaffinity(0))
    rows = []
    try:
        demo_pics = os.path.join(work, "demo")
        pictures(demo_pics, n, os.path.join(SRC, "examples", "demo", "images"))
        r50_pics = os.path.join(work, "r50")
        pictures(r50_pics, max(8, n // 4), os.path.join(SRC, "examples", "demo", "images"), size=224)
        models = [("demo (128x128)", os.path.join(SRC, "examples", "demo", "shapes_cnn.onnx"), demo_pics, []),
                  ("resnet50 (224x224)", resnet50(build, work), r50_pics, ["--preprocess", "imagenet"])]
        for name, model, folder, extra in models:
            count = len(os.listdir(folder))
            kw = {"preprocess": "imagenet"} if extra else {}
            cmd = statistics.median(time_command(cli, model, folder, os.path.join(work, "o"), extra) for _ in range(2))
            rows.append((name, "gradcam explain, 1 process, %d threads" % cores, count, cmd))
            for workers in (1, 2):
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=40)
                client = Client(cluster)
                try:
                    dt = statistics.median(time_dask(client, model, folder, os.path.join(work, "o"), kw)
                                           for _ in range(2))
                finally:
                    client.close()
                    cluster.close()
                rows.append((name, "explain_images, %d worker process%s x %d thread%s" % (
                    workers, "es" if workers > 1 else "", max(1, cores // workers),
                    "s" if cores // workers > 1 else ""), count, dt))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| model | run | pictures | seconds | images/s |")
    print("|---|---|---|---|---|")
    for name, run, count, dt in rows:
        print("| %s | %s | %d | %.2f | %.1f |" % (name, run, count, dt, count / dt))


if __name__ == "__main__":
    main()
