// A long prompt joining a running stream (chunked prefill, bench/serve-join.sh):
// per round and server, stream A decodes; once it has 8 tokens, prompt B
// (N token ids, different each round so no prefix is reused) is sent; A's
// inter-token latencies from B's send to B's first token are recorded. Rounds
// alternate the servers' order. Prints per server the p50/p99/max of those
// latencies, A's tokens in the window and B's time to first token (median).
// usage: node serve-join.mjs ROUNDS PROMPT_TOKENS LABEL=URL...
const [roundsArg, nArg, ...servers] = process.argv.slice(2);
const rounds = Number(roundsArg), nPrompt = Number(nArg);
const srv = servers.map((s) => { const i = s.indexOf('='); return { label: s.slice(0, i), url: s.slice(i + 1), itl: [], inWin: [], ttft: [] }; });

async function stream(url, prompt, maxTokens, signal, onToken = () => {}) {
	const times = [];
	try {
		const r = await fetch(url + '/v1/completions', { method: 'POST', headers: { 'Content-Type': 'application/json' }, signal,
			body: JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, stream: true }) });
		const dec = new TextDecoder();
		let buf = '';
		for await (const chunk of r.body) {
			buf += dec.decode(chunk, { stream: true });
			for (let i; (i = buf.indexOf('\n\n')) >= 0; buf = buf.slice(i + 2)) {
				const ev = buf.slice(0, i);
				if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
				if (JSON.parse(ev.slice(6)).choices[0]?.text) { times.push(performance.now()); onToken(times.length); }
			}
		}
	} catch (e) {
		if (e.name !== 'AbortError') throw e;
	}
	return times;
}
const pct = (a, p) => { const s = [...a].sort((x, y) => x - y); return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN; };

for (let r = 0; r < rounds; r++) {
	for (const s of r % 2 ? [...srv].reverse() : srv) {
		const stop = new AbortController();
		let go;
		const eight = new Promise((res) => { go = res; });
		const a = stream(s.url, 'Once upon a time', 1000, stop.signal, (k) => { if (k === 8) go(); });
		await eight;
		// ids 10..209, a different sequence each round and server: nothing to reuse
		const ids = Array.from({ length: nPrompt }, (_, i) => 10 + ((i * 7 + r * 31 + s.label.length * 17) % 200));
		const t0 = performance.now();
		const b = await stream(s.url, ids, 1, undefined);
		stop.abort();
		const ta = await a;
		const win = ta.filter((t) => t > t0 && t <= b[0]);
		// the gaps between A's tokens that overlap the window, including the one B's prefill ends
		for (let k = 1; k < ta.length; k++)
			if (ta[k] > t0 && ta[k - 1] < b[0]) s.itl.push(ta[k] - ta[k - 1]);
		s.inWin.push(win.length);
		s.ttft.push(b[0] - t0);
		console.error(`round ${r + 1}, ${s.label}: B's first token after ${(b[0] - t0).toFixed(0)} ms, A got ${win.length} tokens meanwhile`);
	}
}
console.log(`| server | A's inter-token p50 / p99 / max ms while B's ${nPrompt}-token prompt is evaluated | A's tokens meanwhile (median) | B's TTFT ms (median) |`);
console.log('|---|---|---|---|');
for (const s of srv)
	console.log(`| ${s.label} | ${pct(s.itl, 0.5).toFixed(0)} / ${pct(s.itl, 0.99).toFixed(0)} / ${Math.max(...s.itl).toFixed(0)} | ${pct(s.inWin, 0.5)} | ${pct(s.ttft, 0.5).toFixed(0)} |`);
