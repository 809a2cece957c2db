#!/usr/bin/env bash
# The whole test suite under every OpenBLAS x86 kernel this CPU can run, each with 1 and with 2 CPUs:
# what proves that the suite passes on any x86-64 CI machine (Intel or AMD, AVX2 or AVX-512), whose
# PyTorch references and our own float32 results round differently. Not part of `make test`: it
# runs the suite eight times (about 1.5 to 2 hours on 2 cores).
#
# Usage: tests/cpu_matrix.sh [BUILD_DIR] [CORETYPE...]
#   BUILD_DIR  a build folder of its own (default: build-matrix beside the tree's build), so that
#              the tree's build and its references are left as they are
#   CORETYPE   the kernels to try (default: Haswell SkylakeX Zen Sandybridge)
#
# Each configuration sets OPENBLAS_CORETYPE for that run only (OPENBLAS_L2_SIZE and the rest of the
# environment stay as they are) and runs `make test` under `taskset` on 1 CPU or on 2; the library,
# PyTorch and OpenBLAS all take their thread counts from that affinity mask. Every reference made
# at test time (PyTorch exports, fixtures) is made again in each run: their stamps are removed
# first, so both sides of every comparison run under that kernel. A kernel the CPU cannot run
# (SkylakeX without AVX-512, Haswell/Zen without AVX2 + FMA, Sandybridge without AVX) is listed as
# not run. One line per configuration, a summary, and exit 1 when any run failed; the logs are in
# BUILD_DIR/matrix/.
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$here/build-matrix}"
shift || true
cores=("$@")
[ ${#cores[@]} -gt 0 ] || cores=(Haswell SkylakeX Zen Sandybridge)
case "$build" in /*) ;; *) build="$PWD/$build" ;; esac
logs="$build/matrix"
mkdir -p "$logs" || exit 1

flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { for f in "$@"; do [[ "$flags" == *" $f "* ]] || return 1; done; }
runnable() {
    case "$1" in
    SkylakeX | Cooperlake | SapphireRapids) has avx512f avx512bw avx512vl avx512dq ;;
    Haswell | Zen) has avx2 fma ;;
    Sandybridge) has avx ;;
    *) has sse2 ;;
    esac
}
ncpu=$(nproc --all)
if [ "$ncpu" -lt 2 ]; then
    echo "cpu_matrix: this machine has $ncpu CPU; the 2-CPU runs need 2" >&2
    exit 2
fi

# The kernel OpenBLAS really chose (a name it does not know falls back silently).
corename() {
    OPENBLAS_CORETYPE="$1" /usr/bin/python3 -c '
import ctypes, ctypes.util
lib = ctypes.CDLL(ctypes.util.find_library("openblas") or "libopenblas.so.0")
lib.openblas_get_corename.restype = ctypes.c_char_p
print(lib.openblas_get_corename().decode())'
}

pass=0
fail=0
summary=()
for core in "${cores[@]}"; do
    if ! runnable "$core"; then
        summary+=("$(printf '%-12s  not run: this CPU lacks its instructions' "$core")")
        continue
    fi
    chosen=$(corename "$core" 2>/dev/null || echo "?")
    for n in 1 2; do
        cpus=0
        [ "$n" = 2 ] && cpus=0,1
        log="$logs/$core.$n.log"
        find "$build/tests" -name stamp -delete 2>/dev/null
        t0=$(date +%s)
        OPENBLAS_CORETYPE="$core" taskset -c "$cpus" make -C "$here" test BUILD="$build" >"$log" 2>&1
        rc=$?
        t1=$(date +%s)
        counts=$(grep -E '^[0-9]+% tests passed' "$log" | tail -1)
        failed=$(grep -E '^\s+[0-9]+ - ' "$log" | sed -E 's/^\s+[0-9]+ - //' | tr '\n' ' ')
        line=$(printf '%-12s (OpenBLAS: %s) %d CPU%s  %s  %4d s  %s%s' "$core" "$chosen" "$n" \
            "$([ "$n" = 1 ] && echo ' ' || echo s)" "$([ $rc = 0 ] && echo PASS || echo FAIL)" $((t1 - t0)) \
            "${counts:-no ctest summary}" "${failed:+  failed: $failed}")
        echo "$line"
        summary+=("$line")
        if [ $rc = 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
    done
done
echo
echo "cpu_matrix on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'):"
printf '  %s\n' "${summary[@]}"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
