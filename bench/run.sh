#!/bin/sh
# gradcam vs PyTorch, side by side (issues #6 and #18), and vs ONNX Runtime (issue #23): `make bench`, or bench/run.sh BUILD_DIR [--smoke].
#
# Environment (all optional):
#   BENCH_MODELS          models (default: resnet50 vgg16 mobilenet_v2 densenet121 efficientnet_b0;
#                         "none": no classifier, e.g. for the detection rows alone)
#   BENCH_BATCH           batch sizes (default: "1 8")
#   BENCH_RUNS            timed runs per row after one warm-up (default 10)
#   BENCH_SCORECAM_MODELS models with a Score-CAM row, batch 1 only (default: all of BENCH_MODELS;
#                         "" or "none" to skip)
#   BENCH_SCORECAM_RUNS   timed Score-CAM runs at most (default 3; one run is up to minutes on 2 cores,
#                         so BENCH_ROW_BUDGET usually leaves 1 on the big models)
#   BENCH_ROW_BUDGET      seconds one row may take: a row whose warm-up shows BENCH_RUNS runs would
#                         take longer gets fewer, at least BENCH_MIN_RUNS (default 3), the same rule
#                         on both sides; the table shows each count (default 30; 0: always BENCH_RUNS).
#                         Score-CAM has no warm-up run (one forward instead): its first run decides,
#                         down to 1 run
#   BENCH_THREADS         threads for each side (default 2)
#   BENCH_SIZE            input height = width (default 224)
#   BENCH_DETECT          0: skip the detection rows (default 1): "every detection of one picture"
#                         (issue #18) on the demo detector examples/detect/shapes_detector.onnx, one
#                         128x128 scene of 16 shapes (bench/bench_detect_torch.py picture), HiResCAM
#                         (--task detect's default) and Grad-CAM: gradcam's bench/bench_detect.c
#                         against a pytorch-grad-cam-style loop (bench/bench_detect_torch.py), the
#                         same weights, BENCH_RUNS runs, both sides' detections and layers checked equal
#   BENCH_COMMAND         0: skip the command's row (default 1): `gradcam explain` on a folder of 16 .npy
#                         inputs against the API's Grad-CAM per input, resnet50 (bench/bench_command.py;
#                         BENCH_COMMAND_RUNS turns, default 5; BENCH_COMMAND_CLOCK wall (default) or cpu)
#   BENCH_DOC             where to write the report (default docs/performance.md for the full default
#                         set, BUILD_DIR/bench/performance.md for a subset; "none": do not write)
#   BENCH_ORT             0: skip the rows against ONNX Runtime (default 1; issue #23, bench/bench_ort.py):
#                         onnxruntime-node (bench/ort/package.json) installed into BUILD_DIR/bench/ort by
#                         `npm ci --ignore-scripts` (node and npm from deps/bench-packages.txt when
#                         missing); per model and batch, ONNX Runtime's forward (bench/ort/ort_bench.js)
#                         beside gradcam's forward, Grad-CAM and Guided Backprop, turn by turn
#                         (bench/lockstep.py), and the ratios; then the cold start of resnet50 and
#                         vit_b_16 (`gradcam info` time and peak RSS, a forward's peak RSS). Written as
#                         the section "gradcam vs ONNX Runtime" of docs/performance.md when the run is full
#                         (default models, batch "1 8", BENCH_RUNS >= 10), else BUILD_DIR/bench/ort.md
#                         (BENCH_DOC: there instead; "none": nowhere). BENCH_RUNS, BENCH_BATCH,
#                         BENCH_THREADS, BENCH_SIZE, BENCH_ROW_BUDGET and BENCH_MIN_RUNS apply.
#                         OMP_WAIT_POLICY=passive: gradcam's OpenMP threads sleep between parallel
#                         regions and ORT's intra-op threads do not spin either (on a machine loaded by
#                         other work, spinning threads made gradcam's timings a measure of the scheduler:
#                         docs/performance.md); BENCH_CLOCK=cpu: both sides time CPU time (with
#                         BENCH_THREADS=1, the work done whatever else runs; labelled)
#   BENCH_ORT_MODELS      its models (default: resnet50 mobilenet_v2 efficientnet_b0 densenet121 vgg16
#                         vit_b_16 swin_t when BENCH_MODELS is unset, else BENCH_MODELS)
#   BENCH_ORT_BLAS_UNSET  1: the ONNX Runtime rows once more with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
#                         unset on both sides, written as a labelled subsection of the same file
#                         (default 0)
#   BENCH_REPORT          0: skip the report.html rows (default 1): bench/bench_report.py, a linked
#                         page of 10 000 inputs opened in headless Chromium, and the command's peak
#                         RSS at 4 and 1000 inputs of a tiny model
# --smoke: mobilenet_v2, 64x64, batch 1, one run of every row but Score-CAM, both sides, and one run
# of each detection row (unless BENCH_DETECT=0); checks that the table rows come out with a ratio
# (tests/bench.cmake runs it in ctest); writes no report.
# Each group of rows of each (model, batch) runs on both sides at once, each side in a process of
# its own, turn by turn (bench/lockstep.py: one runs while the other waits, and they alternate run by
# run, PyTorch first on every other group): the VM's speed drifts over seconds, and this way it hits
# both sides of a ratio alike. Grad-CAM and its top-5 run in one process per side, back to back
# (top-5 is compared with top-1). A side's peak RSS is the largest over its processes of that
# (model, batch).
set -eu
BUILD=${1:-build}
SMOKE=0
[ "${2:-}" = "--smoke" ] && SMOKE=1
SRC=$(cd "$(dirname "$0")/.." && pwd)
case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
PY=/usr/bin/python3
OUT=$BUILD/bench
MODELDIR=$OUT/models
mkdir -p "$MODELDIR"
ALL_MODELS="resnet50 vgg16 mobilenet_v2 densenet121 efficientnet_b0"

