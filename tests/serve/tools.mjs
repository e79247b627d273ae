// Tool calls through the official `openai` npm client. A synth model never
// writes a call by chance, so the suite (tests/suites/68-serve-tools.sh)
// starts each server with TIERMEM_SERVE_TEST_REPLY: every completion is the
// tokens of that text instead of sampled ones, and goes through the same
// detokenizing, streaming and tool-call parsing as a model's. Environment:
//   URL       the server; CASE what its reply holds:
//             calls    some content, then two calls (NAMES, ARGS: JSON of the arguments)
//             bad      a call that does not parse (all of it must stay content)
//   ID0       (calls) the first call's id the model wrote, if its format has ids
//   START     the first test number; NODE_DIR where scripts/deps installed openai
import { npm, tap } from './tap.mjs';

const { default: OpenAI } = await npm('openai');
const { URL, CASE, LABEL, NAMES, ARGS, ID0 } = process.env;
const { ok, done } = tap(process.env.START, LABEL + ': ');

const client = new OpenAI({ baseURL: URL + '/v1', apiKey: 'none', maxRetries: 0, timeout: 120000 });
const tools = [{ type: 'function', function: { name: 'get_weather', description: 'The weather in a city.',
	parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] } } },
{ type: 'function', function: { name: 'noop', parameters: { type: 'object', properties: {} } } }];
const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
const base = { model: 'm', messages, temperature: 0, max_tokens: 300 };

// the reply as plain text: the same server without tools parses nothing
const plain = await client.chat.completions.create(base);
const raw = plain.choices[0].message.content;
ok(plain.choices[0].finish_reason === 'stop' && !plain.choices[0].message.tool_calls && raw.length > 20,
	`without tools the reply is all content, calls' text included (${JSON.stringify(raw.slice(0, 60))}...)`);

const whole = await client.chat.completions.create({ ...base, tools });
const msg = whole.choices[0].message;
const stream = await client.chat.completions.create({ ...base, tools, stream: true, stream_options: { include_usage: true } });
let sContent = '', sFinish = null, sUsage = null, markerLeaked = false;
const sCalls = [];
for await (const chunk of stream) {
	if (chunk.usage)
		sUsage = chunk.usage;
	const c = chunk.choices[0];
	if (!c)
		continue;
	if (c.delta.content) {
		sContent += c.delta.content;
		markerLeaked ||= /tool_call|｜|<\||"name"/.test(c.delta.content) && CASE === 'calls';
	}
	for (const t of c.delta.tool_calls || []) {
		const k = (sCalls[t.index] ||= { id: '', name: '', arguments: '' });
		k.id += t.id || '';
		k.name += t.function?.name || '';
		k.arguments += t.function?.arguments || '';
	}
	if (c.finish_reason)
		sFinish = c.finish_reason;
}

if (CASE === 'calls') {
	const names = JSON.parse(NAMES), args = JSON.parse(ARGS);
	const calls = msg.tool_calls || [];
	const before = raw.slice(0, raw.search(/<tool_call>|<｜tool▁calls▁begin｜>|<\|tool_calls_section_begin\|>|<\|python_tag\|>/)).trimEnd();
	ok(whole.choices[0].finish_reason === 'tool_calls', `finish_reason tool_calls (${whole.choices[0].finish_reason})`);
	ok(calls.length === names.length && calls.every((c, i) => c.type === 'function' && c.function.name === names[i]),
		`tool_calls name the functions the model called: ${calls.map((c) => c.function?.name).join(', ')}`);
	ok(calls.length === args.length && calls.every((c, i) => typeof c.function.arguments === 'string' &&
		JSON.stringify(JSON.parse(c.function.arguments)) === JSON.stringify(args[i])),
		`each call's arguments are a JSON string of what the model wrote: ${calls.map((c) => c.function?.arguments).join(' ')}`);
	ok(calls.every((c) => c.id) && new Set(calls.map((c) => c.id)).size === calls.length && (!ID0 || calls[0]?.id === ID0),
		`the calls have distinct ids${ID0 ? ', the model\'s own kept' : ''}: ${calls.map((c) => c.id).join(', ')}`);
	ok(msg.content === (before || null), `content is the text before the calls: ${JSON.stringify(msg.content)}`);
	ok(sFinish === 'tool_calls' && sContent === (msg.content || '') && !markerLeaked &&
		JSON.stringify(sCalls.map((c) => [c.name, c.arguments])) === JSON.stringify(calls.map((c) => [c.function.name, c.function.arguments])),
		`streamed: the same content (no marker leaked into it), the same calls in a tool_calls delta, finish_reason ${sFinish}`);
	ok(sUsage && sUsage.completion_tokens === whole.usage.completion_tokens && whole.usage.completion_tokens === plain.usage.completion_tokens,
		`usage counts every generated token, calls included (${whole.usage.completion_tokens})`);
	// the calls and their results sent back: the template renders them and the server answers
	const next = await client.chat.completions.create({ ...base, tools, messages: [...messages, msg,
		...calls.map((c) => ({ role: 'tool', tool_call_id: c.id, content: 'sunny' }))] });
	ok(next.choices[0].message.tool_calls?.length === calls.length && next.usage.prompt_tokens > whole.usage.prompt_tokens,
		`the assistant message with its tool_calls and the tool results go back in the next request (${next.usage.prompt_tokens} prompt tokens)`);
	const none = await client.chat.completions.create({ ...base, tools, tool_choice: 'none' });
	ok(none.choices[0].message.content === raw && !none.choices[0].message.tool_calls && none.choices[0].finish_reason === 'stop',
		'tool_choice "none": the text is all content');
} else {
	ok(whole.choices[0].finish_reason === 'stop' && !msg.tool_calls && msg.content === raw,
		`a malformed call is plain content, finish_reason stop (${JSON.stringify(msg.content.slice(0, 50))}...)`);
	ok(sFinish === 'stop' && sCalls.length === 0 && sContent === raw, 'streamed: the same plain content, no tool_calls delta');
}
done();
