"""A bridge for pytorch-grad-cam users: the same classes and call shape, our engine underneath.

    from gradcam.torch import GradCAM, ClassifierOutputTarget
    cam = GradCAM(model, target_layers=[model.layer4[-1]])
    maps = cam(input_tensor, targets=[ClassifierOutputTarget(281)])   # np.float32 (N, H, W) in [0, 1]

The module is exported to ONNX once per input shape (torch.onnx.export, eval mode, kept in memory), the
target layer modules are found in the exported graph by their module scope, and the maps come from
gradcam's engine. What differs from pytorch-grad-cam: docs/python.md, "The PyTorch bridge".
"""
import io
import warnings

import numpy as np
import torch

from . import core

__all__ = ["GradCAM", "HiResCAM", "GradCAMPlusPlus", "XGradCAM", "LayerCAM", "EigenCAM", "EigenGradCAM",
           "ScoreCAM", "AblationCAM", "ClassifierOutputTarget", "SemanticSegmentationTarget", "module_tensor",
           "onnx_scope"]

OPSET = 13  # torch 1.13 exports opsets 13-17 alike for these models; 13 is what the test suites use


class ClassifierOutputTarget:
    """Class `category`'s score, model_output[..., category], as pytorch-grad-cam's."""

    def __init__(self, category):
        self.category = category

    def __call__(self, model_output):
        if model_output.ndim == 1:
            return model_output[self.category]
        return model_output[:, self.category]


class SemanticSegmentationTarget:
    """Sum of class `category`'s scores weighted by `mask` (H, W) over a (C, H, W) output, as
    pytorch-grad-cam's."""

    def __init__(self, category, mask):
        self.category = category
        self.mask = mask

    def __call__(self, model_output):
        m = torch.as_tensor(np.asarray(self.mask), dtype=model_output.dtype)
        return (model_output[self.category, :, :] * m).sum()


def onnx_scope(qualname):
    """The scope torch.onnx.export gives the nodes of a module (its first call), from its name in
    named_modules(): each level is the attribute's name, a numeric child (a Sequential's) joined to
    its parent's name: "layer4.1.relu" -> "/layer4/layer4.1/relu", "features.17.conv.1.0" ->
    "/features/features.17/conv/conv.1/conv.1.0"."""
    parts = qualname.split(".")
    levels, start = [], 0
    for i, p in enumerate(parts):
        if not p.isdigit():
            start = i
        levels.append(".".join(parts[start:i + 1]))
    return "/" + "/".join(levels)


def module_tensor(gmodel, qualname):
    """The ONNX tensor holding a module's output: produced inside its scope and read outside it (or a
    graph output). Raises ValueError when the graph has no such tensor."""
    prefix = onnx_scope(qualname) + "/"
    nodes = gmodel.nodes
    inside = [n for n in nodes if n.name and n.name.startswith(prefix)]
    if not inside:
        raise ValueError("target layer '%s': no node of scope %s in the exported graph (a module that computes "
                         "nothing, e.g. Identity or Dropout in eval mode, has no output of its own)" %
                         (qualname, prefix[:-1]))
    read_outside = {t for n in nodes if not (n.name and n.name.startswith(prefix)) for t in n.inputs}
    read_outside |= {o.name for o in gmodel.outputs}
    crossing = [t for n in inside for t in n.outputs if t in read_outside]
    if not crossing:
        raise ValueError("target layer '%s': nothing computed in scope %s is read outside it" % (qualname,
                                                                                                  prefix[:-1]))
    return crossing[-1]  # the last value computed is the module's result


