#!/usr/bin/env bash
# Proves a refactoring left the command's outputs unchanged: runs `gradcam explain --npy` with every
# method on the demo pictures and on three torchvision models (random seeded weights, exported by
# tests/export_models.py) with the tree's build and with a build of BASE_REV, and compares every
# .npy, .png and results.json byte for byte. Not part of `make test` (it builds BASE_REV).
#
# Usage: tests/outputs_identical.sh BASE_REV [BUILD_DIR]
#   BASE_REV   the commit before the change (e.g. the one before a redesign)
#   BUILD_DIR  the tree's build (default build; built when missing)
# Work files in ${TMPDIR:-/tmp}/gcam-identical/ (BASE_REV's build is kept there for reruns).
# Prints one line per run and 'N passed, M failed'; exit 1 on any difference.
set -uo pipefail
[ $# -ge 1 ] || { sed -n '2,12p' "$0"; exit 2; }
here="$(cd "$(dirname "$0")/.." && pwd)"
base_rev=$(git -C "$here" rev-parse --verify "$1^{commit}") || exit 2
build="${2:-$here/build}"
case "$build" in /*) ;; *) build="$PWD/$build" ;; esac
work="${TMPDIR:-/tmp}/gcam-identical"
mkdir -p "$work" || exit 1

[ -x "$build/gradcam" ] || make -C "$here" build BUILD="$build" >/dev/null || exit 1
src="$work/src-${base_rev:0:12}"
if [ ! -x "$src/build/gradcam" ]; then
    rm -rf "$src"
    git -C "$here" worktree prune
    git -C "$here" worktree add --detach "$src" "$base_rev" >/dev/null 2>&1 || exit 1
    cmake -S "$src" -B "$src/build" >/dev/null && cmake --build "$src/build" -j "$(nproc)" --target gradcam_cli >/dev/null ||
        { echo "outputs_identical: cannot build $base_rev" >&2; exit 1; }
fi
new="$build/gradcam"
old="$src/build/gradcam"

models="$work/models"
if [ ! -f "$models/densenet121.op13.onnx" ]; then
    /usr/bin/python3 "$here/tests/export_models.py" "$models" --only resnet18,mobilenet_v2,densenet121 >/dev/null ||
        { echo "outputs_identical: export_models.py failed" >&2; exit 1; }
fi

pass=0
fail=0
# run NAME MODEL INPUT... -- OPTIONS...
run() {
    local name=$1 rc_old rc_new
    shift
    local out_old="$work/out/$name.old" out_new="$work/out/$name.new"
    rm -rf "$out_old" "$out_new"
    "$old" explain "$@" -m all --npy --threads 2 -q -o "$out_old" >"$work/$name.old.log" 2>&1
    rc_old=$?
    "$new" explain "$@" -m all --npy --threads 2 -q -o "$out_new" >"$work/$name.new.log" 2>&1
    rc_new=$?
    local files nfiles diffs=""
    files=$(cd "$out_old" && find . -type f \( -name '*.npy' -o -name '*.png' -o -name results.json \) | sort)
    nfiles=$(echo "$files" | grep -c .)
    [ "$files" = "$(cd "$out_new" && find . -type f \( -name '*.npy' -o -name '*.png' -o -name results.json \) | sort)" ] ||
        diffs="different file lists"
    for f in $files; do
        cmp -s "$out_old/$f" "$out_new/$f" || diffs="$diffs ${f#./}"
    done
    if [ $rc_old = 0 ] && [ $rc_new = 0 ] && [ -z "$diffs" ] && [ "$nfiles" -gt 0 ]; then
        printf 'ok   %-28s %4d files identical\n' "$name" "$nfiles"
        pass=$((pass + 1))
    else
        printf 'FAIL %-28s exit %s / %s, %d files, differ: %s\n' "$name" $rc_old $rc_new "$nfiles" "${diffs:-none}"
        fail=$((fail + 1))
    fi
}

demo="$here/examples/demo"
run demo "$demo/shapes_cnn.onnx" "$demo/images" --labels "$demo/labels.txt" -k 2
run demo-layer "$demo/shapes_cnn.onnx" "$demo/images/demo_1.png" --labels "$demo/labels.txt" -c 0,2 \
    --alpha 0.3 --colormap viridis
for m in resnet18 mobilenet_v2 densenet121; do
    run "$m" "$models/$m.op13.onnx" "$models/$m.in.b1.npy" -k 2
done
run resnet18-layer3 "$models/resnet18.op13.onnx" "$models/resnet18.in.b1.npy" -c 7 \
    -l /layer3/layer3.1/relu_1/Relu_output_0
echo "$pass passed, $fail failed"
[ $fail = 0 ]
