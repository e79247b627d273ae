// SPDX-License-Identifier: MIT
//
// llama.cpp's time to first token for bench/store-vs-llama.sh: from before
// the model is loaded (mmap, as llama.cpp does by default) to the first
// generated token of PROMPT, greedy, measured inside the process (node's own
// start-up is not counted). Prints one JSON line.
//
//   node bench/ttft-llama.mjs MODEL PROMPT THREADS
import { openPeer } from "../tests/peer/peer.mjs";

const [modelPath, prompt, threads] = process.argv.slice(2);
const logLines = [];
const { llama } = await openPeer(logLines);
const t0 = process.hrtime.bigint();
const model = await llama.loadModel({ modelPath, gpuLayers: 0, ignoreMemorySafetyChecks: true });
const t1 = process.hrtime.bigint();
const ctx = await model.createContext({ contextSize: 256, threads: Number(threads),
	ignoreMemorySafetyChecks: true });
const seq = ctx.getSequence();
const tokens = model.tokenize(prompt);
let first = null;
for await (const tok of seq.evaluate(tokens, { temperature: 0 })) {
	first = tok;
	break;
}
const t2 = process.hrtime.bigint();
process.stdout.write(JSON.stringify({ load_s: Number(t1 - t0) / 1e9, ttft_s: Number(t2 - t0) / 1e9,
	first_token: first, prompt_tokens: tokens.length }) + "\n");
await ctx.dispose();
process.exit(0);
