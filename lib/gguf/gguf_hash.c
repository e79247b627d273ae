// SPDX-License-Identifier: MIT
/*
 * A model's identity: XXH3-128 over the GGUF's header (everything before the
 * tensor data) and then every tensor's data in the table's order, as hex.
 * The same bytes give the same hash whichever mapping holds them, so a heat
 * profile or a routing trace recorded from a file matches the model imported
 * from it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include <xxhash.h>

#include "tiermem/error.h"
#include "tiermem/gguf.h"

int tm_gguf_content_hash(const struct tm_gguf *g, char out[33])
{
	XXH3_state_t *st;
	XXH128_hash_t h;

	for (uint64_t i = 0; i < g->n_tensors; i++)
		if (!g->tensors[i].data && g->tensors[i].nbytes)
			return tm_err(-EINVAL, "a header-only GGUF has no tensor data to hash");
	st = XXH3_createState();
	if (!st)
		return tm_err(-ENOMEM, "out of memory");
	XXH3_128bits_reset(st);
	XXH3_128bits_update(st, g->base, g->data_offset);
	for (uint64_t i = 0; i < g->n_tensors; i++)
		XXH3_128bits_update(st, g->tensors[i].data, g->tensors[i].nbytes);
	h = XXH3_128bits_digest(st);
	XXH3_freeState(st);
	snprintf(out, 33, "%016" PRIx64 "%016" PRIx64, (uint64_t)h.high64, (uint64_t)h.low64);
	return 0;
}
