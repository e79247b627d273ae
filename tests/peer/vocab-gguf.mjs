// SPDX-License-Identifier: MIT
//
// Writes a GGUF v3 file holding only a GPT-2 byte-level BPE vocabulary (no
// tensors) under the metadata of a tiny qwen2 model: llama.cpp loads it with
// vocab_only, which is all a tokenizer comparison needs. Used by
// mkvocab.mjs (vocabularies learnt from text) and hfvocab.mjs (vocabularies
// of real models, from a Hugging Face tokenizer.json).

import fs from "node:fs";

// Token types as GGUF stores them (llama.cpp's llama_token_type).
export const NORMAL = 1, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5;

// GPT-2's byte alphabet: printable bytes stand for themselves, the rest get 256, 257, ...
export const byteChar = [];
{
	let n = 0;
	for (let b = 0; b < 256; b++) {
		const keep = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
		byteChar[b] = String.fromCodePoint(keep ? b : 256 + n++);
	}
}

// v = { pre, tokens, types, merges, bos, eos, pad, addBos }; ids may be -1 and
// addBos undefined (the key left out: llama.cpp's default for the pre-tokenizer).
export function writeVocabGguf(out, v) {
	const T = { U32: 4, I32: 5, F32: 6, BOOL: 7, STR: 8, ARR: 9 };
	const parts = [];
	const u32 = (x) => { const b = Buffer.alloc(4); b.writeUInt32LE(x); parts.push(b); };
	const u64 = (x) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(x)); parts.push(b); };
	const f32 = (x) => { const b = Buffer.alloc(4); b.writeFloatLE(x); parts.push(b); };
	const str = (s) => { const b = Buffer.from(s, "utf8"); u64(b.length); parts.push(b); };
	const kvs = [];
	const kv = (key, type, write) => kvs.push({ key, type, write });
	kv("general.architecture", T.STR, () => str("qwen2"));
	kv("general.name", T.STR, () => str("tiermem test vocabulary"));
	kv("general.alignment", T.U32, () => u32(32));
	for (const [k, x] of [["context_length", 256], ["embedding_length", 64], ["block_count", 1],
		["feed_forward_length", 128], ["attention.head_count", 4], ["attention.head_count_kv", 2]])
		kv(`qwen2.${k}`, T.U32, () => u32(x));
	kv("qwen2.attention.layer_norm_rms_epsilon", T.F32, () => f32(1e-6));
	kv("qwen2.rope.freq_base", T.F32, () => f32(10000));
	kv("tokenizer.ggml.model", T.STR, () => str("gpt2"));
	kv("tokenizer.ggml.pre", T.STR, () => str(v.pre));
	kv("tokenizer.ggml.tokens", T.ARR, () => { u32(T.STR); u64(v.tokens.length); v.tokens.forEach(str); });
	kv("tokenizer.ggml.token_type", T.ARR, () => { u32(T.I32); u64(v.types.length); v.types.forEach((t) => u32(t)); });
	kv("tokenizer.ggml.merges", T.ARR, () => { u32(T.STR); u64(v.merges.length); v.merges.forEach(str); });
	for (const [k, id] of [["bos", v.bos], ["eos", v.eos], ["padding", v.pad]])
		if (id >= 0)
			kv(`tokenizer.ggml.${k}_token_id`, T.U32, () => u32(id));
	if (v.addBos !== undefined)
		kv("tokenizer.ggml.add_bos_token", T.BOOL, () => parts.push(Buffer.from([v.addBos ? 1 : 0])));

	parts.push(Buffer.from("GGUF"));
	u32(3);
	u64(0);
	u64(kvs.length);
	for (const k of kvs) {
		str(k.key);
		u32(k.type);
		k.write();
	}
	const size = parts.reduce((s, b) => s + b.length, 0);
	parts.push(Buffer.alloc((32 - (size % 32)) % 32));
	fs.writeFileSync(out, Buffer.concat(parts));
}
