// SPDX-License-Identifier: MIT
/*
 * A reference forward pass of a llama2.c checkpoint, written from the model
 * definition (RMSNorm, GQA attention with RoPE on adjacent pairs, SwiGLU),
 * straight from the checkpoint file, in double precision. It checks that
 * `tiermem convert` is faithful: llama.cpp's logits on the converted GGUF
 * must equal these.
 *   llama2c_ref CHECKPOINT 1,2,3 OUT   -> float32 logits, one row per position
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *load(const char *path, int *h, long *n)
{
	FILE *f = fopen(path, "rb");
	float *p;

	if (!f || fread(h, 4, 7, f) != 7)
		return NULL;
	fseek(f, 0, SEEK_END);
	*n = (ftell(f) - 28) / 4;
	fseek(f, 28, SEEK_SET);
	p = malloc(*n * 4);
	if (fread(p, 4, *n, f) != (size_t)*n)
		return NULL;
	fclose(f);
	return p;
}

static void rmsnorm(double *o, const double *x, const float *w, int n)
{
	double ss = 0;

	for (int i = 0; i < n; i++)
		ss += x[i] * x[i];
	ss = 1.0 / sqrt(ss / n + 1e-5);
	for (int i = 0; i < n; i++)
		o[i] = x[i] * ss * w[i];
}

/* o[r] = sum_c W[r][c] x[c], W rows x cols */
static void matvec(double *o, const double *x, const float *w, int rows, int cols)
{
	for (int r = 0; r < rows; r++) {
		double s = 0;

		for (int c = 0; c < cols; c++)
			s += (double)w[(long)r * cols + c] * x[c];
		o[r] = s;
	}
}

int main(int argc, char **argv)
{
	int h[7];
	long nf;
	float *p;

	if (argc != 4 || !(p = load(argv[1], h, &nf))) {
		fprintf(stderr, "usage: llama2c_ref CHECKPOINT IDS OUT\n");
		return 2;
	}
	int D = h[0], F = h[1], L = h[2], NH = h[3], NKV = h[4], V = abs(h[5]), S = h[6];
	int HS = D / NH, KVD = HS * NKV;
	const float *embd = p, *rms_att = embd + (long)V * D, *wq = rms_att + (long)L * D,
		*wk = wq + (long)L * D * D, *wv = wk + (long)L * D * KVD, *wo = wv + (long)L * D * KVD,
		*rms_ffn = wo + (long)L * D * D, *w1 = rms_ffn + (long)L * D, *w2 = w1 + (long)L * D * F,
		*w3 = w2 + (long)L * F * D, *rms_f = w3 + (long)L * D * F,
		*wcls = h[5] > 0 ? embd : rms_f + D + (long)S * HS;
	int ids[4096], T = 0;

	for (char *s = strtok(argv[2], ","); s && T < 4096; s = strtok(NULL, ","))
		ids[T++] = atoi(s);
	double *x = calloc(D, 8), *xb = calloc(D, 8), *q = calloc(D, 8), *att = calloc(T, 8),
		*hb = calloc(F, 8), *hb2 = calloc(F, 8), *o = calloc(D, 8), *lg = calloc(V, 8);
	double *kc = calloc((long)L * T * KVD, 8), *vc = calloc((long)L * T * KVD, 8);
	FILE *out = fopen(argv[3], "wb");

	for (int t = 0; t < T; t++) {
		for (int i = 0; i < D; i++)
			x[i] = embd[(long)ids[t] * D + i];
		for (int l = 0; l < L; l++) {
			double *k = kc + ((long)l * T + t) * KVD, *v = vc + ((long)l * T + t) * KVD;

			rmsnorm(xb, x, rms_att + (long)l * D, D);
			matvec(q, xb, wq + (long)l * D * D, D, D);
			matvec(k, xb, wk + (long)l * D * KVD, KVD, D);
			matvec(v, xb, wv + (long)l * D * KVD, KVD, D);
			for (int i = 0; i < D; i += 2) {
				double fr = 1.0 / pow(10000.0, (i % HS) / (double)HS), a = t * fr;
				double c = cos(a), s = sin(a);

				for (int which = 0; which < (i < KVD ? 2 : 1); which++) {
					double *vec = which ? k : q, v0 = vec[i], v1 = vec[i + 1];

					vec[i] = v0 * c - v1 * s;
					vec[i + 1] = v0 * s + v1 * c;
				}
			}
			for (int hh = 0; hh < NH; hh++) {
				int kh = hh / (NH / NKV);
				double mx = -1e300, sum = 0;

				for (int u = 0; u <= t; u++) {
					const double *ku = kc + ((long)l * T + u) * KVD + kh * HS;
					double s = 0;

					for (int i = 0; i < HS; i++)
						s += q[hh * HS + i] * ku[i];
					att[u] = s / sqrt((double)HS);
					mx = att[u] > mx ? att[u] : mx;
				}
				for (int u = 0; u <= t; u++)
					sum += att[u] = exp(att[u] - mx);
				for (int i = 0; i < HS; i++) {
					double s = 0;

					for (int u = 0; u <= t; u++)
						s += att[u] / sum * vc[((long)l * T + u) * KVD + kh * HS + i];
					xb[hh * HS + i] = s;
				}
			}
			matvec(o, xb, wo + (long)l * D * D, D, D);
			for (int i = 0; i < D; i++)
				x[i] += o[i];
			rmsnorm(xb, x, rms_ffn + (long)l * D, D);
			matvec(hb, xb, w1 + (long)l * D * F, F, D);
			matvec(hb2, xb, w3 + (long)l * D * F, F, D);
			for (int i = 0; i < F; i++)
				hb[i] = hb[i] / (1 + exp(-hb[i])) * hb2[i];
			matvec(o, hb, w2 + (long)l * F * D, D, F);
			for (int i = 0; i < D; i++)
				x[i] += o[i];
		}
		rmsnorm(xb, x, rms_f, D);
		matvec(lg, xb, wcls, V, D);
		for (int i = 0; i < V; i++) {
			float f = (float)lg[i];

			fwrite(&f, 4, 1, out);
		}
	}
	fclose(out);
	return 0;
}
