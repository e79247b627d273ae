// tiermem serve through the official `openai` npm client, and hostile clients
// through plain sockets. Prints TAP lines numbered from START; the suite
// (tests/suites/65-serve.sh) starts the servers and passes, in the environment:
//   URL KEY MODEL       the main server (4 slots, an API key)
//   N_PROMPT_TOKENS     how many tokens `tiermem tokenize` gives PROMPT
//   BUSY_URL            a server with 1 slot and a queue of 1 (503 test)
//   SLOW_URL            a server with --timeout 2 (slow headers test)
//   START               the first test number
//   NODE_DIR            where scripts/deps installed openai
//   ONLY=batching LABEL only the batching test (URL, MODEL; KEY may be any string)
import net from 'node:net';
import { npm, tap } from './tap.mjs';

const { default: OpenAI } = await npm('openai');

const { URL, KEY, MODEL, BUSY_URL, SLOW_URL } = process.env;
const PROMPT = 'Once upon a time';
const LABEL = process.env.LABEL ? process.env.LABEL + ': ' : '';
const { ok, done } = tap(process.env.START);

const client = new OpenAI({ baseURL: URL + '/v1', apiKey: KEY, maxRetries: 0, timeout: 120000 });
const chatMsgs = (text) => [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: text }];

async function chat(text, extra = {}) {
	return client.chat.completions.create({ model: MODEL, messages: chatMsgs(text), temperature: 0, max_tokens: 16, ...extra });
}
async function complete(prompt, extra = {}) {
	return client.completions.create({ model: MODEL, prompt, temperature: 0, max_tokens: 16, ...extra });
}
async function chatStream(text, extra = {}) {
	const s = await client.chat.completions.create({ model: MODEL, messages: chatMsgs(text), temperature: 0, max_tokens: 16,
		stream: true, stream_options: { include_usage: true }, ...extra });
	let out = '', finish = null, usage = null, role = null, chunks = 0;
	for await (const c of s) {
		chunks++;
		if (c.usage) usage = c.usage;
		const ch = c.choices[0];
		if (!ch) continue;
		if (ch.delta?.role) role = ch.delta.role;
		out += ch.delta?.content ?? '';
		if (ch.finish_reason) finish = ch.finish_reason;
	}
	return { text: out, finish, usage, role, chunks };
}
async function completeStream(prompt, extra = {}) {
	const s = await client.completions.create({ model: MODEL, prompt, temperature: 0, max_tokens: 16, stream: true,
		stream_options: { include_usage: true }, ...extra });
	let out = '', finish = null, usage = null;
	for await (const c of s) {
		if (c.usage) usage = c.usage;
		const ch = c.choices[0];
		if (!ch) continue;
		out += ch.text ?? '';
		if (ch.finish_reason) finish = ch.finish_reason;
	}
	return { text: out, finish, usage };
}
async function metrics(url = URL) {
	const t = await (await fetch(url + '/metrics')).text();
	const m = {};
	for (const line of t.split('\n')) {
		const r = line.match(/^(\w+)(\{[^}]*\})? (\S+)$/);
		if (r && !r[2]) m[r[1]] = Number(r[3]);
	}
	return m;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function stillServes(what) {
	try {
		const r = await complete(PROMPT, { max_tokens: 2 });
		return ok(r.choices[0].finish_reason === 'length' && r.usage.completion_tokens === 2, `${what}; the server still serves`);
	} catch (e) {
		return ok(false, `${what}; the server still serves (${e.message})`);
	}
}
// A raw request: status, parsed JSON body (or null), through fetch.
async function raw(path, { method = 'POST', body, headers = {} } = {}) {
	const r = await fetch(URL + path, { method, body, headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}`, ...headers } });
	const text = await r.text();
	let json = null;
	try { json = JSON.parse(text); } catch { /* not JSON */ }
	return { status: r.status, json, text };
}
const isErr = (r, status) => r.status === status && typeof r.json?.error?.message === 'string' && r.json.error.message.length > 0;

// Batching is exact: 4 concurrent requests (2 streamed) at temperature 0 each give the text they give alone.
async function batching() {
	const prompts = ['Once upon a time', 'The little dog', 'In a far away land', 'She said hello'];
	const alone = [];
	for (const p of prompts) alone.push((await complete(p, { max_tokens: 24 })).choices[0].text);
	let maxBusy = 0, polling = true;
	const poll = (async () => { while (polling) { maxBusy = Math.max(maxBusy, (await metrics()).tiermem_slots_busy); await sleep(10); } })();
	const together = await Promise.all(prompts.map((p, i) => i % 2 ? completeStream(p, { max_tokens: 24 }).then((r) => r.text)
		: complete(p, { max_tokens: 24 }).then((r) => r.choices[0].text)));
	polling = false;
	await poll;
	ok(together.every((t, i) => t === alone[i]) && new Set(alone).size === 4,
	   `${LABEL}batching: each of 4 concurrent requests (2 streamed) returns the text it returns alone`);
	ok(maxBusy >= 2, `${LABEL}batching: the requests ran together (up to ${maxBusy} slots busy at once)`);
}

// Token arrival times of a streamed completion (fetch, so the times are the events'), and its usage.
async function timedStream(url, prompt, maxTokens, onToken = () => {}) {
	const r = await fetch(url + '/v1/completions', { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
		body: JSON.stringify({ model: MODEL, prompt, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: { include_usage: true } }) });
	const times = [], dec = new TextDecoder();
	let buf = '', text = '', usage = null;
	for await (const chunk of r.body) {
		buf += dec.decode(chunk, { stream: true });
		for (let i; (i = buf.indexOf('\n\n')) >= 0; buf = buf.slice(i + 2)) {
			const ev = buf.slice(0, i);
			if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
			const j = JSON.parse(ev.slice(6));
			if (j.usage) usage = j.usage;
			if (j.choices[0]?.text) { times.push(performance.now()); text += j.choices[0].text; onToken(times.length); }
		}
	}
	return { times, text, usage };
}

// Chunked prefill (the main server runs -b 16): a long prompt joining a running stream is evaluated
// between its decode steps, so the stream goes on receiving tokens while the prompt is evaluated;
// and the long prompt's text is the one a server evaluating it in 64-token steps gives.
async function chunkedPrefill() {
	const long = 'The quick brown fox jumps over the lazy dog while the cat sleeps by the warm fire. '.repeat(8);
	let started;
	const gotThree = new Promise((r) => { started = r; });
	const a = timedStream(URL, PROMPT, 200, (k) => { if (k === 3) started(); });
	await gotThree;
	const t0 = performance.now();
	const b = await timedStream(URL, long, 4);
	const joined = (await a).times.filter((t) => t > t0 && t < b.times[0]).length;
	// one decode step per 16-token chunk: ~26 tokens; evaluated at once (-b 4096) it got 5 (HTTP and admission time)
	const want = Math.floor(b.usage?.prompt_tokens / 16 / 2);
	ok(b.usage?.prompt_tokens >= 300 && joined >= want,
	   `chunked prefill: a stream got ${joined} tokens (want >= ${want}) while a ${b.usage?.prompt_tokens}-token prompt joining it was evaluated (-b 16)`);
	const ref = await new OpenAI({ baseURL: BUSY_URL + '/v1', apiKey: 'none', maxRetries: 0 }).completions.create(
		{ model: MODEL, prompt: long, max_tokens: 4, temperature: 0 });
	ok(ref.choices[0].text === b.text && b.text.length > 0,
	   `chunked prefill: the long prompt's text in 16-token steps equals a 64-token-step server's ('${b.text}')`);
}

async function main() {
	// ---- the API as a client sees it ----
	const models = await client.models.list();
	ok(models.data.length === 1 && models.data[0].id === MODEL, `models.list names the served model '${MODEL}'`);

	const c1 = await complete(PROMPT);
	ok(c1.object === 'text_completion' && typeof c1.choices[0].text === 'string' && c1.choices[0].text.length > 0 &&
	   c1.choices[0].finish_reason === 'length', `completions: text '${c1.choices[0].text.slice(0, 30)}...', finish_reason length`);
	ok(c1.usage.prompt_tokens === Number(process.env.N_PROMPT_TOKENS) && c1.usage.completion_tokens === 16 &&
	   c1.usage.total_tokens === c1.usage.prompt_tokens + 16,
	   `completions: usage ${JSON.stringify(c1.usage)} (prompt = tiermem tokenize's ${process.env.N_PROMPT_TOKENS}, 16 generated)`);
	const ids = [1, 5, 9, 13, 17, 21, 25];
	const c2 = await complete(ids, { max_tokens: 3 });
	ok(c2.usage.prompt_tokens === ids.length && c2.usage.completion_tokens === 3, 'completions: a prompt of token ids counts them');

	const s1 = await completeStream(PROMPT);
	ok(s1.text === c1.choices[0].text && s1.finish === 'length', 'completions: streamed text equals the whole response at temperature 0');
	ok(JSON.stringify(s1.usage) === JSON.stringify(c1.usage) || (s1.usage?.completion_tokens === 16 && s1.usage?.prompt_tokens === c1.usage.prompt_tokens),
	   'completions: the streamed usage chunk counts the same');

	const h1 = await chat('Tell me a story.');
	const h1text = h1.choices[0].message.content;
	ok(h1.object === 'chat.completion' && h1.choices[0].message.role === 'assistant' && typeof h1text === 'string' &&
	   h1text.length > 0 && ['length', 'stop'].includes(h1.choices[0].finish_reason),
	   `chat: assistant message '${h1text.slice(0, 30)}...', finish_reason ${h1.choices[0].finish_reason}`);
	const tmpl = await raw('/apply-template', { body: JSON.stringify({ messages: chatMsgs('Tell me a story.') }) });
	ok(tmpl.status === 200 && tmpl.json.prompt.startsWith('<|im_start|>system\nYou tell stories.<|im_end|>\n') &&
	   tmpl.json.prompt.endsWith('<|im_start|>assistant\n'), 'chat: the prompt is the messages rendered by the template (ChatML here)');
	const hs = await chatStream('Tell me a story.');
	ok(hs.text === h1text && hs.finish === h1.choices[0].finish_reason && hs.role === 'assistant',
	   'chat: streamed text equals the whole response at temperature 0');
	ok(hs.usage && hs.usage.prompt_tokens === h1.usage.prompt_tokens && hs.usage.completion_tokens === h1.usage.completion_tokens &&
	   hs.usage.total_tokens === h1.usage.total_tokens && h1.usage.completion_tokens <= 16,
	   `chat: usage is the same streamed and not (${JSON.stringify(h1.usage)})`);
	ok(hs.usage.prompt_tokens_details?.cached_tokens === h1.usage.prompt_tokens - 1,
	   `prefix reuse: the same prompt again reuses all but its last token's KV (${hs.usage.prompt_tokens_details?.cached_tokens} of ${h1.usage.prompt_tokens})`);
	const longer = await client.chat.completions.create({ model: MODEL, temperature: 0, max_tokens: 4,
		messages: [...chatMsgs('Tell me a story.'), { role: 'assistant', content: h1text }, { role: 'user', content: 'More.' }] });
	ok(longer.usage.prompt_tokens_details.cached_tokens >= h1.usage.prompt_tokens - 1,
	   `prefix reuse: a next chat turn reuses the previous turn's prompt (${longer.usage.prompt_tokens_details.cached_tokens} of ${longer.usage.prompt_tokens} tokens)`);

	// sampling
	const r1 = await complete(PROMPT, { temperature: 1, seed: 42, top_k: 40, top_p: 0.9 });
	const r2 = await complete(PROMPT, { temperature: 1, seed: 42, top_k: 40, top_p: 0.9 });
	const r3 = await complete(PROMPT, { temperature: 1.5, seed: 43 });
	ok(r1.choices[0].text === r2.choices[0].text && r1.choices[0].text !== r3.choices[0].text,
	   'sampling: a seed repeats the text, another seed and temperature change it');
	const pen = await complete(PROMPT, { frequency_penalty: 2, presence_penalty: 2, max_tokens: 16 });
	ok(pen.choices[0].text !== c1.choices[0].text || pen.usage.completion_tokens === 16, 'sampling: penalties are accepted (and change a greedy text)');
	const mp = await complete(PROMPT, { temperature: 1, seed: 7, min_p: 1 });
	ok(mp.choices[0].text === c1.choices[0].text, 'sampling: min_p 1 leaves only the best token: the greedy text');

	// stop sequences, whole and streamed
	const base = c1.choices[0].text;
	const stop = base.slice(Math.floor(base.length / 2), Math.floor(base.length / 2) + 3);
	const cut = base.slice(0, base.indexOf(stop));
	const st1 = await complete(PROMPT, { stop: [stop, 'never-in-text'] });
	const st2 = await completeStream(PROMPT, { stop });
	ok(st1.choices[0].text === cut && st1.choices[0].finish_reason === 'stop' && st2.text === cut && st2.finish === 'stop',
	   `stop: '${stop}' cuts the text before it, whole and streamed, finish_reason stop`);

	await batching();
	await chunkedPrefill();

	// ---- hostile and broken clients: a 4xx with a JSON error each, and the server goes on ----
	let r = await raw('/v1/chat/completions', { body: '{"model": "x", "messages": [' });
	ok(isErr(r, 400), `malformed JSON: 400 '${r.json?.error?.message}'`);
	r = await raw('/v1/chat/completions', { body: JSON.stringify({ messages: 'hello' }) });
	ok(isErr(r, 400), `messages not an array: 400 '${r.json?.error?.message}'`);
	r = await raw('/v1/completions', { body: JSON.stringify({ prompt: PROMPT, max_tokens: 'ten' }) });
	ok(isErr(r, 400) && r.json.error.param === 'max_tokens', `max_tokens a string: 400 '${r.json?.error?.message}'`);
	r = await raw('/v1/completions', { body: JSON.stringify({ prompt: PROMPT, temperature: 'hot' }) });
	ok(isErr(r, 400) && r.json.error.param === 'temperature', `temperature a string: 400 '${r.json?.error?.message}'`);
	r = await raw('/v1/completions', { body: JSON.stringify({ prompt: PROMPT, stream: 'yes', stop: [1, 2] }) });
	ok(isErr(r, 400), `stream a string: 400 '${r.json?.error?.message}'`);
	r = await raw('/v1/completions', { body: JSON.stringify({ prompt: { text: PROMPT } }) });
	ok(isErr(r, 400), `prompt an object: 400 '${r.json?.error?.message}'`);
	r = await raw('/v1/completions', { body: JSON.stringify({ prompt: [1, 2, 1e9] }) });
	ok(isErr(r, 400), `a token id outside the vocabulary: 400 '${r.json?.error?.message}'`);
	r = await raw('/v1/completions', { body: JSON.stringify({ prompt: 'x'.repeat(10 * 1024 * 1024) }) });
	ok(isErr(r, 413), `a 10 MB body: 413 '${r.json?.error?.message}'`);
	r = await raw('/v1/completions', { body: JSON.stringify({ prompt: 'Once upon a time '.repeat(400) }) });
	ok(isErr(r, 400) && r.json.error.code === 'context_length_exceeded', `a prompt longer than the context: 400 '${r.json?.error?.message}'`);
	r = await raw('/v1/completions', { body: JSON.stringify({ prompt: PROMPT, max_tokens: 1e9 }) });
	ok(isErr(r, 400) && r.json.error.code === 'context_length_exceeded', `max_tokens 1e9: 400 '${r.json?.error?.message}'`);
	r = await raw('/v1/chat/completions', { body: JSON.stringify({ model: 'gpt-4', messages: chatMsgs('hi') }) });
	ok(isErr(r, 404) && r.json.error.code === 'model_not_found', `an unknown model: 404 '${r.json?.error?.message}'`);
	r = await raw('/v1/completions', { body: JSON.stringify({ prompt: PROMPT }), headers: { Authorization: '' } });
	ok(isErr(r, 401), `no API key: 401 '${r.json?.error?.message}'`);
	r = await raw('/v1/completions', { body: JSON.stringify({ prompt: PROMPT }), headers: { Authorization: `Bearer ${KEY}x` } });
	ok(isErr(r, 401), `a wrong API key: 401 '${r.json?.error?.message}'`);
	try {
		await new OpenAI({ baseURL: URL + '/v1', apiKey: 'wrong', maxRetries: 0 }).models.list();
		ok(false, 'the openai client with a wrong key gets AuthenticationError');
	} catch (e) {
		ok(e.status === 401 && e.constructor.name === 'AuthenticationError', `the openai client with a wrong key gets ${e.constructor.name}`);
	}
	r = await raw('/v1/nothing', { method: 'GET' });
	ok(isErr(r, 404), `an unknown path: 404 '${r.json?.error?.message}'`);
	r = await raw('/v1/completions', { method: 'GET' });
	ok(isErr(r, 405), `GET on a POST endpoint: 405 '${r.json?.error?.message}'`);
	await stillServes('after the bad requests');

	// a client that disconnects mid-stream frees its slot at once
	{
		const ac = new AbortController();
		const before = await metrics();
		const s = await client.completions.create({ model: MODEL, prompt: PROMPT, temperature: 0, max_tokens: 1000, stream: true },
			{ signal: ac.signal });
		let got = 0;
		try {
			for await (const c of s) { if (++got === 3) ac.abort(); }
		} catch { /* aborted */ }
		let m;
		for (let i = 0; i < 50; i++) { m = await metrics(); if (m.tiermem_slots_busy === 0) break; await sleep(20); }
		const gen = m.tiermem_generated_tokens_total - before.tiermem_generated_tokens_total;
		ok(m.tiermem_slots_busy === 0 && gen < 1000, `disconnect mid-stream: the slot is free again after ${gen} of 1000 tokens`);
	}
	{
		const ac = new AbortController();
		const before = await metrics();
		const p = fetch(URL + '/v1/completions', { method: 'POST', signal: ac.signal, headers: { Authorization: `Bearer ${KEY}` },
			body: JSON.stringify({ prompt: PROMPT, max_tokens: 1000, temperature: 0 }) }).catch(() => null);
		await sleep(150);
		ac.abort();
		await p;
		let m;
		for (let i = 0; i < 50; i++) { m = await metrics(); if (m.tiermem_slots_busy === 0) break; await sleep(20); }
		const gen = m.tiermem_generated_tokens_total - before.tiermem_generated_tokens_total;
		ok(m.tiermem_slots_busy === 0 && gen < 1000, `disconnect while waiting for a whole response: the slot is freed after ${gen} of 1000 tokens`);
	}
	await stillServes('after the disconnects');

	// a full queue: 503 with a JSON error
	{
		const busy = new OpenAI({ baseURL: BUSY_URL + '/v1', apiKey: 'none', maxRetries: 0 });
		const res = await Promise.allSettled([0, 1, 2, 3].map(() =>
			busy.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 200, temperature: 0 })));
		const rejected = res.filter((x) => x.status === 'rejected');
		ok(res.some((x) => x.status === 'fulfilled') && rejected.length >= 1 && rejected.every((x) => x.reason.status === 503),
		   `a full queue (1 slot, queue 1, 4 requests): ${rejected.length} answered 503, the rest served`);
	}

	// headers one byte a second: 408 and closed after --timeout, others served meanwhile
	{
		const u = new globalThis.URL(SLOW_URL);
		const t0 = Date.now();
		const reply = await new Promise((resolve) => {
			const sock = net.connect(Number(u.port), u.hostname);
			const req = 'GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(100) + '\r\n\r\n';
			let i = 0, data = '';
			const timer = setInterval(() => { if (i < req.length) sock.write(req[i++]); }, 1000);
			sock.on('data', (d) => { data += d; });
			sock.on('error', () => {});
			sock.on('close', () => { clearInterval(timer); resolve(data); });
			setTimeout(() => { sock.destroy(); }, 15000);
		});
		const secs = (Date.now() - t0) / 1000;
		const body = reply.slice(reply.indexOf('\r\n\r\n') + 4);
		let err = null;
		try { err = JSON.parse(body).error; } catch { /* not JSON */ }
		ok(reply.startsWith('HTTP/1.1 408') && err?.code === 'request_timeout' && secs < 6,
		   `headers one byte a second: 408 with a JSON error, closed after ${secs.toFixed(1)} s (--timeout 2)`);
		const h = await fetch(SLOW_URL + '/health');
		ok(h.status === 200, 'the slow client\'s server still answers');
	}
	await stillServes('at the end');
}

// ONLY=batching: just the batching test, for other architectures' models (LABEL prefixes its lines)
(process.env.ONLY === 'batching' ? batching() : main()).catch((e) => { ok(false, `client: ${e.stack}`); }).finally(done);
