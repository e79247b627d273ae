// SPDX-License-Identifier: MIT
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/stream.h"

uint64_t tm_stream_read_scalar(const void *p, size_t n, size_t prefetch, size_t every)
{
	const uint64_t *q = p;
	uint64_t a = 0, b = 0, c = 0, d = 0;

	for (size_t i = 0; i < n / 8; i += 32) {
		tm_stream_prefetch(p, 8 * i, prefetch, every);
		for (size_t j = 0; j < 32; j += 4) {
			a ^= q[i + j];
			b ^= q[i + j + 1];
			c ^= q[i + j + 2];
			d ^= q[i + j + 3];
		}
	}
	return a ^ b ^ c ^ d;
}

typedef uint64_t (*stream_fn)(const void *, size_t, size_t, size_t);

/* The kernels' dispatcher decides what the CPU and OS support. */
static stream_fn pick(const char **isa)
{
	const char *k = tm_kernels_isa();

	if (!strncmp(k, "avx512", 6)) {
		*isa = "avx512";
		return tm_stream_read_avx512;
	}
	if (!strcmp(k, "avx2")) {
		*isa = "avx2";
		return tm_stream_read_avx2;
	}
	*isa = "scalar";
	return tm_stream_read_scalar;
}

const char *tm_stream_isa(void)
{
	const char *isa;

	pick(&isa);
	return isa;
}

uint64_t tm_stream_read(const void *p, size_t n, size_t prefetch, size_t every)
{
	static stream_fn fn;
	const char *isa;
	size_t body = n & ~(size_t)255;
	uint64_t r = 0, t;

	if (!fn)
		fn = pick(&isa);
	if (body)
		r = fn(p, body, prefetch, every);
	for (size_t i = body; i < n; i += sizeof(t)) {
		t = 0;
		memcpy(&t, (const char *)p + i, n - i < sizeof(t) ? n - i : sizeof(t));
		r ^= t;
	}
	return r;
}
