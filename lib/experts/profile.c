// SPDX-License-Identifier: MIT
/*
 * The profile recorder: an expert hook that only watches. Each decode step
 * calls done() once per MoE layer with the token's k experts; a layer lower
 * than the last one seen starts the next token.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tiermem/error.h"
#include "tiermem/experts.h"
#include "tiermem/model.h"

struct tm_xprofile {
	const struct tm_model *m;
	struct tm_ctx *c;
	struct tm_xheat heat;
	FILE *trace;
	int tok, last_l, err;
	struct tm_expert_hook hook;
};

static void on_done(void *arg, int l, const int *sel, int k)
{
	struct tm_xprofile *p = arg;
	int K = p->m->hp.n_expert_used;

	if (k != K)	/* a prefill batch runs expert by expert: not a token's routing */
		return;
	if (p->last_l < 0 || l <= p->last_l) {
		if (p->last_l >= 0)
			p->tok++;
		p->heat.tokens++;
	}
	p->last_l = l;
	for (int j = 0; j < k; j++)
		p->heat.counts[(size_t)l * p->m->hp.n_expert + sel[j]]++;
	if (p->trace && !p->err)
		p->err = tm_xtrace_write_rec(p->trace, p->tok, l, sel, p->c->selw, NULL, k);
}

int tm_xprofile_create(struct tm_xprofile **out, const struct tm_model *m, const char *hash, FILE *trace)
{
	const struct tm_hparams *hp = &m->hp;
	const struct tm_layer *L = &m->layers[0];
	struct tm_xtrace_model xm = { .n_layer = hp->n_layer, .n_expert = hp->n_expert,
				      .n_expert_used = hp->n_expert_used };
	struct tm_xprofile *p;
	int err;

	*out = NULL;
	if (!hp->moe)
		return tm_err(-EINVAL, "%s is a dense model: it has no experts to profile", hp->arch_name);
	snprintf(xm.hash, sizeof(xm.hash), "%s", hash);
	snprintf(xm.arch, sizeof(xm.arch), "%s", hp->arch_name);
	xm.expert_bytes = L->gate_exps.mat_bytes + L->up_exps.mat_bytes + L->down_exps.mat_bytes;
	xm.dense_bytes = m->bytes_per_token - (uint64_t)hp->n_layer * hp->n_expert_used * xm.expert_bytes;
	p = calloc(1, sizeof(*p));
	if (!p)
		return tm_err(-ENOMEM, "out of memory");
	if ((err = tm_xheat_alloc(&p->heat, &xm))) {
		free(p);
		return err;
	}
	p->m = m;
	p->trace = trace;
	p->last_l = -1;
	p->hook = (struct tm_expert_hook){ .done = on_done, .arg = p };
	if (trace && (err = tm_xtrace_write_header(trace, &xm, "tiermem profile"))) {
		tm_xprofile_free(p);
		return err;
	}
	*out = p;
	return 0;
}

void tm_xprofile_attach(struct tm_xprofile *p, struct tm_ctx *c)
{
	p->c = c;
	c->xhook = &p->hook;
}

const struct tm_xheat *tm_xprofile_heat(const struct tm_xprofile *p)
{
	return &p->heat;
}

int tm_xprofile_error(const struct tm_xprofile *p)
{
	return p->err;
}

void tm_xprofile_free(struct tm_xprofile *p)
{
	if (!p)
		return;
	if (p->c)
		p->c->xhook = NULL;
	tm_xheat_free(&p->heat);
	free(p);
}
