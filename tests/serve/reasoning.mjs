// Reasoning (<think>), tool_choice and undeclared calls through the official
// `openai` npm client. The servers run with TIERMEM_SERVE_TEST_REPLY
// (tests/suites/69-serve-reasoning.sh): every completion is that text's
// tokens, through the real detokenizing, streaming and parsing. Environment:
//   URL    the server; CASE what it serves:
//          think      reply THINK + ANSWER, the server's --reasoning-format auto (the default)
//          none       the same reply, --reasoning-format none --reasoning-budget 0
//          toolthink  reply THINK + a get_weather call
//   THINK, ANSWER  the reasoning and the content the reply holds
//   START  the first test number; NODE_DIR where scripts/deps installed openai
import { npm, tap } from './tap.mjs';

const { default: OpenAI } = await npm('openai');
const { URL, CASE, LABEL, THINK, ANSWER } = process.env;
const { ok, done } = tap(process.env.START, LABEL + ': ');

const client = new OpenAI({ baseURL: URL + '/v1', apiKey: 'none', maxRetries: 0, timeout: 120000 });
const messages = [{ role: 'user', content: 'Hello there' }];
const base = { model: 'm', messages, temperature: 0, max_tokens: 300 };

// a streamed completion's pieces: reasoning, content and calls as the deltas bring them, in order
async function streamed(body) {
	const s = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
	const r = { reasoning: '', content: '', calls: [], finish: null, usage: null, order: '', tags: false };
	for await (const chunk of s) {
		if (chunk.usage)
			r.usage = chunk.usage;
		const c = chunk.choices[0];
		if (!c)
			continue;
		if (c.delta.reasoning_content) {
			r.reasoning += c.delta.reasoning_content;
			r.order += r.order.endsWith('r') ? '' : 'r';
		}
		if (c.delta.content) {
			r.content += c.delta.content;
			r.order += r.order.endsWith('c') ? '' : 'c';
		}
		r.tags ||= /<\/?think>/.test((c.delta.reasoning_content || '') + (c.delta.content || ''));
		for (const t of c.delta.tool_calls || [])
			r.calls[t.index] = t.function.name;
		if (c.finish_reason)
			r.finish = c.finish_reason;
	}
	return r;
}

// a request the server must refuse with 400 and a JSON error
async function refused(body, what, re) {
	try {
		await client.chat.completions.create(body);
		ok(false, `${what}: accepted`);
	} catch (e) {
		ok(e.status === 400 && re.test(e.error?.message || ''), `${what}: ${e.status} '${e.error?.message}'`);
	}
}

const raw = `<think>\n${THINK}\n</think>\n\n${ANSWER}`;
const tools = [{ type: 'function', function: { name: 'get_weather', description: 'The weather in a city.',
	parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } },
{ type: 'function', function: { name: 'noop', parameters: { type: 'object', properties: {} } } }];

