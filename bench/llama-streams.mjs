// llama.cpp's batched decode for comparison with bench/serve-streams.mjs:
// node-llama-cpp runs several sequences of one context and evaluates their
// pending tokens together in one llama_decode per step. Same prompts, same
// counts, the same measures (aggregate decode tok/s while every stream is
// decoding; TTFT and inter-token p50/p99), greedy, rounds alternating.
// usage: node bench/llama-streams.mjs MODEL THREADS ROUNDS MAX_TOKENS COUNTS...
import { writeFileSync } from 'node:fs';
import { openPeer, NLC_VERSION } from '../tests/peer/peer.mjs';

const [modelPath, threadsArg, roundsArg, maxArg, ...countArgs] = process.argv.slice(2);
const threads = Number(threadsArg), rounds = Number(roundsArg), maxTokens = Number(maxArg), counts = countArgs.map(Number);
const prompts = ['Once upon a time', 'The little dog ran', 'In a far away land', 'She said hello to',
	'The ship sailed', 'A long time ago', 'On a cold morning', 'The old man and'];
const logLines = [];
const { llama } = await openPeer(logLines);
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
// a context per run: sequences' ids are not handed back at once on dispose
const makeContext = (c) => model.createContext({ contextSize: Math.ceil(c * (maxTokens + 64) / 256) * 256, sequences: c,
	batchSize: 512, flashAttention: false, ignoreMemorySafetyChecks: true, threads: { ideal: threads, min: threads } });

async function stream(seq, text) {
	const tokens = model.tokenize(text);
	const t0 = performance.now(), times = [];
	for await (const tok of seq.evaluate(tokens, { temperature: 0 })) {
		void tok;
		times.push(performance.now());
		if (times.length >= maxTokens) break;
	}
	return { t0, times };
}
const pct = (a, p) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN; };
const median = (a) => { const s = [...a].sort((x, y) => x - y), h = s.length >> 1; return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2; };
const res = Object.fromEntries(counts.map((c) => [c, { agg: [], ttft: [], itl: [] }]));
// RESULTS_JSON=FILE: the figures so far as JSON after every measurement (a run cut off keeps what it
// measured), for bench/serve-streams.sh's side-by-side table
const save = () => process.env.RESULTS_JSON && writeFileSync(process.env.RESULTS_JSON, JSON.stringify(Object.fromEntries(
	counts.filter((c) => res[c].agg.length).map((c) => [c, { agg: median(res[c].agg), ttft50: pct(res[c].ttft, 0.5),
		ttft99: pct(res[c].ttft, 0.99), itl50: pct(res[c].itl, 0.5), itl99: pct(res[c].itl, 0.99) }]))));
for (let r = 0; r < rounds; r++) {
	for (const c of r % 2 ? [...counts].reverse() : counts) {
		const ctx = await makeContext(c);
		const seqs = Array.from({ length: c }, () => ctx.getSequence());
		const out = await Promise.all(seqs.map((s, i) => stream(s, prompts[i % prompts.length])));
		await ctx.dispose();
		const start = Math.max(...out.map((o) => o.times[0])), end = Math.min(...out.map((o) => o.times[o.times.length - 1]));
		const inWindow = out.reduce((n, o) => n + o.times.filter((t) => t > start && t <= end).length, 0);
		res[c].agg.push(end > start ? inWindow / ((end - start) / 1000) : NaN);
		for (const o of out) {
			res[c].ttft.push(o.times[0] - o.t0);
			for (let k = 1; k < o.times.length; k++) res[c].itl.push(o.times[k] - o.times[k - 1]);
		}
		console.error(`llama.cpp round ${r + 1}, ${c} streams: ${res[c].agg.at(-1).toFixed(2)} tok/s`);
		save();
	}
}
console.log(`llama.cpp (node-llama-cpp ${NLC_VERSION}), ${threads} threads, a context with one sequence per stream:`);
console.log('| streams | aggregate decode tok/s (median) | vs 1 stream | TTFT p50 / p99 ms | inter-token p50 / p99 ms |');
console.log('|---|---|---|---|---|');
const base = median(res[counts[0]].agg);
for (const c of counts) {
	const x = res[c], m = median(x.agg);
	console.log(`| ${c} | ${m.toFixed(2)} | ${(m / base).toFixed(2)}x | ${pct(x.ttft, 0.5).toFixed(0)} / ${pct(x.ttft, 0.99).toFixed(0)} | ${pct(x.itl, 0.5).toFixed(0)} / ${pct(x.itl, 0.99).toFixed(0)} |`);
}
await model.dispose();
