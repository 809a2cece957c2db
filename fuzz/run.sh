#!/bin/sh
# Builds and runs the libFuzzer targets (see fuzz/CMakeLists.txt).
#   fuzz/run.sh build BUILD_DIR                 configure with clang, build, write the seed corpus
#   fuzz/run.sh run BUILD_DIR TARGET SECONDS    fuzz one target (one worker, one thread)
#   fuzz/run.sh repro BUILD_DIR                 run every target on its reproducers in fuzz/repro/KIND/
#   fuzz/run.sh all BUILD_DIR SECONDS           build, reproducers, then every target in turn
# FUZZ_SEED=N fixes the seed (make test uses 1); unset, every run starts from a random seed.
# Seeds are in BUILD_DIR/corpus/KIND; new inputs found go to BUILD_DIR/corpus-work/TARGET. Fuzzing runs
# in fork mode and carries on past a crash, so one run collects several: each finding is left as
# BUILD_DIR/artifacts/TARGET-{crash,leak,oom,timeout}-HASH (reproduce: BUILD_DIR/TARGET FILE) and
# classified by the first gradcam stack frame of its report: a bug already reported and listed in
# fuzz/known_issues.txt is printed as KNOWN; any other finding fails the run. The log of a run is
# BUILD_DIR/logs/TARGET.log; its summary line reads
#   TARGET: N executions in S s, corpus C, findings F (K known)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
TARGETS="fuzz_onnx fuzz_image fuzz_npy fuzz_cli fuzz_labels fuzz_csv fuzz_voc"

kind_of() {
  case "$1" in
    fuzz_onnx) echo onnx ;; fuzz_image) echo image ;; fuzz_npy) echo npy ;;
    fuzz_cli) echo cli ;; fuzz_labels) echo labels ;; fuzz_csv) echo csv ;; fuzz_voc) echo voc ;; *) echo "unknown target $1" >&2; exit 2 ;;
  esac
}

# One thread everywhere: the machine is shared. Leaks are findings (libFuzzer's default);
# allocator_may_return_null: a refused huge allocation must be handled as out of memory.
# The targets' scratch folders go to BUILD_DIR/tmp/TARGET (GCAM_FUZZ_TMP), emptied before each run.
run_target() {
  OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 GCAM_FUZZ_TMP="$tmpdir" \
  ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:${ASAN_OPTIONS_EXTRA:-}" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
    "$@"
}

do_build() {
  b=$1
  command -v clang >/dev/null 2>&1 ||
    { echo "clang is missing: apt-get install clang libclang-rt-14-dev libomp-dev" >&2; exit 1; }
  mkdir -p "$b"
  if [ ! -f "$b/CMakeCache.txt" ]; then
    CC=clang cmake -S "$here" -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$b/configure.log" 2>&1 ||
      { cat "$b/configure.log" >&2; exit 1; }
  fi
  cmake --build "$b" -j "${FUZZ_BUILD_JOBS:-2}" >"$b/build.log" 2>&1 || { tail -40 "$b/build.log" >&2; exit 1; }
  stamp="$b/corpus/.stamp"  # the seed corpus, rewritten when its script changes
  sum=$(cksum <"$here/make_corpus.py")
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sum" ]; then
    rm -rf "$b/corpus"
    /usr/bin/python3 "$here/make_corpus.py" "$b/corpus"
    echo "$sum" >"$stamp"
  fi
  echo "fuzz targets built in $b"
}

# Prints the signature of the report an input gives ("function src/file.c"), or "" if it runs clean.
signature() {
  b=$1 t=$2 f=$3
  tmpdir="$b/tmp/$t"
  mkdir -p "$tmpdir"
  out=$(run_target "$b/$t" -rss_limit_mb=4096 -malloc_limit_mb=4096 -timeout=120 "$f" 2>&1) && return 0
  sig=$(printf '%s\n' "$out" | sed -n 's|^ *#[0-9]* 0x[0-9a-f]* in \([A-Za-z_0-9]*\) .*/\(src/[^:]*\):.*|\1 \2|p' | head -1)
  [ -n "$sig" ] || sig=$(printf '%s\n' "$out" | grep -m1 -E "ERROR|runtime error|timeout" | cut -c1-120)
  echo "${sig:-unclassified}"
}

# known_issues.txt: "TARGET FUNCTION FILE  description" per line; # comments.
known() {
  grep -v '^#' "$here/known_issues.txt" | awk -v t="$1" -v f="$2" -v s="$3" \
    '$1 == t && $2 == f && $3 == s { $1 = $2 = $3 = ""; sub(/^ +/, ""); print; found = 1; exit } END { exit !found }'
}

