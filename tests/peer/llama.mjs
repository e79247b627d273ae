#!/usr/bin/env node
// SPDX-License-Identifier: MIT
//
// The llama.cpp peer: llama.cpp's own code, through node-llama-cpp (pinned by
// scripts/deps, installed in $BUILD/peer), on the CPU with its prebuilt
// binaries and no downloads. Other tests compare tiermem against what this
// prints, so its output formats are a stable interface:
//
//   load MODEL [--check-tensors]
//       exit 0 and print one JSON object (n_vocab, architecture, bos, eos, ...)
//       if llama.cpp loads MODEL; exit 1 with llama.cpp's messages otherwise.
//       --check-tensors: llama.cpp also validates every tensor's data (NaN or
//       infinite values and block scales), as llama_model_params.check_tensors.
//   tokenize MODEL (FILE | -p TEXT) [--lines] [--special] [--bos]
//       the token ids as a JSON array on one line, no spaces ("[1,2,3]"). With
//       --lines, FILE is tokenized line by line (without the "\n"), one array
//       per input line, in order. --special parses special/control tokens in
//       the text (llama.cpp's parse_special); --bos prepends BOS if the model
//       has one. Never adds a leading BOS or trailing EOS on its own, exactly
//       like llama_tokenize(add_special = false).
//   detokenize MODEL FILE [--special]
//       each line of FILE is a JSON array of ids; prints the text they make as
//       a JSON string, one per line (llama_detokenize with remove_special
//       false; --special renders control tokens). The same format as
//       `tiermem tokenize --detokenize`.
//   batch JOBS
//       runs many tokenize/detokenize jobs in one process (node and
//       llama.cpp start once): JOBS holds one JSON object per line,
//       {"op": "tokenize"|"detokenize", "model": M, "file": F, "out": O,
//        "lines": bool, "special": bool, "bos": bool}; each writes to O what
//       the subcommand would print.
//   logits MODEL --tokens 1,2,3 -o OUT [--threads N] [--kv f16|f32]
//       evaluates those ids from position 0 in one sequence and writes raw
//       little-endian float32 logits, one row of n_vocab per position (the
//       format of `tiermem logits`). --kv is the KV cache type (default f16,
//       llama.cpp's default); flash attention is off.
//   bench MODEL [--prompt-tokens N] [--gen N] [--threads T]
//       one JSON object: prefill tok/s (N prompt tokens in one batch, like
//       llama-bench's pp test) and decode tok/s (greedy generation of --gen
//       tokens after the prompt, one llama_decode per token, the timing
//       llama.cpp's perf counters call "eval"), after a short warm-up;
//       cpu_variant names the ggml CPU library that ran (null: none found).
//
// Exit codes: 0 ok, 1 llama.cpp failed, 2 bad usage.

import fs from "node:fs";
import path from "node:path";
import { NLC_VERSION, cpuVariant, openPeer } from "./peer.mjs";


function die(code, msg) {
	process.stderr.write(`llama.mjs: ${msg}\n`);
	process.exit(code);
}

const usage = `usage: llama.mjs COMMAND MODEL [options]
  load MODEL [--check-tensors]
  tokenize MODEL (FILE | -p TEXT) [--lines] [--special] [--bos]
  detokenize MODEL FILE [--special]
  batch JOBS
  logits MODEL --tokens 1,2,3 -o OUT [--threads N] [--kv f16|f32]
  bench MODEL [--prompt-tokens N] [--gen N] [--threads T]`;

function parseArgs(argv) {
	const flags = new Set(["--lines", "--special", "--bos", "--check-tensors"]);
	const opts = {}, pos = [];
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		if (a === "-h" || a === "--help") {
			process.stdout.write(usage + "\n");
			process.exit(0);
		}
		if (flags.has(a)) {
			opts[a.slice(2)] = true;
		} else if (a.startsWith("-") && a.length > 1) {
			if (i + 1 >= argv.length)
				die(2, `option ${a} needs a value`);
			opts[a.replace(/^-+/, "")] = argv[++i];
		} else {
			pos.push(a);
		}
	}
	return { opts, pos };
}

function intOpt(opts, name, lo, hi, def) {
	if (opts[name] === undefined)
		return def;
	const v = Number(opts[name]);
	if (!Number.isInteger(v) || v < lo || v > hi)
		die(2, `--${name}: expected a whole number in [${lo}, ${hi}], got '${opts[name]}'`);
	return v;
}

const [cmd, ...rest] = process.argv.slice(2);
if (!cmd)
	die(2, usage);
const { opts, pos } = parseArgs(rest);
if (cmd === "-h" || cmd === "--help") {
	process.stdout.write(usage + "\n");
	process.exit(0);
}
if (!["load", "tokenize", "detokenize", "batch", "logits", "bench"].includes(cmd))
	die(2, `unknown command '${cmd}'\n${usage}`);
const modelPath = pos[0];
if (!modelPath)
	die(2, `${cmd}: no MODEL given\n${usage}`);
