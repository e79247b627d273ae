// SPDX-License-Identifier: MIT
/*
 * Tokenizers on small hand-made vocabularies (merge order, byte fallback,
 * special tokens, BOS/EOS, pieces, round trips) and on the real llama-2
 * vocabulary. Equality with llama.cpp on a corpus is tests/suites/35-tokenizer-peer.sh.
 */
#include <stdlib.h>
#include <string.h>

#include "lib/tokenizer/internal.h"
#include "tap.h"
#include "tiermem/error.h"
#include "tiermem/gguf.h"
#include "tiermem/mapping.h"
#include "tiermem/sampler.h"
#include "tiermem/tokenizer.h"

#define MAXV 600

struct vocab {
	struct tm_gguf_str tok[MAXV];
	char text[MAXV][24];
	float score[MAXV];
	int32_t type[MAXV];
	uint32_t n;
	struct tm_gguf_str merge[64];
	char mtext[64][24];
	uint32_t nm;
};

static int32_t add(struct vocab *v, const char *s, float score, int32_t type)
{
	snprintf(v->text[v->n], sizeof(v->text[0]), "%s", s);
	v->tok[v->n] = (struct tm_gguf_str){ v->text[v->n], strlen(s) };
	v->score[v->n] = score;
	v->type[v->n] = type;
	return (int32_t)v->n++;
}

static void add_merge(struct vocab *v, const char *s)
{
	snprintf(v->mtext[v->nm], sizeof(v->mtext[0]), "%s", s);
	v->merge[v->nm] = (struct tm_gguf_str){ v->mtext[v->nm], strlen(s) };
	v->nm++;
}

static int same(const int32_t *got, int n, const int32_t *want, int nw)
{
	return n == nw && !memcmp(got, want, (size_t)n * sizeof(*got));
}

#define U2581 "\xe2\x96\x81"

