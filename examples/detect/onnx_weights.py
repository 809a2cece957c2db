"""A demo model's weights back from its ONNX file (for the train scripts' from_onnx): the
exported graph's Conv / ConvTranspose nodes, named by the PyTorch module they came from."""
import torch


def module_path(node_name):
    """'/cv2/cv2.0/cv2.0.0/conv/Conv' (torch.onnx's scope names) -> 'cv2.0.0.conv'."""
    out, prev = [], None
    for c in node_name.strip("/").split("/")[:-1]:
        out.append(c[len(prev) + 1:] if prev is not None and c.startswith(prev + ".") else c)
        prev = c
    return ".".join(out)


def conv_nodes(path):
    """(initialisers by name as tensors, {module path: Conv/ConvTranspose node}) of an ONNX file."""
    import onnx
    from onnx import numpy_helper
    g = onnx.load(path).graph
    init = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in g.initializer}
    for n in g.node:  # the exporter shares equal constants through Identity nodes
        if n.op_type == "Identity" and n.input[0] in init:
            init[n.output[0]] = init[n.input[0]]
    convs = {module_path(n.name): n for n in g.node if n.op_type in ("Conv", "ConvTranspose")}
    return init, convs


def load_convs(model, init, convs, kinds):
    """Copies every conv's weight and bias into `model` (its conv modules of `kinds` must be exactly
    the graph's); returns the model in eval mode."""
    mods = dict(model.named_modules())
    assert set(convs) == {k for k, v in mods.items() if isinstance(v, kinds)}, sorted(convs)
    for k, n in convs.items():
        mods[k].weight.data.copy_(init[n.input[1]])
        mods[k].bias.data.copy_(init[n.input[2]])
    return model.eval()
