#!/usr/bin/env node
// ONNX Runtime's side of `make bench`'s "gradcam vs ONNX Runtime" rows (bench/bench_ort.py, issue #23):
//
//   NODE_PATH=BUILD/bench/ort/node_modules node bench/ort/ort_bench.js MODEL.onnx --name NAME [--batch N]
//       [--size S] [--runs R] [--threads T] [--budget SECONDS [--min-runs K]] [--smoke]
//
// onnxruntime-node (bench/ort/package.json pins the version; the CPU library ships inside the package,
// so `npm install --ignore-scripts` is enough): one InferenceSession on the CPU provider, T intra-op
// threads, 1 inter-op thread, sequential execution, every graph optimisation. The input has the model's
// input shape with its symbolic (batch) axis set to N (a fixed batch must be N), filled with the same
// image-like pattern as bench_gradcam.c and bench_torch.py. One warm-up forward, then R timed ones
// (with --budget, a warm-up that shows R runs would take longer than SECONDS gives fewer, at least K,
// as bench_gradcam.c does); --smoke: 1 run, no warm-up. A run is `await session.run(feeds)`, what a
// node user waits for. Prints, tab separated, as the other drivers:
//   RESULT  NAME  N  forward  MEDIAN_MS  MIN_MS  MAX_MS  RUNS
//   RSS  NAME  N  PEAK_MIB          (the process's peak RSS: node itself included)
//   RSS_BASE  NAME  N  MIB          (the RSS once node and ONNX Runtime are loaded, before the session)
// With OMP_WAIT_POLICY=passive (gradcam's OpenMP threads sleep instead of spinning between parallel
// regions), ORT's intra-op threads do not spin either (session.intra_op.allow_spinning = 0).
// Turn by turn with gradcam's side (bench/lockstep.py sets BENCH_TURN_FDS=R,W): before each warm-up
// and timed run, and once at start-up before any heavy work, one byte to W gives the machine back and
// one byte read from R waits for the next turn, as bench_torch.py's turn() does.
'use strict';
const fs = require('fs');

function die(msg, code) {
    process.stderr.write('ort_bench.js: ' + msg + '\n');
    process.exit(code === undefined ? 1 : code);
}

let turnFds = null;
if (process.env.BENCH_TURN_FDS) {
    const p = process.env.BENCH_TURN_FDS.split(',').map(Number);
    if (p.length !== 2 || !p.every((v) => Number.isInteger(v) && v >= 0)) die('BENCH_TURN_FDS=' + process.env.BENCH_TURN_FDS + ' is not R,W', 2);
    turnFds = p;
}
const sleeper = new Int32Array(new SharedArrayBuffer(4));

// a blocking one-byte read or write; EAGAIN (a non-blocking pipe) waits a millisecond and retries
function oneByte(op, fd, buf) {
    for (;;) {
        try {
            return op(fd, buf, 0, 1, null);
        } catch (e) {
            if (e.code !== 'EAGAIN') throw e;
            Atomics.wait(sleeper, 0, 0, 1);
        }
    }
}

function turn() {
    if (!turnFds) return;
    const b = Buffer.from('t');
    let ok = false;
    try {
        ok = oneByte(fs.writeSync, turnFds[1], b) === 1 && oneByte(fs.readSync, turnFds[0], b) === 1;
    } catch (e) {
        ok = false;
    }
    if (!ok) die('the turn pipe of bench/lockstep.py closed');
}

function parseArgs(argv) {
    const o = { path: null, name: null, batch: 1, size: 224, runs: 10, threads: 2, budget: 0, minRuns: 3, smoke: false };
    const ints = { '--batch': 'batch', '--size': 'size', '--runs': 'runs', '--threads': 'threads', '--min-runs': 'minRuns' };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === '--smoke') o.smoke = true;
        else if (a in ints || a === '--budget' || a === '--name') {
            if (i + 1 >= argv.length) die('option ' + a + ' needs a value', 2);
            const v = argv[++i];
            if (a === '--name') o.name = v;
            else if (a === '--budget') o.budget = Number(v);
            else o[ints[a]] = Number(v);
        } else if (!a.startsWith('--') && !o.path) o.path = a;
        else die('unknown argument ' + a, 2);
    }
    const okInt = (v, lo, hi) => Number.isInteger(v) && v >= lo && v <= hi;
    if (!o.path || !okInt(o.batch, 1, 1024) || !okInt(o.size, 8, 4096) || !okInt(o.runs, 1, 100000) ||
        !okInt(o.threads, 1, 256) || !okInt(o.minRuns, 1, 100000) || !(o.budget >= 0))
        die('usage: ort_bench.js MODEL.onnx --name NAME [--batch N] [--size S] [--runs R] [--threads T] ' +
            '[--budget SECONDS [--min-runs K]] [--smoke]', 2);
    if (!o.name) o.name = o.path;
    if (o.smoke) o.runs = 1;
    return o;
}

