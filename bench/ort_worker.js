// One timed ONNX Runtime run for bench/compare.py, the node counterpart of its
// `_worker`: loads an .onnx file with onnxruntime-node's CPU execution provider
// and prints one JSON line with the fields bench/benchmark prints.
//
//   node ort_worker.js ORT_PACKAGE_DIR --model M.onnx --input X.f32 --batch N
//        --threads T --iters I --warmup W --size S [--logits OUT.f32]
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
  });
  const loadMs = performance.now() - start;
  const feeds = { [session.inputNames[0]]: x };
  for (let i = 0; i < +a.warmup; ++i) await session.run(feeds);
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
  }));
}

main().catch((e) => {
  console.error(`ort_worker.js: error: ${e.message}`);
  process.exit(1);
});
