// One timed ONNX Runtime run for bench/compare.py, the node counterpart of its
// `_worker`: loads an .onnx file with onnxruntime-node's CPU execution provider
// and prints one JSON line with the fields bench/benchmark prints.
//
//   node ort_worker.js ORT_PACKAGE_DIR --model M.onnx --input X.f32 --batch N
//        --threads T --iters I --warmup W --size S [--logits OUT.f32] [--profile 1] [--serve 1]
//
// --serve 1, for bench/compare.py --paired: after the warm-up, prints "ready",
// then for each count n read from stdin times n runs and prints their ms on
// one line (bench/benchmark --serve's protocol), until stdin ends.
//
// --profile 1 turns on ONNX Runtime's profiler for the session and adds
// "profile": each node's median kernel time over the timed runs, in the order
// the nodes first ran ({name, op, ms}).
//
// Session options are what a user tuning ORT for latency would set:
// graphOptimizationLevel 'all', intraOpNumThreads = T, interOpNumThreads = 1,
// sequential execution.
'use strict';
const fs = require('fs');

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
    args[argv[i].slice(2)] = argv[i + 1];
  }
  for (const k of ['model', 'input', 'batch', 'threads', 'iters', 'warmup', 'size'])
    if (!(k in args)) throw new Error(`missing --${k}`);
  return args;
}

function peakRssMib() {
  const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('VmHWM:'));
  return parseInt(line.split(/\s+/)[1], 10) / 1024;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main() {
  const ort = require(process.argv[2]);
  const a = parseArgs(process.argv.slice(3));
  const [batch, threads, size] = [+a.batch, +a.threads, +a.size];
  const bytes = fs.readFileSync(a.input);
  const x = new ort.Tensor('float32', new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4),
                           [batch, 3, size, size]);
  const start = performance.now();
  const session = await ort.InferenceSession.create(a.model, {
    executionProviders: ['cpu'], graphOptimizationLevel: 'all', executionMode: 'sequential',
    intraOpNumThreads: threads, interOpNumThreads: 1,
    ...(a.profile === '1' ? { enableProfiling: true, profileFilePrefix: profilePrefix() } : {}),
  });
  const loadMs = performance.now() - start;
  const feeds = { [session.inputNames[0]]: x };
  for (let i = 0; i < +a.warmup; ++i) await session.run(feeds);
  if (a.serve === '1') return serve(session, feeds);
  const times = [];
  let out;
  for (let i = 0; i < +a.iters; ++i) {
    const t0 = performance.now();
    out = await session.run(feeds);
    times.push(performance.now() - t0);
  }
  if (a.logits) {
    const logits = out[session.outputNames[0]].data;
    fs.writeFileSync(a.logits, Buffer.from(logits.buffer, logits.byteOffset, logits.byteLength));
  }
  const med = median(times);
  console.log(JSON.stringify({
    engine: 'ort', batch, threads, median_ms: med, min_ms: Math.min(...times), max_ms: Math.max(...times),
    ms_per_image: med / batch, peak_rss_mib: peakRssMib(), load_ms: loadMs,
    ...(a.profile === '1' ? { profile: nodeTimes(session, +a.iters) } : {}),
  }));
}

async function serve(session, feeds) {
  console.log('ready');
  for await (const line of require('readline').createInterface({ input: process.stdin })) {
    const n = Number(line);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--serve: expected a count >= 1 of runs per line, got '${line}'`);
    const times = [];
    for (let i = 0; i < n; ++i) {
      const t0 = performance.now();
      await session.run(feeds);
      times.push(performance.now() - t0);
    }
    console.log(times.join(' '));
  }
}

// Where this process's profile goes: the profiler appends _<date>.json.
function profilePrefix() {
  return require('path').join(require('os').tmpdir(), `ort-profile-${process.pid}`);
}

// Ends the session's profiling and reads its file (onnxruntime-node's
// endProfiling() does not return the name) → [{name, op, ms}]: each node's
// median kernel time over its last `iters` runs (the timed ones), in the
// order the nodes first ran.
function nodeTimes(session, iters) {
  session.endProfiling();
  const path = require('path'), prefix = profilePrefix(), dir = path.dirname(prefix);
  const files = fs.readdirSync(dir).filter((f) => f.startsWith(path.basename(prefix) + '_') && f.endsWith('.json'));
  if (files.length !== 1) throw new Error(`expected one profile ${prefix}_*.json, found ${files.length}`);
  const file = path.join(dir, files[0]);
  const events = JSON.parse(fs.readFileSync(file, 'utf8'));
  fs.unlinkSync(file);
  const nodes = new Map();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const name = e.name.slice(0, -'_kernel_time'.length);
    if (!nodes.has(name)) nodes.set(name, { op: e.args.op_name, us: [] });
    nodes.get(name).us.push(e.dur);
  }
  return [...nodes].map(([name, n]) => ({ name, op: n.op, ms: median(n.us.slice(-iters)) / 1000 }));
}

main().catch((e) => {
  console.error(`ort_worker.js: error: ${e.message}`);
  process.exit(1);
});
