#!/usr/bin/env bash
# `make demo`: until the bundled demo model lands, export a small torchvision model (random,
# seeded weights) and show what gradcam sees in it, then run it on a random image.
set -euo pipefail
build=${1:-build}
work=$build/demo
mkdir -p "$work"
if [ ! -f "$work/resnet18.onnx" ]; then
  /usr/bin/python3 - "$work" <<'PY'
import sys, torch, torchvision, numpy as np
torch.manual_seed(0)
m = torchvision.models.resnet18(weights=None).eval()
x = torch.randn(1, 3, 224, 224)
torch.onnx.export(m, x, sys.argv[1] + "/resnet18.onnx", input_names=["input"], output_names=["logits"],
                  opset_version=13, dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch"}})
np.save(sys.argv[1] + "/image.npy", x.numpy()[0])
PY
fi
"$build/gradcam" info "$work/resnet18.onnx" > "$work/info.txt"
head -40 "$work/info.txt"
echo "..."
"$build/gradcam" run "$work/resnet18.onnx" "$work/image.npy" -
