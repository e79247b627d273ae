/* SPDX-License-Identifier: MIT */
/*
 * What a run read from each tier, for its summary and, live, for other
 * processes: every running `tiermem run` publishes its counters in a small
 * file, TIERMEM_HOME/run/PID.stat, mapped shared and updated after every
 * token, so `tiermem stats` shows them without the module. The file is
 * removed when the run ends; one left by a process that died is recognised
 * (its pid is gone, or now belongs to a process started at another time)
 * and ignored.
 */
#ifndef TIERMEM_RUNSTAT_H
#define TIERMEM_RUNSTAT_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/pool.h"
#include "tiermem/model.h"

#define TM_RUNSTAT_MAGIC 0x54534d54u	/* "TMST" */
/*
 * Version 2 appended `experts` (the expert cache's counters); a version 1
 * file (its size ends where `experts` begins) still reads, with no cache.
 */
#define TM_RUNSTAT_VERSION 2
#define TM_RUNSTAT_XGROUPS 4

/* One of the model's mappings: a tier region, the GGUF file, DDR it was read into. */
struct tm_run_tier {
	char tier[16];			/* tm_tier_name(): ddr, pmem, vram, file */
	char backend[32];		/* the mapping's backend */
	uint64_t bytes;			/* weight bytes the forward passes read from it so far */
	double bench_gbps;		/* its read bandwidth, measured in this process (tiermem bench's loop) */
};

/* Expert-cache counters of some layers, since decode began (tiermem/experts.h's tm_xstats). */
struct tm_runstat_xgroup {
	int32_t first_layer, last_layer;
	uint64_t uses, hits, misses, admits;
	uint64_t pf_issued, pf_used, pf_wasted, pf_late;
};

/* The expert cache of a run (run --expert-cache), per token of decode where it says so. */
struct tm_runstat_experts {
	uint32_t on;				/* 0: no cache; the rest is zero */
	uint32_t n_groups;
	int32_t slots, n_expert, n_moe_layers;	/* slots in all layers */
	char policy[16];
	struct tm_runstat_xgroup total, groups[TM_RUNSTAT_XGROUPS];
	double cache_bytes_per_token;		/* read from the cache region */
	double hit_bytes_per_token;		/* hits x their experts' bytes (equals the above) */
	double slow_bytes_per_token;		/* read from the model's mappings, experts and the rest */
	double slow_expert_bytes_per_token;	/* ... of it, missed experts */
	double copy_bytes_per_token;		/* read (and written) by copies into slots */
	double rig_fast_gbps, rig_slow_gbps;	/* the planner's two tiers for the prediction below */
	double predicted_tps, predicted_tps_without;	/* at the observed hit rate; without a cache */
};

/* The shared file's layout (native endianness: it never leaves the machine). */
struct tm_runstat {
	uint32_t magic, version;
	int32_t pid;
	uint32_t n_tiers;
	uint64_t start_ticks;		/* the process's start time (/proc/PID/stat), against pid reuse */
	char model[256];
	uint32_t seq;			/* odd while being written (a seqlock) */
	uint32_t decoding;		/* 0 prefill, 1 decoding, 2 done */
	uint64_t n_prompt, n_decoded;	/* tokens evaluated by prefill, by decode steps */
	double t_decode;		/* seconds of decode so far */
	uint64_t decode_bytes;		/* weight bytes the decode steps read, all tiers */
	double predicted_tps;		/* the planner's cost model at these bandwidths; 0 unknown */
	struct tm_run_tier tiers[TM_MODEL_MAX_MAPS];
	uint64_t tier_decode_bytes[TM_MODEL_MAX_MAPS];	/* of those, the decode steps' */
	struct tm_runstat_experts experts;	/* version 2 */
};

/* A version 1 file's size. */
#define TM_RUNSTAT_V1_SIZE offsetof(struct tm_runstat, experts)

/*
 * Measure the read bandwidth of each of m's mappings (up to 512 MiB of it,
 * best of 3 passes after a warm-up, every thread of pool) into t[0..n_maps).
 */
int tm_run_tiers_measure(const struct tm_model *m, struct tm_pool *pool, struct tm_run_tier *t);

/*
 * The planner's prediction for bytes[i] read per token from tier i at its
 * bench_gbps: 1 / sum(bytes / bandwidth) (tiers read one after another, as
 * decode does). 0 if a bandwidth is unknown.
 */
double tm_run_predict_tps(const struct tm_run_tier *t, const double *bytes_per_token, int n);

/* TIERMEM_HOME/run (tm_store_home_path), where the files are; not created. */
int tm_runstat_dir(char *buf, size_t n);

/* The writer's handle. */
struct tm_runstat_pub {
	struct tm_runstat *s;
	char path[4096];
};

/*
 * Create TIERMEM_HOME/run/PID.stat (the directories are made if missing) for
 * model m, labelled model. Publishing is best effort: on failure the run
 * goes on without it.
 */
int tm_runstat_create(struct tm_runstat_pub *pub, const char *model, const struct tm_model *m,
		      const struct tm_run_tier *tiers);
/* Copy the context's counters in (cheap: call it every token); x: the expert cache's, or NULL. */
void tm_runstat_update(struct tm_runstat_pub *pub, const struct tm_ctx *c, uint64_t n_prompt,
		       uint64_t n_decoded, double t_decode, uint64_t decode_bytes,
		       const uint64_t *tier_decode_bytes, int decoding, const struct tm_runstat_experts *x);
/* Remove the file and unmap it. */
void tm_runstat_remove(struct tm_runstat_pub *pub);

/*
 * Snapshots of every live run's counters in dir, by pid; files of dead
 * processes are skipped (and removed when we may). *out malloc'd; a missing
 * dir is no runs.
 */
int tm_runstat_scan(const char *dir, struct tm_runstat **out, size_t *n);

#endif