if (CASE === 'think') {
	const whole = await client.chat.completions.create(base);
	const m = whole.choices[0].message;
	ok(m.reasoning_content === THINK && m.content === ANSWER && whole.choices[0].finish_reason === 'stop',
		`the <think> part is message.reasoning_content, the rest content (${JSON.stringify(m.reasoning_content)} / ${JSON.stringify(m.content)})`);
	const s = await streamed(base);
	ok(s.reasoning === THINK && s.content === ANSWER && s.order === 'rc' && !s.tags && s.finish === 'stop' &&
		s.usage?.completion_tokens === whole.usage.completion_tokens,
		`streamed: delta.reasoning_content then delta.content add up to the same, no tag in any delta (order ${s.order})`);
	const none = await client.chat.completions.create({ ...base, reasoning_format: 'none' });
	ok(none.choices[0].message.content === raw && none.choices[0].message.reasoning_content === undefined,
		'a request\'s reasoning_format "none": all of it is content, no reasoning_content');
	// cut off inside the reasoning: all of it is reasoning, content empty, finish "length" (as llama-server)
	// (the fewest tokens whose text has some reasoning: the synth vocabulary's token boundaries are not known here)
	let k = 1, cut;
	for (; k < Math.min(whole.usage.completion_tokens, 40); k++) {
		cut = await client.chat.completions.create({ ...base, max_tokens: k });
		if (cut.choices[0].message.reasoning_content)
			break;
	}
	const cm = cut.choices[0].message;
	const cs = await streamed({ ...base, max_tokens: k });
	ok(cut.choices[0].finish_reason === 'length' && cm.content === '' && cm.reasoning_content?.length > 0 &&
		THINK.startsWith(cm.reasoning_content.trimEnd()) && !/<\/?think>/.test(cm.reasoning_content),
		`max_tokens ${k} inside <think>: reasoning_content ${JSON.stringify(cm.reasoning_content)}, content "", finish length`);
	ok(cs.reasoning === (cm.reasoning_content || '') && cs.content === '' && cs.finish === 'length',
		'streamed: the same cut-off reasoning, no content');
	// the reasoning sent back, and a sender's name: accepted (suite 66 checks how each template renders them)
	const back = await client.chat.completions.create({ ...base, messages: [...messages,
		{ role: 'assistant', content: m.content, reasoning_content: m.reasoning_content }, { role: 'user', content: 'More', name: 'alice' }] });
	ok(back.choices[0].message.content === ANSWER && back.usage.prompt_tokens > whole.usage.prompt_tokens,
		`an assistant message's reasoning_content and a user's name go back in the next request (${back.usage.prompt_tokens} prompt tokens)`);
	await refused({ ...base, reasoning_format: 'deepseek-legacy' }, 'an unknown reasoning_format', /reasoning_format/);
	await refused({ ...base, messages: [{ role: 'assistant', content: 'a', reasoning_content: 5 }, ...messages] },
		'a reasoning_content that is not a string', /reasoning_content must be a string/);
	await refused({ ...base, messages: [{ role: 'user', content: 'a', name: ['x'] }] }, 'a name that is not a string',
		/name must be a string/);
	// chat_template_kwargs.enable_thinking false: qwen3's prompt closes an empty <think> for the model (suite 66 checks the text)
	const off = await client.chat.completions.create({ ...base, chat_template_kwargs: { enable_thinking: false } });
	const on = await client.chat.completions.create({ ...base, chat_template_kwargs: { enable_thinking: true } });
	ok(off.usage.prompt_tokens > whole.usage.prompt_tokens && on.usage.prompt_tokens === whole.usage.prompt_tokens,
		`chat_template_kwargs.enable_thinking false lengthens the prompt (${off.usage.prompt_tokens} tokens, ${whole.usage.prompt_tokens} by default and with true)`);
	await refused({ ...base, chat_template_kwargs: { enable_thinking: 'no' } }, 'an enable_thinking that is not a boolean', /enable_thinking/);
	await refused({ ...base, chat_template_kwargs: [] }, 'chat_template_kwargs that are not an object', /chat_template_kwargs/);
	// /v1/completions is raw text: nothing is split
	const comp = await client.completions.create({ model: 'm', prompt: 'Hi', max_tokens: 300, temperature: 0 });
	ok(comp.choices[0].text === raw, '/v1/completions keeps the <think> part in its text');
} else if (CASE === 'none') {
	const whole = await client.chat.completions.create(base);
	ok(whole.choices[0].message.content === raw && whole.choices[0].message.reasoning_content === undefined,
		'--reasoning-format none: all of it is content');
	const s = await streamed(base);
	ok(s.content === raw && s.reasoning === '', 'streamed: the same, all content');
	const ds = await client.chat.completions.create({ ...base, reasoning_format: 'deepseek' });
	ok(ds.choices[0].message.reasoning_content === THINK && ds.choices[0].message.content === ANSWER,
		'a request\'s reasoning_format "deepseek" overrides it');
	// this server also runs with --reasoning-budget 0: enable_thinking false unless the request says true
	const off = await client.chat.completions.create({ ...base, chat_template_kwargs: { enable_thinking: false } });
	const on = await client.chat.completions.create({ ...base, chat_template_kwargs: { enable_thinking: true } });
	ok(whole.usage.prompt_tokens === off.usage.prompt_tokens && on.usage.prompt_tokens < off.usage.prompt_tokens,
		`--reasoning-budget 0 renders enable_thinking false (${whole.usage.prompt_tokens} prompt tokens), a request's true overrides (${on.usage.prompt_tokens})`);
} else if (CASE === 'toolthink') {
	const whole = await client.chat.completions.create({ ...base, tools });
	const m = whole.choices[0].message;
	ok(m.reasoning_content === THINK && m.tool_calls?.length === 1 && m.tool_calls[0].function.name === 'get_weather' &&
		m.content === null && whole.choices[0].finish_reason === 'tool_calls',
		`reasoning, then a call: reasoning_content and tool_calls, content null (${JSON.stringify(m.content)})`);
	const s = await streamed({ ...base, tools });
	ok(s.reasoning === THINK && s.content === '' && JSON.stringify(s.calls) === '["get_weather"]' && s.finish === 'tool_calls' && !s.tags,
		'streamed: the reasoning deltas, then the call in a tool_calls delta');
	// a call of a function the request did not declare is content, as if no tools (the model was not offered it)
	const undeclared = await client.chat.completions.create({ ...base, tools: [tools[1]] });
	const callText = ANSWER;
	ok(!undeclared.choices[0].message.tool_calls && undeclared.choices[0].message.content === callText &&
		undeclared.choices[0].finish_reason === 'stop',
		'a call of an undeclared function: no tool_calls, the call\'s text is content, finish stop');
	const us = await streamed({ ...base, tools: [tools[1]] });
	ok(us.content === callText && us.calls.length === 0 && us.finish === 'stop', 'streamed: the same content, no tool_calls delta');
	// tool_choice
	await refused({ ...base, tools, tool_choice: 'required' }, 'tool_choice "required" (no constrained decoding to force it)',
		/required.*not supported/);
	await refused({ ...base, tools, tool_choice: { type: 'function', function: { name: 'nope' } } },
		'tool_choice naming a function not in tools', /not among/);
	await refused({ ...base, tools, tool_choice: 5 }, 'a tool_choice that is neither a string nor a function', /tool_choice must be/);
	const named = await client.chat.completions.create({ ...base, tools, tool_choice: { type: 'function', function: { name: 'get_weather' } } });
	const onlyOne = await client.chat.completions.create({ ...base, tools: [tools[0]] });
	ok(named.choices[0].message.tool_calls?.[0]?.function.name === 'get_weather' &&
		named.usage.prompt_tokens === onlyOne.usage.prompt_tokens && named.usage.prompt_tokens < whole.usage.prompt_tokens,
		`a named tool_choice offers that tool alone (${named.usage.prompt_tokens} prompt tokens, as with tools=[it]; ${whole.usage.prompt_tokens} with both)`);
	const other = await client.chat.completions.create({ ...base, tools, tool_choice: { type: 'function', function: { name: 'noop' } } });
	ok(!other.choices[0].message.tool_calls && other.choices[0].message.content === callText,
		'named noop while the model calls get_weather: not a call (best effort: nothing forces the model)');
	const auto = await client.chat.completions.create({ ...base, tools, tool_choice: 'auto' });
	ok(auto.choices[0].message.tool_calls?.length === 1, 'tool_choice "auto" is the default');
}
done();
