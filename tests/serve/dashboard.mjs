// The dashboard (GET /) in headless Chromium, driven through the DevTools
// protocol over Node's WebSocket (node --experimental-websocket): the page
// loads and shows the model; while a request streams, its plot updates and
// shows a nonzero tok/s; no console error or exception; a screenshot is kept.
// With CLUSTER=N (a server under mpirun), the cluster table lists N ranks,
// each with MPI calls. MODEL: the model's id (default m); MAX_TOKENS: the
// streamed request's (default 400).
// usage: [CLUSTER=N] [MODEL=ID] [MAX_TOKENS=N] KEY=APIKEY node --experimental-websocket dashboard.mjs URL SCREENSHOT START
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { tap } from './tap.mjs';

const [url, shot, start] = process.argv.slice(2);
const { ok, done } = tap(start);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-chromium-'));
const browser = spawn('chromium', ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run',
	'--remote-debugging-port=0', `--user-data-dir=${profile}`, '--window-size=900,700', 'about:blank'],
	{ stdio: ['ignore', 'ignore', 'pipe'] });
browser.stderr.on('data', () => {});
let portFile = path.join(profile, 'DevToolsActivePort'), port;
for (let i = 0; i < 200 && !port; i++) {
	if (fs.existsSync(portFile)) port = fs.readFileSync(portFile, 'utf8').split('\n')[0];
	else await sleep(100);
}
try {
	if (!port) throw new Error('chromium did not start its DevTools endpoint');
	const target = await (await fetch(`http://127.0.0.1:${port}/json/new?about:blank`, { method: 'PUT' })).json();
	const ws = new WebSocket(target.webSocketDebuggerUrl);
	await new Promise((res, rej) => { ws.onopen = res; ws.onerror = rej; });
	let id = 0;
	const pending = new Map(), errors = [];
	ws.onmessage = (ev) => {
		const m = JSON.parse(ev.data);
		if (m.id && pending.has(m.id)) { pending.get(m.id)(m); pending.delete(m.id); }
		if (m.method === 'Runtime.exceptionThrown') errors.push(m.params.exceptionDetails.exception?.description || m.params.exceptionDetails.text);
		if (m.method === 'Runtime.consoleAPICalled' && ['error', 'assert'].includes(m.params.type)) errors.push(JSON.stringify(m.params.args));
		if (m.method === 'Log.entryAdded' && m.params.entry.level === 'error') errors.push(m.params.entry.text + ' ' + (m.params.entry.url || ''));
	};
	const send = (method, params = {}) => new Promise((res) => { const i = ++id; pending.set(i, res); ws.send(JSON.stringify({ id: i, method, params })); });
	const evaluate = async (expr) => (await send('Runtime.evaluate', { expression: expr, returnByValue: true })).result?.result?.value;
	await send('Runtime.enable');
	await send('Log.enable');
	await send('Page.enable');
	await send('Page.navigate', { url: url + '/' });
	let updates = 0;
	for (let i = 0; i < 100 && updates < 2; i++) { await sleep(100); updates = Number(await evaluate('document.body.dataset.updates || 0')); }
	const model = await evaluate("document.getElementById('model').textContent");
	const rows = await evaluate("document.getElementById('placement').rows.length");
	ok(updates >= 2 && model === (process.env.MODEL || 'm') && rows >= 2, `the page loads: model '${model}', ${rows - 1} mapping(s) listed, ${updates} updates from /metrics`);

	// a request streams while we watch the page
	const stream = fetch(url + '/v1/completions', { method: 'POST', headers: { Authorization: `Bearer ${process.env.KEY}` }, body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: Number(process.env.MAX_TOKENS || 400), temperature: 0, stream: true }) })
		.then(async (r) => { for await (const _ of r.body); });
	const before = Number(await evaluate('document.body.dataset.updates'));
	let maxTps = 0, maxGbps = 0;
	for (let i = 0; i < 40; i++) {
		await sleep(100);
		maxTps = Math.max(maxTps, Number(await evaluate('document.body.dataset.tps')));
		maxGbps = Math.max(maxGbps, Number(await evaluate("Math.max(0, ...[...document.querySelectorAll('#placement td:last-child')].map(c => Number(c.textContent) || 0))")));
		if (maxTps > 0 && i >= 10) break;
	}
	const after = Number(await evaluate('document.body.dataset.updates'));
	ok(after > before && maxTps > 0, `while a request streams the plot updates (${after - before} updates) and shows ${maxTps.toFixed(1)} tok/s`);
	ok(maxGbps > 0, `and a nonzero per-tier read rate (${maxGbps} GB/s in the placement table)`);
	if (process.env.CLUSTER) {
		const want = Number(process.env.CLUSTER);
		const shown = !(await evaluate("document.getElementById('cluster').hidden"));
		const ranks = await evaluate("[...document.querySelectorAll('#ranks tr')].slice(1).map(r => [...r.cells].map(c => c.textContent))") || [];
		ok(shown && ranks.length === want && ranks.every((r) => Number(r[2]) > 0),
			`the cluster table: ${ranks.length} of ${want} ranks, MPI calls ${ranks.map((r) => r[2]).join(', ')} (${await evaluate("document.getElementById('split').textContent")})`);
	}
	const png = (await send('Page.captureScreenshot', { format: 'png' })).result?.data;
	if (png) fs.writeFileSync(shot, Buffer.from(png, 'base64'));
	ok(png && fs.statSync(shot).size > 1000, `screenshot kept: ${shot}`);
	await stream;
	await sleep(300);
	ok(errors.length === 0, `no console errors or exceptions${errors.length ? ': ' + errors.slice(0, 3).join(' | ') : ''}`);
	ws.close();
} catch (e) {
	ok(false, `dashboard: ${e.stack}`);
} finally {
	const gone = new Promise((r) => browser.once('exit', r));
	browser.kill('SIGKILL');
	await gone;
	try { fs.rmSync(profile, { recursive: true, force: true, maxRetries: 5 }); } catch { /* left in the temp dir */ }
	done();
}