MODELS=${BENCH_MODELS:-$ALL_MODELS}
[ "$MODELS" = none ] && MODELS=""
DETECT=${BENCH_DETECT:-1}
BATCHES=${BENCH_BATCH:-1 8}
RUNS=${BENCH_RUNS:-10}
SC_MODELS=${BENCH_SCORECAM_MODELS-$MODELS}
[ "$SC_MODELS" = none ] && SC_MODELS=""
SC_RUNS=${BENCH_SCORECAM_RUNS:-3}
THREADS=${BENCH_THREADS:-2}
BUDGET=${BENCH_ROW_BUDGET:-30}
MIN_RUNS=${BENCH_MIN_RUNS:-3}
SIZE=${BENCH_SIZE:-224}
FLAG=""
if [ $SMOKE = 1 ]; then
    # Score-CAM is left out: one forward per channel (1280 here) would take minutes
    MODELS=mobilenet_v2 BATCHES=1 RUNS=1 SC_MODELS="" SC_RUNS=1 SIZE=64 FLAG=--smoke
    OUT=$OUT/smoke
    MODELDIR=$OUT/models # exported with dynamic height and width
    mkdir -p "$MODELDIR"
fi

DRIVER=$BUILD/bench/bench_gradcam
if [ $SMOKE = 0 ]; then
    # the driver is a target of the build (tests/bench.cmake); compile it by hand if the build has
    # no tests (BUILD_TESTING=OFF)
    if ! cmake --build "$BUILD" --target bench_gradcam >"$OUT/build.log" 2>&1; then
        echo "bench: no bench_gradcam target in $BUILD, compiling it against $BUILD/libgradcam.a"
        cc -O2 -std=c17 -I"$SRC/include" "$SRC/bench/bench_gradcam.c" -o "$DRIVER" "$BUILD/libgradcam.a" \
            $(pkg-config --libs libprotobuf-c openblas libpng libjpeg) -fopenmp -lm
    fi
