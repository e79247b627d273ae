// SPDX-License-Identifier: MIT
/*
 * The tokenizer's tables (vocabulary, scores, attributes, merges, special
 * tokens) built from a GGUF or from arrays, the special-token split that runs
 * before either algorithm, and the way back from ids to text. The defaults and
 * the order of the steps follow llama.cpp's llama-vocab.cpp, because the
 * result must be the ids it produces.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/tokenizer/internal.h"
#include "tiermem/error.h"

int tm_uc_class(uint32_t cp)
{
	size_t lo = 0, hi = tm_uc_nranges;

	if (cp >= 0x110000)
		return TM_UC_OTHER;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;

		if ((tm_uc_ranges[mid] >> 3) <= cp)
			lo = mid;
		else
			hi = mid;
	}
	return tm_uc_ranges[lo] & 7;
}

int tm_ids_push(struct tm_ids *a, int32_t id)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		int32_t *v = realloc(a->v, cap * sizeof(*v));

		if (!v)
			return tm_err(-ENOMEM, "tokenize: out of memory");
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = id;
	return 0;
}

/* ---- string table ---- */

static uint64_t str_hash(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

int32_t tm_strtab_find(const struct tm_strtab *s, const char *key, size_t len)
{
	if (!s->slots)
		return -1;
	for (uint64_t i = str_hash(key, len);; i++) {
		uint32_t v = s->slots[i & s->mask];

		if (!v)
			return -1;
		v--;
		if (s->off[v + 1] - s->off[v] == len && !memcmp(s->buf + s->off[v], key, len))
			return (int32_t)v;
	}
}

static void strtab_free(struct tm_strtab *s)
{
	free(s->buf);
	free(s->off);
	free(s->slots);
	memset(s, 0, sizeof(*s));
}

/*
 * Copy n strings and index them; a repeated string keeps its first index
 * (llama.cpp keeps the first rank of a repeated merge). A NULL name in
 * place of an empty string gets "[EMPTY_i]", as llama.cpp names it.
 */
static int strtab_build(struct tm_strtab *s, const struct tm_gguf_str *strs, uint64_t n, const char *what)
{
	uint64_t total = 0, nslots = 16;
	char empty[32];

	memset(s, 0, sizeof(*s));
	if (n >= UINT32_MAX / 4)
		return tm_err(-EINVAL, "tokenizer: %s: %llu entries is too many", what, (unsigned long long)n);
	for (uint64_t i = 0; i < n; i++)
		total += strs[i].len ? strs[i].len : (uint64_t)snprintf(empty, sizeof(empty), "[EMPTY_%llu]", (unsigned long long)i);
	if (total >= UINT32_MAX)
		return tm_err(-EINVAL, "tokenizer: %s: %llu bytes of text is too much", what, (unsigned long long)total);
	while (nslots < 2 * n)
		nslots *= 2;
	s->buf = malloc(total ? total : 1);
	s->off = malloc((n + 1) * sizeof(*s->off));
	s->slots = calloc(nslots, sizeof(*s->slots));
	if (!s->buf || !s->off || !s->slots) {
		strtab_free(s);
		return tm_err(-ENOMEM, "tokenizer: out of memory for %s", what);
	}
	s->mask = (uint32_t)(nslots - 1);
	s->n = (uint32_t)n;
	uint32_t pos = 0;
	for (uint64_t i = 0; i < n; i++) {
		const char *p = strs[i].ptr;
		size_t len = strs[i].len;

		if (!len) {
			len = (size_t)snprintf(empty, sizeof(empty), "[EMPTY_%llu]", (unsigned long long)i);
			p = empty;
		}
		s->off[i] = pos;
		memcpy(s->buf + pos, p, len);
		pos += (uint32_t)len;
		s->off[i + 1] = pos;
		if (tm_strtab_find(s, p, len) >= 0)
			continue;
		for (uint64_t h = str_hash(p, len);; h++) {
			if (!s->slots[h & s->mask]) {
				s->slots[h & s->mask] = (uint32_t)i + 1;
				break;
			}
		}
	}
	return 0;
}

/* ---- creation ---- */

void tm_vocab_spec_init(struct tm_vocab_spec *spec)
{
	memset(spec, 0, sizeof(*spec));
	spec->bos = spec->eos = spec->unk = spec->eot = spec->pad = TM_TOKEN_DEFAULT;
	spec->add_bos = spec->add_eos = spec->add_space_prefix = -1;
}

static const struct {
	const char *name;
	enum tm_pre pre;
	bool add_bos, ignore_merges, clean_spaces;
	bool no_bos;		/* no default BOS id (the file may still name one) */
} pre_types[] = {
	{ "gpt-2", TM_PRE_GPT2, false, false, true, false },
	{ "phi-2", TM_PRE_GPT2, false, false, true, false },
	{ "mpt", TM_PRE_GPT2, false, false, true, false },
	{ "olmo", TM_PRE_GPT2, false, false, true, false },
	{ "jais", TM_PRE_GPT2, false, false, true, false },
	{ "qwen2", TM_PRE_QWEN2, false, false, false, false },
	{ "deepseek-r1-qwen", TM_PRE_QWEN2, false, false, false, false },
	{ "stablelm2", TM_PRE_QWEN2, false, false, true, false },
	{ "megrez", TM_PRE_QWEN2, false, false, true, false },
	{ "llama3", TM_PRE_LLAMA3, true, true, true, false },
	{ "llama-v3", TM_PRE_LLAMA3, true, true, true, false },
	{ "llama-bpe", TM_PRE_LLAMA3, true, true, true, false },
	{ "falcon3", TM_PRE_LLAMA3, true, true, true, false },
	{ "dbrx", TM_PRE_LLAMA3, false, false, true, false },
	{ "smaug-bpe", TM_PRE_LLAMA3, false, false, true, false },
	{ "glm4", TM_PRE_LLAMA3, false, false, true, true },
	{ "chatglm-bpe", TM_PRE_LLAMA3, false, false, true, true },
	{ "deepseek-v3", TM_PRE_DEEPSEEK3, false, false, false, false },
	{ "kimi-k2", TM_PRE_KIMI_K2, false, false, false, false },
};

/*
 * Texts llama.cpp treats as control tokens whatever their type says (it finds
 * EOT, EOG and FIM tokens by text); the first group also ends generation.
 */
static const char *const eog_texts[] = {
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
	"<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
	"<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
	"<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", "[e~[", NULL,
};
static const char *const fim_texts[] = {
	"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<PRE>", "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>",
	"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<SUF>", "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>",
	"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<MID>", "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>",
	"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>", "<|repo_name|>",
	"<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>", NULL,
};
/* Of the FIM tokens, these end generation too. */
static const char *const fim_eog_texts[] = {
	"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>", "<|repo_name|>",
	"<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>", NULL,
};
/* Texts llama.cpp always renders and cuts out (gpt-oss): user-defined, whatever the file says. */
static const char *const user_texts[] = {
	"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", NULL,
};

static int32_t find_cstr(const struct tm_tokenizer *t, const char *s)
{
	return tm_strtab_find(&t->vocab, s, strlen(s));
}

static void mark_texts(struct tm_tokenizer *t, const char *const *texts, bool eog)
{
	for (; *texts; texts++) {
		int32_t id = find_cstr(t, *texts);

		if (id < 0)
			continue;
		t->attr[id] |= TM_ATTR_CONTROL;
		if (eog)
			t->eog[id] = 1;
	}
}

static bool is_eog_text(const struct tm_tokenizer *t, const char *s, int32_t *id)
{
	*id = find_cstr(t, s);
	return *id >= 0 && t->eog[*id];
}

/*
 * llama.cpp's exceptions: with <|return|> and <|call|> (or <|calls|> and
 * <|flush|>), <|end|> is an ordinary user-defined token; with
 * <|tool_response>, </s> is an ordinary word.
 */
static void fix_eog_quirks(struct tm_tokenizer *t)
{
	int32_t ret, call, calls, flush, end, tool, s;

	bool has_ret = is_eog_text(t, "<|return|>", &ret);
	bool has_call = is_eog_text(t, "<|call|>", &call) || is_eog_text(t, "<|calls|>", &calls);
	bool has_flush = is_eog_text(t, "<|flush|>", &flush);

	if (is_eog_text(t, "<|end|>", &end) && ((has_ret && has_call) || (has_call && has_flush))) {
		t->eog[end] = 0;
		t->attr[end] = TM_ATTR_USER_DEFINED;
	}
	if (is_eog_text(t, "<|tool_response>", &tool) && is_eog_text(t, "</s>", &s)) {
		t->eog[s] = 0;
		t->attr[s] = TM_ATTR_NORMAL;
	}
}

static int32_t special_id(int32_t given, int32_t def, uint32_t n)
{
	int32_t id = given == TM_TOKEN_DEFAULT ? def : given;

	return id >= 0 && (uint32_t)id < n ? id : -1;
}

static int by_length_desc(const void *a, const void *b, void *arg)
{
	const struct tm_tokenizer *t = arg;
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	uint32_t lx = t->vocab.off[x + 1] - t->vocab.off[x];
	uint32_t ly = t->vocab.off[y + 1] - t->vocab.off[y];

	if (lx != ly)
		return lx > ly ? -1 : 1;
	return x < y ? -1 : x > y;
}

static int build_specials(struct tm_tokenizer *t)
{
	uint32_t n = t->vocab.n, k = 0;

	for (uint32_t i = 0; i < n; i++)
		k += !!(t->attr[i] & (TM_ATTR_CONTROL | TM_ATTR_USER_DEFINED | TM_ATTR_UNKNOWN));
	t->specials = malloc((k ? k : 1) * sizeof(*t->specials));
	if (!t->specials)
		return tm_err(-ENOMEM, "tokenizer: out of memory");
	k = 0;
	for (uint32_t i = 0; i < n; i++)
		if (t->attr[i] & (TM_ATTR_CONTROL | TM_ATTR_USER_DEFINED | TM_ATTR_UNKNOWN))
			t->specials[k++] = (int32_t)i;
	t->n_specials = k;
	qsort_r(t->specials, k, sizeof(*t->specials), by_length_desc, t);
	return 0;
}

static int attr_of_type(int32_t type)
{
	switch (type) {
	case TM_TOKEN_UNKNOWN: return TM_ATTR_UNKNOWN;
	case TM_TOKEN_UNUSED: return TM_ATTR_UNUSED;
	case TM_TOKEN_NORMAL: return TM_ATTR_NORMAL;
	case TM_TOKEN_CONTROL: return TM_ATTR_CONTROL;
	case TM_TOKEN_USER_DEFINED: return TM_ATTR_USER_DEFINED;
	case TM_TOKEN_BYTE: return TM_ATTR_BYTE;
	default: return 0;	/* undefined */
	}
}

static int set_type(struct tm_tokenizer *t, const struct tm_vocab_spec *spec)
{
	if (spec->model && !strcmp(spec->model, "llama")) {
		t->type = TM_VOCAB_SPM;
		t->pre = TM_PRE_NONE;
		return 0;
	}
	if (!spec->model || strcmp(spec->model, "gpt2"))
		return tm_err(-EINVAL, "tokenizer: tokenizer.ggml.model '%s' is not supported (only \"llama\" and \"gpt2\")",
			      spec->model ? spec->model : "(none)");
	t->type = TM_VOCAB_BPE;
	const char *pre = spec->pre && *spec->pre ? spec->pre : "default";
	for (size_t i = 0; i < sizeof(pre_types) / sizeof(pre_types[0]); i++) {
		if (!strcmp(pre, pre_types[i].name)) {
			t->pre = pre_types[i].pre;
			t->ignore_merges = pre_types[i].ignore_merges;
			t->clean_spaces = pre_types[i].clean_spaces;
			t->add_bos = pre_types[i].add_bos;
			t->no_bos = pre_types[i].no_bos;
			return 0;
		}
	}
	return tm_err(-EINVAL, "tokenizer: pre-tokenizer tokenizer.ggml.pre = '%s' is not supported "
		      "(gpt-2, qwen2, llama-bpe, deepseek-v3, kimi-k2, glm4 and their aliases are)", pre);
}

int tm_tokenizer_create(struct tm_tokenizer **out, const struct tm_vocab_spec *spec)
{
	struct tm_tokenizer *t = calloc(1, sizeof(*t));
	uint32_t n = spec->n_tokens;
	int err;

	*out = NULL;
	if (!t)
		return tm_err(-ENOMEM, "tokenizer: out of memory");
	if ((err = set_type(t, spec)))
		goto fail;
	if (!n || !spec->tokens) {
		err = tm_err(-EINVAL, "tokenizer: the vocabulary is empty");
		goto fail;
	}
	if (t->type == TM_VOCAB_BPE && !spec->merges) {
		err = tm_err(-EINVAL, "tokenizer: a gpt2 vocabulary needs tokenizer.ggml.merges");
		goto fail;
	}
	if ((err = strtab_build(&t->vocab, spec->tokens, n, "tokens")))
		goto fail;
	if (t->type == TM_VOCAB_BPE && (err = strtab_build(&t->merges, spec->merges, spec->n_merges, "merges")))
		goto fail;
	t->scores = calloc(n, sizeof(*t->scores));
	t->attr = calloc(n, 1);
	t->eog = calloc(n, 1);
	if (!t->scores || !t->attr || !t->eog) {
		err = tm_err(-ENOMEM, "tokenizer: out of memory");
		goto fail;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint32_t len = t->vocab.off[i + 1] - t->vocab.off[i];

		t->scores[i] = spec->scores ? spec->scores[i] : 0.0f;
		t->attr[i] = spec->types ? attr_of_type(spec->types[i]) : TM_ATTR_NORMAL;
		if (len > t->max_token_len)
			t->max_token_len = len;
	}

	if (t->type == TM_VOCAB_SPM) {
		t->bos = special_id(spec->bos, 1, n);
		t->eos = special_id(spec->eos, 2, n);
		t->unk = special_id(spec->unk, 0, n);
		t->add_bos = true;
		t->add_space_prefix = spec->add_space_prefix != 0;
	} else {
		t->bos = special_id(spec->bos, t->no_bos ? -1 : 11, n);
		t->eos = special_id(spec->eos, 11, n);
		t->unk = special_id(spec->unk, -1, n);
	}
	t->eot = special_id(spec->eot, -1, n);
	t->pad = special_id(spec->pad, -1, n);
	if (spec->add_bos >= 0)
		t->add_bos = spec->add_bos;
	if (spec->add_eos >= 0)
		t->add_eos = spec->add_eos;
	if (t->add_bos && t->bos < 0) {
		err = tm_err(-EINVAL, "tokenizer: add_bos_token is true, but there is no BOS token");
		goto fail;
	}
	if (t->add_eos && t->eos < 0) {
		err = tm_err(-EINVAL, "tokenizer: add_eos_token is true, but there is no EOS token");
		goto fail;
	}

	for (int b = 0; b < 256; b++) {
		char hex[8], raw[1] = { (char)b };

		snprintf(hex, sizeof(hex), "<0x%02X>", b);
		t->byte_token[b] = find_cstr(t, hex);
		if (t->byte_token[b] < 0)
			t->byte_token[b] = tm_strtab_find(&t->vocab, raw, 1);
	}

	mark_texts(t, fim_texts, false);
	mark_texts(t, fim_eog_texts, true);
	mark_texts(t, eog_texts, true);
	for (const char *const *u = user_texts; *u; u++) {
		int32_t id = find_cstr(t, *u);

		if (id >= 0)
			t->attr[id] = TM_ATTR_USER_DEFINED;
	}
	if (t->eos >= 0)
		t->eog[t->eos] = 1;
	if (t->eot >= 0)
		t->eog[t->eot] = 1;
	fix_eog_quirks(t);
	if ((err = build_specials(t)))
		goto fail;
	*out = t;
	return 0;
fail:
	tm_tokenizer_free(t);
	return err;
}

void tm_tokenizer_free(struct tm_tokenizer *t)
{
	if (!t)
		return;
	strtab_free(&t->vocab);
	strtab_free(&t->merges);
	free(t->scores);
	free(t->attr);
	free(t->eog);
	free(t->specials);
	free(t);
}

/* ---- from a GGUF ---- */

static int gguf_id(const struct tm_gguf *g, const char *key, int32_t *id)
{
	uint32_t v;
	int err = tm_gguf_get_u32(g, key, &v);

	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	*id = v > INT32_MAX ? -1 : (int32_t)v;
	return 0;
}

static int gguf_flag(const struct tm_gguf *g, const char *key, int *flag)
{
	bool b;
	int err = tm_gguf_get_bool(g, key, &b);

	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	*flag = b;
	return 0;
}

static char *gguf_cstr(const struct tm_gguf *g, const char *key, int *err)
{
	struct tm_gguf_str s;
	char *c;

	*err = tm_gguf_get_str(g, key, &s);
	if (*err == -ENOENT) {
		*err = 0;
		return NULL;
	}
	if (*err)
		return NULL;
	c = strndup(s.ptr, s.len);
	if (!c)
		*err = tm_err(-ENOMEM, "tokenizer: out of memory");
	return c;
}

int tm_tokenizer_load(struct tm_tokenizer **out, const struct tm_gguf *g)
{
	struct tm_vocab_spec spec;
	const struct tm_gguf_kv *kv;
	uint64_t n = 0;
	char *model = NULL, *pre = NULL;
	float *scores = NULL;
	int32_t *types = NULL;
	int err;

	*out = NULL;
	tm_vocab_spec_init(&spec);
	model = gguf_cstr(g, "tokenizer.ggml.model", &err);
	if (err)
		goto done;
	if (!model) {
		err = tm_err(-ENOENT, "tokenizer: the GGUF has no tokenizer.ggml.model");
		goto done;
	}
	pre = gguf_cstr(g, "tokenizer.ggml.pre", &err);
	if (err)
		goto done;
	spec.model = model;
	spec.pre = pre;
	if ((err = tm_gguf_get_arr(g, "tokenizer.ggml.tokens", TM_GGUF_STRING, &n, &kv))) {
		if (err == -ENOENT)
			err = tm_err(-EINVAL, "tokenizer: the GGUF has no tokenizer.ggml.tokens");
		goto done;
	}
	if (n > INT32_MAX) {
		err = tm_err(-EINVAL, "tokenizer: %llu tokens is too many", (unsigned long long)n);
		goto done;
	}
	spec.n_tokens = (uint32_t)n;
	spec.tokens = kv->v.arr.strs;

	/* GGUF arrays may be unaligned in the mapping: copy element by element. */
	kv = tm_gguf_find(g, "tokenizer.ggml.scores");
	if (kv && kv->type == TM_GGUF_ARRAY) {
		if (kv->v.arr.type != TM_GGUF_FLOAT32 || kv->v.arr.n < n) {
			err = tm_err(-EINVAL, "tokenizer: tokenizer.ggml.scores (offset %llu) must be %llu float32",
				     (unsigned long long)kv->offset, (unsigned long long)n);
			goto done;
		}
		if (!(scores = malloc(n * sizeof(*scores) + 1))) {
			err = tm_err(-ENOMEM, "tokenizer: out of memory");
			goto done;
		}
		memcpy(scores, kv->v.arr.data, n * sizeof(*scores));
		spec.scores = scores;
	}
	kv = tm_gguf_find(g, "tokenizer.ggml.token_type");
	if (kv && kv->type == TM_GGUF_ARRAY) {
		if (kv->v.arr.type != TM_GGUF_INT32 || kv->v.arr.n < n) {
			err = tm_err(-EINVAL, "tokenizer: tokenizer.ggml.token_type (offset %llu) must be %llu int32",
				     (unsigned long long)kv->offset, (unsigned long long)n);
			goto done;
		}
		if (!(types = malloc(n * sizeof(*types) + 1))) {
			err = tm_err(-ENOMEM, "tokenizer: out of memory");
			goto done;
		}
		memcpy(types, kv->v.arr.data, n * sizeof(*types));
		spec.types = types;
	}
	err = tm_gguf_get_arr(g, "tokenizer.ggml.merges", TM_GGUF_STRING, &spec.n_merges, &kv);
	if (err && err != -ENOENT)
		goto done;
	spec.merges = err ? NULL : kv->v.arr.strs;
	if ((err = gguf_id(g, "tokenizer.ggml.bos_token_id", &spec.bos)) ||
	    (err = gguf_id(g, "tokenizer.ggml.eos_token_id", &spec.eos)) ||
	    (err = gguf_id(g, "tokenizer.ggml.unknown_token_id", &spec.unk)) ||
	    (err = gguf_id(g, "tokenizer.ggml.eot_token_id", &spec.eot)) ||
	    (err = gguf_id(g, "tokenizer.ggml.padding_token_id", &spec.pad)) ||
	    (err = gguf_flag(g, "tokenizer.ggml.add_bos_token", &spec.add_bos)) ||
	    (err = gguf_flag(g, "tokenizer.ggml.add_eos_token", &spec.add_eos)) ||
	    (err = gguf_flag(g, "tokenizer.ggml.add_space_prefix", &spec.add_space_prefix)))
		goto done;
	err = tm_tokenizer_create(out, &spec);
done:
	free(model);
	free(pre);
	free(scores);
	free(types);
	return err;
}

/* ---- tokenize ---- */

struct frag {
	size_t off, len;	/* raw text, or */
	int32_t token;		/* >= 0: a special token */
};

struct frags {
	struct frag *v;
	size_t n, cap;
};

static int frags_push(struct frags *f, struct frag x)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		struct frag *v = realloc(f->v, cap * sizeof(*v));

		if (!v)
			return tm_err(-ENOMEM, "tokenize: out of memory");
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n++] = x;
	return 0;
}

