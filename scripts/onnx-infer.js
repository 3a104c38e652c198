#!/usr/bin/env node
// Runs a model written by "seqconv export --format onnx" with ONNX Runtime for Node.js:
//
//   node scripts/onnx-infer.js MODEL.onnx IMAGES.npy LOGITS.npy
//
// IMAGES.npy holds float32 images [N, C, H, W] (NCHW, N the batch size fixed in the model), as for
// "seqconv infer"; the logits [N, classes] are written to LOGITS.npy as float32. It prints the model's
// inputs and outputs, as ONNX Runtime reads them, as one line of JSON.
//
// onnxruntime-node must be resolvable (e.g. NODE_PATH=DIR/node_modules); install it without its install
// script, which downloads CUDA binaries: scripts/install-onnxruntime.sh --node DIR.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

// readNPY reads a little-endian float32 C-order .npy file.
function readNPY(path) {
  const b = fs.readFileSync(path);
  if (b.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${path}: not a .npy file`);
  const major = b[6];
  const headerLen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLen;
  const header = b.toString('latin1', major === 1 ? 10 : 12, start);
  if (!/'descr':\s*'<f4'/.test(header) || /'fortran_order':\s*True/.test(header)) {
    throw new Error(`${path}: want a float32 C-order array, got header ${header.trim()}`);
  }
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(',').filter((s) => s.trim()).map(Number);
  const data = new Float32Array(b.buffer.slice(b.byteOffset + start, b.byteOffset + b.length));
  return { data, shape };
}

// writeNPY writes a float32 array as a version 1.0 .npy file.
function writeNPY(path, data, shape) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre.writeUInt16LE(header.length, 8);
  const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  fs.writeFileSync(path, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}

async function main() {
  const [model, input, output] = process.argv.slice(2);
  if (!output) throw new Error('usage: node onnx-infer.js MODEL.onnx IMAGES.npy LOGITS.npy');
  const session = await ort.InferenceSession.create(model);
  const images = readNPY(input);
  const result = await session.run({ images: new ort.Tensor('float32', images.data, images.shape) });
  const logits = result.logits;
  writeNPY(output, logits.data, logits.dims);
  const meta = (m) => m.map((v) => ({ name: v.name, type: v.type, shape: v.shape }));
  console.log(JSON.stringify({
    runtime: `onnxruntime-node ${ort.env.versions.node}`,
    inputs: meta(session.inputMetadata),
    outputs: meta(session.outputMetadata),
  }));
}

main().catch((e) => {
  console.error(`onnx-infer: ${e.message}`);
  process.exit(1);
});