fi
[ -x "$DRIVER" ] || { echo "bench: $DRIVER is missing (build the project first)" >&2; exit 1; }
DDRIVER=$BUILD/bench/bench_detect
if [ "$DETECT" != 0 ]; then
    if [ $SMOKE = 0 ] && ! cmake --build "$BUILD" --target bench_detect >>"$OUT/build.log" 2>&1; then
        echo "bench: no bench_detect target in $BUILD, compiling it against $BUILD/libgradcam.a"
        cc -O2 -std=c17 -I"$SRC/include" "$SRC/bench/bench_detect.c" -o "$DDRIVER" "$BUILD/libgradcam.a" \
            $(pkg-config --libs libprotobuf-c openblas libpng libjpeg) -fopenmp -lm
    fi
    [ -x "$DDRIVER" ] || { echo "bench: $DDRIVER is missing (build the project first)" >&2; exit 1; }
fi

RES=$OUT/results.tsv
META=$OUT/meta.tsv
: >"$RES"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')

# the two sides of a group of rows, turn by turn (bench/lockstep.py): FIRST (torch|gradcam) RSSKIND
# WHAT TORCH_CMD... :: GRADCAM_CMD...; their RESULT/DETS/RSS lines go to the results, prefixed with
# the side (RSS renamed RSSKIND)
both() {
    f=$1 k=$2 what=$3
    shift 3
    [ "$f" = torch ] && f=a || f=b
    if ! "$PY" "$SRC/bench/lockstep.py" --first $f "$OUT/torch.out" "$OUT/torch.err" "$OUT/gradcam.out" \
        "$OUT/gradcam.err" -- "$@"; then
        echo "bench: FAILED: $what" >&2
        for s in torch gradcam; do cat "$OUT/$s.err" "$OUT/$s.out" >&2; done
        exit 1
    fi
    for s in torch gradcam; do
        grep -E '^(RESULT|DETS)' "$OUT/$s.out" | sed "s/^/$s\t/" >>"$RES"
        grep '^RSS' "$OUT/$s.out" | sed "s/^RSS/$k/; s/^/$s\t/" >>"$RES"
    done
}

# a group of rows of classifier $m at batch $b: FIRST RSSKIND ROWS RUNS [EXTRA...]
pair() {
    f=$1 k=$2 rows=$3 n=$4
    shift 4
    both "$f" "$k" "$m batch $b, rows $rows" \
        "$PY" "$SRC/bench/bench_torch.py" run "$m" "$MODELDIR/$m.pt" --batch "$b" --size "$SIZE" --runs "$n" \
        --threads "$THREADS" --budget "$BUDGET" --rows "$rows" "$@" $FLAG :: \
        "$DRIVER" "$MODELDIR/$m.onnx" --name "$m" --batch "$b" --size "$SIZE" --runs "$n" \
        --threads "$THREADS" --budget "$BUDGET" --rows "$rows" "$@" $FLAG
}