/*
 * Cut the special tokens out of the text, longest first, each one out of
 * every stretch of text still raw (llama.cpp's tokenizer_st_partition).
 */
static int partition(const struct tm_tokenizer *t, const char *text, size_t len, bool parse_special,
		     struct frags *cur)
{
	struct frags next = { 0 };
	int err = 0;

	if (len && (err = frags_push(cur, (struct frag){ 0, len, -1 })))
		return err;
	for (uint32_t s = 0; s < t->n_specials && !err; s++) {
		int32_t id = t->specials[s];
		size_t tlen;
		const char *tok = tm_tok_str(t, id, &tlen);
		bool any = false;

		if (!parse_special && (t->attr[id] & (TM_ATTR_CONTROL | TM_ATTR_UNKNOWN)))
			continue;
		next.n = 0;
		for (size_t i = 0; i < cur->n && !err; i++) {
			struct frag f = cur->v[i];
			const char *p;

			while (f.token < 0 && f.len >= tlen &&
			       (p = memmem(text + f.off, f.len, tok, tlen))) {
				size_t at = (size_t)(p - text);

				any = true;
				if (at > f.off && (err = frags_push(&next, (struct frag){ f.off, at - f.off, -1 })))
					break;
				if ((err = frags_push(&next, (struct frag){ 0, 0, id })))
					break;
				f.len -= at + tlen - f.off;
				f.off = at + tlen;
			}
			if (!err && (f.token >= 0 || f.len))
				err = frags_push(&next, f);
		}
		if (any && !err) {
			struct frags tmp = *cur;

			*cur = next;
			next = tmp;
		}
	}
	free(next.v);
	return err;
}