// the model's input shape with the symbolic axes set: the first to the batch, the others (height and
// width of a model exported with them dynamic) to the size; a fixed batch must match
function inputShape(meta, o) {
    if (!meta.isTensor || meta.type !== 'float32') die(o.name + ': input ' + meta.name + ' is not a float32 tensor');
    const shape = meta.shape.map((d, i) => (typeof d === 'number' && d > 0 ? d : i === 0 ? o.batch : o.size));
    if (shape.length !== 4 || shape[0] !== o.batch)
        die(o.name + ': input ' + meta.name + ' has shape [' + meta.shape.join(', ') + ']; wanted (' + o.batch + ', C, H, W)');
    return shape;
}

function median(t) {
    const s = t.slice().sort((a, b) => a - b);
    const n = s.length;
    return { med: n % 2 ? s[(n - 1) / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]), min: s[0], max: s[n - 1], runs: n };
}

// BENCH_CLOCK=cpu: the process's CPU time (every thread, as bench_util.h's now()) instead of wall time, for
// A/B comparisons on a busy machine (with --threads 1 it is the work done, whatever else runs)
const cpuClock = process.env.BENCH_CLOCK === 'cpu';
function nowMs() {
    if (cpuClock) {
        const u = process.cpuUsage();
        return (u.user + u.system) / 1e3;
    }
    return Number(process.hrtime.bigint()) / 1e6;
}

async function main() {
    const o = parseArgs(process.argv.slice(2));
    turn(); // nothing heavy before the first turn
    const ort = require('onnxruntime-node');
    const base = process.memoryUsage().rss / 1048576;
    const opts = {
        executionProviders: ['cpu'],
        intraOpNumThreads: o.threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
    };
    // gradcam's OpenMP threads sleep between parallel regions under OMP_WAIT_POLICY=passive: ORT's
    // intra-op threads then do the same (no spinning), so both sides wait alike
    if (/^passive$/i.test(process.env.OMP_WAIT_POLICY || '')) opts.extra = { session: { intra_op: { allow_spinning: '0' } } };
    const session = await ort.InferenceSession.create(o.path, opts);
    if (session.inputNames.length !== 1) die(o.name + ': ' + session.inputNames.length + ' inputs; the bench feeds one');
    const meta = session.inputMetadata[0];
    const shape = inputShape(meta, o);
    const numel = shape.reduce((a, b) => a * b, 1);
    const x = new Float32Array(numel);
    // the same pattern as bench_gradcam.c and bench_torch.py (64-bit integers there; exact in doubles here)
    for (let i = 0; i < numel; i++) x[i] = ((i * 7919 + Math.floor(i / 50177) * 104729) % 1000) / 500.0 - 1.0;
    const feeds = { [meta.name]: new ort.Tensor('float32', x, shape) };

    let runs = o.runs;
    for (let w = 0; w < (o.smoke ? 0 : 1); w++) {
        turn();
        const a = nowMs();
        await session.run(feeds);
        const s = (nowMs() - a) / 1e3;
        if (o.budget > 0 && s * runs > o.budget) runs = Math.max(o.minRuns, Math.min(runs, Math.floor(o.budget / s)));
    }
    const t = [];
    for (let r = 0; r < runs; r++) {
        turn();
        const a = nowMs();
        const out = await session.run(feeds);
        t.push(nowMs() - a);
        for (const k in out) if (!Number.isFinite(out[k].data[0])) die(o.name + ': non-finite output ' + k);
    }
    await session.release();
    const m = median(t);
    const rss = process.resourceUsage().maxRSS / 1024; // kilobytes
    fs.writeSync(1, [['RESULT', o.name, o.batch, 'forward', m.med.toFixed(3), m.min.toFixed(3), m.max.toFixed(3), m.runs],
        ['RSS', o.name, o.batch, rss.toFixed(1)], ['RSS_BASE', o.name, o.batch, base.toFixed(1)]].map((l) => l.join('\t') + '\n').join(''));
}

main().catch((e) => die(String(e && e.message ? e.message : e)));
