// Chat templates: what tiermem serve renders (POST /apply-template) equals
// what @huggingface/jinja, an independent Jinja implementation, renders from
// the template's text, for the same messages and BOS/EOS texts.
// usage: node templates.mjs URL TEMPLATE_FILE FAMILY START   (NODE_DIR: where scripts/deps installed it)
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const req = createRequire(process.env.NODE_DIR + '/');
const { Template } = await import(pathToFileURL(req.resolve('@huggingface/jinja')).href);
const [url, file, family, start] = process.argv.slice(2);
let n = Number(start) - 1, failed = 0;
const ok = (cond, what) => {
	n++;
	if (!cond) failed++;
	console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${what}`);
};

const text = fs.readFileSync(file, 'utf8').replace(/\n$/, '');
const props = await (await fetch(url + '/props')).json();
ok(props.chat_template === family, `${family}: recognised from the template's text (${props.chat_template})`);

const convs = [
	[{ role: 'user', content: 'Hello!' }],
	[{ role: 'system', content: 'You are terse.' }, { role: 'user', content: '  Spaces around  \n' }],
	[{ role: 'system', content: 'Sys' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: ' Hello, how can I help? ' },
	 { role: 'user', content: 'Ünïcödé — 日本語 🙂' }],
	[{ role: 'user', content: 'one' }, { role: 'assistant', content: 'two' }, { role: 'user', content: 'three\nlines\n' }],
];
const tmpl = new Template(text);
let same = 0, total = 0, diffs = [];
for (const messages of convs)
	for (const add_generation_prompt of [true, false]) {
		const want = tmpl.render({ messages, add_generation_prompt, bos_token: props.bos_token, eos_token: props.eos_token });
		const r = await fetch(url + '/apply-template', { method: 'POST', body: JSON.stringify({ messages, add_generation_prompt }) });
		const got = (await r.json()).prompt;
		total++;
		if (got === want) same++;
		else diffs.push(`want ${JSON.stringify(want)} got ${JSON.stringify(got)}`);
	}
ok(same === total, `${family}: ${same} of ${total} conversations (system, multi-turn, with and without add_generation_prompt) render as @huggingface/jinja renders ${file.split('/').pop()}${diffs.length ? ': ' + diffs[0] : ''}`);

if (family === 'llama2') {
	const messages = [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }];
	let threw = false;
	try { tmpl.render({ messages, bos_token: '', eos_token: '' }); } catch { threw = true; }
	const r = await fetch(url + '/apply-template', { method: 'POST', body: JSON.stringify({ messages }) });
	const e = await r.json();
	ok(threw && r.status === 400 && e.error?.message?.includes('alternate'), `llama2: roles that do not alternate are refused, as the template refuses them (${r.status})`);
}
console.log(`# last ${n}`);
process.exit(failed ? 1 : 0);
