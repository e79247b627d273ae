#!/usr/bin/env node
// SPDX-License-Identifier: MIT
//
// Compare two logits files (raw little-endian float32, one row of n_vocab per
// position: what `tiermem logits` and `llama.mjs logits` write), row by row.
//
//   logits-compare.mjs OURS PEER --vocab N [--tol T] [--med M] [--top1 F] [--min-gap G]
//
// Per row: err = max |ours - peer| / std(peer row). Every row must have
// err <= T, and the median over rows must be <= M.
// With --top1 F, at least a fraction F of the rows must have the same argmax
// (rows where the peer's best two logits are closer than G std are not counted:
// there the argmax is decided by rounding). Prints one JSON line (worst error,
// its row, median error, top-1 agreement) and exits 0 if everything passes,
// 1 if not, 2 on bad usage or files of different or wrong sizes.

import fs from "node:fs";

function die(code, msg) {
	process.stderr.write(`logits-compare: ${msg}\n`);
	process.exit(code);
}

const args = process.argv.slice(2);
const opts = { tol: Infinity, med: Infinity, top1: 0, "min-gap": 0 };
const files = [];
for (let i = 0; i < args.length; i++) {
	const a = args[i];
	if (a.startsWith("--")) {
		if (i + 1 >= args.length)
			die(2, `option ${a} needs a value`);
		const v = Number(args[++i]);
		if (!Number.isFinite(v))
			die(2, `${a}: '${args[i]}' is not a number`);
		opts[a.slice(2)] = v;
	} else {
		files.push(a);
	}
}
if (files.length !== 2 || !Number.isInteger(opts.vocab) || opts.vocab < 1)
	die(2, "usage: logits-compare.mjs OURS PEER --vocab N [--tol T] [--med M] [--top1 F] [--min-gap G]");

function load(path) {
	let buf;
	try {
		buf = fs.readFileSync(path);
	} catch (e) {
		die(2, `${path}: ${e.message}`);
	}
	if (buf.length === 0 || buf.length % (4 * opts.vocab))
		die(2, `${path}: ${buf.length} bytes is not a whole number of rows of ${opts.vocab} floats`);
	return new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
}

const ours = load(files[0]), peer = load(files[1]);
if (ours.length !== peer.length)
	die(2, `${files[0]} has ${ours.length / opts.vocab} rows, ${files[1]} has ${peer.length / opts.vocab}`);

const V = opts.vocab, rows = ours.length / V;
const errs = [];
let worst = -1, worstRow = -1, agree = 0, counted = 0, bad = 0, nonfinite = 0;
for (let r = 0; r < rows; r++) {
	const o = ours.subarray(r * V, (r + 1) * V), p = peer.subarray(r * V, (r + 1) * V);
	let mean = 0;
	for (let i = 0; i < V; i++)
		mean += p[i];
	mean /= V;
	let varsum = 0, maxd = 0, bo = 0, bp = 0;
	for (let i = 0; i < V; i++) {
		varsum += (p[i] - mean) ** 2;
		const d = Math.abs(o[i] - p[i]);
		if (!(d <= maxd))
			maxd = d;	// NaN sticks
		if (o[i] > o[bo])
			bo = i;
		if (p[i] > p[bp])
			bp = i;
	}
	const std = Math.sqrt(varsum / V);
	const err = std > 0 ? maxd / std : maxd;
	if (!Number.isFinite(err))
		nonfinite++;
	errs.push(err);
	if (!(err <= worst))
		worst = err, worstRow = r;
	if (!(err <= opts.tol))
		bad++;
	let second = -Infinity;
	for (let i = 0; i < V; i++)
		if (i !== bp && p[i] > second)
			second = p[i];
	if (std > 0 && (p[bp] - second) / std < opts["min-gap"])
		continue;
	counted++;
	if (bo === bp)
		agree++;
}
errs.sort((a, b) => a - b);
const top1 = counted ? agree / counted : 1;
const res = {
	rows, max_err: worst, worst_row: worstRow, median_err: errs[errs.length >> 1],
	rows_over_tol: bad, top1, top1_rows: counted, nonfinite,
};
process.stdout.write(JSON.stringify(res) + "\n");
process.exit(bad || nonfinite || !(res.median_err <= opts.med) || top1 < opts.top1 ? 1 : 0);