static int tokenize_ids(const struct tm_tokenizer *t, const char *text, size_t len,
			bool add_special, bool parse_special, struct tm_ids *out)
{
	struct frags fr = { 0 };
	char *buf = NULL;
	int err;

	if ((err = partition(t, text, len, parse_special, &fr)))
		goto done;
	if (add_special && t->add_bos && (err = tm_ids_push(out, t->bos)))
		goto done;
	if (t->type == TM_VOCAB_SPM) {
		/* Spaces become U+2581 (3 bytes), and a space goes before the first word and after each special token. */
		bool prev_special = true;

		buf = malloc(3 * len + 4);
		if (!buf) {
			err = tm_err(-ENOMEM, "tokenize: out of memory");
			goto done;
		}
		for (size_t i = 0; i < fr.n && !err; i++) {
			size_t n = 0;

			if (fr.v[i].token >= 0) {
				err = tm_ids_push(out, fr.v[i].token);
				prev_special = true;
				continue;
			}
			if (t->add_space_prefix && prev_special) {
				memcpy(buf, "\xe2\x96\x81", 3);
				n = 3;
			}
			for (size_t k = 0; k < fr.v[i].len; k++) {
				char c = text[fr.v[i].off + k];

				if (c == ' ') {
					memcpy(buf + n, "\xe2\x96\x81", 3);
					n += 3;
				} else {
					buf[n++] = c;
				}
			}
			err = tm_spm_tokenize(t, buf, n, out);
			prev_special = false;
		}
	} else {
		for (size_t i = 0; i < fr.n && !err; i++)
			err = fr.v[i].token >= 0 ? tm_ids_push(out, fr.v[i].token) :
			      tm_bpe_tokenize(t, text + fr.v[i].off, fr.v[i].len, out);
	}
	if (!err && add_special && t->add_eos)
		err = tm_ids_push(out, t->eos);
done:
	free(buf);
	free(fr.v);
	return err;
}