def _layer_tensors(model, gm, qualnames, x):
    """The ONNX tensor of each target module. A module without nodes of its own (a BatchNorm that the
    export folded into the Conv before it, Identity, Dropout in eval mode) outputs what the module
    producing its input outputs (exactly, or up to the folding's rounding): that module's tensor is
    taken, found by a hooked forward in PyTorch."""
    out, missing = [], []
    for n in qualnames:
        try:
            out.append(module_tensor(gm, n))
        except ValueError as e:
            out.append(None)
            missing.append((len(out) - 1, n, e))
    if not missing:
        return out
    seen = {}  # qualname -> (first input, output) of its first call

    def hook(qn):
        def f(_m, inp, o):
            if qn not in seen:
                seen[qn] = (inp[0] if inp else None, o)
        return f

    handles = [m.register_forward_hook(hook(qn)) for qn, m in model.named_modules() if qn]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.from_numpy(x))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for i, n, err in missing:
        inp = seen.get(n, (None, None))[0]
        for qn, (_, o) in seen.items():
            if qn != n and inp is not None and o is inp:
                try:
                    out[i] = module_tensor(gm, qn)
                    break
                except ValueError:
                    continue
        if out[i] is None:
            raise err
    return out


def _category(t):
    """The class of a ClassifierOutputTarget (ours or pytorch-grad-cam's), else None."""
    if type(t).__name__ == "ClassifierOutputTarget" and hasattr(t, "category"):
        c = t.category
        if isinstance(c, torch.Tensor):
            c = int(c.item())
        return c
    return None


