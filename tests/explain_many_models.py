#!/usr/bin/python3
"""Models for tests/test_explain_many.c (gcam_explain_many against a loop of gcam_explain):

  heavytail.onnx  a small CNN on 32x32 inputs whose head after the Grad-CAM layer is three
                  fully-connected layers holding ~25 MiB of weights (more than the 16 MiB from
                  which the batched tail is used), like VGG's head at a small size
  resnet18.onnx   torchvision resnet18 (random weights, fixed seed) on 64x64: its tail after the
                  last block is GAP + FC (2 MB), where gcam_explain_many keeps the loop

Both with a symbolic batch dimension, opset 13. Usage: explain_many_models.py OUTDIR.
Fails (never skips) when torch/torchvision/onnx are missing."""
import os
import sys

import torch
import torch.nn as nn
import torchvision


class HeavyTail(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))  # (N, 32, 8, 8)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 8 * 8, 2560), nn.ReLU(), nn.Dropout(),
            nn.Linear(2560, 512), nn.ReLU(), nn.Dropout(), nn.Linear(512, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def export(model, x, path):
    tmp = path + ".tmp"
    torch.onnx.export(model, x, tmp, opset_version=13, training=torch.onnx.TrainingMode.EVAL,
                      do_constant_folding=True, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    os.replace(tmp, path)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    m = HeavyTail().eval()
    with torch.no_grad():  # larger logits than the default init gives: maps well above rounding
        m.classifier[-1].weight.mul_(20.0)
    export(m, torch.randn(1, 3, 32, 32), os.path.join(out, "heavytail.onnx"))
    torch.manual_seed(1)
    r = torchvision.models.resnet18(weights=None).eval()
    export(r, torch.randn(1, 3, 64, 64), os.path.join(out, "resnet18.onnx"))
    print("explain_many_models: wrote heavytail.onnx and resnet18.onnx to", out)


if __name__ == "__main__":
    main()