static void test_spm(void)
{
	static struct vocab v;
	struct tm_vocab_spec spec;
	struct tm_tokenizer *t;
	int32_t ids[64];
	char buf[128];
	int n;

	v.n = 0;
	add(&v, "<unk>", 0, TM_TOKEN_UNKNOWN);
	int32_t bos = add(&v, "<s>", 0, TM_TOKEN_CONTROL);
	int32_t eos = add(&v, "</s>", 0, TM_TOKEN_CONTROL);
	int32_t byte0 = (int32_t)v.n;
	for (int b = 0; b < 256; b++) {
		char hex[8];

		snprintf(hex, sizeof(hex), "<0x%02X>", b);
		add(&v, hex, 0, TM_TOKEN_BYTE);
	}
	int32_t sp = add(&v, U2581, -2, TM_TOKEN_NORMAL);
	int32_t a = add(&v, "a", -3, TM_TOKEN_NORMAL);
	add(&v, "b", -3, TM_TOKEN_NORMAL);
	int32_t c = add(&v, "c", -3, TM_TOKEN_NORMAL);
	int32_t ab = add(&v, "ab", -1, TM_TOKEN_NORMAL);
	int32_t bc = add(&v, "bc", -0.5f, TM_TOKEN_NORMAL);
	int32_t spab = add(&v, U2581 "ab", -0.8f, TM_TOKEN_NORMAL);
	int32_t user = add(&v, "<tool>", 0, TM_TOKEN_USER_DEFINED);

	tm_vocab_spec_init(&spec);
	spec.model = "llama";
	spec.n_tokens = v.n;
	spec.tokens = v.tok;
	spec.scores = v.score;
	spec.types = v.type;
	if (!tap_ok(tm_tokenizer_create(&t, &spec) == 0, "SPM vocabulary created"))
		return;
	tap_ok(tm_tokenizer_type(t) == TM_VOCAB_SPM && tm_tokenizer_n_vocab(t) == v.n &&
	       tm_tokenizer_bos(t) == bos && tm_tokenizer_eos(t) == eos && tm_tokenizer_add_bos(t),
	       "SPM defaults: BOS 1, EOS 2, add BOS");

	/* "abc": bc (-0.5) beats ab (-1); then no "abc" */
	n = tm_tokenize(t, "abc", 3, false, false, ids, 64);
	tap_ok(same(ids, n, (int32_t[]){ sp, a, bc }, 3), "higher-scored pair merges first: abc -> _ a bc");
	/* " ab" is "__ab" -> "_" + "_ab"; leading space prefix added */
	n = tm_tokenize(t, "ab ab", 5, true, false, ids, 64);
	tap_ok(same(ids, n, (int32_t[]){ bos, spab, spab }, 3), "space prefix, spaces as U+2581, BOS on request");
	n = tm_tokenize(t, "cab", 3, false, false, ids, 64);
	tap_ok(same(ids, n, (int32_t[]){ sp, c, ab }, 3), "pairs merge only into vocabulary tokens: cab -> _ c ab");
	n = tm_tokenize(t, "\xc3\xa9" "c", 3, false, false, ids, 64);
	tap_ok(same(ids, n, (int32_t[]){ sp, byte0 + 0xc3, byte0 + 0xa9, c }, 4), "unknown characters fall back to <0xNN> bytes");

	n = tm_tokenize(t, "<s>ab</s>", 9, false, true, ids, 64);
	tap_ok(same(ids, n, (int32_t[]){ bos, spab, eos }, 3), "parse_special: control tokens cut out, space after them");
	n = tm_tokenize(t, "<s>", 3, false, false, ids, 64);
	tap_ok(n == 4 && ids[0] == sp && ids[1] == byte0 + '<', "without parse_special control text stays text");
	n = tm_tokenize(t, "a<tool>a", 8, false, false, ids, 64);
	tap_ok(same(ids, n, (int32_t[]){ sp, a, user, sp, a }, 5), "user-defined tokens are always cut out");
	n = tm_tokenize(t, "", 0, true, false, ids, 64);
	tap_ok(same(ids, n, (int32_t[]){ bos }, 1), "empty text with add_special is just BOS");
	n = tm_tokenize(t, "abcabcabc", 9, false, false, ids, 2);
	tap_ok(n == 7 && ids[0] == sp, "a short buffer gets the first ids and the full count (%d)", n);

	n = tm_token_piece(t, spab, false, buf, sizeof(buf));
	tap_ok(n == 3 && !memcmp(buf, " ab", 3), "piece: U+2581 becomes a space");
	n = tm_token_piece(t, byte0 + 0x41, false, buf, sizeof(buf));
	tap_ok(n == 1 && buf[0] == 'A', "piece: <0x41> is the byte 'A'");
	tap_ok(tm_token_piece(t, bos, false, buf, sizeof(buf)) == 0 &&
	       tm_token_piece(t, bos, true, buf, sizeof(buf)) == 3, "piece: control tokens only with special");
	tap_ok(tm_token_piece(t, (int32_t)v.n, false, buf, sizeof(buf)) < 0 && tm_token_piece(t, -1, false, buf, 8) < 0,
	       "piece: ids outside the vocabulary are refused");

	const char *texts[] = { "ab ab", "  two spaces", "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80", "tab\there\n" };
	int bad = 0;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		int32_t *v2;
		int k = tm_tokenize_alloc(t, texts[i], strlen(texts[i]), false, false, &v2);
		int m = tm_detokenize(t, v2, (size_t)k, false, buf, sizeof(buf));

		bad += k < 0 || m != (int)strlen(texts[i]) || memcmp(buf, texts[i], (size_t)m);
		free(v2);
	}
	tap_ok(bad == 0, "SPM round trip: detokenize(tokenize(text)) == text");
	n = tm_tokenize(t, "ab", 2, true, false, ids, 64);
	n = tm_detokenize(t, ids, (size_t)n, false, buf, sizeof(buf));
	tap_ok(n == 3 && !memcmp(buf, " ab", 3), "after a leading BOS the word keeps its space, as in llama.cpp");
	tap_ok(tm_tokenizer_is_eog(t, eos) && !tm_tokenizer_is_eog(t, a), "EOS ends generation, a word does not");
	tm_tokenizer_free(t);
}

