// The inference end of bench/collection.py's "PIL + ONNX Runtime" pipeline:
// runs every 1×3×S×S float32 tensor arriving on stdin (Python's PIL workers
// preprocess the images) through an onnxruntime-node session as it arrives.
//
//   node ort_stream.js ORT_PACKAGE_DIR --model M.onnx --threads T --size S
//
// Prints "ready" once the session is created, then, when stdin ends, one JSON
// line: {"images": n}. Session options as in ort_worker.js (intraOpNumThreads
// = T, sequential); each image's top-5 classes are computed, as a user would.
'use strict';
const fs = require('fs');

async function main() {
  const ort = require(process.argv[2]);
  const a = {};
  for (let i = 3; i + 1 < process.argv.length; i += 2) a[process.argv[i].slice(2)] = process.argv[i + 1];
  const size = +a.size, bytes = 3 * size * size * 4;
  const session = await ort.InferenceSession.create(a.model, {
    executionProviders: ['cpu'], graphOptimizationLevel: 'all', executionMode: 'sequential',
    intraOpNumThreads: +a.threads, interOpNumThreads: 1,
  });
  fs.writeSync(1, 'ready\n');
  let pending = Buffer.alloc(0), images = 0;
  for await (const chunk of process.stdin) {
    pending = Buffer.concat([pending, chunk]);
    for (; pending.length >= bytes; pending = pending.subarray(bytes), ++images) {
      const x = new Float32Array(pending.buffer.slice(pending.byteOffset, pending.byteOffset + bytes));
      const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, [1, 3, size, size]) });
      const logits = out[session.outputNames[0]].data;
      Array.from(logits.keys()).sort((i, j) => logits[j] - logits[i]).slice(0, 5);
    }
  }
  if (pending.length) throw new Error(`stdin ended inside a tensor (${pending.length} of ${bytes} bytes)`);
  console.log(JSON.stringify({ images }));
}

main().catch((e) => {
  console.error(`ort_stream.js: error: ${e.message}`);
  process.exit(1);
});
