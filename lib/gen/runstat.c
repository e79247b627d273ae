// SPDX-License-Identifier: MIT
/*
 * Per-tier run counters: measured bandwidths, the prediction, and the shared
 * file that lets `tiermem stats` watch a run without the module. The writer
 * is the run's own thread, between tokens; readers copy a snapshot under a
 * seqlock, so a torn read is retried rather than shown.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tiermem/bench.h"
#include "tiermem/error.h"
#include "tiermem/runstat.h"
#include "tiermem/store.h"

#define MEASURE_MAX (512ul << 20)

int tm_run_tiers_measure(const struct tm_model *m, struct tm_pool *pool, struct tm_run_tier *t)
{
	for (int i = 0; i < m->n_maps; i++) {
		const struct tm_mapping *map = &m->maps[i];
		struct tm_bw bw;
		int err;

		memset(&t[i], 0, sizeof(t[i]));
		/* an imported model's tiers go by the names its plan gave them */
		snprintf(t[i].tier, sizeof(t[i].tier), "%.15s",
			 map->tier_name[0] ? map->tier_name : tm_tier_name(map->tier));
		snprintf(t[i].backend, sizeof(t[i].backend), "%s", map->backend);
		if (!map->addr || !map->size)
			continue;
		err = tm_bench_read(map, map->size < MEASURE_MAX ? map->size : MEASURE_MAX, pool, 0, 3, &bw);
		if (err)
			return err;
		t[i].bench_gbps = bw.best_gbs;
	}
	return 0;
}

double tm_run_predict_tps(const struct tm_run_tier *t, const double *bytes_per_token, int n)
{
	double sec = 0;

	for (int i = 0; i < n; i++) {
		if (!bytes_per_token[i])
			continue;
		if (!(t[i].bench_gbps > 0))
			return 0;
		sec += bytes_per_token[i] / (t[i].bench_gbps * 1e9);
	}
	return sec > 0 ? 1 / sec : 0;
}

int tm_runstat_dir(char *buf, size_t n)
{
	int err;

	if ((err = tm_store_home_path(buf, n)))
		return err;
	if (strlen(buf) + sizeof("/run") > n)
		return tm_err(-ENAMETOOLONG, "run counters: TIERMEM_HOME is too long");
	strcat(buf, "/run");
	return 0;
}

/* Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. */
static uint64_t start_ticks(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long long v = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (!(f = fopen(path, "r")))
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* the command name may hold spaces and parentheses: count fields after the last ')' */
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	for (int field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (p)
		sscanf(p + 1, "%llu", &v);
	return v;
}

int tm_runstat_create(struct tm_runstat_pub *pub, const char *model, const struct tm_model *m,
		      const struct tm_run_tier *tiers)
{
	char tmp[sizeof(pub->path)], dir[sizeof(pub->path) - 32];
	struct tm_runstat *s;
	int fd, err;

	pub->s = NULL;
	pub->path[0] = '\0';
	/* the store's directory is made if missing, as an import would */
	if ((err = tm_store_home(dir, sizeof(dir) - 4)))
		return err;
	strcat(dir, "/run");
	if (mkdir(dir, 0755) && errno != EEXIST)
		return tm_err(-errno, "run counters: %s: %s", dir, strerror(errno));
	if ((size_t)snprintf(pub->path, sizeof(pub->path), "%s/%d.stat", dir, (int)getpid()) >= sizeof(pub->path) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/.%d.stat.tmp", dir, (int)getpid()) >= sizeof(tmp)) {
		pub->path[0] = '\0';
		return tm_err(-ENAMETOOLONG, "run counters: %s: path too long", dir);
	}
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		err = tm_err(-errno, "run counters: %s: %s", tmp, strerror(errno));
		pub->path[0] = '\0';
		return err;
	}
	if (ftruncate(fd, sizeof(*s)) ||
	    (s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		err = tm_err(-errno, "run counters: %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		pub->path[0] = '\0';
		return err;
	}
	close(fd);
	s->version = TM_RUNSTAT_VERSION;
	s->pid = (int32_t)getpid();
	s->start_ticks = start_ticks(s->pid);
	s->n_tiers = (uint32_t)m->n_maps;
	snprintf(s->model, sizeof(s->model), "%s", model);
	memcpy(s->tiers, tiers, (size_t)m->n_maps * sizeof(*tiers));
	/* the magic last and the name only then: a reader never sees a half-made file */
	__atomic_store_n(&s->magic, TM_RUNSTAT_MAGIC, __ATOMIC_RELEASE);
	if (rename(tmp, pub->path)) {
		err = tm_err(-errno, "run counters: %s: %s", pub->path, strerror(errno));
		munmap(s, sizeof(*s));
		unlink(tmp);
		pub->path[0] = '\0';
		return err;
	}
	pub->s = s;
	return 0;
}

void tm_runstat_update(struct tm_runstat_pub *pub, const struct tm_ctx *c, uint64_t n_prompt,
		       uint64_t n_decoded, double t_decode, uint64_t decode_bytes,
		       const uint64_t *tier_decode_bytes, int decoding, const struct tm_runstat_experts *x)
{
	struct tm_runstat *s = pub->s;
	double per_tok[TM_MODEL_MAX_MAPS] = { 0 };

	if (!s)
		return;
	__atomic_add_fetch(&s->seq, 1, __ATOMIC_ACQ_REL);
	s->n_prompt = n_prompt;
	s->n_decoded = n_decoded;
	s->t_decode = t_decode;
	s->decode_bytes = decode_bytes;
	s->decoding = (uint32_t)decoding;
	for (uint32_t i = 0; i < s->n_tiers; i++) {
		s->tiers[i].bytes = c->map_bytes[i];
		s->tier_decode_bytes[i] = tier_decode_bytes ? tier_decode_bytes[i] : 0;
		per_tok[i] = n_decoded ? (double)s->tier_decode_bytes[i] / (double)n_decoded : 0;
	}
	s->predicted_tps = tm_run_predict_tps(s->tiers, per_tok, (int)s->n_tiers);
	if (x)
		s->experts = *x;
	__atomic_add_fetch(&s->seq, 1, __ATOMIC_RELEASE);
}

void tm_runstat_remove(struct tm_runstat_pub *pub)
{
	if (pub->path[0])
		unlink(pub->path);
	if (pub->s)
		munmap(pub->s, sizeof(*pub->s));
	pub->s = NULL;
	pub->path[0] = '\0';
}

/* A consistent copy of a live run's file, or -1. */
static int snapshot(const char *path, struct tm_runstat *out)
{
	struct tm_runstat *s;
	struct stat st;
	int fd, ok = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/* a version 1 file (an older tiermem run) is the prefix before `experts` */
	if (fstat(fd, &st) || (st.st_size != (off_t)sizeof(*s) && st.st_size != (off_t)TM_RUNSTAT_V1_SIZE) ||
	    (s = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		close(fd);
		return -1;
	}
	close(fd);
	memset(out, 0, sizeof(*out));
	for (int tries = 0; tries < 1000 && ok; tries++) {
		uint32_t a = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE), b;

		if (a & 1)
			continue;
		memcpy(out, s, (size_t)st.st_size);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		b = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
		ok = a == b ? 0 : -1;
	}
	munmap(s, (size_t)st.st_size);
	if (ok || out->magic != TM_RUNSTAT_MAGIC || out->n_tiers > TM_MODEL_MAX_MAPS ||
	    !(out->version == TM_RUNSTAT_VERSION ? st.st_size == (off_t)sizeof(*s) :
	      out->version == 1 && st.st_size == (off_t)TM_RUNSTAT_V1_SIZE))
		return -1;
	out->experts.policy[sizeof(out->experts.policy) - 1] = '\0';
	if (out->experts.n_groups > TM_RUNSTAT_XGROUPS)
		out->experts.n_groups = TM_RUNSTAT_XGROUPS;
	out->model[sizeof(out->model) - 1] = '\0';
	for (uint32_t i = 0; i < out->n_tiers; i++) {
		out->tiers[i].tier[sizeof(out->tiers[i].tier) - 1] = '\0';
		out->tiers[i].backend[sizeof(out->tiers[i].backend) - 1] = '\0';
	}
	return 0;
}

static bool alive(const struct tm_runstat *s)
{
	if (s->pid <= 0 || (kill(s->pid, 0) && errno == ESRCH))
		return false;
	return start_ticks(s->pid) == s->start_ticks;
}

static int by_pid(const void *a, const void *b)
{
	return ((const struct tm_runstat *)a)->pid - ((const struct tm_runstat *)b)->pid;
}

int tm_runstat_scan(const char *dir, struct tm_runstat **out, size_t *n)
{
	struct tm_runstat *v = NULL;
	size_t cap = 0;
	struct dirent *e;
	DIR *d;

	*out = NULL;
	*n = 0;
	if (!(d = opendir(dir)))
		return errno == ENOENT ? 0 : tm_err(-errno, "run counters: %s: %s", dir, strerror(errno));
	while ((e = readdir(d))) {
		char path[PATH_MAX];
		size_t len = strlen(e->d_name);

		if (len < 6 || strcmp(e->d_name + len - 5, ".stat") || e->d_name[0] == '.')
			continue;
		if (*n == cap) {
			struct tm_runstat *nv = realloc(v, (cap = cap ? 2 * cap : 4) * sizeof(*v));

			if (!nv) {
				free(v);
				closedir(d);
				return tm_err(-ENOMEM, "run counters: out of memory");
			}
			v = nv;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (snapshot(path, &v[*n]))
			continue;
		if (!alive(&v[*n])) {
			unlink(path);	/* a dead run's: nobody will remove it otherwise */
			continue;
		}
		(*n)++;
	}
	closedir(d);
	if (*n)
		qsort(v, *n, sizeof(*v), by_pid);
	*out = v;
	return 0;
}
