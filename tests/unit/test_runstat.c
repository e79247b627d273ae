// SPDX-License-Identifier: MIT
/*
 * Run counters files: a live run's file is listed with what it published, a
 * removed one is gone, and files of dead processes (or of a pid now reused by
 * a process started later) are skipped and cleaned up; the prediction is the
 * planner's sum of bytes over bandwidths.
 */
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "tiermem/runstat.h"

static int count_files(const char *dir)
{
	char cmd[300];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", dir);
	if ((p = popen(cmd, "r"))) {
		if (fscanf(p, "%d", &n) != 1)
			n = -1;
		pclose(p);
	}
	return n;
}

/* Rewrite a field of a published file, as another process (or a crash) would leave it. */
static void patch(const char *path, size_t off, const void *v, size_t n)
{
	int fd = open(path, O_WRONLY);

	if (fd >= 0) {
		if (pwrite(fd, v, n, (off_t)off) != (ssize_t)n)
			printf("# patch failed\n");
		close(fd);
	}
}

int main(void)
{
	char dir[] = "/tmp/tm-runstat-XXXXXX", sub[64];
	struct tm_model m = { .n_maps = 2 };
	struct tm_run_tier tiers[2] = { { "ddr", "anon-thp", 0, 100 }, { "file", "file", 0, 40 } };
	struct tm_ctx c = { 0 };
	struct tm_runstat_pub pub;
	struct tm_runstat *v;
	uint64_t per[TM_MODEL_MAX_MAPS] = { 3000, 1000 };
	double bytes[2] = { 1e9, 4e8 };
	size_t n;
	pid_t child;
	int err;

	tap_ok(fabs(tm_run_predict_tps(tiers, bytes, 2) - 1 / (1e9 / 100e9 + 4e8 / 40e9)) < 1e-9,
	       "predicted tok/s: 1 / sum(bytes / bandwidth)");
	tiers[1].bench_gbps = 0;
	tap_ok(tm_run_predict_tps(tiers, bytes, 2) == 0, "an unknown bandwidth: no prediction");
	tiers[1].bench_gbps = 40;

	if (!mkdtemp(dir))
		return 1;
	/* TIERMEM_HOME two levels down: made on the way */
	snprintf(sub, sizeof(sub), "%s/a/home", dir);
	setenv("TIERMEM_HOME", sub, 1);
	tm_runstat_dir(sub, sizeof(sub));
	err = tm_runstat_create(&pub, "model.gguf", &m, tiers);
	c.map_bytes[0] = 5000;
	c.map_bytes[1] = 2000;
	tm_runstat_update(&pub, &c, 7, 3, 0.5, 4000, per, 1, NULL);
	tap_ok(!err && !tm_runstat_scan(sub, &v, &n) && n == 1 && v[0].pid == getpid() && v[0].n_decoded == 3 &&
	       v[0].n_prompt == 7 && v[0].tiers[0].bytes == 5000 && v[0].tier_decode_bytes[1] == 1000 &&
	       v[0].tiers[1].bench_gbps == 40 && !strcmp(v[0].model, "model.gguf") && v[0].predicted_tps > 0 &&
	       !v[0].experts.on,
	       "a live run is listed with what it published (the directories made on the way)");
	free(v);
	{
		struct tm_runstat_experts x = { .on = 1, .n_groups = 2, .slots = 64, .n_expert = 128 };

		snprintf(x.policy, sizeof(x.policy), "lrfu");
		x.total.hits = 70;
		x.total.misses = 30;
		x.groups[1].pf_late = 5;
		x.predicted_tps = 3.5;
		tm_runstat_update(&pub, &c, 7, 4, 0.6, 5000, per, 1, &x);
	}
	tap_ok(!tm_runstat_scan(sub, &v, &n) && n == 1 && v[0].n_decoded == 4 && v[0].experts.on &&
	       v[0].experts.total.hits == 70 && v[0].experts.total.misses == 30 &&
	       v[0].experts.groups[1].pf_late == 5 && v[0].experts.predicted_tps == 3.5 &&
	       !strcmp(v[0].experts.policy, "lrfu"), "version 2: the expert cache's counters are published");
	free(v);
	/* an older run's file: version 1, cut where the experts begin */
	{
		uint32_t one = 1;

		patch(pub.path, offsetof(struct tm_runstat, version), &one, sizeof(one));
		tap_ok(truncate(pub.path, TM_RUNSTAT_V1_SIZE) == 0 && !tm_runstat_scan(sub, &v, &n) && n == 1 &&
		       v[0].n_decoded == 4 && v[0].tiers[0].bytes == 5000 && !v[0].experts.on,
		       "a version 1 file still reads (no expert cache)");
		free(v);
		tap_ok(truncate(pub.path, sizeof(struct tm_runstat)) == 0 && !tm_runstat_scan(sub, &v, &n) && n == 0,
		       "version 1 at version 2's size is not read");
		free(v);
		one = TM_RUNSTAT_VERSION;
		patch(pub.path, offsetof(struct tm_runstat, version), &one, sizeof(one));
	}

	/* the same pid, but started at another time: a reused pid, the file is stale */
	{
		uint64_t ticks = 1;

		patch(pub.path, offsetof(struct tm_runstat, start_ticks), &ticks, sizeof(ticks));
	}
	tap_ok(!tm_runstat_scan(sub, &v, &n) && n == 0 && access(pub.path, F_OK) && count_files(sub) == 0,
	       "a reused pid's file is skipped and removed");
	free(v);
	tm_runstat_remove(&pub);

	/* a process that published and died */
	child = fork();
	if (!child) {
		struct tm_runstat_pub p2;

		_exit(tm_runstat_create(&p2, "dead", &m, tiers) ? 1 : 0);	/* no remove: a crash */
	}
	waitpid(child, NULL, 0);
	tap_ok(count_files(sub) == 1 && !tm_runstat_scan(sub, &v, &n) && n == 0 && count_files(sub) == 0,
	       "a dead process's file is skipped and removed");
	free(v);

	err = tm_runstat_create(&pub, "x", &m, tiers);
	{
		uint32_t bad = 99;

		patch(pub.path, offsetof(struct tm_runstat, version), &bad, sizeof(bad));
	}
	tap_ok(!err && !tm_runstat_scan(sub, &v, &n) && n == 0, "another version's file is not read");
	free(v);
	tm_runstat_remove(&pub);
	tap_ok(count_files(sub) == 0, "remove: the file is gone");
	tap_ok(!tm_runstat_scan("/nonexistent/tm-run", &v, &n) && n == 0, "no directory: no runs");
	free(v);

	snprintf(sub, sizeof(sub), "rm -rf '%s'", dir);
	if (system(sub))
		printf("# cleanup failed\n");
	return tap_done();
}