int tm_tokenize_alloc(const struct tm_tokenizer *t, const char *text, size_t len,
		      bool add_special, bool parse_special, int32_t **out)
{
	struct tm_ids ids = { 0 };
	int err = tokenize_ids(t, text, len, add_special, parse_special, &ids);

	*out = NULL;
	if (err) {
		free(ids.v);
		return err;
	}
	if (ids.n > INT32_MAX) {
		free(ids.v);
		return tm_err(-E2BIG, "tokenize: the text has too many tokens");
	}
	*out = ids.v ? ids.v : malloc(sizeof(int32_t));
	if (!*out)
		return tm_err(-ENOMEM, "tokenize: out of memory");
	return (int)ids.n;
}

int tm_tokenize(const struct tm_tokenizer *t, const char *text, size_t len,
		bool add_special, bool parse_special, int32_t *out, int max)
{
	int32_t *ids;
	int n = tm_tokenize_alloc(t, text, len, add_special, parse_special, &ids);

	if (n < 0)
		return n;
	if (max > 0)
		memcpy(out, ids, (size_t)(n < max ? n : max) * sizeof(*out));
	free(ids);
	return n;
}

/* ---- pieces ---- */

static size_t put(char *buf, size_t n, size_t at, const char *s, size_t len)
{
	if (at < n)
		memcpy(buf + at, s, len < n - at ? len : n - at);
	return at + len;
}

