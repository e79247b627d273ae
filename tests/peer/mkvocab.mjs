#!/usr/bin/env node
// SPDX-License-Identifier: MIT
//
// Writes a small qwen2-style GGUF vocabulary for tokenizer tests: GPT-2
// byte-level BPE (tokenizer.ggml.model "gpt2", pre "qwen2") whose merges are
// learnt from the given text files, plus control and user-defined tokens.
// The file has the metadata of a tiny qwen2 model and no tensors: llama.cpp
// loads it with vocab_only, which is all a tokenizer comparison needs.
//
//   mkvocab.mjs OUT.gguf [--merges N] [--pre NAME] TEXT...
//
// Deterministic: the same inputs give the same file. One byte (0x01) is left
// out of the alphabet on purpose, to exercise the fallback for a byte with
// no token.

import fs from "node:fs";

function die(msg) {
	process.stderr.write(`mkvocab.mjs: ${msg}\n`);
	process.exit(2);
}

const args = process.argv.slice(2);
let out = null, nMerges = 1500, pre = "qwen2";
const inputs = [];
for (let i = 0; i < args.length; i++) {
	if (args[i] === "--merges")
		nMerges = Number(args[++i]);
	else if (args[i] === "--pre")
		pre = args[++i];
	else if (!out)
		out = args[i];
	else
		inputs.push(args[i]);
}
if (!out || inputs.length === 0 || !Number.isInteger(nMerges) || nMerges < 0)
	die("usage: mkvocab.mjs OUT.gguf [--merges N] [--pre NAME] TEXT...");

// GPT-2's byte alphabet: printable bytes stand for themselves, the rest get 256, 257, ...
const byteChar = [];
{
	let n = 0;
	for (let b = 0; b < 256; b++) {
		const keep = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
		byteChar[b] = String.fromCodePoint(keep ? b : 256 + n++);
	}
}
const encodeWord = (w) => [...Buffer.from(w, "utf8")].map((b) => byteChar[b]);

// The qwen2 pre-tokenizer expression (JavaScript runs it as the original does).
const split = /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

const counts = new Map();
for (const f of inputs) {
	const text = fs.readFileSync(f, "utf8");
	for (const m of text.matchAll(split))
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
		add(byteChar[b], 1);
for (const m of merges)
	add(m.replace(" ", ""), 1);
const firstSpecial = tokens.length;
add("<|endoftext|>", 3);
add("<|im_start|>", 3);
add("<|im_end|>", 3);
add("<think>", 4);
add("</think>", 4);
const id = (t) => tokens.indexOf(t);

// ---- GGUF v3 writer (metadata only) ----
const T = { U32: 4, I32: 5, F32: 6, BOOL: 7, STR: 8, ARR: 9 };
const parts = [];
const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); parts.push(b); };
const u64 = (v) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); parts.push(b); };
const str = (s) => { const b = Buffer.from(s, "utf8"); u64(b.length); parts.push(b); };
const kvs = [];
const kv = (key, type, write) => kvs.push({ key, type, write });
kv("general.architecture", T.STR, () => str("qwen2"));
kv("general.name", T.STR, () => str("tiermem test vocabulary"));
kv("general.alignment", T.U32, () => u32(32));
for (const [k, v] of [["context_length", 256], ["embedding_length", 64], ["block_count", 1],
	["feed_forward_length", 128], ["attention.head_count", 4], ["attention.head_count_kv", 2]])
	kv(`qwen2.${k}`, T.U32, () => u32(v));
kv("qwen2.attention.layer_norm_rms_epsilon", T.F32, () => { const b = Buffer.alloc(4); b.writeFloatLE(1e-6); parts.push(b); });
kv("qwen2.rope.freq_base", T.F32, () => { const b = Buffer.alloc(4); b.writeFloatLE(10000); parts.push(b); });
kv("tokenizer.ggml.model", T.STR, () => str("gpt2"));
kv("tokenizer.ggml.pre", T.STR, () => str(pre));
kv("tokenizer.ggml.tokens", T.ARR, () => { u32(T.STR); u64(tokens.length); tokens.forEach(str); });
kv("tokenizer.ggml.token_type", T.ARR, () => { u32(T.I32); u64(types.length); types.forEach((t) => u32(t)); });
kv("tokenizer.ggml.merges", T.ARR, () => { u32(T.STR); u64(merges.length); merges.forEach(str); });
kv("tokenizer.ggml.bos_token_id", T.U32, () => u32(id("<|endoftext|>")));
kv("tokenizer.ggml.eos_token_id", T.U32, () => u32(id("<|im_end|>")));
kv("tokenizer.ggml.padding_token_id", T.U32, () => u32(id("<|endoftext|>")));
kv("tokenizer.ggml.add_bos_token", T.BOOL, () => parts.push(Buffer.from([0])));

parts.push(Buffer.from("GGUF"));
u32(3);
u64(0);
u64(kvs.length);
for (const k of kvs) {
	str(k.key);
	u32(k.type);
	k.write();
}
let size = parts.reduce((s, b) => s + b.length, 0);
parts.push(Buffer.alloc((32 - (size % 32)) % 32));
fs.writeFileSync(out, Buffer.concat(parts));
process.stderr.write(`mkvocab.mjs: ${tokens.length} tokens (${merges.length} merges, specials from ${firstSpecial}) -> ${out}\n`);
