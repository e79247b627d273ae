#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// Prints N lines of random text built to stress tokenizers: runs of spaces,
// tabs, \r and other white space, apostrophe contractions, digits, letters
// of several scripts, combining marks, emoji, punctuation, special-token
// texts, invalid-looking mixes. Deterministic for a seed.
//   randtext.mjs N [SEED]
const n = Number(process.argv[2] ?? 100);
let x = (Number(process.argv[3] ?? 1) >>> 0) || 1;
const rnd = (k) => {
	x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
	return x % k;
};
const pieces = [
	" ", "  ", "   ", "\t", "\t\t", " \t", "\r", "\u00a0", "\u3000", "\u2003", "\u000b", "\u000c", "\u0085",
	"'s", "'S", "'t", "'re", "'RE", "'ve", "'m", "'ll", "'LL", "'d", "'x", "'", "''",
	"0", "7", "12", "123", "4567", "89012", "3.14", "1,000", "٣", "²", "½", "Ⅻ",
	"a", "the", "The", "HELLO", "word", "café", "naïve", "Straße", "Ωμέγα", "мир", "שלום", "مرحبا", "नमस्ते",
	"日本", "中文字", "한국어", "カタカナ", "ไทย", "e\u0301", "\u0301", "\u200b", "\u200d",
	"😀", "👍🏽", "❤️", "🇫🇷", "👨‍👩‍👧", "🚀", "𝐀", "𐌀",
	".", ",", "!", "?", "...", "--", "(", ")", "[", "]", "{", "}", "<", ">", "/", "\\", "\"", "#", "$", "%",
	"&", "*", "+", "=", "@", "^", "_", "`", "|", "~", ";", ":", "→", "©", "€", "•", "…",
	"<s>", "</s>", "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>",
	"<|end|>", "[EOT]", "<eos>", "<end_of_turn>", "<PAD>", "<|fim_prefix|>", "<|file_sep|>", "<EOT>",
	"\u0001", "\u001f", "\u007f", "\ufffd",
	"龥", "龦", "ゟ", "ヿ", "𠀀", "々", "~a", ".Net", "中a", "\u0301x", "—", "«",
	"<｜User｜>", "<｜end▁of▁sentence｜>", "[BOS]", "<|im_user|>", "[gMASK]", "<|user|>",
];
for (let i = 0; i < n; i++) {
	let s = "";
	const len = 1 + rnd(24);
	for (let j = 0; j < len; j++)
		s += pieces[rnd(pieces.length)];
	process.stdout.write(s + "\n");
}