static int piece(const struct tm_tokenizer *t, int32_t id, bool special, char *buf, size_t n)
{
	size_t len, at = 0;
	const char *s;
	uint8_t a;

	if (id < 0 || (uint32_t)id >= t->vocab.n)
		return tm_err(-EINVAL, "token id %d is outside the vocabulary of %u", id, t->vocab.n);
	a = t->attr[id];
	s = tm_tok_str(t, id, &len);
	if (!special && (a & (TM_ATTR_UNKNOWN | TM_ATTR_CONTROL)))
		return 0;
	if (a & (TM_ATTR_UNKNOWN | TM_ATTR_CONTROL | TM_ATTR_USER_DEFINED)) {
		at = put(buf, n, 0, s, len);
	} else if (a & TM_ATTR_NORMAL) {
		for (size_t i = 0; i < len;) {
			unsigned char c = (unsigned char)s[i];
			size_t cl = tm_utf8_len(c);

			if (cl > len - i)
				cl = len - i;
			if (t->type == TM_VOCAB_SPM) {
				if (cl == 3 && !memcmp(s + i, "\xe2\x96\x81", 3))
					at = put(buf, n, at, " ", 1);
				else
					at = put(buf, n, at, s + i, cl);
			} else {
				/* Byte-level alphabet: each code point stands for one byte. */
				uint32_t cp = cl == 1 ? c : cl == 2 ? ((c & 0x1fu) << 6) | (s[i + 1] & 0x3f) : 0xffffffffu;
				int b = tm_bpe_cp_to_byte(cp);
				char byte = (char)b;

				at = b >= 0 ? put(buf, n, at, &byte, 1) : put(buf, n, at, s + i, cl);
			}
			i += cl;
		}
	} else if (a & TM_ATTR_BYTE) {
		char byte;

		if (len == 6 && !memcmp(s, "<0x", 3))
			byte = (char)strtol((char[3]){ s[3], s[4], 0 }, NULL, 16);
		else
			byte = s[0];
		at = put(buf, n, 0, &byte, 1);
	}
	return at > INT32_MAX ? tm_err(-E2BIG, "token piece too long") : (int)at;
}