# onnxruntime-node into $OUT/ort (node and npm from deps/bench-packages.txt when missing), then the
# rows against ONNX Runtime (bench/bench_ort.py) and, with BENCH_ORT_BLAS_UNSET=1, again with OpenBLAS's
# CPU settings unset
ort_rows() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        pk=$(grep -v '^\s*#' "$SRC/deps/bench-packages.txt" | tr '\n' ' ')
        if [ "$(id -u)" != 0 ]; then
            echo "bench: node and npm are needed for the ONNX Runtime rows; run as root: apt-get install -y $pk" >&2
            return 1
        fi
        echo "bench: installing $pk"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pk || return 1
    fi
    d=$OUT/ort
    mkdir -p "$d"
    # (its postinstall would download GPU providers and fails offline: the CPU library is in the package)
    if ! cmp -s "$SRC/bench/ort/package-lock.json" "$d/package-lock.json" || [ ! -d "$d/node_modules/onnxruntime-node" ]; then
        echo "bench: installing onnxruntime-node into $d (npm ci --ignore-scripts) ..."
        cp "$SRC/bench/ort/package.json" "$SRC/bench/ort/package-lock.json" "$d/" &&
            (cd "$d" && npm ci --ignore-scripts --no-audit --no-fund >"$d/npm.log" 2>&1) ||
            { cat "$d/npm.log" >&2; rm -f "$d/package-lock.json"; return 1; }
    fi
    NODE_PATH=$d/node_modules node -e "require('onnxruntime-node')" ||
        { echo "bench: onnxruntime-node does not load from $d/node_modules" >&2; return 1; }
    ORT_ALL="resnet50 mobilenet_v2 efficientnet_b0 densenet121 vgg16 vit_b_16 swin_t"
    om=${BENCH_ORT_MODELS:-${BENCH_MODELS:-$ORT_ALL}}
    [ "$om" = none ] && return 0
    if [ -n "${BENCH_DOC+x}" ]; then odoc=$BENCH_DOC
    elif [ "$om" = "$ORT_ALL" ] && [ "$BATCHES" = "1 8" ] && [ "$RUNS" -ge 10 ]; then odoc=$SRC/docs/performance.md
    else odoc=$OUT/ort.md; fi
    set -- "$PY" "$SRC/bench/bench_ort.py" "$BUILD" --node-modules "$d/node_modules" --models "$om" \
        --batches "$BATCHES" --runs "$RUNS" --threads "$THREADS" --budget "$BUDGET" --min-runs "$MIN_RUNS" \
        --size "$SIZE" --doc "$odoc"
    # (the exit status through the pipe to tee: sh has no pipefail)
    rm -f "$d/failed"
    { "$@" --command "$CMD" || echo $? >"$d/failed"; } | tee "$OUT/ort.txt"
    [ ! -e "$d/failed" ] || { rm -f "$d/failed"; return 1; }
    if [ "${BENCH_ORT_BLAS_UNSET:-0}" = 1 ]; then
        { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$@" --section ort-unset \
            --label "with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (OpenBLAS picks its kernels for this CPU)" \
            --command "$CMD" || echo $? >"$d/failed"; } | tee "$OUT/ort-unset.txt"
        [ ! -e "$d/failed" ] || { rm -f "$d/failed"; return 1; }
    fi
}

T0=$(date +%s)
for m in $MODELS; do
    "$PY" "$SRC/bench/bench_torch.py" export "$m" "$MODELDIR" $([ $SMOKE = 1 ] && echo --dyn-hw)
    first=1
    for b in $BATCHES; do
        # groups of rows: Grad-CAM and its top-5 share a process on each side, back to back (a
        # target compares the two with each other, so the drift must not come between them)
        groups="forward gradcam,top5 guided guided_gradcam"
        [ $first = 1 ] && groups="load $groups"
        first=0
        echo "bench: $m batch $b: $groups ($RUNS runs) ..."
        # group by group, both sides turn by turn, the side going first alternating
        flip=0
        for r in $groups; do
            pair $([ $flip = 0 ] && echo torch || echo gradcam) RSS "$r" "$RUNS" --min-runs "$MIN_RUNS"
            flip=$((1 - flip))
        done
        case " $SC_MODELS " in *" $m "*) sc=1 ;; *) sc=0 ;; esac
        if [ "$b" = 1 ] && [ $sc = 1 ]; then
            echo "bench: $m batch 1: scorecam ($SC_RUNS runs) ..."
            pair torch RSS_SCORECAM scorecam "$SC_RUNS"
        fi
        echo "bench:   $(($(date +%s) - T0)) s so far"
    done
done

# the Python package's overhead over the C API (issue #21): resnet50 batch 1 Grad-CAM, both turn by turn
case " $MODELS " in *" resnet50 "*)
    [ $SMOKE = 1 ] || "$PY" "$SRC/bench/bench_python.py" compare "$BUILD" "$MODELDIR/resnet50.onnx" --runs "$RUNS" \
        --threads "$THREADS" --size "$SIZE" ;;
esac