/* GPT-2's byte alphabet for byte b, as UTF-8. */
static void byte_char(int b, char *out)
{
	int n = 0;

	if (!((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff))) {
		for (int c = 0; c < b; c++)
			n += !((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || (c >= 0xae && c <= 0xff));
		b = 256 + n;
	}
	if (b < 0x80) {
		out[0] = (char)b;
		out[1] = 0;
	} else {
		out[0] = (char)(0xc0 | (b >> 6));
		out[1] = (char)(0x80 | (b & 0x3f));
		out[2] = 0;
	}
}

/* Random bytes, valid UTF-8 or not, tokenized: how many ids out of range or calls failed. */
static int random_bytes_bad(const struct tm_tokenizer *t, uint32_t n_vocab)
{
	struct tm_rng r;
	char junk[64];
	int bad = 0;

	tm_rng_seed(&r, 5);
	for (int i = 0; i < 300; i++) {
		int32_t *v2;
		size_t len = tm_rng_next(&r) % sizeof(junk);

		for (size_t j = 0; j < len; j++)
			junk[j] = (char)tm_rng_next(&r);
		int k = tm_tokenize_alloc(t, junk, len, false, true, &v2);

		bad += k < 0;
		for (int j = 0; j < k; j++)
			bad += v2[j] < 0 || (uint32_t)v2[j] >= n_vocab;
		free(v2);
	}
	return bad;
}

static void test_bpe(void)
{
	static struct vocab v;
	struct tm_vocab_spec spec;
	struct tm_tokenizer *t;
	int32_t ids[64];
	char buf[256];
	int n;

	v.n = v.nm = 0;
	for (int b = 0; b < 256; b++) {
		char s[4];

		byte_char(b, s);
		add(&v, s, 0, TM_TOKEN_NORMAL);
	}
	/* Ranks: "h e" first, then "l l", "he ll", "Ġ w"...; "Ġ 1" never: digits go one by one in qwen2 */
	add_merge(&v, "h e");
	add_merge(&v, "l l");
	add_merge(&v, "he ll");
	add_merge(&v, "hell o");
	add_merge(&v, "\xc4\xa0 w");
	add_merge(&v, "o r");
	add_merge(&v, "\xc4\xa0w or");
	add_merge(&v, "1 2");
	int32_t he = add(&v, "he", 0, TM_TOKEN_NORMAL);
	add(&v, "ll", 0, TM_TOKEN_NORMAL);
	add(&v, "hell", 0, TM_TOKEN_NORMAL);
	int32_t hello = add(&v, "hello", 0, TM_TOKEN_NORMAL);
	add(&v, "\xc4\xa0w", 0, TM_TOKEN_NORMAL);
	add(&v, "or", 0, TM_TOKEN_NORMAL);
	int32_t gwor = add(&v, "\xc4\xa0wor", 0, TM_TOKEN_NORMAL);
	add(&v, "12", 0, TM_TOKEN_NORMAL);
	int32_t eot = add(&v, "<|endoftext|>", 0, TM_TOKEN_CONTROL);
	int32_t imend = add(&v, "<|im_end|>", 0, TM_TOKEN_NORMAL);	/* llama.cpp makes it control by its text */
	/* Merges across the places where the newer pre-tokenizers cut and qwen2 does not (or the reverse). */
	const char *const more[][2] = {
		{ "12 3", "123" }, { "4 5", "45" }, { "a \xc3\xa4", "a\xc3\xa4" }, { ", \xc3\x83", ",\xc3\x83" },
		{ "d o", "do" }, { "do n", "don" }, { "' t", "'t" }, { "don 't", "don't" },
	};
	int32_t more_id[8];
	for (int i = 0; i < 8; i++) {
		add_merge(&v, more[i][0]);
		more_id[i] = add(&v, more[i][1], 0, TM_TOKEN_NORMAL);
	}

	tm_vocab_spec_init(&spec);
	spec.model = "gpt2";
	spec.pre = "qwen2";
	spec.n_tokens = v.n;
	spec.tokens = v.tok;
	spec.types = v.type;
	spec.n_merges = v.nm;
	spec.merges = v.merge;
	spec.eos = imend;
	if (!tap_ok(tm_tokenizer_create(&t, &spec) == 0, "BPE vocabulary created"))
		return;
	tap_ok(!tm_tokenizer_add_bos(t), "qwen2 adds no BOS by default");
	n = tm_tokenize(t, "hello world", 11, true, false, ids, 64);
	tap_ok(n == 4 && ids[0] == hello && ids[1] == gwor && ids[2] == 'l' && ids[3] == 'd',
	       "merges by rank within pre-tokenized words: hello | Gwor l d (%d ids)", n);
	n = tm_tokenize(t, "hehe", 4, false, false, ids, 64);
	tap_ok(n == 2 && ids[0] == he && ids[1] == he, "a merge applies at every place it can");
	n = tm_tokenize(t, "12", 2, false, false, ids, 64);
	tap_ok(n == 2, "qwen2 splits digits one by one, so \"1 2\" never merges");
	n = tm_tokenize(t, "a<|endoftext|>b<|im_end|>", 25, false, true, ids, 64);
	tap_ok(n == 4 && ids[1] == eot && ids[3] == imend, "parse_special cuts out control tokens, also those known by text");
	n = tm_tokenize(t, "a<|im_end|>", 11, false, false, ids, 64);
	tap_ok(n > 2, "without parse_special <|im_end|> is text");
	tap_ok(tm_tokenizer_is_eog(t, imend), "<|im_end|> ends generation");

	const char *texts[] = { "hello world", "  x\t\ty\n\n z", "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 12345",
				"it's 'quoted' DON'T" };
	int bad = 0;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		int32_t *v2;
		int k = tm_tokenize_alloc(t, texts[i], strlen(texts[i]), false, false, &v2);
		int m = tm_detokenize(t, v2, (size_t)k, false, buf, sizeof(buf));

		bad += k < 0 || m != (int)strlen(texts[i]) || memcmp(buf, texts[i], (size_t)m);
		free(v2);
	}
	tap_ok(bad == 0, "BPE round trip: detokenize(tokenize(text)) == text");

	/* Random bytes, valid UTF-8 or not: no crash, ids in range. */
	bad = random_bytes_bad(t, v.n);
	tap_ok(bad == 0, "random bytes tokenize to ids in range");
	tm_tokenizer_free(t);

	/*
	 * Where the pre-tokenizers cut: "12345" (one digit at a time, or up to
	 * three), "a中" (letters with Han or not), ",é" (punctuation before a
	 * non-ASCII letter), "don't" (the contraction kept on the word).
	 * Each row: the first id of each text, or -1 for "a plain byte".
	 */
	static const struct { const char *pre; int first[4]; bool bos; } pres[] = {
		{ "qwen2", { -1, 2, 3, 5 }, true },
		{ "deepseek-v3", { 0, -1, -1, 5 }, true },
		{ "kimi-k2", { 0, -1, 3, 7 }, true },
		{ "glm4", { 0, 2, 3, 5 }, false },
	};
	const char *const cuts[4] = { "12345", "a\xe4\xb8\xad", ",\xc3\xa9", "don't" };
	for (size_t p = 0; p < sizeof(pres) / sizeof(pres[0]); p++) {
		spec.pre = pres[p].pre;
		spec.eos = imend;
		if (!tap_ok(tm_tokenizer_create(&t, &spec) == 0, "%s: vocabulary created", pres[p].pre))
			continue;
		bad = 0;
		for (int i = 0; i < 4; i++) {
			int32_t want = pres[p].first[i] >= 0 ? more_id[pres[p].first[i]] : (int32_t)(unsigned char)cuts[i][0];

			n = tm_tokenize(t, cuts[i], strlen(cuts[i]), false, false, ids, 64);
			if (n < 1 || ids[0] != want) {
				printf("# %s: \"%s\" starts with id %d, want %d\n", pres[p].pre, cuts[i], n > 0 ? ids[0] : -1, want);
				bad++;
			}
		}
		for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
			int32_t *v2;
			int k = tm_tokenize_alloc(t, texts[i], strlen(texts[i]), false, false, &v2);
			int m = tm_detokenize(t, v2, (size_t)k, false, buf, sizeof(buf));

			bad += k < 0 || m != (int)strlen(texts[i]) || memcmp(buf, texts[i], (size_t)m);
			free(v2);
		}
		bad += random_bytes_bad(t, v.n);
		tap_ok(bad == 0, "%s: cuts where llama.cpp's expression does; round trip; random bytes", pres[p].pre);
		tap_ok((tm_tokenizer_bos(t) >= 0) == pres[p].bos, "%s: %s", pres[p].pre,
		       pres[p].bos ? "a default BOS id" : "no default BOS id");
		tm_tokenizer_free(t);
	}
	spec.pre = "qwen2";

	spec.pre = "no-such-pre";
	tap_ok(tm_tokenizer_create(&t, &spec) == -22 && strstr(tm_strerror(), "no-such-pre"),
	       "an unknown pre-tokenizer is refused by name");
	spec.pre = "qwen2";
	spec.model = "t5";
	tap_ok(tm_tokenizer_create(&t, &spec) == -22 && strstr(tm_strerror(), "t5"), "an unknown model is refused by name");
}

