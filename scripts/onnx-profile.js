#!/usr/bin/env node
// Profiles a model written by "seqconv export --format onnx" with ONNX Runtime for Node.js, as seqconv's
// inference runs it (all graph optimizations), and prints each operator type's share of the kernel time:
//
//   node scripts/onnx-profile.js MODEL.onnx [RUNS]
//
// The input is a fixed pattern of the model's input shape; RUNS (default 6) runs are profiled, the first
// included. The operator types are ONNX Runtime's own after its graph optimizations: ReorderInput and
// ReorderOutput convert tensors to and from its blocked layout (NCHWc).
//
// onnxruntime-node must be resolvable (e.g. NODE_PATH=DIR/node_modules): scripts/install-onnxruntime.sh --node DIR.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const ort = require('onnxruntime-node');

async function main() {
  const [model, runsArg] = process.argv.slice(2);
  const runs = Number(runsArg || 6);
  if (!model || !(runs >= 1)) throw new Error('usage: node onnx-profile.js MODEL.onnx [RUNS]');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onnx-profile-'));
  try {
    const session = await ort.InferenceSession.create(model, {
      graphOptimizationLevel: 'all', logSeverityLevel: 3, enableProfiling: true,
      profileFilePrefix: path.join(dir, 'profile'),
    });
    const input = session.inputMetadata[0];
    const size = input.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    for (let i = 0; i < size; i++) data[i] = Math.sin(i * 0.37);
    const feeds = { [input.name]: new ort.Tensor('float32', data, input.shape) };
    for (let r = 0; r < runs; r++) {
      const t0 = process.hrtime.bigint();
      await session.run(feeds);
      console.log(`run ${r}: ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(3)} s`);
    }
    session.endProfiling();
    const file = fs.readdirSync(dir).find((f) => f.endsWith('.json'));
    if (!file) throw new Error('ONNX Runtime wrote no profile');
    const byOp = new Map();
    let total = 0;
    for (const e of JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'))) {
      if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
      const op = e.args.op_name;
      const v = byOp.get(op) || { us: 0, n: 0 };
      v.us += e.dur;
      v.n++;
      byOp.set(op, v);
      total += e.dur;
    }
    for (const [op, v] of [...byOp].sort((a, b) => b[1].us - a[1].us)) {
      const share = (100 * v.us / total).toFixed(1).padStart(5);
      console.log(`${op.padEnd(16)} ${share}% of the kernel time, ${v.n / runs} calls per run`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`onnx-profile: ${e.message}`);
  process.exit(1);
});
