#!/usr/bin/env node
// SPDX-License-Identifier: MIT
//
// Writes a small GGUF vocabulary for tokenizer tests: GPT-2 byte-level BPE
// (tokenizer.ggml.model "gpt2", pre "qwen2" or the one given) whose merges are
// learnt from the given text files, plus control and user-defined tokens
// (vocab-gguf.mjs writes the file).
//
//   mkvocab.mjs OUT.gguf [--merges N] [--pre NAME] [--special TEXT]... TEXT...
//
// --special adds a control token (a model's own: [EOT], <｜User｜>, [gMASK]...).
//
// Deterministic: the same inputs give the same file. One byte (0x01) is left
// out of the alphabet on purpose, to exercise the fallback for a byte with
// no token.

import fs from "node:fs";

import { byteChar, writeVocabGguf, NORMAL, CONTROL, USER_DEFINED } from "./vocab-gguf.mjs";

function die(msg) {
	process.stderr.write(`mkvocab.mjs: ${msg}\n`);
	process.exit(2);
}

const args = process.argv.slice(2);
let out = null, nMerges = 1500, pre = "qwen2";
const inputs = [], specials = [];
for (let i = 0; i < args.length; i++) {
	if (args[i] === "--merges")
		nMerges = Number(args[++i]);
	else if (args[i] === "--pre")
		pre = args[++i];
	else if (args[i] === "--special")
		specials.push(args[++i]);
	else if (!out)
		out = args[i];
	else
		inputs.push(args[i]);
}
if (!out || inputs.length === 0 || !Number.isInteger(nMerges) || nMerges < 0)
	die("usage: mkvocab.mjs OUT.gguf [--merges N] [--pre NAME] [--special TEXT]... TEXT...");

const encodeWord = (w) => [...Buffer.from(w, "utf8")].map((b) => byteChar[b]);

// The qwen2 pre-tokenizer expression (JavaScript runs it as the original does).
const split = /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

// Words from the real split, and from a coarse one (runs of non-space with
// their leading space, runs of space), so that merges also cross the real
// split's boundaries (digit-digit, letter-punctuation, space-newline...):
// with those in the vocabulary, a pre-tokenizer that cuts in the wrong place
// gives different ids instead of the same ones by luck.
const coarse = / ?[^\s]+|\s+/gu;
const counts = new Map();
for (const f of inputs) {
	const text = fs.readFileSync(f, "utf8");
	for (const re of [split, coarse])
		for (const m of text.matchAll(re))
			counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
}
const words = [...counts].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
	.map(([w, c]) => ({ syms: encodeWord(w), c }));

// Learn merges: the most frequent adjacent pair each round (ties: the smaller pair).
const merges = [];
for (let r = 0; r < nMerges; r++) {
	const pc = new Map();
	for (const w of words)
		for (let i = 0; i + 1 < w.syms.length; i++) {
			const k = w.syms[i] + " " + w.syms[i + 1];
			pc.set(k, (pc.get(k) ?? 0) + w.c);
		}
	let best = null, bc = 0;
	for (const [k, c] of pc)
		if (c > bc || (c === bc && k < best)) {
			best = k;
			bc = c;
		}
	if (!best || bc < 2)
		break;
	merges.push(best);
	const [a, b] = best.split(" ");
	for (const w of words) {
		const s = [];
		for (let i = 0; i < w.syms.length; i++) {
			if (i + 1 < w.syms.length && w.syms[i] === a && w.syms[i + 1] === b) {
				s.push(a + b);
				i++;
			} else {
				s.push(w.syms[i]);
			}
		}
		w.syms = s;
	}
}

const tokens = [], types = [];
const seen = new Set();
const add = (t, type) => {
	if (seen.has(t))
		return;
	seen.add(t);
	tokens.push(t);
	types.push(type);
};
for (let b = 0; b < 256; b++)
	if (b !== 0x01)
		add(byteChar[b], NORMAL);
for (const m of merges)
	add(m.replace(" ", ""), NORMAL);
const firstSpecial = tokens.length;
add("<|endoftext|>", CONTROL);
add("<|im_start|>", CONTROL);
add("<|im_end|>", CONTROL);
add("<think>", USER_DEFINED);
add("</think>", USER_DEFINED);
specials.forEach((t) => add(t, CONTROL));
const id = (t) => tokens.indexOf(t);

writeVocabGguf(out, { pre, tokens, types, merges, bos: id("<|endoftext|>"), eos: id("<|im_end|>"),
	pad: id("<|endoftext|>"), addBos: false });
process.stderr.write(`mkvocab.mjs: ${tokens.length} tokens (${merges.length} merges, specials from ${firstSpecial}) -> ${out}\n`);
