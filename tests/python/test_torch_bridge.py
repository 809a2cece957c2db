"""gradcam.torch (pytorch-grad-cam's call shape over our engine) against a PyTorch reference written here
from pytorch-grad-cam's formulas (hooks + autograd; pytorch-grad-cam itself is not installed): within
1e-4 of the map's maximum (maps are in [0, 1]) on resnet18 with seeded random weights. The CAM methods
work at layer level, where float32 differences between CPUs near ReLU kinks do not reach the maps at
this tolerance. Also: module paths to ONNX tensors on four torchvision families, and misuse."""
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

import gradcam
import gradcam.torch as gt
from memcheck import rss_growth

TOL = 1e-4


@pytest.fixture(scope="module")
def r18():
    torch.manual_seed(1234)
    return torchvision.models.resnet18(weights=None).eval()


@pytest.fixture(scope="module")
def x():
    return torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(5))


def ref_cams(model, layers, x, classes, method):
    """pytorch-grad-cam's maps: per layer the CAM from its activation A and gradient G (hooks), ReLU,
    min-max per image, bilinear resize to the input; layers averaged and min-max scaled again."""
    acts, grads = {}, {}
    hs = []
    for i, layer in enumerate(layers):
        def fwd(_m, _i, o, i=i):
            acts[i] = o
            o.register_hook(lambda g: grads.__setitem__(i, g))
        hs.append(layer.register_forward_hook(fwd))
    xx = x.clone().requires_grad_(True)
    out = model(xx)
    if classes is None:
        classes = out.argmax(1).tolist()
    score = sum(out[b, c] for b, c in enumerate(classes))
    model.zero_grad()
    score.backward()
    for h in hs:
        h.remove()
    per_layer = []
    for i in range(len(layers)):
        A, G = acts[i].detach().double(), grads[i].double()
        if method == "gradcam":
            cam = (G.mean((2, 3), keepdim=True) * A).sum(1)
        elif method == "hirescam":
            cam = (G * A).sum(1)
        elif method == "layercam":
            cam = (G.clamp(min=0) * A).sum(1)
        elif method == "xgradcam":
            w = (G * A).sum((2, 3), keepdim=True) / (A.sum((2, 3), keepdim=True) + 1e-7)
            cam = (w * A).sum(1)
        elif method == "gradcam++":
            g2, g3 = G ** 2, G ** 3
            aij = g2 / (2 * g2 + A.sum((2, 3), keepdim=True) * g3 + 1e-6)
            aij = torch.where(G != 0, aij, torch.zeros_like(aij))
            w = (G.clamp(min=0) * aij).sum((2, 3), keepdim=True)
            cam = (w * A).sum(1)
        elif method in ("eigencam", "eigengradcam"):
            M = A if method == "eigencam" else G * A
            n, k, h, w_ = M.shape
            cams = []
            for b in range(n):
                R = M[b].reshape(k, h * w_).T
                Rc = R - R.mean(0)
                v = torch.linalg.svd(Rc, full_matrices=False)[2][0]
                if (R.mean(0) @ v) < 0:  # docs/methods.md's sign rule (pytorch-grad-cam's is SVD's)
                    v = -v
                cams.append((Rc @ v).reshape(h, w_))
            cam = torch.stack(cams)
        else:
            raise ValueError(method)
        cam = cam.clamp(min=0)
        per_layer.append(F.interpolate(scale(cam)[:, None], size=x.shape[2:], mode="bilinear",
                                       align_corners=False)[:, 0])
    return scale(torch.stack(per_layer).mean(0)).numpy()


def scale(c):
    lo = c.amin((1, 2), keepdim=True)
    hi = c.amax((1, 2), keepdim=True)
    return torch.where(hi > lo, (c - lo) / (hi - lo).clamp(min=1e-30), torch.zeros_like(c))


