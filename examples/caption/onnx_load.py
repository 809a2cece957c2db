"""A demo model's weights back from its ONNX file, into the PyTorch module it was exported from
(used by train_captioner.py, train_vqa.py and the tests, so that PyTorch and gradcam run the very
same float32 numbers). Nodes are matched to modules by torch.onnx's scope names
('/cnn/cnn.2/Conv' -> 'cnn.2'); LSTM gates go back from ONNX's order (i, o, f, c) to PyTorch's
(i, f, g, o)."""
import importlib.util
import os

import numpy as np
import torch
import torch.nn as nn

# torch.onnx's scope names -> module paths: examples/detect's loader (loaded by file, so that its
# folder, which has a scenes.py of its own, stays off sys.path)
_spec = importlib.util.spec_from_file_location(
    "onnx_weights", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "detect", "onnx_weights.py"))
_ow = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ow)
module_path = _ow.module_path


def _lstm_gates(w):
    """ONNX (i, o, f, c) blocks along axis 0 -> PyTorch (i, f, g, o)."""
    i, o, f, c = np.split(w, 4, axis=0)
    return np.concatenate([i, f, c, o], 0)


def load(model, path):
    """Copies every Conv, Gemm / MatMul(+Add), Gather (embedding) and LSTM weight of the ONNX file into
    `model`; every parameter of the model must be written exactly once. Returns the model (eval)."""
    import onnx
    from onnx import numpy_helper
    g = onnx.load(path).graph
    init = {t.name: numpy_helper.to_array(t).copy() for t in g.initializer}
    for n in g.node:  # the exporter shares equal constants through Identity nodes
        if n.op_type == "Identity" and n.input[0] in init:
            init[n.output[0]] = init[n.input[0]]
    mods = dict(model.named_modules())
    params = dict(model.named_parameters())
    done = set()

    def put(name, value):
        p = params[name]
        v = torch.from_numpy(np.ascontiguousarray(value, np.float32)).reshape(p.shape)
        p.data.copy_(v)
        assert name not in done, name
        done.add(name)

    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for n in g.node:
        mp = module_path(n.name)
        if n.op_type == "Conv":
            put(mp + ".weight", init[n.input[1]])
            if len(n.input) > 2:
                put(mp + ".bias", init[n.input[2]])
        elif n.op_type == "Gemm":
            trans = any(a.name == "transB" and a.i for a in n.attribute)
            put(mp + ".weight", init[n.input[1]] if trans else init[n.input[1]].T)
            put(mp + ".bias", init[n.input[2]])
        elif n.op_type == "MatMul" and n.input[1] in init:   # a Linear on (N, L, F): MatMul by W^T, then Add
            put(mp + ".weight", init[n.input[1]].T)
            add = [c for c in consumers.get(n.output[0], []) if c.op_type == "Add"]
            b = next(i for i in add[0].input if i in init)
            put(mp + ".bias", init[b])
        elif n.op_type == "Gather" and n.input[0] in init and isinstance(mods.get(mp), nn.Embedding):
            put(mp + ".weight", init[n.input[0]])
        elif n.op_type == "LSTM":
            W, R = init[n.input[1]][0], init[n.input[2]][0]
            B = init[n.input[3]][0]
            put(mp + ".weight_ih_l0", _lstm_gates(W))
            put(mp + ".weight_hh_l0", _lstm_gates(R))
            put(mp + ".bias_ih_l0", _lstm_gates(B[:len(B) // 2]))
            put(mp + ".bias_hh_l0", _lstm_gates(B[len(B) // 2:]))
    missing = set(params) - done
    assert not missing, "not in the ONNX file: %s" % sorted(missing)
    return model.eval()
