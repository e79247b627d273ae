// Chat templates: what tiermem serve renders (POST /apply-template) equals
// what @huggingface/jinja, an independent Jinja implementation, renders from
// the template's text, for the same messages and BOS/EOS texts.
// usage: node templates.mjs URL TEMPLATE_FILE FAMILY START   (NODE_DIR: where scripts/deps installed it)
import fs from 'node:fs';
import { npm, tap } from './tap.mjs';

const { Template } = await npm('@huggingface/jinja');
const [url, file, family, start] = process.argv.slice(2);
const { ok, done } = tap(start);

const text = fs.readFileSync(file, 'utf8').replace(/\n$/, '');
const props = await (await fetch(url + '/props')).json();
ok(props.chat_template === family, `${family}: recognised from the template's text (${props.chat_template})`);

const convs = [
	[{ role: 'user', content: 'Hello!' }],
	[{ role: 'system', content: 'You are terse.' }, { role: 'user', content: '  Spaces around  \n' }],
	[{ role: 'system', content: 'Sys' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: ' Hello, how can I help? ' },
	 { role: 'user', content: 'Ünïcödé — 日本語 🙂' }],
	[{ role: 'user', content: 'one' }, { role: 'assistant', content: 'two' }, { role: 'user', content: 'three\nlines\n' }],
	// reasoning in earlier answers and in the last one (Qwen3, GLM-4.5 and DeepSeek cut or keep it). No blank but
	// "\n" next to the cut: @huggingface/jinja 0.5's lstrip('\n') strips all whitespace, Python's (the
	// training's) only "\n", which tiermem follows.
	[{ role: 'user', content: 'hi' }, { role: 'assistant', content: '<think>\nhmm\n</think>\n\nHello' }, { role: 'user', content: 'again' },
	 { role: 'assistant', content: '<think>\n\nx\n</think>\n\ny \n' }],
	// senders' names (Kimi-K2 writes one in place of the role; an empty one is no name) and answers' reasoning_content
	// (Qwen3 and GLM-4.5 render it instead of the content's <think>, after the last query only): every family gets
	// them, so those whose template ignores them must ignore them too
	[{ role: 'system', content: 'Sys', name: 'policy' }, { role: 'user', content: 'hi', name: 'alice' },
	 { role: 'assistant', content: 'Hello', reasoning_content: 'greet back', name: 'bot' }, { role: 'user', content: 'again', name: '' },
	 { role: 'assistant', content: '<think>in the content</think>\n\nAnswer', reasoning_content: '\nthe field wins\n' }],
	[{ role: 'user', content: 'q' }, { role: 'assistant', content: 'Plain', reasoning_content: '' }],
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

// Tools, tool calls and tool results (OpenAI's shapes: the server gets each call's arguments as JSON
// text and parses them; the template gets them as the object, as transformers and llama-server pass them).
const toolFamilies = ['qwen2.5', 'qwen3', 'llama3.1', 'deepseek3', 'kimi-k2', 'glm4.5'];
// The templates that test `arguments is string` (or concatenate it) get the client's JSON text as sent;
// the others iterate or tojson an object, as llama-server passes it to them.
const argsAsSent = ['qwen3', 'deepseek3', 'kimi-k2'].includes(family);
const tools = [
	{ type: 'function', function: { name: 'get_weather', description: 'The weather in a city.\nSays "now" \\ later\t\u0001.',
		parameters: { type: 'object', properties: { city: { type: 'string', description: 'Ünïcödé 日本 🙂' },
			days: { type: 'integer', minimum: 1, maximum: 7.5, default: 0.1 }, tiny: { type: 'number', default: 1e-7 },
			big: { type: 'number', default: 1e21 }, flags: { type: 'array', items: {}, default: [] }, nothing: null,
			yes: true, no: false }, required: ['city'] } } },
	{ type: 'function', function: { name: 'noop', parameters: { type: 'object', properties: {} } } },
];
const call = (id, name, args) => ({ id, type: 'function', function: { name, arguments: JSON.stringify(args) } });
const toolConvs = [
	{ tools, messages: [{ role: 'system', content: 'You use tools.' }, { role: 'user', content: 'Weather in Paris?' }] },
	{ tools, messages: [{ role: 'user', content: ' Weather in Oslo? ' }] },
	{ tools, messages: [{ role: 'user', content: 'Weather in Rome?' },
		{ role: 'assistant', content: null, tool_calls: [call('c1', 'get_weather', { city: 'Rome', days: 2, opts: { x: [1, 2.5, 'a"b'] } })] },
		{ role: 'tool', tool_call_id: 'c1', content: '{"temp": 21, "sky": "clear"}' },
		{ role: 'assistant', content: 'It is 21 °C and clear.' }, { role: 'user', content: 'Thanks!' }] },
	{ tools: [], messages: [{ role: 'user', content: 'An empty tools array.' }] },
];
// two calls in one message, two results in a row: Qwen2.5 renders them; llama-3.1 refuses (one call per message)
const multi = { tools, messages: [{ role: 'user', content: 'Paris and Rome?' },
	{ role: 'assistant', content: 'Checking both.', tool_calls: [call('a', 'get_weather', { city: 'Paris' }), call('b', 'get_weather', { city: 'Rome' })] },
	{ role: 'tool', tool_call_id: 'a', content: 'sunny' }, { role: 'tool', tool_call_id: 'b', content: 'rain' }] };
// A null content is rendered as an empty one (Qwen3's `'</think>' in content` cannot take null).
const forJinja = (messages) => messages.map((m) => ({ ...m, content: m.content ?? '' })).map((m) => m.tool_calls && !argsAsSent ?
	{ ...m, tool_calls: m.tool_calls.map((c) => ({ ...c, function: { ...c.function, arguments: typeof c.function.arguments === 'string' ?
		JSON.parse(c.function.arguments) : c.function.arguments } })) } : m);
// a call after reasoning, its result, then a reasoned answer: all after the last user query
toolConvs.push({ tools, messages: [{ role: 'user', content: 'Weather in Nice?' },
	{ role: 'assistant', content: '<think>\nI need the tool.\n</think>\n\n', tool_calls: [call('n1', 'get_weather', { city: 'Nice' })] },
	{ role: 'tool', tool_call_id: 'n1', content: '<b>sunny</b>' }, { role: 'assistant', content: '<think>Easy.</think>\n\nSunny in Nice.' }] });
// arguments sent as an object rather than JSON text (not OpenAI's shape, but accepted)
// (DeepSeek's template concatenates the arguments to a string, so cannot take an object: not for it)
if (family !== 'deepseek3') toolConvs.push({ tools: [tools[1]], messages: [{ role: 'user', content: 'Noop?' },
	{ role: 'assistant', content: 'Calling.', tool_calls: [{ id: 'o1', type: 'function', function: { name: 'noop', arguments: { a: [1, { b: null }] } } }] },
	{ role: 'tool', tool_call_id: 'o1', content: 'done' }] });
// DeepSeek-V3's template has no place for tools: tiermem declares them in one more system message
// (lib/serve/chat.c), which the template joins to the others; the same text here.
const tojson = new Template('{{ t | tojson }}');
const declare = (tools) => family !== 'deepseek3' || !tools?.length ? [] : [{ role: 'system', content:
	'## Tools\n\nYou can call these functions (name, description, JSON-schema parameters):' +
	tools.map((t) => '\n' + tojson.render({ t })).join('') + '\n\nTo call functions, answer with:\n' +
	'<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\nARGUMENTS\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>' }];
const apply = async (body) => {
	const r = await fetch(url + '/apply-template', { method: 'POST', body: JSON.stringify(body) });
	return { status: r.status, json: await r.json() };
};
// enable_thinking false (llama-server's chat_template_kwargs, or --reasoning-budget 0): qwen3 and glm4.5 ask the
// model not to think (glm4.5 marks user turns /nothink, unless they already end so); the others ignore it
{
	const thinkConvs = [convs[0], convs[3], [{ role: 'user', content: 'no thoughts /nothink' }, { role: 'assistant', content: 'ok' },
		{ role: 'user', content: 'more' }]];
	let same = 0, total = 0, differs = false;
	const diffs = [];
	for (const messages of thinkConvs)
		for (const enable_thinking of [false, true])
			for (const add_generation_prompt of [true, false]) {
				const want = tmpl.render({ messages, add_generation_prompt, enable_thinking, bos_token: props.bos_token, eos_token: props.eos_token });
				const got = (await apply({ messages, add_generation_prompt, chat_template_kwargs: { enable_thinking } })).json.prompt;
				total++;
				if (got === want) same++;
				else diffs.push(`want ${JSON.stringify(want)} got ${JSON.stringify(got)}`);
				differs ||= !enable_thinking && want !== tmpl.render({ messages, add_generation_prompt, bos_token: props.bos_token, eos_token: props.eos_token });
			}
	ok(same === total && differs === ['qwen3', 'glm4.5'].includes(family), `${family}: ${same} of ${total} conversations with enable_thinking false and true ` +
		`render as @huggingface/jinja renders them (false changes the prompt: ${differs})${diffs.length ? ': ' + diffs[0] : ''}`);
}
if (toolFamilies.includes(family)) {
	let same = 0, total = 0;
	const diffs = [];
	for (const conv of family !== 'llama3.1' ? [...toolConvs, multi] : toolConvs)
		for (const add_generation_prompt of [true, false]) {
			const want = tmpl.render({ messages: forJinja(conv.messages).concat(declare(conv.tools)), tools: conv.tools,
				add_generation_prompt, bos_token: props.bos_token, eos_token: props.eos_token });
			const got = (await apply({ ...conv, add_generation_prompt })).json.prompt;
			total++;
			if (got === want) same++;
			else diffs.push(`want ${JSON.stringify(want)} got ${JSON.stringify(got)}`);
		}
	ok(same === total, `${family}: ${same} of ${total} conversations with tools, tool calls and tool results render as @huggingface/jinja renders them${diffs.length ? ': ' + diffs[0] : ''}`);
	if (family === 'llama3.1') {
		let threw = false;
		try { tmpl.render({ messages: forJinja(multi.messages), tools, bos_token: '', eos_token: '' }); } catch { threw = true; }
		const r = await apply(multi);
		ok(threw && r.status === 400 && /one tool call/.test(r.json.error?.message), `llama3.1: two calls in one message are refused, as the template refuses them (${r.status})`);
	}
} else {
	const r = await apply(toolConvs[0]);
	ok(r.status === 400 && /does not render tools/.test(r.json.error?.message), `${family}: tools are refused with 400, not dropped: '${r.json.error?.message}'`);
}
if (family === 'qwen2' || family === 'qwen2.5') {
	const r = await apply({ messages: [{ role: 'user', content: 'Hi' }] });
	const sys = family === 'qwen2' ? 'You are a helpful assistant.' : 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.';
	ok(r.json.prompt?.startsWith(`<|im_start|>system\n${sys}<|im_end|>\n`), `${family}: no system message gets the default one ('${sys}')`);
}
const bad = await apply({ messages: [{ role: 'assistant', content: null, tool_calls: [call('x', 'f', {})].map((c) => ({ ...c, function: { ...c.function, arguments: '{not json' } })) }] });
ok(bad.status === 400, `${family}: tool call arguments that are not JSON: 400 '${bad.json.error?.message}'`);

if (family === 'llama2') {
	const messages = [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }];
	let threw = false;
	try { tmpl.render({ messages, bos_token: '', eos_token: '' }); } catch { threw = true; }
	const r = await fetch(url + '/apply-template', { method: 'POST', body: JSON.stringify({ messages }) });
	const e = await r.json();
	ok(threw && r.status === 400 && e.error?.message?.includes('alternate'), `llama2: roles that do not alternate are refused, as the template refuses them (${r.status})`);
}
done();
