#!/usr/bin/env node
// Where ONNX Runtime spends a forward, node by node: the other half of a per-layer comparison with
// gradcam's GCAM_PROFILE_STEPS=1 (docs/performance.md, "Layer by layer against ONNX Runtime").
//
//   NODE_PATH=BUILD/bench/ort/node_modules node bench/ort/ort_profile.js MODEL.onnx [--batch N]
//       [--size S] [--threads T] [--runs R] [--top K]
//
// One InferenceSession as ort_bench.js makes it (CPU provider, T intra-op threads, sequential,
// every graph optimisation) with ORT's own profiler on; one warm-up run, then R runs (default 20)
// of the same image-like input. Prints the mean time per run of each op type (the fused kernels
// ORT runs: a Conv with its Relu or Clip fused shows as Conv) and of the K slowest nodes
// (default 25), in ms, then removes the profiler's JSON file.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

function die(msg) {
    process.stderr.write('ort_profile.js: ' + msg + '\n');
    process.exit(2);
}

function parseArgs(argv) {
    const a = {model: null, batch: 1, size: 224, threads: 2, runs: 20, top: 25};
    for (let i = 2; i < argv.length; i++) {
        const k = argv[i];
        if (!k.startsWith('--')) {
            if (a.model) die('one model only');
            a.model = k;
            continue;
        }
        const key = k.slice(2), v = Number(argv[++i]);
        if (!(key in a) || key === 'model') die('unknown option ' + k);
        if (!Number.isInteger(v) || v < 1 || v > 1e6) die(k + ' needs a positive integer');
        a[key] = v;
    }
    if (!a.model) die('usage: ort_profile.js MODEL.onnx [--batch N] [--size S] [--threads T] [--runs R] [--top K]');
    return a;
}

async function main() {
    const a = parseArgs(process.argv);
    let ort;
    try {
        ort = require('onnxruntime-node');
    } catch (e) {
        die('onnxruntime-node not found (NODE_PATH=BUILD/bench/ort/node_modules): ' + e.message);
    }
    const prefix = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ortprof-')), 'p');
    const s = await ort.InferenceSession.create(a.model, {
        executionProviders: ['cpu'], intraOpNumThreads: a.threads, interOpNumThreads: 1,
        executionMode: 'sequential', graphOptimizationLevel: 'all', enableProfiling: true, profileFilePrefix: prefix,
    });
    const name = s.inputNames[0];
    const n = a.batch * 3 * a.size * a.size, d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = ((i * 7919) % 1000) / 1000 - 0.5; // image-like, deterministic
    const feeds = {[name]: new ort.Tensor('float32', d, [a.batch, 3, a.size, a.size])};
    for (let r = 0; r < a.runs + 1; r++) await s.run(feeds);
    s.endProfiling(); // writes PREFIX_<date>.json (this version returns no name)
    const dir = path.dirname(prefix), files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
    if (files.length !== 1) die('ONNX Runtime wrote ' + files.length + ' profile files in ' + dir);
    const events = JSON.parse(fs.readFileSync(path.join(dir, files[0]), 'utf8'));
    fs.rmSync(dir, {recursive: true, force: true});
    const byNode = new Map(); // node -> [op, durations in us]
    for (const e of events)
        if (e.cat === 'Node' && e.name.endsWith('_kernel_time')) {
            const k = e.name.slice(0, -'_kernel_time'.length);
            if (!byNode.has(k)) byNode.set(k, [e.args && e.args.op_name || '?', []]);
            byNode.get(k)[1].push(e.dur);
        }
    const perOp = new Map(), nodes = [];
    let total = 0;
    for (const [k, [op, durs]] of byNode) {
        const timed = durs.slice(1); // the warm-up run first
        if (!timed.length) continue;
        const ms = timed.reduce((x, y) => x + y, 0) / timed.length / 1000;
        total += ms;
        perOp.set(op, (perOp.get(op) || 0) + ms);
        nodes.push([ms, op, k]);
    }
    console.log(`ORT ${ort.env.versions ? ort.env.versions.common : ''} ${path.basename(a.model)} batch ${a.batch} ` +
                `threads ${a.threads}: ${total.toFixed(3)} ms of kernels per run (mean of ${a.runs})`);
    for (const [op, ms] of [...perOp].sort((x, y) => y[1] - x[1])) console.log(`  ${op.padEnd(24)} ${ms.toFixed(3)} ms`);
    nodes.sort((x, y) => y[0] - x[0]);
    for (const [ms, op, k] of nodes.slice(0, a.top)) console.log(`  ${ms.toFixed(3)} ms  ${op.padEnd(12)} ${k}`);
}

main().catch((e) => die(e.message || String(e)));