# every detection of one picture (issue #18): the demo detector, both methods in one process per
# side, one row after the other; the picture, the CAM layers (gradcam's automatic choice, which
# PyTorch's side hooks too) and the detections (checked equal on both sides) are the same
DETECT_NOTE=""
if [ "$DETECT" != 0 ]; then
    DM=shapes_detector
    DMODEL=$SRC/examples/detect/$DM.onnx
    PIC=$OUT/detect_scene.f32
    SCENE=$("$PY" "$SRC/bench/bench_detect_torch.py" picture "$PIC") || { echo "bench: FAILED: $DM: no picture" >&2; exit 1; }
    echo "bench: $DM: the picture: $SCENE"
    LAYERS=$("$DDRIVER" "$DMODEL" "$PIC" --layers-only) || { echo "bench: FAILED: $DM: no CAM layers" >&2; exit 1; }
    echo "bench: $DM: detect_hirescam,detect_gradcam ($RUNS runs; layers $LAYERS) ..."
    both torch RSS_DETECT "$DM, rows detect_hirescam,detect_gradcam" \
        "$PY" "$SRC/bench/bench_detect_torch.py" run "$DM" "$DMODEL" "$PIC" --layers "$LAYERS" --runs "$RUNS" \
        --threads "$THREADS" --budget "$BUDGET" --min-runs "$MIN_RUNS" $FLAG :: \
        "$DDRIVER" "$DMODEL" "$PIC" --name "$DM" --runs "$RUNS" \
        --threads "$THREADS" --budget "$BUDGET" --min-runs "$MIN_RUNS" $FLAG
    for kind in DETS LAYERS; do # the same work on both sides: detections (anchor:class), layers
        a=$(grep "^$kind" "$OUT/torch.out" || true)
        g=$(grep "^$kind" "$OUT/gradcam.out" || true)
        if [ -z "$a" ] || [ "$a" != "$g" ]; then
            printf 'bench: FAILED: %s: the two sides differ in %s:\n  PyTorch: %s\n  gradcam: %s\n' "$DM" "$kind" "$a" "$g" >&2
            exit 1
        fi
    done
    K=$(grep -m1 '^DETS' "$OUT/gradcam.out" | cut -f5)
    echo "bench: $DM: $K detections explained on each side (the same anchors and classes)"
    DETECT_NOTE="the demo detector \`examples/detect/$DM.onnx\` (trained weights; PyTorch's side is \`train_detector.py\`'s \`Detector\` with the same weights, \`Detector.from_onnx\`), one 128×128 picture, $SCENE (\`bench/bench_detect_torch.py picture\`); score threshold 0.25 (the default), class-wise NMS at IoU 0.45: $K detections explained on each side, the same anchors and classes (checked); CAM layers $LAYERS (gradcam's automatic choice, hooked on PyTorch's side too). A run: one forward, the decode and one map per detection; gradcam: one explainer created beforehand (\`explain_probability = 1\`), \`gcam_explainer_forward\` + \`gcam_detect_decode\` + \`gcam_explain_many\` over the detections' targets (\`bench/bench_detect.c\`); PyTorch: a forward under \`no_grad\` and torchvision's \`batched_nms\`, then per detection what pytorch-grad-cam does with one target per call: a forward with hooks on the layers, \`zero_grad\`, \`backward\` of the detection's score, the map per layer upsampled and min-max scaled, the layers averaged (\`bench/bench_detect_torch.py\`). Both rows in one process per side, one after the other; 1 warm-up and the time cap as above"
fi

if [ $SMOKE = 1 ]; then
    "$PY" "$SRC/bench/report.py" "$RES" /dev/null | tee "$OUT/table.md"
    for r in "forward only" "Grad-CAM" "Grad-CAM top-5 (one forward)" "Guided Backprop" "Guided Grad-CAM" "peak RSS"; do
        grep "^| mobilenet_v2 | 1 | $r |" "$OUT/table.md" | grep -q "| [0-9.]* |\$" ||
            { echo "bench smoke: FAILED: no '$r' row with both sides" >&2; exit 1; }
    done
    if [ "$DETECT" != 0 ]; then
        for r in "HiResCAM" "Grad-CAM"; do
            grep "^| shapes_detector | 1 | every detection of one picture, $r ([0-9]* detections) |" "$OUT/table.md" |
                grep -q "| [0-9.]* |\$" ||
                { echo "bench smoke: FAILED: no 'every detection of one picture, $r' row with both sides" >&2; exit 1; }
        done
    fi
    echo "bench smoke: ok"
    exit 0
