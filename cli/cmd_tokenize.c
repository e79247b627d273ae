// SPDX-License-Identifier: MIT
/*
 * tiermem tokenize: a model's tokenizer on a text, printing the ids in the
 * format of the llama.cpp peer (tests/peer/llama.mjs tokenize), so the two
 * can be compared with diff.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "tiermem/error.h"
#include "tiermem/gguf.h"
#include "tiermem/mapping.h"
#include "tiermem/tokenizer.h"

static const char usage_text[] =
	"usage: tiermem tokenize -m MODEL (-f FILE | -p TEXT) [--lines] [--special] [--bos] [--pieces]\n"
	"Prints the token ids of the text as a JSON array on one line (\"[1,2,3]\"),\n"
	"using the vocabulary of MODEL (a GGUF). No BOS or EOS is added unless asked.\n"
	"\n"
	"  -m, --model MODEL   the GGUF whose tokenizer.ggml.* vocabulary to use\n"
	"  -f, --file FILE     tokenize the contents of FILE\n"
	"  -p, --prompt TEXT   tokenize TEXT\n"
	"  --lines             one array per line of the input (the \"\\n\" not included)\n"
	"  --special           control tokens written in the text (\"<s>\", \"<|im_end|>\")\n"
	"                      become those tokens\n"
	"  --bos               put the BOS token first, if the vocabulary has one\n"
	"  --pieces            print each token as id and quoted piece, one per line\n";

struct tok_opts {
	const char *model, *file, *prompt;
	int lines, special, bos, pieces;
};

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (n == cap) {
			char *b = realloc(buf, cap = cap ? cap * 2 : 65536);

			if (!b) {
				free(buf);
				fclose(f);
				errno = ENOMEM;
				return NULL;
			}
			buf = b;
		}
		size_t r = fread(buf + n, 1, cap - n, f);

		n += r;
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		fclose(f);
		errno = EIO;
		return NULL;
	}
	fclose(f);
	*len = n;
	return buf;
}

static void print_piece(const struct tm_tokenizer *t, int32_t id)
{
	char buf[512];
	int n = tm_token_piece(t, id, true, buf, sizeof(buf));

	printf("%d \"", id);
	for (int i = 0; i < n && i < (int)sizeof(buf); i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
	printf("\"\n");
}

static int print_ids(const struct tm_tokenizer *t, const struct tok_opts *o, const char *text, size_t len)
{
	int32_t *ids;
	int n = tm_tokenize_alloc(t, text, len, false, o->special, &ids);

	if (n < 0)
		return run_error("tokenize", "%s", tm_strerror());
	if (o->pieces) {
		if (o->bos && tm_tokenizer_bos(t) >= 0)
			print_piece(t, tm_tokenizer_bos(t));
		for (int i = 0; i < n; i++)
			print_piece(t, ids[i]);
	} else {
		const char *sep = "";

		putchar('[');
		if (o->bos && tm_tokenizer_bos(t) >= 0) {
			printf("%d", tm_tokenizer_bos(t));
			sep = ",";
		}
		for (int i = 0; i < n; i++, sep = ",")
			printf("%s%d", sep, ids[i]);
		printf("]\n");
	}
	free(ids);
	return 0;
}

static int parse_opts(int argc, char **argv, struct tok_opts *o)
{
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "file", required_argument, NULL, 'f' },
		{ "prompt", required_argument, NULL, 'p' },
		{ "lines", no_argument, NULL, 'L' },
		{ "special", no_argument, NULL, 'S' },
		{ "bos", no_argument, NULL, 'B' },
		{ "pieces", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	optind = 1;
	while ((c = getopt_long(argc, argv, "m:f:p:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'f': o->file = optarg; break;
		case 'p': o->prompt = optarg; break;
		case 'L': o->lines = 1; break;
		case 'S': o->special = 1; break;
		case 'B': o->bos = 1; break;
		case 'P': o->pieces = 1; break;
		case 'h': fputs(usage_text, stdout); return 1;
		default: fputs(usage_text, stderr); return -1;
		}
	}
	if (optind < argc)
		return usage_error("tokenize", "unexpected argument '%s'", argv[optind]), -1;
	if (!o->model)
		return usage_error("tokenize", "-m MODEL is required"), -1;
	if (!o->file == !o->prompt)
		return usage_error("tokenize", "give exactly one of -f FILE and -p TEXT"), -1;
	return 0;
}

int cmd_tokenize(int argc, char **argv)
{
	struct tm_mapping map;
	struct tm_gguf g;
	struct tm_tokenizer *t = NULL;
	struct tok_opts o;
	char *text = NULL;
	size_t len;
	int rc, err;

	if ((rc = parse_opts(argc, argv, &o)))
		return rc > 0 ? 0 : EXIT_USAGE;
	if (o.file) {
		if (!(text = read_file(o.file, &len)))
			return usage_error("tokenize", "%s: %s", o.file, strerror(errno));
	} else {
		len = strlen(o.prompt);
	}
	if ((err = tm_map_file(&map, o.model, 0))) {
		free(text);
		return usage_error("tokenize", "%s", tm_strerror());
	}
	if ((err = tm_gguf_parse(&g, map.addr, map.size))) {
		rc = usage_error("tokenize", "%s: %s", o.model, tm_strerror());
		goto unmap;
	}
	if ((err = tm_tokenizer_load(&t, &g))) {
		rc = usage_error("tokenize", "%s: %s", o.model, tm_strerror());
		goto free_gguf;
	}
	const char *in = text ? text : o.prompt;
	rc = 0;
	if (o.lines) {
		for (size_t at = 0; at < len && !rc;) {
			const char *nl = memchr(in + at, '\n', len - at);
			size_t end = nl ? (size_t)(nl - in) : len;

			rc = print_ids(t, &o, in + at, end - at);
			at = end + 1;
		}
	} else {
		rc = print_ids(t, &o, in, len);
	}
	tm_tokenizer_free(t);
free_gguf:
	tm_gguf_free(&g);
unmap:
	tm_unmap(&map);
	free(text);
	return rc;
}