int tm_token_piece(const struct tm_tokenizer *t, int32_t id, bool special, char *buf, size_t n)
{
	return piece(t, id, special, buf, n);
}

/*
 * llama.cpp's clean-up of GPT-2 style text: no space before ?!., or before
 * 's 'm 're 've, and a lone ' between spaces loses both spaces.
 */
static size_t clean_spaces(char *s, size_t n)
{
	size_t k;

	if (n < 2)
		return n;
	k = 1;
	for (size_t i = 1; i < n; i++) {
		if (s[i - 1] == ' ' && (s[i] == '?' || s[i] == '!' || s[i] == '.' || s[i] == ','))
			k--;
		s[k++] = s[i];
	}
	n = k;
	k = 1;
	for (size_t i = 1; i < n; i++) {
		char x = s[i];

		if (x == '\'' && i + 1 < n && s[i - 1] == ' ' && s[i + 1] == ' ') {
			k--;
			s[++i] = '\0';
		}
		s[k++] = x;
	}
	n = k;
	k = 1;
	for (size_t i = 1; i < n; i++) {
		if (s[i - 1] == ' ' && s[i] == '\'' && i + 1 < n) {
			char x1 = s[i + 1], x2 = i + 2 < n ? s[i + 2] : 0;

			if (x1 == 's' || x1 == 'm' || (x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e'))
				k--;
		}
		s[k++] = s[i];
	}
	return k;
}

int tm_detokenize(const struct tm_tokenizer *t, const int32_t *ids, size_t n_ids,
		  bool special, char *buf, size_t n)
{
	char *text = NULL;
	size_t len = 0, cap = 0;

	for (size_t i = 0; i < n_ids; i++) {
		int k = piece(t, ids[i], special, NULL, 0);

		if (k < 0) {
			free(text);
			return k;
		}
		if (len + (size_t)k + 1 > cap) {
			char *p = realloc(text, cap = 2 * (len + (size_t)k + 1));

			if (!p) {
				free(text);
				return tm_err(-ENOMEM, "detokenize: out of memory");
			}
			text = p;
		}
		piece(t, ids[i], special, text + len, (size_t)k);
		/* The space SPM puts before the first word; llama.cpp looks at the first token only. */
		if (i == 0 && t->add_space_prefix && k > 0 && text[len] == ' ') {
			memmove(text + len, text + len + 1, (size_t)k - 1);
			k--;
		}
		len += (size_t)k;
	}
	if (t->clean_spaces)
		len = clean_spaces(text, len);
	if (len)
		put(buf, n, 0, text, len);
	free(text);
	return len > INT32_MAX ? tm_err(-E2BIG, "detokenize: text too long") : (int)len;
}

/* ---- accessors ---- */

enum tm_vocab_type tm_tokenizer_type(const struct tm_tokenizer *t) { return t->type; }
uint32_t tm_tokenizer_n_vocab(const struct tm_tokenizer *t) { return t->vocab.n; }
int32_t tm_tokenizer_bos(const struct tm_tokenizer *t) { return t->bos; }
int32_t tm_tokenizer_eos(const struct tm_tokenizer *t) { return t->eos; }
bool tm_tokenizer_add_bos(const struct tm_tokenizer *t) { return t->add_bos; }

bool tm_tokenizer_is_eog(const struct tm_tokenizer *t, int32_t id)
{
	return id >= 0 && (uint32_t)id < t->vocab.n && t->eog[id];
}

const char *tm_token_text(const struct tm_tokenizer *t, int32_t id, size_t *len)
{
	if (id < 0 || (uint32_t)id >= t->vocab.n) {
		*len = 0;
		return NULL;
	}
	return tm_tok_str(t, id, len);
}

int32_t tm_tokenizer_find(const struct tm_tokenizer *t, const char *text, size_t len)
{
	return tm_strtab_find(&t->vocab, text, len);
}

int tm_syms_init(struct tm_sym *s, const char *text, size_t len)
{
	int ns = 0;

	for (size_t off = 0; off < len; ns++) {
		size_t n = tm_utf8_len((unsigned char)text[off]);

		if (n > len - off)
			n = len - off;
		s[ns] = (struct tm_sym){ ns - 1, off + n == len ? -1 : ns + 1, off, n };
		off += n;
	}
	return ns;
}

/* True if a must come out of the heap before b: higher priority, then leftmost. */
static bool before(const struct tm_bigram *a, const struct tm_bigram *b)
{
	return a->prio > b->prio || (a->prio == b->prio && a->left < b->left);
}

static int bigram_push(struct tm_bigram_heap *h, struct tm_bigram b)
{
	size_t i;

	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 64;
		struct tm_bigram *v = realloc(h->v, cap * sizeof(*v));

		if (!v)
			return tm_err(-ENOMEM, "tokenize: out of memory");
		h->v = v;
		h->cap = cap;
	}
	for (i = h->n++; i > 0 && before(&b, &h->v[(i - 1) / 2]); i = (i - 1) / 2)
		h->v[i] = h->v[(i - 1) / 2];
	h->v[i] = b;
	return 0;
}

static struct tm_bigram bigram_pop(struct tm_bigram_heap *h)
{
	struct tm_bigram top = h->v[0], last = h->v[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && before(&h->v[c + 1], &h->v[c]))
			c++;
		if (!before(&h->v[c], &last))
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
	return top;
}

static int queue_pair(struct tm_sym *s, struct tm_bigram_heap *h, tm_pair_prio_fn fn, void *ctx,
		      int left, int right)
{
	float prio;

	if (left < 0 || right < 0 || !fn(ctx, s, left, right, &prio))
		return 0;
	return bigram_push(h, (struct tm_bigram){ left, right, prio, s[left].n, s[right].n });
}

int tm_syms_merge(struct tm_sym *s, int ns, struct tm_bigram_heap *h, tm_pair_prio_fn fn, void *ctx)
{
	int err = 0;

	h->n = 0;
	for (int i = 1; i < ns && !err; i++)
		err = queue_pair(s, h, fn, ctx, i - 1, i);
	while (h->n && !err) {
		struct tm_bigram b = bigram_pop(h);
		struct tm_sym *l = &s[b.left], *r = &s[b.right];

		/* stale: a side was merged since the pair was queued */
		if (!l->n || !r->n || l->n != b.ln || r->n != b.rn)
			continue;
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			s[r->next].prev = b.left;
		err = queue_pair(s, h, fn, ctx, l->prev, b.left);
		if (!err)
			err = queue_pair(s, h, fn, ctx, b.left, l->next);
	}
	return err;
}