static void test_llama2(void)
{
	const char *path = "../shared/models/llama-2-tiny-random.gguf";
	struct tm_mapping m;
	struct tm_gguf g;
	struct tm_tokenizer *t;
	int32_t ids[16];
	char buf[64];

	if (tm_map_file(&m, path, 0)) {
		tap_skip("%s: %s", path, tm_strerror());
		return;
	}
	if (!tap_ok(tm_gguf_parse(&g, m.addr, m.size) == 0, "llama-2 GGUF parsed")) {
		tm_unmap(&m);
		return;
	}
	if (tap_ok(tm_tokenizer_load(&t, &g) == 0, "llama-2 vocabulary loaded")) {
		/* The ids llama.cpp gives (checked against the peer when this test was written). */
		int n = tm_tokenize(t, "Hello world", 11, true, false, ids, 16);

		tap_ok(tm_tokenizer_n_vocab(t) == 32000 && n == 3 && ids[0] == 1 && ids[1] == 15043 && ids[2] == 3186,
		       "\"Hello world\" -> [1, 15043, 3186]");
		n = tm_detokenize(t, ids + 1, 2, false, buf, sizeof(buf));
		tap_ok(n == 11 && !memcmp(buf, "Hello world", 11), "and back to \"Hello world\"");
		tm_tokenizer_free(t);
	}
	tm_gguf_free(&g);
	tm_unmap(&m);
}

