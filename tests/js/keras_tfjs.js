// Runs a Keras model with TensorFlow.js' own Keras layers (tfjs-layers on the
// pure-JavaScript CPU backend), for tests/python/keras_tfjs.py.
//
//   NODE_PATH=<dir>/node_modules node keras_tfjs.js DIR
//
// DIR holds model.json (a Keras model config as modelTopology, and the
// weightsManifest of weights.bin, float32), input.json ({"shape": [N, H, W, C],
// "outputs": [layer names]}) and input.bin (float32, N×H×W×C). Writes
// output.json ({"shapes": [...]}) and output.bin: each named layer's output
// for the input, float32, in the order asked.
"use strict";
const fs = require("fs");
const path = require("path");
const tf = require("@tensorflow/tfjs-core");
require("@tensorflow/tfjs-backend-cpu");
const tfl = require("@tensorflow/tfjs-layers");

function floats(file) {
  const bytes = fs.readFileSync(file);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
}

async function main() {
  const dir = process.argv[2];
  await tf.setBackend("cpu");
  const json = JSON.parse(fs.readFileSync(path.join(dir, "model.json"), "utf8"));
  const manifest = json.weightsManifest[0];
  const data = fs.readFileSync(path.join(dir, manifest.paths[0]));
  const model = await tfl.loadLayersModel(tf.io.fromMemory({
    modelTopology: json.modelTopology,
    weightSpecs: manifest.weights,
    weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.length),
  }), {strict: true});
  const request = JSON.parse(fs.readFileSync(path.join(dir, "input.json"), "utf8"));
  const probe = tfl.model({inputs: model.inputs, outputs: request.outputs.map((n) => model.getLayer(n).output)});
  const x = tf.tensor(floats(path.join(dir, "input.bin")), request.shape, "float32");
  let outputs = probe.predict(x);
  outputs = Array.isArray(outputs) ? outputs : [outputs];
  const chunks = outputs.map((t) => {
    const a = t.dataSync();
    return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  });
  fs.writeFileSync(path.join(dir, "output.bin"), Buffer.concat(chunks));
  fs.writeFileSync(path.join(dir, "output.json"), JSON.stringify({shapes: outputs.map((t) => t.shape)}));
}

main().catch((e) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
