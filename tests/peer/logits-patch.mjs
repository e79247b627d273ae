#!/usr/bin/env node
// SPDX-License-Identifier: MIT
//
// Negative checks for the logits comparison: copy a GGUF, changing one
// float32 metadata value in place, so tiermem can be run on a deliberately
// wrong model (e.g. another RoPE base) and shown to FAIL the comparison with
// llama.cpp on the original. Test-side only: the product has no such hook.
//
//   logits-patch.mjs IN OUT KEY VALUE
//
// Exit 0 when written; 2 if KEY is not a float32 key of IN.

import fs from "node:fs";

const [inp, out, key, value] = process.argv.slice(2);
if (!inp || !out || !key || value === undefined || !Number.isFinite(Number(value))) {
	process.stderr.write("usage: logits-patch.mjs IN OUT KEY VALUE\n");
	process.exit(2);
}
const buf = fs.readFileSync(inp);
// A GGUF key: u64 length, the bytes, then the u32 value type (6 = float32), then the value.
const name = Buffer.from(key, "utf8");
const needle = Buffer.alloc(8 + name.length + 4);
needle.writeBigUInt64LE(BigInt(name.length), 0);
name.copy(needle, 8);
needle.writeUInt32LE(6, 8 + name.length);
const at = buf.indexOf(needle);
if (at < 0) {
	process.stderr.write(`logits-patch: ${inp} has no float32 key '${key}'\n`);
	process.exit(2);
}
buf.writeFloatLE(Number(value), at + needle.length);
fs.writeFileSync(out, buf);
