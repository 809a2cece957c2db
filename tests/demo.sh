#!/usr/bin/env bash
# `make demo`: explain the bundled shape classifier's four two-shape pictures for their top-2
# classes with Grad-CAM, Guided Backprop and Guided Grad-CAM (examples/demo/README.md), then the
# bundled shape detector's every detection and segmenter's every segment on four scenes each
# (examples/detect/README.md, examples/segment/README.md).
#   tests/demo.sh [BUILD_DIR [OUT_DIR]]     (defaults: build, gradcam-out/demo)
set -euo pipefail
build=${1:-build}
out=${2:-gradcam-out/demo}
top=$(cd "$(dirname "$0")/.." && pwd)
demo=$top/examples/demo
det=$top/examples/detect
seg=$top/examples/segment
for f in "$build/gradcam" "$demo/shapes_cnn.onnx" "$demo/labels.txt" "$demo/images/demo_1.png" \
         "$det/shapes_detector.onnx" "$det/labels.txt" "$det/images/det_1.png" \
         "$seg/shapes_segmenter.onnx" "$seg/labels.txt" "$seg/images/seg_1.png"; do
  [ -e "$f" ] || { echo "demo: $f is missing" >&2; exit 1; }
done

echo "gradcam explain: the demo model on examples/demo/images/ (4 pictures, two shapes each)"
"$build/gradcam" explain "$demo/shapes_cnn.onnx" "$demo/images" --labels "$demo/labels.txt" \
  --preprocess raw -k 2 -m gradcam,guided-backprop,guided-gradcam -o "$out"

report=$(cd "$out" && pwd -P)/report.html
cat <<EOF

Open the report in a browser:
  $report

Each picture holds two shapes of different classes (like the paper's cat and dog), and the model
is asked about its two best-scoring classes in turn. In each row (one class) look at:
  - Grad-CAM (with its box): lights only the shape of the class asked for;
  - Guided Backprop: fine edges of BOTH shapes, whichever class is asked for;
  - Guided Grad-CAM (their product): the fine edges of the asked-for shape only.
Grad-CAM is class-discriminative, Guided Backprop is not: the point of Selvaraju et al.'s Figure 1.
Per-image files and results.json are in the same folder; examples/demo/README.md tells the story.
EOF

echo
echo "gradcam explain --task detect: the demo detector on examples/detect/images/ (4 scenes)"
"$build/gradcam" explain "$det/shapes_detector.onnx" "$det/images" --task detect --labels "$det/labels.txt" \
  -m hirescam,gradcam,guided-backprop -o "$out/detect"
dreport=$(cd "$out/detect" && pwd -P)/report.html
cat <<EOF2

Open the detector's report:
  $dreport

Each scene's detections are listed and boxed on the picture; each detection gets a row of maps.
HiResCAM (the default for detections) points at the one object detected, even beside a twin of
its class; Grad-CAM at the same layers explains the class, so it may light both twins.
docs/detection.md says why.
EOF2

echo
echo "gradcam explain --task segment: the demo segmenter on examples/segment/images/ (4 scenes)"
"$build/gradcam" explain "$seg/shapes_segmenter.onnx" "$seg/images" --task segment --labels "$seg/labels.txt" \
  -m hirescam,gradcam,guided-backprop -o "$out/segment"
sreport=$(cd "$out/segment" && pwd -P)/report.html
cat <<EOF2

Open the segmenter's report:
  $sreport

Each class the segmenter predicts is a segment (tinted on the picture), explained over its pixels.
EOF2
