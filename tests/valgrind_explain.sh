#!/bin/sh
# One `gradcam explain` under valgrind (memcheck): any memory error or definite/indirect leak fails.
# The model is tests/threads_model.py's small CNN at 16x16; one intra-op thread (valgrind
# serialises threads anyway, and OpenMP/OpenBLAS pools are not the subject here).
# Usage: valgrind_explain.sh GRADCAM WORKDIR
set -eu
gradcam=$1 work=$2
here=$(cd "$(dirname "$0")" && pwd)
command -v valgrind >/dev/null 2>&1 || { echo "FAIL: valgrind is not installed (apt-get install valgrind)"; exit 1; }
rm -rf "$work" && mkdir -p "$work"
/usr/bin/python3 "$here/threads_model.py" "$work/cnn.onnx" 16
/usr/bin/python3 -c "
import numpy as np
from PIL import Image
Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save('$work/photo.png')"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# valgrind 3.19 executes no AVX-512: it hides it from CPUID, so OpenBLAS's own choice is fine, but a
# kernel forced through OPENBLAS_CORETYPE (tests/cpu_matrix.sh's SkylakeX) dies with SIGILL. Under
# valgrind only, such a kernel is replaced by its AVX2 counterpart; the rest of the suite keeps it.
case "${OPENBLAS_CORETYPE:-}" in
  [Ss]kylake[Xx] | [Cc]ooperlake | [Ss]apphire[Rr]apids) export OPENBLAS_CORETYPE=Haswell ;;
esac
status=0
valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite,indirect \
  --show-leak-kinds=definite,indirect --error-exitcode=99 --log-file="$work/valgrind.log" \
  "$gradcam" explain "$work/cnn.onnx" "$work/photo.png" -m gradcam,guided-backprop,guided-gradcam,scorecam \
  -k 2 --threads 1 -q -o "$work/out" --npy || status=$?
errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$work/valgrind.log" | tail -1)
echo "valgrind: exit $status, ${errors:-?} errors (log $work/valgrind.log)"
grep -E "definitely lost|indirectly lost|ERROR SUMMARY" "$work/valgrind.log" || true
if [ "$status" -ne 0 ] || [ "${errors:-1}" != 0 ] || [ ! -s "$work/out/report.html" ]; then
  grep -A25 -E "Invalid|uninitialised|definitely lost in|indirectly lost in" "$work/valgrind.log" | head -80
  echo "0 passed, 1 failed"
  exit 1
fi
echo "1 passed, 0 failed"