CLASSES = {"GradCAM": "gradcam", "HiResCAM": "hirescam", "GradCAMPlusPlus": "gradcam++", "XGradCAM": "xgradcam",
           "LayerCAM": "layercam", "EigenCAM": "eigencam", "EigenGradCAM": "eigengradcam"}


@pytest.mark.parametrize("cls", list(CLASSES))
def test_bridge_equals_the_reference(cls, r18, x):
    cam = getattr(gt, cls)(r18, target_layers=[r18.layer4[-1]])
    targets = [gt.ClassifierOutputTarget(281), gt.ClassifierOutputTarget(7)]
    got = cam(x, targets=targets)
    want = ref_cams(r18, [r18.layer4[-1]], x, [281, 7], CLASSES[cls])
    assert got.dtype == np.float32 and got.shape == (2, 96, 96)
    assert got.min() >= 0 and got.max() <= 1
    err = np.abs(got - want).max()
    print("%s: max |bridge - reference| = %.2e" % (cls, err))
    assert err <= TOL * max(1.0, np.abs(want).max()), (cls, err)
    cam.close()


@pytest.mark.parametrize("cls", ["GradCAM", "GradCAMPlusPlus"])
def test_two_layers_and_top_class(cls, r18, x):
    layers = [r18.layer3[-1], r18.layer4[-1]]
    cam = getattr(gt, cls)(r18, target_layers=layers)
    got = cam(x)  # targets=None: each sample's top class
    want = ref_cams(r18, layers, x, None, CLASSES[cls])
    assert np.abs(got - want).max() <= TOL
    assert len(cam._cache) == 1
    cam(x[:1])  # another shape: one more export, the first kept
    cam(x)
    assert len(cam._cache) == 2


def test_a_whole_stage_as_the_issue_writes_it(r18, x):
    """target_layers=[model.layer4] (a Sequential, as pytorch-grad-cam's README writes it): the stage's
    output, the same tensor as its last block's, hence the same maps as the reference's."""
    cam = gt.GradCAM(r18, target_layers=[r18.layer4])
    got = cam(x, targets=[gt.ClassifierOutputTarget(281), gt.ClassifierOutputTarget(7)])
    _, _, layers = cam._cache[tuple(x.shape)]
    assert layers == [gt.module_tensor(cam._cache[tuple(x.shape)][0], "layer4.1")]
    want = ref_cams(r18, [r18.layer4], x, [281, 7], "gradcam")
    assert np.abs(got - want).max() <= TOL
    cam.close()


def test_aug_smooth(r18, x):
    cam = gt.GradCAM(r18, target_layers=[r18.layer4[-1]])
    got = cam(x, targets=[gt.ClassifierOutputTarget(3)] * 2, aug_smooth=True)
    acc = 0
    for flip in (False, True):
        for f in (0.9, 1.0, 1.1):
            xa = (x.flip(3) if flip else x) * f
            c = ref_cams(r18, [r18.layer4[-1]], xa, [3, 3], "gradcam")
            acc = acc + (c[..., ::-1] if flip else c)
    assert np.abs(got - acc / 6).max() <= TOL


def test_perturbation_methods_run_our_engine(r18):
    """Score-CAM and Ablation-CAM: the engine's own maps (their weights differ from pytorch-grad-cam's
    as docs/python.md says), through the bridge as through gradcam.Explainer."""
    xs = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    for cls, method in ((gt.ScoreCAM, "scorecam"), (gt.AblationCAM, "ablationcam")):
        cam = cls(r18, target_layers=[r18.layer1[-1]])  # 64 channels: 64 masked inputs
        got = cam(xs, targets=[gt.ClassifierOutputTarget(5)])
        gm, e, layers = cam._cache[(1, 3, 64, 64)]
        e.forward(xs.numpy())
        assert np.array_equal(got, e.explain(method, 5).normalized[:, 0])
        cam.close()