fi

# the exact command, as typed
CMD=""
for v in BENCH_MODELS BENCH_BATCH BENCH_RUNS BENCH_ROW_BUDGET BENCH_MIN_RUNS BENCH_SCORECAM_MODELS BENCH_SCORECAM_RUNS BENCH_THREADS BENCH_SIZE BENCH_DETECT BENCH_DOC BENCH_ORT BENCH_ORT_MODELS BENCH_ORT_BLAS_UNSET BENCH_TRANSFORMERS; do
    eval "isset=\${$v+x}"
    [ -n "$isset" ] && eval "CMD=\"\${CMD}$v='\$$v' \""
done
if [ -n "${MAKELEVEL:-}" ]; then
    case $BUILD in "$SRC/build") CMD="${CMD}make bench" ;; *) CMD="${CMD}make bench BUILD=${BUILD#$SRC/}" ;; esac
else
    CMD="${CMD}./bench/run.sh ${BUILD#$SRC/}"
fi
FULL=0
[ "$MODELS" = "$ALL_MODELS" ] && [ "$BATCHES" = "1 8" ] && [ "$RUNS" -ge 10 ] && FULL=1
if [ -n "${BENCH_DOC+x}" ]; then DOC=$BENCH_DOC; elif [ $FULL = 1 ]; then DOC=$SRC/docs/performance.md; else DOC=$OUT/performance.md; fi
if [ -n "$SC_MODELS" ]; then
    SCN="batch 1 only (batch 8 would take 8x as long), at most $SC_RUNS timed runs after a warm-up of one forward; the first run decides the count under the time cap, down to 1 (one run takes up to minutes per model on 2 cores); models: $SC_MODELS; 16 masked inputs per forward on both sides (pytorch-grad-cam's default)"
else
    SCN="not run (BENCH_SCORECAM_MODELS empty)"
fi
{
    printf 'date\t%s (%d min)\n' "$STARTED" $((($(date +%s) - T0 + 59) / 60))
    printf 'command\t%s\n' "$CMD"
    printf 'cpu\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
    printf 'nproc\t%s\n' "$(nproc)"
    printf 'load_before\t%s\n' "$LOAD_BEFORE"
    printf 'load_after\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'threads\t%s\n' "$THREADS"
    printf 'omp_wait\t%s\n' "${OMP_WAIT_POLICY:-unset}"
    printf 'coretype\t%s\n' "${OPENBLAS_CORETYPE:-unset}"
    printf 'torch\t%s\n' "$("$PY" -c 'import torch; print(torch.__version__)')"
    printf 'torchvision\t%s\n' "$("$PY" -c 'import torchvision; print(torchvision.__version__)' 2>/dev/null)"
    printf 'gcam_version\t%s\n' "$(sed -n 's/^#define GCAM_VERSION_STRING "\(.*\)"/\1/p' "$SRC/include/gradcam.h")"
    printf 'build_type\t%s\n' "$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt")"
    printf 'models\t%s\n' "$MODELS"
    printf 'batches\t%s\n' "$BATCHES"
    printf 'size\t%s\n' "$SIZE"
    printf 'runs\t%s\n' "$RUNS"
    printf 'budget\t%s\n' "$BUDGET"
    printf 'min_runs\t%s\n' "$MIN_RUNS"
    printf 'load_batch\t%s\n' "$(echo $BATCHES | cut -d' ' -f1)"
    printf 'modeldir\t%s\n' "${MODELDIR#$SRC/}"
    printf 'scorecam_note\t%s\n' "$SCN"
    [ -n "$DETECT_NOTE" ] && printf 'detect_note\t%s\n' "$DETECT_NOTE"
    [ -n "${BENCH_NOTE:-}" ] && printf 'note\t%s\n' "$BENCH_NOTE"
    true
} >"$META"
if [ "$DOC" = none ]; then
    "$PY" "$SRC/bench/report.py" "$RES" "$META"
