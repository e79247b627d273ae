#!/usr/bin/env node
// SPDX-License-Identifier: MIT
//
// llama.mjs's `logits` for many models in one process: starting node and
// llama.cpp costs seconds, a small model's logits milliseconds, and the
// logits suite needs ~40 of them. Same settings as `llama.mjs logits --kv f32`
// (CPU, f32 KV cache, no flash attention, one sequence, the whole input in
// one batch) and the same output format.
//
//   logits-peer.mjs JOBS [--threads N]
//
// JOBS: one job per line, "MODEL TOKENS OUT [KV]" separated by tabs (TOKENS
// as 1,2,3; KV the KV cache type, f32 (default), f16 or q8_0; llama.cpp runs
// a q8_0 cache only with flash attention, so q8_0 turns it on). For each job prints
// "ok OUT N_VOCAB" or "error OUT message" and goes on. Exit 0 if every job succeeded, 1 if not, 2 on bad usage.

import fs from "node:fs";
import path from "node:path";
import { openPeer } from "./peer.mjs";

const args = process.argv.slice(2);
let jobsFile, threads;
for (let i = 0; i < args.length; i++) {
	if (args[i] === "--threads")
		threads = Number(args[++i]);
	else
		jobsFile = args[i];
}
if (!jobsFile || (threads !== undefined && !(Number.isInteger(threads) && threads > 0))) {
	process.stderr.write("usage: logits-peer.mjs JOBS [--threads N]\n");
	process.exit(2);
}
const jobs = fs.readFileSync(jobsFile, "utf8").split("\n").filter((l) => l.trim())
	.map((l) => l.split("\t"));

const logLines = [];
let llama;
try {
	({ llama } = await openPeer(logLines));
} catch (e) {
	process.stderr.write(`logits-peer.mjs: ${e.message}\n`);
	process.exit(2);
}

async function one(modelPath, tokens, out, kv) {
	if (kv !== "F32" && kv !== "F16" && kv !== "Q8_0")
		throw new Error(`KV cache type '${kv}': f32, f16 or q8_0`);
	const model = await llama.loadModel({ modelPath: path.resolve(modelPath), gpuLayers: 0 });
	try {
		const nv = model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length ?? 0;
		const ids = tokens.split(",").map(Number);
		if (!nv || ids.some((t) => !Number.isInteger(t) || t < 0 || t >= nv))
			throw new Error(`token ids outside [0, ${nv})`);
		const ctx = await model.createContext({
			contextSize: Math.max(256, Math.ceil(ids.length / 256) * 256),
			batchSize: Math.min(ids.length, 512),
			sequences: 1,
			flashAttention: kv === "Q8_0",
			ignoreMemorySafetyChecks: true,
			experimentalKvCacheKeyType: kv,
			experimentalKvCacheValueType: kv,
			...(threads ? { threads: { ideal: threads, min: threads } } : {}),
		});
		try {
			const seq = ctx.getSequence();
			const res = await seq.controlledEvaluate(ids.map((t) => [t, { generateNext: { logits: true } }]));
			const buf = Buffer.alloc(ids.length * nv * 4);
			for (let i = 0; i < ids.length; i++) {
				const m = res[i]?.next?.logits;
				if (!m || m.size !== nv)
					throw new Error(`position ${i}: ${m ? m.size : 0} logits, expected ${nv}`);
				for (const [t, v] of m)
					buf.writeFloatLE(v, (i * nv + t) * 4);
			}
			fs.writeFileSync(out, buf);
			return nv;
		} finally {
			await ctx.dispose();
		}
	} finally {
		await model.dispose();
	}
}

let failed = 0;
for (const [model, tokens, out, kv] of jobs) {
	try {
		const nv = await one(model, tokens, out, (kv || "f32").toUpperCase());
		process.stdout.write(`ok ${out} ${nv}\n`);
	} catch (e) {
		failed++;
		const why = logLines.filter((l) => /^error/.test(l)).slice(-1)[0] ?? "";
		process.stdout.write(`error ${out} ${e.message} ${why}`.trimEnd() + "\n");
	}
}
process.exit(failed ? 1 : 0);
