/* What the bench drivers share (bench_gradcam.c, bench_detect.c): the clock, turn-taking with the
 * PyTorch side (bench/lockstep.py), and a row's summary. Header-only: each driver is one file. */
#ifndef GCAM_BENCH_UTIL_H
#define GCAM_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* BENCH_CLOCK=cpu: process CPU time instead of wall time, for A/B comparisons on a busy machine
 * (with --threads 1 it is the work done, whatever else runs; never for the published table). */
static double now(void) {
    static int cpu = -1;
    if (cpu < 0) cpu = getenv("BENCH_CLOCK") && strcmp(getenv("BENCH_CLOCK"), "cpu") == 0;
    struct timespec t;
    clock_gettime(cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Turn by turn with PyTorch's side (bench/lockstep.py sets BENCH_TURN_FDS=R,W): give the machine
 * back (one byte to W) and wait for the next turn (one byte from R), so only one side runs at a time
 * and the two alternate run by run. Without the variable: no-op. */
static int turn_r = -1, turn_w = -1;
static const char *turn_prog = "bench";
static void turn(void) {
    if (turn_r < 0) return;
    char c = 't';
    if (write(turn_w, &c, 1) != 1 || read(turn_r, &c, 1) != 1) {
        fprintf(stderr, "%s: the turn pipe of bench/lockstep.py closed\n", turn_prog);
        exit(1);
    }
}
static void turn_init(const char *prog) {
    turn_prog = prog;
    const char *v = getenv("BENCH_TURN_FDS");
    if (!v || !*v) return;
    if (sscanf(v, "%d,%d", &turn_r, &turn_w) != 2 || turn_r < 0 || turn_w < 0) {
        fprintf(stderr, "%s: BENCH_TURN_FDS=%s is not R,W\n", prog, v);
        exit(2);
    }
    turn(); /* nothing heavy before the first turn */
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct result {
    int done, runs;
    double med, min, max; /* ms */
} result;

/* Median, min and max of n run times (seconds; sorted in place), in ms. */
static result summarise(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmpd);
    double med = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    return (result){.done = 1, .runs = n, .med = med * 1e3, .min = t[0] * 1e3, .max = t[n - 1] * 1e3};
}

#endif
