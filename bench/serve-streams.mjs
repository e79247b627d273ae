// Concurrent streams against a running tiermem serve: for each count of
// streams, rounds alternate between counts, each round sends that many
// streamed completions at once (different prompts, temperature 0) and
// records every token's arrival. Prints, per count, medians over rounds of:
// aggregate decode tok/s (tokens all streams received while every one of them
// was decoding: from the last first-token to the first finish), TTFT p50/p99
// and inter-token latency p50/p99.
// usage: node serve-streams.mjs URL ROUNDS MAX_TOKENS COUNTS...
import { writeFileSync } from 'node:fs';
const [url, roundsArg, maxArg, ...countArgs] = process.argv.slice(2);
const rounds = Number(roundsArg), maxTokens = Number(maxArg), counts = countArgs.map(Number);
const prompts = ['Once upon a time', 'The little dog ran', 'In a far away land', 'She said hello to',
	'The ship sailed', 'A long time ago', 'On a cold morning', 'The old man and'];

async function stream(prompt) {
	const t0 = performance.now();
	const r = await fetch(url + '/v1/completions', { method: 'POST', headers: { 'Content-Type': 'application/json' },
		body: JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } }) });
	const times = [];
	let buf = '', tokens = 0;
	const dec = new TextDecoder();
	for await (const chunk of r.body) {
		buf += dec.decode(chunk, { stream: true });
		let i;
		while ((i = buf.indexOf('\n\n')) >= 0) {
			const ev = buf.slice(0, i);
			buf = buf.slice(i + 2);
			if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
			const j = JSON.parse(ev.slice(6));
			if (j.usage) tokens = j.usage.completion_tokens;
			else if (j.choices[0]?.text) times.push(performance.now());
		}
	}
	return { t0, times, tokens };
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
	const order = r % 2 ? [...counts].reverse() : counts;
	for (const c of order) {
		const out = await Promise.all(Array.from({ length: c }, (_, i) => stream(prompts[i % prompts.length])));
		const start = Math.max(...out.map((o) => o.times[0])), end = Math.min(...out.map((o) => o.times[o.times.length - 1]));
		const inWindow = out.reduce((n, o) => n + o.times.filter((t) => t > start && t <= end).length, 0);
		// events, not tokens: a token that ends inside a UTF-8 character waits for the next one
		const evPerTok = out.reduce((n, o) => n + o.tokens, 0) / out.reduce((n, o) => n + o.times.length, 0);
		res[c].agg.push(end > start ? inWindow * evPerTok / ((end - start) / 1000) : NaN);
		for (const o of out) {
			res[c].ttft.push(o.times[0] - o.t0);
			for (let k = 1; k < o.times.length; k++) res[c].itl.push(o.times[k] - o.times[k - 1]);
		}
		console.error(`round ${r + 1}, ${c} streams: ${res[c].agg[res[c].agg.length - 1].toFixed(2)} tok/s`);
		save();
	}
}
console.log('| streams | aggregate decode tok/s (median) | vs 1 stream | TTFT p50 / p99 ms | inter-token p50 / p99 ms |');
console.log('|---|---|---|---|---|');
const base = median(res[counts[0]].agg);
for (const c of counts) {
	const x = res[c];
	console.log(`| ${c} | ${median(x.agg).toFixed(2)} | ${(median(x.agg) / base).toFixed(2)}x | ${pct(x.ttft, 0.5).toFixed(0)} / ${pct(x.ttft, 0.99).toFixed(0)} | ${pct(x.itl, 0.5).toFixed(0)} / ${pct(x.itl, 0.99).toFixed(0)} |`);
}
