#!/bin/sh
# The sanitizer build: a second configuration with -DGCAM_SANITIZE=ON (ASan + UBSan, every report
# fatal) in its own folder, and the suites run under it with zero reports allowed.
#   run_asan.sh build SRC_DIR ASAN_BUILD_DIR     configure + build gradcam, the op tests, the ONNX
#                                                conformance test and the drivers of tests/
#   run_asan.sh ops ASAN_BUILD_DIR               every test_ops_* binary
#   run_asan.sh conformance ASAN_BUILD_DIR       the ONNX backend test data
#   run_asan.sh malformed SRC_DIR ASAN_BUILD_DIR tests/test_malformed_inputs.py + test_malformed_models.py
#   run_asan.sh threads SRC_DIR ASAN_BUILD_DIR   tests/test_threads.c
#   run_asan.sh load SRC_DIR ASAN_BUILD_DIR      tests/test_load_map.c and tests/test_load_wire.py
# LeakSanitizer uses tests/lsan.supp (see there for what it hides and why).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

cmd=${1:-}
case "$cmd" in
  build)
    src=$2 b=$3
    t0=$(date +%s)
    mkdir -p "$b"
    if [ ! -f "$b/CMakeCache.txt" ]; then
      cmake -S "$src" -B "$b" -DGCAM_SANITIZE=ON -DGCAM_WERROR=ON >"$b/configure.log" 2>&1 ||
        { cat "$b/configure.log"; exit 1; }
    fi
    targets="gradcam_cli test_onnx_conformance malformed_driver test_threads test_load_map"
    for f in "$src"/tests/test_ops_*.c; do targets="$targets $(basename "$f" .c)"; done
    # shellcheck disable=SC2086
    cmake --build "$b" -j "${ASAN_BUILD_JOBS:-2}" --target $targets >"$b/build.log" 2>&1 ||
      { tail -40 "$b/build.log"; exit 1; }
    echo "sanitizer build ready in $b ($(($(date +%s) - t0)) s)" ;;
  ops)
    b=$2 fails=0 n=0
    for t in "$b"/tests/test_ops_*; do
      [ -x "$t" ] || continue
      n=$((n + 1))
      if "$t" >"$t.asan.log" 2>&1; then
        echo "ok   $(basename "$t"): $(tail -1 "$t.asan.log")"
      else
        echo "FAIL $(basename "$t") (log $t.asan.log):"
        grep -E "ERROR|SUMMARY|runtime error|FAIL" "$t.asan.log" | head -20
        fails=$((fails + 1))
      fi
    done
    echo "$((n - fails)) passed, $fails failed"
    [ $n -gt 0 ] && [ $fails -eq 0 ] ;;
  conformance)
    exec "$2/tests/test_onnx_conformance" /usr/share/libonnx-testdata/data ;;
  malformed)
    src=$2 b=$3
    /usr/bin/python3 "$src/tests/test_malformed_inputs.py" "$b/gradcam" "$b/tests/malformed_driver" "$b/tests/asan-malformed-inputs"
    /usr/bin/python3 "$src/tests/test_malformed_models.py" "$b/gradcam" "$b/tests/asan-malformed-models" ;;
  threads)
    src=$2 b=$3
    /usr/bin/python3 "$src/tests/threads_model.py" "$b/tests/threads_cnn.onnx"
    exec "$b/tests/test_threads" "$b/tests/threads_cnn.onnx" ;;
  load)
    src=$2 b=$3
    /usr/bin/python3 "$src/tests/load_map_models.py" "$b/tests/asan-load/map"
    "$b/tests/test_load_map" "$b/tests/asan-load/map"
    /usr/bin/python3 "$src/tests/test_load_wire.py" "$b/gradcam" "$b/tests/asan-load/wire" ;;
  *) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
