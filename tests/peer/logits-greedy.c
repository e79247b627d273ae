// SPDX-License-Identifier: MIT
/*
 * A greedy continuation as token ids, for tests/suites/40-peer-logits.sh:
 * a trained model's own most likely text, on which llama.cpp's and tiermem's
 * top-1 choices are compared. Built and run by the suite only.
 *
 *   logits-greedy MODEL N FIRST_ID   prints FIRST_ID and N greedy ids, comma-separated
 */
#include <stdio.h>
#include <stdlib.h>

#include "kernels/ops.h"
#include "tiermem/error.h"
#include "tiermem/model.h"

int main(int argc, char **argv)
{
	struct tm_model m;
	struct tm_ctx *c;
	int32_t tok;
	int n;

	if (argc != 4)
		return 2;
	n = atoi(argv[2]);
	tok = atoi(argv[3]);
	if (tm_model_load(&m, argv[1]) || tm_ctx_create(&c, &m, NULL, n + 1, 1)) {
		fprintf(stderr, "logits-greedy: %s\n", tm_strerror());
		return 1;
	}
	printf("%d", (int)tok);
	for (int i = 0; i < n; i++) {
		if (tm_forward(c, &tok, 1, NULL, false)) {
			fprintf(stderr, "logits-greedy: %s\n", tm_strerror());
			return 1;
		}
		tok = tm_argmax(c->logits, m.hp.n_vocab);
		printf(",%d", (int)tok);
	}
	printf("\n");
	tm_ctx_free(c);
	tm_model_free(&m);
	return 0;
}
