#!/usr/bin/python3
"""Transformers (issue #20): Grad-CAM at the automatic token layer of vit_b_16 and swin_t, gradcam
against PyTorch's hook-and-backward, turn by turn, and gradcam's Grad-CAM against its own forward.

    GRADCAM_LIBRARY=build/libgradcam_tool.so PYTHONPATH=python \\
        /usr/bin/python3 bench/bench_transformers.py BUILD_DIR [--runs 5] [--threads 2] [--models vit_b_16,swin_t]
    /usr/bin/python3 bench/bench_transformers.py export NAME OUTDIR
        the same model into OUTDIR/NAME.onnx with a dynamic batch axis (input "input", output "logits"),
        for the rows against ONNX Runtime at batch 1 and 8 (bench/bench_ort.py); nothing is done when
        OUTDIR/NAME.stamp matches the versions.

Models: torchvision's, random seeded weights (ViT's head, zeros by default, drawn), exported at opset
17 into BUILD_DIR/bench/models unless there already. gradcam: Model + Explainer (the automatic
layer: ViT's last block's first norm, Swin's final norm as torchvision permutes it), a forward alone,
then a forward + Grad-CAM of the top class. PyTorch: a forward under no_grad, then what
pytorch-grad-cam does: a forward with hooks on the same layer, zero_grad, backward of the top class,
the map from reshape_transform's (N, C, h, w). Medians of RUNS after one warm-up; both sides
alternate run by run. Targets: Grad-CAM <= 1.15x gradcam's forward; PyTorch (Debian's, with a generic
BLAS) is not a target to beat, its ratio is printed. The forward against ONNX Runtime is #23's bench.
"""
import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "python"))


def torch_model(name):
    torch.manual_seed(0)
    m = getattr(torchvision.models, name)(weights=None).eval()
    if name.startswith("vit"):
        torch.nn.init.normal_(m.heads.head.weight, std=0.02)
    return m


def layer_of(name, m):
    """The module whose output is gradcam's automatic layer, and how to read it as (N, C, h, w)."""
    if name.startswith("vit"):
        g = 224 // m.patch_size
        return m.encoder.layers[-1].ln_1, lambda t: t[:, 1:, :].reshape(t.size(0), g, g, t.size(2)).permute(0, 3, 1, 2)
    return m.norm, lambda t: t.permute(0, 3, 1, 2)  # Swin: (N, H, W, C)


def export(name, m, path):
    if not os.path.exists(path):  # (gradients enabled: no fused attention in the trace)
        torch.onnx.export(m, torch.randn(1, 3, 224, 224), path, input_names=["input"], output_names=["logits"],
                          opset_version=17)


def export_dynamic(name, outdir):
    """torch_model(name) at opset 17 with a dynamic batch axis (the rows against ONNX Runtime run
    batch 8 too), written to a temporary file and renamed into place; a stamp skips a re-export."""
    os.makedirs(outdir, exist_ok=True)
    path, st = (os.path.join(outdir, name + e) for e in (".onnx", ".stamp"))
    h = "dynamic-batch export 1 torch %s torchvision %s" % (torch.__version__, torchvision.__version__)
    if os.path.exists(path) and os.path.exists(st):
        with open(st) as f:
            if f.read().strip() == h:
                return
    import warnings
    warnings.filterwarnings("ignore")  # the tracer's notes on Python values in shapes
    m = torch_model(name)
    torch.onnx.export(m, torch.randn(1, 3, 224, 224), path + ".tmp", input_names=["input"], output_names=["logits"],
                      opset_version=17, dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    os.replace(path + ".tmp", path)
    with open(st, "w") as f:
        f.write(h + "\n")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "export":
        export_dynamic(sys.argv[2], sys.argv[3])
        return
    import gradcam  # (not for the export: that needs no library)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="vit_b_16,swin_t")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    mdir = os.path.join(os.path.abspath(a.build), "bench", "models")
    os.makedirs(mdir, exist_ok=True)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    xt = torch.from_numpy(x)
    rows = []
    for name in a.models.split(","):
        tm = torch_model(name)
        path = os.path.join(mdir, name + ".onnx")
        export(name, tm, path)
        layer, rt = layer_of(name, tm)
        gm = gradcam.Model(path)
        e = gradcam.Explainer(gm, input_shape=x.shape, n_threads=a.threads)
        ef = gradcam.Explainer(gm, input_shape=x.shape, n_threads=a.threads)
        st = {}

        def hook(mod, i, o):
            st["a"] = o
            if o.requires_grad:  # (not in the no_grad forward)
                o.register_hook(lambda g: st.__setitem__("g", g))

        h = layer.register_forward_hook(hook)
        t = {"fwd": [], "cam": [], "tfwd": [], "tcam": []}
        for r in range(a.runs + 1):
            t0 = time.perf_counter()
            ef.forward(x)
            t1 = time.perf_counter()
            e.forward(x)
            mp = e.explain("gradcam", target=int(e.scores()[0].argmax()))
            t2 = time.perf_counter()
            with torch.no_grad():
                tm(xt)
            t3 = time.perf_counter()
            tm.zero_grad()
            y = tm(xt)
            y[0, int(y[0].argmax())].backward()
            A, G = rt(st["a"]).detach(), rt(st["g"])
            cam = torch.relu((G.mean((2, 3), keepdim=True) * A).sum(1))
            t4 = time.perf_counter()
            if r:  # (the first run warms up)
                t["fwd"].append(t1 - t0)
                t["cam"].append(t2 - t1)
                t["tfwd"].append(t3 - t2)
                t["tcam"].append(t4 - t3)
        h.remove()
        ref = cam[0].numpy().astype(np.float64)
        err = float(np.abs(mp.raw[0, 0] - ref).max() / max(np.abs(ref).max(), 1e-30))
        med = {k: 1e3 * statistics.median(v) for k, v in t.items()}
        rows.append((name, e.layers[0], med, err))
        e.close()
        ef.close()
        gm.close()
    print("| model | layer | gradcam forward | gradcam Grad-CAM | Grad-CAM / forward | PyTorch forward | PyTorch Grad-CAM"
          " | gradcam / PyTorch (Grad-CAM) | map vs PyTorch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, layer, med, err in rows:
        r = med["cam"] / med["fwd"]
        print("| %s | `%s` | %.0f ms | %.0f ms | %.3f (%s, <= 1.15) | %.0f ms | %.0f ms | %.3f | %.1e of max |" % (
            name, layer, med["fwd"], med["cam"], r, "PASS" if r <= 1.15 else "FAIL", med["tfwd"], med["tcam"],
            med["cam"] / med["tcam"], err))


if __name__ == "__main__":
    main()