if (!fs.existsSync(modelPath))
	die(2, `${cmd}: ${modelPath}: no such file`);

const threads = intOpt(opts, "threads", 1, 1024, undefined);

// llama.cpp's own messages are kept, to explain a failure.
const logLines = [];
let nlc, llama;
try {
	({ nlc, llama } = await openPeer(logLines));
} catch (e) {
	die(2, e.message);
}

async function loadModel(extra = {}, file = modelPath) {
	try {
		// A test harness: never refuse a model on node-llama-cpp's memory estimate.
		return await llama.loadModel({ modelPath: path.resolve(file), gpuLayers: 0,
			ignoreMemorySafetyChecks: true, ...extra });
	} catch (e) {
		const why = logLines.filter((l) => /^(error|warn)/.test(l)).join("\n");
		die(1, `llama.cpp cannot load ${file}: ${e.message}${why ? "\n" + why : ""}`);
	}
}

function nVocab(model) {
	return model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length ?? 0;
}

async function makeContext(model, nTokens, extra = {}) {
	const size = Math.max(256, Math.ceil(nTokens / 256) * 256);
	try {
		return await model.createContext({
			contextSize: size,
			batchSize: Math.min(Math.max(nTokens, 1), 512),
			sequences: 1,
			flashAttention: false,
			ignoreMemorySafetyChecks: true,
			...(threads ? { threads: { ideal: threads, min: threads } } : {}),
			...extra,
		});
	} catch (e) {
		die(1, `llama.cpp cannot create a context: ${e.message}\n${logLines.join("\n")}`);
	}
}

async function cmdLoad() {
	const model = await loadModel({ checkTensors: !!opts["check-tensors"] });
	const md = model.fileInfo.metadata;
	const info = {
		n_vocab: nVocab(model),
		architecture: md?.general?.architecture ?? null,
		vocabulary_type: model.vocabularyType,
		tokenizer_model: md?.tokenizer?.ggml?.model ?? null,
		tokenizer_pre: md?.tokenizer?.ggml?.pre ?? null,
		bos: model.tokens.bos ?? null,
		eos: model.tokens.eos ?? null,
		n_ctx_train: model.trainContextSize,
		n_embd: model.embeddingVectorSize,
		size_bytes: model.size,
		description: model.typeDescription,
	};
	process.stdout.write(JSON.stringify(info) + "\n");
}

function readText(file, what) {
	try {
		return fs.readFileSync(file, "utf8");
	} catch (e) {
		die(2, `${what}: ${file}: ${e.code === "ENOENT" ? "no such file" : e.message}`);
	}
}

// The output of `tokenize` for a text: one line, or one per input line.
function tokenizeText(model, text, o) {
	const bos = o.bos && model.tokens.bos != null ? [model.tokens.bos] : [];
	const tok = (s) => JSON.stringify([...bos, ...model.tokenize(s, !!o.special)]);
	if (!o.lines)
		return tok(text) + "\n";
	const lines = text.split("\n");
	if (lines.length > 0 && lines[lines.length - 1] === "")
		lines.pop();
	return lines.map(tok).join("\n") + (lines.length ? "\n" : "");
}

// The output of `detokenize` for a text of JSON arrays, one per line.
function detokenizeText(model, text, o, where) {
	const nv = nVocab(model);
	const out = text.split("\n").filter((l) => l.trim() !== "").map((l, i) => {
		let ids;
		try {
			ids = JSON.parse(l);
		} catch {
			die(2, `detokenize: ${where}:${i + 1}: not a JSON array`);
		}
		if (!Array.isArray(ids) || ids.some((t) => !Number.isInteger(t) || t < 0 || t >= nv))
			die(2, `detokenize: ${where}:${i + 1}: ids must be whole numbers in [0, ${nv})`);
		return JSON.stringify(model.detokenize(ids, !!o.special));
	});
	return out.join("\n") + (out.length ? "\n" : "");
}

async function cmdTokenize() {
	let text;
	if (opts.p !== undefined)
		text = opts.p;
	else if (pos[1])
		text = readText(pos[1], "tokenize");
	else
		die(2, "tokenize: give FILE or -p TEXT");
	const model = await loadModel({ vocabOnly: true });
	process.stdout.write(tokenizeText(model, text, opts));
}

async function cmdDetokenize() {
	if (!pos[1])
		die(2, "detokenize: give FILE (JSON arrays of ids, one per line)");
	const text = readText(pos[1], "detokenize");
	const model = await loadModel({ vocabOnly: true });
	process.stdout.write(detokenizeText(model, text, opts, pos[1]));
}