# Classifies the findings given; prints one line each; returns the number of unknown ones (max 100).
classify() {
  b=$1 t=$2
  shift 2
  unknown=0
  for f in "$@"; do
    sig=$(signature "$b" "$t" "$f")
    if [ -z "$sig" ]; then
      echo "  $(basename "$f"): runs clean (fixed)"
    elif desc=$(known "$t" $sig); then
      echo "  KNOWN $(basename "$f"): $sig: $desc"
    else
      echo "  NEW   $(basename "$f"): $sig"
      unknown=$((unknown + 1))
    fi
  done
  return $((unknown > 100 ? 100 : unknown))
}

do_run() {
  b=$(cd "$1" && pwd) t=$2 secs=$3
  kind=$(kind_of "$t")
  [ -x "$b/$t" ] || { echo "$b/$t is missing: run '$0 build $b' first" >&2; exit 1; }
  mkdir -p "$b/corpus-work/$t" "$b/artifacts" "$b/logs"
  dict=""
  [ "$t" = fuzz_cli ] && dict="-dict=$here/cli.dict"
  # FUZZ_SEED pins libFuzzer's mutation sequence: make test sets it so that a CI run explores the
  # same inputs every time (a new finding then comes from a code change, not from luck); by hand,
  # leave it unset for a fresh random seed each run.
  seed=""
  [ -z "${FUZZ_SEED:-}" ] || seed="-seed=$FUZZ_SEED"
  log="$b/logs/$t.log"
  tmpdir="$b/tmp/$t"
  rm -rf "$tmpdir" && mkdir -p "$tmpdir"
  marker="$b/logs/$t.start"
  touch "$marker"
  sleep 1  # artifacts newer than the marker are this run's
  # fork mode with one worker (-fork=1): crashes, leaks, OOMs and timeouts are recorded and the
  # run goes on. (-jobs would respawn the binary by a relative path from the folder the CLI
  # target chdir()s into.)
  set +e
  run_target "$b/$t" $dict $seed -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
    -max_total_time="$secs" -timeout=60 -rss_limit_mb=4096 -malloc_limit_mb=4096 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$b/artifacts/$t-" "$b/corpus-work/$t" "$b/corpus/$kind" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^#\([0-9]*\): cov.*/\1/p' "$log" | tail -1)
  corp=$(sed -n 's/^#[0-9]*: cov: [0-9]* ft: [0-9]* corp: \([0-9]*\).*/\1/p' "$log" | tail -1)
  new=$(find "$b/artifacts" -name "$t-*" -newer "$marker" ! -name "*slow-unit*" | sort)
  set +e
  # shellcheck disable=SC2086
  details=$(classify "$b" "$t" $new)
  unknown=$?
  set -e
  n=$(printf '%s' "$new" | grep -c . || true)
  echo "$t: ${execs:-?} executions in $secs s, corpus ${corp:-?}, findings $n ($((n - unknown)) known)"
  [ -z "$details" ] || printf '%s\n' "$details"
  if [ $rc -ne 0 ] && [ $n -eq 0 ]; then
    echo "$t: the fuzzer exited with $rc (log $log):" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  [ $unknown -eq 0 ]
}

# Every reproducer kept in fuzz/repro/KIND/ must run clean, or match a known issue.
do_repro() {
  b=$(cd "$1" && pwd)
  bad=0
  for t in $TARGETS; do
    d="$here/repro/$(kind_of "$t")"
    [ -d "$d" ] || continue
    files=$(find "$d" -type f | sort)
    [ -n "$files" ] || continue
    set +e
    # shellcheck disable=SC2086
    details=$(classify "$b" "$t" $files)
    unknown=$?
    set -e
    echo "$t: $(printf '%s\n' "$files" | wc -l) reproducers"
    [ -z "$details" ] || printf '%s\n' "$details"
    bad=$((bad + unknown))
  done
  [ $bad -eq 0 ]
}

cmd=${1:-}
case "$cmd" in
  build) do_build "$2" ;;
  run) do_run "$2" "$3" "$4" ;;
  repro) do_repro "$2" ;;
  all)
    do_build "$2"
    fails=0
    do_repro "$2" || fails=$((fails + 1))
    for t in $TARGETS; do do_run "$2" "$t" "$3" || fails=$((fails + 1)); done
    [ $fails -eq 0 ] ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
