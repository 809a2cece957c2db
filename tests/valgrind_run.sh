#!/bin/sh
# Runs one command under valgrind memcheck: any invalid access, uninitialised use or definite leak
# fails (the API's error paths free contexts mid-message: a use after free there printed garbage).
# Usage: valgrind_run.sh COMMAND [ARG...]
set -eu
command -v valgrind >/dev/null 2>&1 || { echo "FAIL: valgrind is not installed (apt-get install valgrind)"; exit 1; }
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# valgrind 3.19 executes no AVX-512 (see valgrind_explain.sh): a forced AVX-512 kernel becomes AVX2.
case "${OPENBLAS_CORETYPE:-}" in
  [Ss]kylake[Xx] | [Cc]ooperlake | [Ss]apphire[Rr]apids) export OPENBLAS_CORETYPE=Haswell ;;
esac
exec valgrind -q --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite,indirect \
  --show-leak-kinds=definite,indirect --error-exitcode=99 "$@"