class BaseCAM:
    """pytorch-grad-cam's BaseCAM call shape over gradcam's engine."""

    method = None

    def __init__(self, model, target_layers, reshape_transform=None, use_cuda=False, n_threads=0, opset=OPSET,
                 **method_options):
        if reshape_transform is not None:
            raise NotImplementedError("gradcam.torch: reshape_transform (transformers' token maps) is not supported "
                                      "yet; the target layers must give (N, C, H, W) activations")
        if use_cuda:
            warnings.warn("gradcam.torch runs on the CPU; use_cuda is ignored", stacklevel=2)
        if not isinstance(model, torch.nn.Module):
            raise TypeError("model: expected a torch.nn.Module, got %s" % type(model).__name__)
        self.model = model
        self.target_layers = list(target_layers)
        if not self.target_layers:
            raise ValueError("target_layers: give at least one module")
        names = {id(m): n for n, m in model.named_modules()}
        self.layer_names = []
        for layer in self.target_layers:
            if id(layer) not in names or names[id(layer)] == "":
                raise ValueError("target_layers: %s is not a submodule of the model" % type(layer).__name__)
            self.layer_names.append(names[id(layer)])
        self.n_threads = n_threads
        self.opset = opset
        self.options = method_options
        self._cache = {}  # input shape -> (gradcam.Model, gradcam.Explainer, ONNX layer names)

    # pytorch-grad-cam objects are context managers too
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Frees every export and explainer (also after changing the model's weights: the next call
        exports again)."""
        cache, self._cache = self._cache, {}
        for m, e, _ in cache.values():
            e.close()
            m.close()

    reset = close

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _explainer(self, x):
        key = tuple(x.shape)
        hit = self._cache.get(key)
        if hit:
            return hit
        was_training = self.model.training
        buf = io.BytesIO()
        try:
            self.model.eval()
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(self.model, torch.from_numpy(x), buf, opset_version=self.opset,
                                  input_names=["input"], do_constant_folding=True)
        finally:
            self.model.train(was_training)
        gm = core.Model(buf.getvalue())
        try:
            layers = _layer_tensors(self.model, gm, self.layer_names, x)
            e = core.Explainer(gm, input_shape=x.shape, layers=layers, explain_probability=True,
                               n_threads=self.n_threads, **self._explainer_options())
        except Exception:
            gm.close()
            raise
        self._cache[key] = (gm, e, layers)
        return self._cache[key]

    def _explainer_options(self):
        return {}

    def _target(self, targets, n, scores_shape):
        if targets is None:
            return None  # each sample's top class (the explainer's argmax of the model output)
        targets = list(targets)
        if isinstance(targets[0] if targets else None, core.Target) and len(targets) == 1:
            return targets[0]
        if len(targets) != n:
            raise ValueError("targets: %d for a batch of %d (one per sample)" % (len(targets), n))
        cats = [_category(t) for t in targets]
        if all(c is not None for c in cats):
            return core.Target.classes_(cats)
        if all(type(t).__name__ == "SemanticSegmentationTarget" for t in targets):
            if len(scores_shape) != 4:
                raise ValueError("SemanticSegmentationTarget: the model output is %s, not (N, C, H, W)" %
                                 (scores_shape,))
            w = np.zeros(scores_shape, np.float32)
            for i, t in enumerate(targets):
                w[i, t.category] = np.asarray(t.mask, np.float32)
            return core.Target.weights(w)
        bad = next(t for t, c in zip(targets, cats) if c is None)
        raise TypeError("targets: gradcam.torch takes ClassifierOutputTarget or SemanticSegmentationTarget objects "
                        "(one per sample) or one gradcam.Target, not %s: the engine needs the target as a "
                        "seed, not as a Python function" % type(bad).__name__)

    def _cams(self, x, targets):
        _, e, _ = self._explainer(x)
        e.forward(x)
        shape = e.scores().shape if targets is not None else None
        t = self._target(targets, x.shape[0], shape)
        mp = e.explain(self.method, target=t)
        return mp.normalized[:, 0]

    def __call__(self, input_tensor, targets=None, aug_smooth=False, eigen_smooth=False):
        if eigen_smooth:
            raise NotImplementedError("gradcam.torch: eigen_smooth is not supported (use EigenCAM/EigenGradCAM)")
        if isinstance(input_tensor, torch.Tensor):
            x = input_tensor.detach().to("cpu", torch.float32).contiguous().numpy()
        else:
            x = np.ascontiguousarray(input_tensor, dtype=np.float32)
        if x.ndim != 4:
            raise ValueError("input_tensor: (N, C, H, W), got shape %s" % (tuple(x.shape),))
        if not aug_smooth:
            return self._cams(x, targets)
        # pytorch-grad-cam's test-time augmentation (ttach): horizontal flip x {0.9, 1, 1.1} x the
        # input, each map flipped back, the six maps averaged (not re-normalised)
        acc = np.zeros((x.shape[0],) + x.shape[2:], np.float32)
        for flip in (False, True):
            for f in (0.9, 1.0, 1.1):
                xa = np.ascontiguousarray(x[..., ::-1]) if flip else x
                xa = (xa * np.float32(f)).astype(np.float32)
                cam = self._cams(xa, targets)
                acc += cam[..., ::-1] if flip else cam
        return (acc / np.float32(6)).astype(np.float32)


class GradCAM(BaseCAM):
    method = "gradcam"


class HiResCAM(BaseCAM):
    method = "hirescam"


class GradCAMPlusPlus(BaseCAM):
    method = "gradcam++"


class XGradCAM(BaseCAM):
    method = "xgradcam"


class LayerCAM(BaseCAM):
    method = "layercam"


class EigenCAM(BaseCAM):
    method = "eigencam"


class EigenGradCAM(BaseCAM):
    method = "eigengradcam"


class ScoreCAM(BaseCAM):
    """Score-CAM with the paper's weights (softmax over the classes of each masked input's output), 16
    masked inputs per forward unless batch_size is set."""

    method = "scorecam"
    batch_size = 16

    def _explainer_options(self):
        return {"batch_size": int(self.batch_size)}


class AblationCAM(BaseCAM):
    """Ablation-CAM: every channel of the layer set to 0 in turn, only the layers after it re-run.
    batch_size and ratio_channels_to_ablate are accepted for pytorch-grad-cam's call shape; every
    channel is ablated."""

    method = "ablationcam"

    def __init__(self, model, target_layers, reshape_transform=None, use_cuda=False, batch_size=32,
                 ratio_channels_to_ablate=1.0, **kw):
        if ratio_channels_to_ablate != 1.0:
            raise NotImplementedError("gradcam.torch.AblationCAM ablates every channel (ratio_channels_to_ablate=1.0)")
        super().__init__(model, target_layers, reshape_transform, use_cuda, **kw)
        self.batch_size = batch_size