/* The code point classes the pre-tokenizers split on (general categories, White_Space winning, as llama.cpp's tables have them). */
static void test_classes(void)
{
	static const struct { uint32_t cp; int cls; } cases[] = {
		{ 'A', TM_UC_LETTER }, { 'z', TM_UC_LETTER }, { '5', TM_UC_NUMBER }, { ' ', TM_UC_SPACE },
		{ '\t', TM_UC_SPACE }, { '\n', TM_UC_SPACE }, { 0x0b, TM_UC_SPACE }, { 0x1c, TM_UC_OTHER },
		{ '\'', TM_UC_PUNCT }, { '_', TM_UC_PUNCT }, { 0x85, TM_UC_SPACE }, { 0xa0, TM_UC_SPACE },
		{ '$', TM_UC_SYMBOL }, { '~', TM_UC_SYMBOL }, { 0x7f, TM_UC_OTHER }, { 0xa7, TM_UC_PUNCT },
		{ 0xaa, TM_UC_LETTER }, { 0xb2, TM_UC_NUMBER }, { 0xbd, TM_UC_NUMBER }, { 0xe9, TM_UC_LETTER },
		{ 0x0301, TM_UC_MARK }, { 0x0661, TM_UC_NUMBER }, { 0x200b, TM_UC_OTHER }, { 0x2003, TM_UC_SPACE },
		{ 0x200d, TM_UC_OTHER }, { 0xfe0f, TM_UC_MARK }, { 0x3001, TM_UC_PUNCT }, { 0x20ac, TM_UC_SYMBOL },
		{ 0x3000, TM_UC_SPACE }, { 0x4e2d, TM_UC_LETTER }, { 0xac00, TM_UC_LETTER }, { 0x2162, TM_UC_NUMBER },
		{ 0x1f600, TM_UC_SYMBOL }, { 0x1f3fd, TM_UC_SYMBOL }, { 0x1d400, TM_UC_LETTER }, { 0x20000, TM_UC_LETTER },
		{ 0x31350, TM_UC_LETTER }, { 0xe000, TM_UC_OTHER }, { 0x10ffff, TM_UC_OTHER }, { 0x110000, TM_UC_OTHER },
	};
	int bad = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (tm_uc_class(cases[i].cp) != cases[i].cls) {
			printf("# U+%04X: class %d, want %d\n", cases[i].cp, tm_uc_class(cases[i].cp), cases[i].cls);
			bad++;
		}
	tap_ok(bad == 0, "code point classes: L, N, M, P, S, White_Space, the rest (%zu cases)",
	       sizeof(cases) / sizeof(cases[0]));
}

int main(void)
{
	test_classes();
	test_spm();
	test_bpe();
	test_llama2();
	return tap_done();
}