else
    "$PY" "$SRC/bench/report.py" "$RES" "$META" --doc "$DOC"
fi
# the command's cost per input on a folder of 16 .npy inputs against the API's (issue #23), one by one
# and --batch 8; BENCH_COMMAND=0 skips it
if [ $SMOKE = 0 ] && [ "${BENCH_COMMAND:-1}" = 1 ]; then
    "$PY" "$SRC/bench/bench_command.py" "$BUILD" --threads "$THREADS" --runs "${BENCH_COMMAND_RUNS:-5}" \
        --clock "${BENCH_COMMAND_CLOCK:-wall}" | tee "$OUT/command.md" || echo "bench: command row FAILED (see above)"
fi
# every word of a caption (issue #19): the demo captioner, one forward and a backward per word against
# PyTorch's hook-and-backward loop, turn by turn; the ratio and PASS/FAIL (<= 0.3)
if [ $SMOKE = 0 ]; then
    GRADCAM_LIBRARY=$BUILD/libgradcam_tool.so PYTHONPATH=$SRC/python "$PY" "$SRC/bench/bench_caption.py" --threads "$THREADS" \
        --check | tee "$OUT/caption.txt" || echo "bench: caption row FAILED (see above)"
fi
# transformers (issue #20): vit_b_16 and swin_t, Grad-CAM at the automatic token layer against gradcam's
# forward and PyTorch's hook-and-backward; BENCH_TRANSFORMERS=0 skips them
if [ $SMOKE = 0 ] && [ "${BENCH_TRANSFORMERS:-1}" = 1 ]; then
    GRADCAM_LIBRARY=$BUILD/libgradcam_tool.so PYTHONPATH=$SRC/python "$PY" "$SRC/bench/bench_transformers.py" "$BUILD" \
        --threads "$THREADS" | tee "$OUT/transformers.md" || echo "bench: transformer rows FAILED (see above)"
fi
# gradcam vs ONNX Runtime (issue #23): BENCH_ORT=0 skips it
if [ $SMOKE = 0 ] && [ "${BENCH_ORT:-1}" != 0 ]; then
    ort_rows || echo "bench: ONNX Runtime rows FAILED (see above)"
fi
# gradcam serve, requests/s and latency at 1, 2, 4 workers and the overhead over the C API, on the demo
# model and resnet50 (exported here when missing; the demo picture sent at 224x224) (docs/performance.md,
# "gradcam serve"): BENCH_SERVE=1
if [ "${BENCH_SERVE:-0}" = 1 ]; then
    "$PY" "$SRC/bench/bench_serve.py" "$BUILD/gradcam" demo "$SRC/examples/demo/shapes_cnn.onnx" \
        "$SRC/examples/demo/images/demo_1.png" -- --labels "$SRC/examples/demo/labels.txt" --preprocess raw |
        tee "$OUT/serve.md"
    [ -f "$MODELDIR/resnet50.onnx" ] || "$PY" "$SRC/bench/bench_torch.py" export resnet50 "$MODELDIR"
    "$PY" "$SRC/bench/bench_serve.py" "$BUILD/gradcam" resnet50 "$MODELDIR/resnet50.onnx" \
        "$SRC/examples/demo/images/demo_1.png" --resize 224 --clients 4 --seconds 10 --overhead-runs 30 |
        tee -a "$OUT/serve.md"
fi
# report.html of 10 000 inputs (linked) opened in headless Chromium, bytes per input, the command's
# peak RSS at 4 and 1000 inputs (docs/performance.md, "Large runs: report.html"): BENCH_REPORT=0 skips
if [ $SMOKE = 0 ] && [ "${BENCH_REPORT:-1}" = 1 ]; then
    "$PY" "$SRC/bench/bench_report.py" "$BUILD" | tee "$OUT/report.md" || echo "bench: report rows FAILED (see above)"
fi