// Many tokenize/detokenize jobs in one process: node and llama.cpp start once.
async function cmdBatch() {
	const models = new Map();
	const jobs = readText(modelPath, "batch").split("\n").filter((l) => l.trim() !== "");
	for (const [i, line] of jobs.entries()) {
		let j;
		try {
			j = JSON.parse(line);
		} catch {
			die(2, `batch: ${modelPath}:${i + 1}: not a JSON object`);
		}
		if (!["tokenize", "detokenize"].includes(j.op) || !j.model || !j.file || !j.out)
			die(2, `batch: ${modelPath}:${i + 1}: needs op (tokenize|detokenize), model, file, out`);
		if (!models.has(j.model))
			models.set(j.model, await loadModel({ vocabOnly: true }, j.model));
		const model = models.get(j.model), text = readText(j.file, j.op);
		fs.writeFileSync(j.out, j.op === "tokenize" ? tokenizeText(model, text, j) : detokenizeText(model, text, j, j.file));
	}
}

function parseTokens(s, nv) {
	if (s === undefined || s === "")
		die(2, "logits: --tokens 1,2,3 is required");
	const ids = s.split(",").map((x) => Number(x.trim()));
	for (const id of ids)
		if (!Number.isInteger(id) || id < 0 || id >= nv)
			die(2, `logits: --tokens: '${s}' holds an id outside [0, ${nv})`);
	return ids;
}

async function cmdLogits() {
	if (!opts.o)
		die(2, "logits: -o OUT is required");
	const kv = opts.kv ?? "f16";
	if (kv !== "f16" && kv !== "f32")
		die(2, `logits: --kv: expected f16 or f32, got '${kv}'`);
	const model = await loadModel();
	const nv = nVocab(model);
	const ids = parseTokens(opts.tokens, nv);
	const ctx = await makeContext(model, ids.length, {
		experimentalKvCacheKeyType: kv.toUpperCase(),
		experimentalKvCacheValueType: kv.toUpperCase(),
	});
	const seq = ctx.getSequence();
	const res = await seq.controlledEvaluate(ids.map((t) => [t, { generateNext: { logits: true } }]));
	const out = new Float32Array(ids.length * nv);
	for (let i = 0; i < ids.length; i++) {
		const m = res[i]?.next?.logits;
		if (!m || m.size !== nv)
			die(1, `logits: position ${i}: llama.cpp returned ${m ? m.size : 0} logits, expected ${nv}`);
		const row = out.subarray(i * nv, (i + 1) * nv);
		for (const [t, v] of m)
			row[t] = v;
	}
	// Explicitly little-endian, whatever the host.
	const buf = Buffer.alloc(out.length * 4);
	for (let i = 0; i < out.length; i++)
		buf.writeFloatLE(out[i], i * 4);
	fs.writeFileSync(opts.o, buf);
	await ctx.dispose();
	process.stderr.write(`llama.mjs: ${ids.length} positions x ${nv} logits -> ${opts.o}\n`);
}

async function cmdBench() {
	const nPrompt = intOpt(opts, "prompt-tokens", 1, 65536, 512);
	const nGen = intOpt(opts, "gen", 1, 65536, 128);
	const model = await loadModel();
	const nv = nVocab(model);
	// Ids from a fixed LCG, away from the low (special, byte) ids, as
	// llama-bench feeds random tokens.
	let x = 12345;
	const rnd = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
	const lo = Math.min(300, nv - 1);
	const prompt = Array.from({ length: nPrompt }, () => lo + (rnd() % (nv - lo)));
	const ctx = await makeContext(model, nPrompt + nGen + 8, {
		batchSize: Math.min(nPrompt, 2048),
	});
	const seq = ctx.getSequence();

	// Warm-up: fault the weights in and let the thread pool spin up.
	await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, Math.min(nPrompt, 16)));
	await seq.clearHistory();

	let t0 = process.hrtime.bigint();
	await seq.evaluateWithoutGeneratingNewTokens(prompt);
	let t1 = process.hrtime.bigint();
	const prefillS = Number(t1 - t0) / 1e9;

	// Each step: one single-token llama_decode and a greedy pick.
	let n = 0;
	t0 = process.hrtime.bigint();
	for await (const tok of seq.evaluate([prompt[nPrompt - 1]], { temperature: 0 })) {
		void tok;
		if (++n >= nGen)
			break;
	}
	t1 = process.hrtime.bigint();
	const decodeS = Number(t1 - t0) / 1e9;
	const result = {
		peer: `llama.cpp via node-llama-cpp ${NLC_VERSION}`,
		cpu_variant: cpuVariant(),
		model: modelPath,
		threads: ctx.currentThreads ?? threads ?? null,
		prompt_tokens: nPrompt,
		gen_tokens: n,
		prefill_s: prefillS,
		prefill_tok_s: nPrompt / prefillS,
		decode_s: decodeS,
		decode_tok_s: n / decodeS,
	};
	await ctx.dispose();
	process.stdout.write(JSON.stringify(result) + "\n");
}

const run = { load: cmdLoad, tokenize: cmdTokenize, detokenize: cmdDetokenize, batch: cmdBatch, logits: cmdLogits, bench: cmdBench }[cmd];
try {
	await run();
} catch (e) {
	die(1, `${cmd}: ${e.stack || e.message}\n${logLines.join("\n")}`);
}
process.exit(0);
