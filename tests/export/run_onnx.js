// run_onnx.js - runs an exported ONNX model with ONNX Runtime (onnxruntime-node)
// on the images export_inputs wrote, and prints one line of probabilities
// per image (tests/integration/test_export.sh).
//
//   NODE_PATH=<dir>/node_modules node run_onnx.js MODEL.onnx IMAGES.bin N H W PROBS.txt
// IMAGES.bin: float32 [N, 1, H, W] little-endian, pixel / 255. The N images
// go through as one batch of N (the graph's N is dynamic), and the output
// must be `prob` [N, L].
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, images, n, h, w, out] = process.argv.slice(2);
  const N = Number(n), H = Number(h), W = Number(w);
  const buf = fs.readFileSync(images);
  if (buf.length !== N * H * W * 4) throw new Error(`${images}: ${buf.length} bytes, expected ${N * H * W * 4}`);
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  const session = await ort.InferenceSession.create(model);
  if (session.inputNames.join() !== 'image' || session.outputNames.join() !== 'prob')
    throw new Error(`inputs ${session.inputNames}, outputs ${session.outputNames}: expected image and prob`);
  const result = await session.run({image: new ort.Tensor('float32', data, [N, 1, H, W])});
  const prob = result.prob;
  if (prob.dims.length !== 2 || prob.dims[0] !== N) throw new Error(`prob has shape [${prob.dims}]`);
  const L = prob.dims[1];
  const lines = [];
  for (let i = 0; i < N; i++) lines.push(Array.from(prob.data.slice(i * L, (i + 1) * L), (v) => v.toPrecision(9)).join(' '));
  fs.writeFileSync(out, lines.join('\n') + '\n');
}

main().catch((e) => {
  console.error(`run_onnx.js: ${e.message}`);
  process.exit(1);
});