def hooked_outputs(model, x):
    outs = {}
    hs = []
    for qn, mod in model.named_modules():
        if qn:
            def f(_m, _i, o, qn=qn):
                if qn not in outs and isinstance(o, torch.Tensor) and o.ndim == 4:
                    outs[qn] = o.clone()  # before any in-place op after the module changes it
            hs.append(mod.register_forward_hook(f))
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return outs


def small_vgg():
    m = torchvision.models.vgg11_bn(weights=None)
    m.avgpool = torch.nn.AdaptiveAvgPool2d(1)  # VGG's features and names, a small head
    m.classifier = torch.nn.Linear(512, 10)
    return m


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "densenet121", "vgg11_bn"])
def test_every_module_maps_to_its_tensor(name):
    """Every module with a 4-D output: the ONNX tensor found for it holds what PyTorch's module gives
    (BatchNorms folded into their Conv included)."""
    torch.manual_seed(3)
    model = small_vgg() if name == "vgg11_bn" else getattr(torchvision.models, name)(weights=None, num_classes=10)
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    buf = io.BytesIO()
    torch.onnx.export(model, x, buf, opset_version=gt.OPSET, input_names=["input"])
    gm = gradcam.Model(buf.getvalue())
    want = hooked_outputs(model, x)
    names = list(want)
    tensors = gt._layer_tensors(model, gm, names, x.numpy())
    got = gm.run(x.numpy(), outputs=sorted(set(tensors)))
    for qn, t in zip(names, tensors):
        w = want[qn].numpy()
        assert got[t].shape == w.shape and np.abs(got[t] - w).max() <= 1e-4 * max(1.0, np.abs(w).max()), (qn, t)
    assert len(names) > 30
    gm.close()


def test_scope_names():
    assert gt.onnx_scope("layer4.1.relu") == "/layer4/layer4.1/relu"
    assert gt.onnx_scope("features.17.conv.1.0") == "/features/features.17/conv/conv.1/conv.1.0"
    assert gt.onnx_scope("features.denseblock4.denselayer16") == "/features/denseblock4/denselayer16"


def test_misuse_raises(r18, x):
    with pytest.raises(NotImplementedError, match="reshape_transform"):
        gt.GradCAM(r18, target_layers=[r18.layer4], reshape_transform=lambda t: t)
    with pytest.raises(ValueError, match="not a submodule"):
        gt.GradCAM(r18, target_layers=[torch.nn.ReLU()])
    cam = gt.GradCAM(r18, target_layers=[r18.layer4[-1]])
    with pytest.raises(NotImplementedError, match="eigen_smooth"):
        cam(x, eigen_smooth=True)
    with pytest.raises(TypeError, match="seed"):
        cam(x, targets=[lambda o: o[0], lambda o: o[1]])
    with pytest.raises(ValueError, match="one per sample"):
        cam(x, targets=[gt.ClassifierOutputTarget(1)])
    with pytest.raises(ValueError, match="N, C, H, W"):
        cam(x[0])
    with pytest.raises(gradcam.Error, match="out of range"):
        cam(x, targets=[gt.ClassifierOutputTarget(5000)] * 2)
    cam.close()


def test_rss_flat_over_1000_calls(r18):
    """pytorch-grad-cam's most repeated complaint is memory growing call after call: 1000 calls of one
    GradCAM object (targets given, and None) after a warm-up of 100 grow resident memory by less than
    2 MB."""
    cam = gt.GradCAM(r18, target_layers=[r18.layer4[-1]])
    xs = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    targets = [gt.ClassifierOutputTarget(3)]

    def loop(n):
        for i in range(n):
            out = cam(xs, targets=targets if i % 2 else None)
            assert out.shape == (1, 32, 32)

    grown = rss_growth(loop)
    print("RSS growth over 1000 bridge calls: %d bytes" % grown)
    assert grown < 2 << 20, "RSS grew by %d bytes over 1000 calls" % grown
    cam.close()
