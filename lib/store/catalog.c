// SPDX-License-Identifier: MIT
/*
 * The catalog: where a model's manifest, header and import marker are, how
 * a model's state is told (sealed, importing, incomplete, regions missing),
 * listing and removal. Userspace: TIERMEM_HOME/models/NAME/ holds
 * manifest.json, header-HASH.gguf, the file regions and, while an import
 * runs, importing.json. With the module: the manifest and header are one
 * PMEM region, NAME.mHASH8, created first (its filling state marks an
 * import in progress) and sealed last.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "lib/store/store_internal.h"
#include "tiermem/device.h"
#include "tiermem/error.h"

#define MANIFEST_MAGIC "TMMANIF1"
#define MANIFEST_DATA 64	/* where the JSON starts in a manifest region */

int tm_model_name_check(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len >= TM_MODEL_NAME_MAX)
		return tm_err(-EINVAL, "model name '%s': 1 to %d bytes", name ? name : "",
			      TM_MODEL_NAME_MAX - 1);
	if (name[0] == '.' || name[0] == '-')
		return tm_err(-EINVAL, "model name '%s' must not start with '%c'", name, name[0]);
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return tm_err(-EINVAL, "model name '%s': '%c' is not one of [A-Za-z0-9._-]", name, c);
	}
	return 0;
}

int tm_mkdirs(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) && errno != EEXIST) {
			*p = '/';
			return -errno;
		}
		*p = '/';
	}
	if (mkdir(path, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

int tm_store_home_path(char *buf, size_t n)
{
	const char *env = getenv("TIERMEM_HOME"), *home = getenv("HOME");
	int len;

	if (env && *env)
		len = snprintf(buf, n, "%s", env);
	else if (geteuid() == 0)
		len = snprintf(buf, n, "/var/lib/tiermem");
	else if (home && *home)
		len = snprintf(buf, n, "%s/.local/share/tiermem", home);
	else
		return tm_err(-EINVAL, "no TIERMEM_HOME and no HOME: set TIERMEM_HOME to the store's directory");
	if (len < 0 || (size_t)len >= n)
		return tm_err(-ENAMETOOLONG, "TIERMEM_HOME is too long");
	return 0;
}

int tm_store_home(char *buf, size_t n)
{
	int err;

	if ((err = tm_store_home_path(buf, n)))
		return err;
	if ((err = tm_mkdirs(buf)))
		return tm_err(err, "store %s: %s (set TIERMEM_HOME to a writable directory)", buf,
			      strerror(-err));
	return 0;
}

int tm_model_dir(char *buf, size_t n, const char *name)
{
	char home[TM_LOC_MAX - 64];
	int err;

	if ((err = tm_store_home(home, sizeof(home))))
		return err;
	snprintf(buf, n, "%s/models/%s", home, name);
	return 0;
}

static int read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	long size;
	char *buf;

	if (!f)
		return -errno;
	if (fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		fclose(f);
		return -EIO;
	}
	buf = malloc(size + 1);
	if (!buf || fread(buf, 1, size, f) != (size_t)size) {
		free(buf);
		fclose(f);
		return buf ? -EIO : -ENOMEM;
	}
	buf[size] = '\0';
	fclose(f);
	*out = buf;
	*len = size;
	return 0;
}

static bool pid_alive(int pid)
{
	return pid > 0 && (!kill(pid, 0) || errno == EPERM);
}

/* importing.json: who imports, so a second import or rm can tell a live one from a dead one. */
static void read_marker(struct tm_record *rec)
{
	char path[TM_LOC_MAX + 32], *text;
	json_t *j;
	size_t len;
	int pid = 0;

	snprintf(path, sizeof(path), "%s/importing.json", rec->dir);
	if (read_file(path, &text, &len))
		return;
	rec->importing = true;
	j = json_loadb(text, len, 0, NULL);
	if (j && !json_unpack(j, "{s:i}", "pid", &pid) && pid_alive(pid))
		rec->importer_pid = pid;
	/* what is being imported, for tiermem list (the manifest, once there, overrides it) */
	snprintf(rec->mf.source, sizeof(rec->mf.source), "%s",
		 json_string_value(json_object_get(j, "source")) ?: "");
	snprintf(rec->mf.hash, sizeof(rec->mf.hash), "%s",
		 json_string_value(json_object_get(j, "hash")) ?: "");
	json_decref(j);
	free(text);
}

/* Module manifest regions of name: NAME.m + 8 hex digits. */
static bool is_manifest_region(const char *rname, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(rname, name, n) || strncmp(rname + n, ".m", 2) || strlen(rname + n + 2) != 8)
		return false;
	return strspn(rname + n + 2, "0123456789abcdef") == 8;
}

static int load_module_manifest(struct tm_record *rec, struct tm_device *dev, bool header)
{
	struct tm_mapping m;
	const char *p;
	uint64_t jlen, hlen;
	int err;

	if ((err = tm_map_region(&m, rec->mregion, 0)))
		return err;
	p = m.addr;
	memcpy(&jlen, p + 8, 8);
	memcpy(&hlen, p + 16, 8);
	if (memcmp(p, MANIFEST_MAGIC, 8) || jlen > m.size || hlen > m.size - jlen ||
	    MANIFEST_DATA + jlen + hlen > m.size) {
		tm_unmap(&m);
		return tm_err(-EINVAL, "region %s: not a tiermem manifest", rec->mregion);
	}
	err = tm_manifest_parse(&rec->mf, p + MANIFEST_DATA, jlen, rec->mregion);
	if (!err && header) {
		rec->header = malloc(hlen ? hlen : 1);
		if (!rec->header)
			err = tm_err(-ENOMEM, "out of memory");
		else
			memcpy(rec->header, p + MANIFEST_DATA + jlen, hlen);
		if (!err && (hlen != rec->mf.header_size ||
			     XXH3_64bits(rec->header, hlen) != rec->mf.header_hash))
			err = tm_err(-EIO, "region %s: the GGUF header's checksum does not match",
				     rec->mregion);
	}
	tm_unmap(&m);
	return err;
}

/* The module's side: the newest sealed manifest region, or a filling one. */
static int find_module(struct tm_record *rec, const char *name, bool header)
{
	struct tiermem_region_info *list = NULL;
	struct tm_device dev;
	size_t n = 0;
	int err;

	if (!tm_module_usable())
		return -ENOENT;
	if ((err = tm_device_open(&dev, NULL)))
		return err;
	if ((err = tm_region_list(&dev, &list, &n))) {
		tm_device_close(&dev);
		return err;
	}
	err = -ENOENT;
	for (size_t i = 0; i < n; i++) {
		if (!is_manifest_region(list[i].name, name) || (list[i].flags & TIERMEM_INFO_DELETED))
			continue;
		rec->module = true;
		if (list[i].state != TIERMEM_STATE_SEALED) {
			rec->importing = true;
			if (!rec->has_manifest)
				snprintf(rec->mregion, sizeof(rec->mregion), "%s", list[i].name);
			err = 0;
			continue;
		}
		struct tm_record r2 = { .module = true };

		snprintf(r2.mregion, sizeof(r2.mregion), "%s", list[i].name);
		if (load_module_manifest(&r2, &dev, header)) {
			tm_record_free(&r2);
			continue;
		}
		/* two sealed manifests: a replace was interrupted after its seal; the newer wins */
		if (rec->has_manifest && strcmp(r2.mf.imported, rec->mf.imported) <= 0) {
			tm_record_free(&r2);
			continue;
		}
		tm_manifest_free(&rec->mf);
		free(rec->header);
		rec->mf = r2.mf;
		rec->header = r2.header;
		snprintf(rec->mregion, sizeof(rec->mregion), "%s", r2.mregion);
		rec->has_manifest = true;
		err = 0;
	}
	free(list);
	tm_device_close(&dev);
	return err;
}

static int load_user_manifest(struct tm_record *rec, bool header)
{
	char path[TM_LOC_MAX + 64], *text;
	size_t len;
	int err;

	snprintf(path, sizeof(path), "%s/manifest.json", rec->dir);
	if ((err = read_file(path, &text, &len)))
		return err == -ENOENT ? err : tm_err(err, "%s: %s", path, strerror(-err));
	err = tm_manifest_parse(&rec->mf, text, len, path);
	free(text);
	if (err)
		return err;
	rec->has_manifest = true;
	if (!header)
		return 0;
	snprintf(path, sizeof(path), "%s/header-%.12s.gguf", rec->dir, rec->mf.hash);
	if ((err = read_file(path, &text, &len)))
		return tm_err(-EIO, "%s: %s", path, strerror(-err));
	rec->header = text;
	if (len != rec->mf.header_size || XXH3_64bits(text, len) != rec->mf.header_hash)
		return tm_err(-EIO, "%s: the GGUF header's checksum does not match its manifest", path);
	return 0;
}

int tm_record_find(struct tm_record *rec, const char *name, bool header)
{
	struct stat st;
	int err;

	memset(rec, 0, sizeof(*rec));
	if ((err = tm_model_name_check(name)))
		return err;
	if ((err = tm_model_dir(rec->dir, sizeof(rec->dir), name)))
		return err;
	if (!stat(rec->dir, &st)) {
		read_marker(rec);
		err = load_user_manifest(rec, header);
		if (err && err != -ENOENT && !rec->has_manifest) {
			/* unreadable: never trusted, but listed and removable */
			snprintf(rec->bad, sizeof(rec->bad), "%s", tm_strerror());
			tm_clear_error();
		} else if (err && err != -ENOENT) {
			return err;	/* the header: only a run asks for it */
		}
	}
	err = find_module(rec, name, header);
	if (err && err != -ENOENT)
		return err;
	if (!rec->has_manifest && !rec->importing && stat(rec->dir, &st))
		return tm_err(-ENOENT, "no model named '%s' (tiermem list shows the models; "
			      "tiermem import -m FILE --name %s adds one)", name, name);
	return 0;
}

void tm_record_free(struct tm_record *rec)
{
	tm_manifest_free(&rec->mf);
	free(rec->header);
	rec->header = NULL;
}

static int write_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -errno;
		p = (const char *)p + w;
		n -= w;
	}
	return 0;
}

/* path written whole through a temporary, fsync'd, renamed, directory fsync'd. */
int tm_write_atomic(const char *dir, const char *file, const void *p, size_t n)
{
	char tmp[TM_LOC_MAX + 64], path[TM_LOC_MAX + 64];
	int fd, err = 0;

	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, file);
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return tm_err(-errno, "%s: %s", tmp, strerror(errno));
	if ((err = write_all(fd, p, n)) || (fsync(fd) ? (err = -errno) : 0)) {
		close(fd);
		unlink(tmp);
		return tm_err(err, "%s: %s", tmp, strerror(-err));
	}
	close(fd);
	if (rename(tmp, path)) {
		err = -errno;
		unlink(tmp);
		return tm_err(err, "%s: %s", path, strerror(-err));
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

static int commit_module(struct tm_record *rec, const char *json, size_t jlen, const void *header,
			 size_t hlen)
{
	struct tm_mapping m;
	char pre[MANIFEST_DATA] = MANIFEST_MAGIC;
	uint64_t j = jlen, h = hlen;
	struct tm_device dev;
	struct tm_region reg;
	int err;

	if ((err = tm_map_region(&m, rec->mregion, TM_MAP_WRITE)))
		return err;
	if (MANIFEST_DATA + jlen + hlen > m.size) {
		tm_unmap(&m);
		return tm_err(-ENOSPC, "region %s: the manifest does not fit", rec->mregion);
	}
	memcpy(pre + 8, &j, 8);
	memcpy(pre + 16, &h, 8);
	memcpy((char *)m.addr + MANIFEST_DATA, json, jlen);
	memcpy((char *)m.addr + MANIFEST_DATA + jlen, header, hlen);
	memcpy(m.addr, pre, sizeof(pre));
	tm_unmap(&m);
	if ((err = tm_device_open(&dev, NULL)))
		return err;
	err = tm_region_open(&dev, rec->mregion, TM_REGION_WRITE, &reg);
	if (!err)
		err = tm_region_seal(&dev, &reg);
	tm_device_close(&dev);
	return err;
}

int tm_record_commit(struct tm_record *rec, const void *header, size_t header_len)
{
	char file[64], *json = tm_manifest_dump(&rec->mf);
	int err;

	if (!json)
		return -ENOMEM;
	if (rec->module) {
		err = commit_module(rec, json, strlen(json), header, header_len);
	} else {
		snprintf(file, sizeof(file), "header-%.12s.gguf", rec->mf.hash);
		err = tm_write_atomic(rec->dir, file, header, header_len);
		/* the manifest last: from its rename on, the model is sealed */
		if (!err)
			err = tm_write_atomic(rec->dir, "manifest.json", json, strlen(json));
	}
	free(json);
	return err;
}

void tm_manifest_delete_data(const struct tm_manifest *mf, const char *dir)
{
	char path[TM_LOC_MAX + 64];

	for (int i = 0; i < mf->n_regions; i++)
		tm_region_delete_at(mf->regions[i].store, mf->regions[i].loc);
	if (dir) {
		snprintf(path, sizeof(path), "%s/header-%.12s.gguf", dir, mf->hash);
		unlink(path);
	}
	tm_clear_error();
}

/* NAME.mHASH8 (a manifest) or NAME.HASH8.rI[-ddr] (a tier's region). */
static bool is_model_region(const char *r, const char *name, size_t len)
{
	const char *p = r + len + 1;

	if (strncmp(r, name, len) || r[len] != '.')
		return false;
	if (p[0] == 'm')
		return strlen(p) == 9 && strspn(p + 1, "0123456789abcdef") == 8;
	if (strspn(p, "0123456789abcdef") != 8 || strncmp(p + 8, ".r", 2))
		return false;
	p += 10;
	p += strspn(p, "0123456789");
	return !*p || !strcmp(p, "-ddr");
}

/* Every module region of name that keep (a manifest region or NULL) does not name. */
static void delete_module_leftovers(const char *name, const struct tm_record *keep)
{
	struct tiermem_region_info *list = NULL;
	struct tm_device dev;
	size_t n = 0, len = strlen(name);

	if (!tm_module_usable() || tm_device_open(&dev, NULL))
		return;
	if (!tm_region_list(&dev, &list, &n)) {
		for (size_t i = 0; i < n; i++) {
			const char *r = list[i].name;
			bool kept = false;

			if (!is_model_region(r, name, len))
				continue;
			if (keep && keep->has_manifest) {
				kept = !strcmp(r, keep->mregion);
				for (int k = 0; k < keep->mf.n_regions && !kept; k++)
					kept = !strncmp(r, keep->mf.regions[k].loc,
							strlen(keep->mf.regions[k].loc));
			}
			if (!kept)
				tm_region_delete(&dev, r);
		}
	}
	free(list);
	tm_device_close(&dev);
	tm_clear_error();
}

/* Files in the model directory that keep's manifest does not name (and no marker). */
static void delete_dir_leftovers(const char *dir, const struct tm_record *keep)
{
	char path[TM_LOC_MAX + 300], hdr[64];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	if (keep && keep->has_manifest)
		snprintf(hdr, sizeof(hdr), "header-%.12s.gguf", keep->mf.hash);
	while ((e = readdir(d))) {
		bool kept = false;

		if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (keep && keep->has_manifest) {
			kept = !strcmp(e->d_name, "manifest.json") || !strcmp(e->d_name, hdr) ||
			       !strcmp(e->d_name, "importing.json");
			for (int k = 0; k < keep->mf.n_regions && !kept; k++)
				kept = !strcmp(path, keep->mf.regions[k].loc);
		}
		if (!kept)
			unlink(path);
	}
	closedir(d);
}

/* DAX regions an interrupted import had planned (listed in its marker). */
static void delete_marker_regions(const char *dir, const struct tm_record *keep)
{
	char path[TM_LOC_MAX + 32], *text;
	json_t *j, *regions, *r;
	size_t len, i;

	snprintf(path, sizeof(path), "%s/importing.json", dir);
	if (read_file(path, &text, &len))
		return;
	j = json_loadb(text, len, 0, NULL);
	free(text);
	regions = json_object_get(j, "regions");
	json_array_foreach(regions, i, r) {
		const char *store = json_string_value(json_object_get(r, "store"));
		const char *loc = json_string_value(json_object_get(r, "location"));
		bool kept = false;

		if (!store || !loc || tm_store_parse(store) < 0)
			continue;
		for (int k = 0; keep && keep->has_manifest && k < keep->mf.n_regions; k++)
			kept |= !strcmp(keep->mf.regions[k].loc, loc);
		if (!kept)
			tm_region_delete_at(tm_store_parse(store), loc);
	}
	json_decref(j);
	tm_clear_error();
}

/* Remove what an interrupted import left, keeping the sealed model rec holds, if any. */
void tm_record_cleanup(const char *name, const struct tm_record *rec)
{
	delete_marker_regions(rec->dir, rec);
	delete_module_leftovers(name, rec);
	delete_dir_leftovers(rec->dir, rec);
	if (!rec->has_manifest)
		rmdir(rec->dir);
}

int tm_store_remove(const char *name)
{
	struct tm_record rec;
	char path[TM_LOC_MAX + 32];
	int err;

	if ((err = tm_record_find(&rec, name, false)))
		return err;
	if (rec.importer_pid)
		err = tm_err(-EBUSY, "model '%s' is being imported by process %d; wait for it or kill it",
			     name, rec.importer_pid);
	if (!err && rec.has_manifest) {
		/* the manifest first: from here on nothing trusts the regions */
		if (rec.module) {
			err = tm_region_delete_at(TM_STORE_MODULE, rec.mregion);
		} else {
			snprintf(path, sizeof(path), "%s/manifest.json", rec.dir);
			if (unlink(path) && errno != ENOENT)
				err = tm_err(-errno, "%s: %s", path, strerror(errno));
		}
		if (!err)
			tm_manifest_delete_data(&rec.mf, rec.dir);
		rec.has_manifest = false;
	}
	if (!err) {
		tm_record_cleanup(name, &rec);
		snprintf(path, sizeof(path), "%s/importing.json", rec.dir);
		unlink(path);
		rmdir(rec.dir);
	}
	tm_record_free(&rec);
	return err;
}

static void human(char *buf, size_t n, uint64_t b)
{
	if (b >= (1ULL << 30))
		snprintf(buf, n, "%.2f GiB", b / 1073741824.0);
	else
		snprintf(buf, n, "%.1f MiB", b / 1048576.0);
}

/* Fill one line of the list from a record. */
static void describe(struct tm_store_model *sm, const char *name, const struct tm_record *rec)
{
	const struct tm_manifest *mf = &rec->mf;
	size_t off = 0;

	memset(sm, 0, sizeof(*sm));
	snprintf(sm->name, sizeof(sm->name), "%s", name);
	snprintf(sm->backend, sizeof(sm->backend), "%s", rec->module ? "module" : "user");
	if (rec->bad[0]) {
		snprintf(sm->state, sizeof(sm->state), "manifest unreadable (tiermem rm it)");
		return;
	}
	if (!rec->has_manifest) {
		snprintf(sm->source, sizeof(sm->source), "%s", mf->source);
		snprintf(sm->hash, sizeof(sm->hash), "%s", mf->hash);
		if (rec->importer_pid)
			snprintf(sm->state, sizeof(sm->state), "importing (pid %d)", rec->importer_pid);
		else
			snprintf(sm->state, sizeof(sm->state), "incomplete (import interrupted)");
		return;
	}
	snprintf(sm->source, sizeof(sm->source), "%s", mf->source);
	snprintf(sm->hash, sizeof(sm->hash), "%s", mf->hash);
	for (size_t i = 0; i < mf->n_tensors; i++)
		sm->bytes += mf->tensors[i].bytes;
	sm->usable = true;
	snprintf(sm->state, sizeof(sm->state), "sealed");
	for (int i = 0; i < mf->n_regions; i++) {
		const struct tm_mregion *r = &mf->regions[i];
		uint64_t size;
		char h[32];
		int st = tm_region_state_at(r->store, r->loc, &size);

		human(h, sizeof(h), r->used);
		if (off < sizeof(sm->tiers))
			off += snprintf(sm->tiers + off, sizeof(sm->tiers) - off, "%s%s %s", i ? ", " : "",
					r->tier, h);
		if (st != TM_RS_SEALED && sm->usable) {
			sm->usable = false;
			snprintf(sm->state, sizeof(sm->state), "regions missing (%s)", r->tier);
		}
	}
	if (sm->usable && rec->importing)
		snprintf(sm->state, sizeof(sm->state), "sealed; an import over it %s",
			 rec->importer_pid ? "is running" : "was interrupted");
}

static int add_model(struct tm_store_model **out, size_t *n, size_t *cap, const char *name)
{
	struct tm_record rec;

	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*out)[i].name, name))
			return 0;
	if (tm_record_find(&rec, name, false)) {
		tm_clear_error();
		return 0;
	}
	if (*n == *cap) {
		struct tm_store_model *nm = realloc(*out, (*cap = *cap * 2 + 8) * sizeof(**out));

		if (!nm) {
			tm_record_free(&rec);
			return tm_err(-ENOMEM, "out of memory");
		}
		*out = nm;
	}
	describe(&(*out)[(*n)++], name, &rec);
	tm_record_free(&rec);
	return 0;
}

static int cmp_model(const void *a, const void *b)
{
	return strcmp(((const struct tm_store_model *)a)->name, ((const struct tm_store_model *)b)->name);
}

int tm_store_list(struct tm_store_model **out, size_t *n)
{
	char home[TM_LOC_MAX], dir[TM_LOC_MAX + 16];
	struct tiermem_region_info *list = NULL;
	struct tm_device dev;
	size_t cap = 0, nr = 0;
	struct dirent *e;
	DIR *d;
	int err = 0;

	*out = NULL;
	*n = 0;
	if ((err = tm_store_home(home, sizeof(home))))
		return err;
	snprintf(dir, sizeof(dir), "%s/models", home);
	d = opendir(dir);
	while (d && (e = readdir(d)) && !err)
		if (!tm_model_name_check(e->d_name))
			err = add_model(out, n, &cap, e->d_name);
	if (d)
		closedir(d);
	tm_clear_error();
	if (!err && tm_module_usable() && !tm_device_open(&dev, NULL)) {
		if (!tm_region_list(&dev, &list, &nr)) {
			for (size_t i = 0; i < nr && !err; i++) {
				char name[TIERMEM_NAME_MAX], *dot;

				snprintf(name, sizeof(name), "%s", list[i].name);
				dot = strrchr(name, '.');
				if (!dot || !is_manifest_region(list[i].name, (*dot = '\0', name)))
					continue;
				err = add_model(out, n, &cap, name);
			}
		}
		free(list);
		tm_device_close(&dev);
	}
	if (err) {
		free(*out);
		*out = NULL;
		*n = 0;
		return err;
	}
	if (*n)
		qsort(*out, *n, sizeof(**out), cmp_model);
	return 0;
}

int tm_store_model_hash(const char *name, char hash[33])
{
	struct tm_store_model *v = NULL;
	size_t n = 0;
	int err = tm_store_list(&v, &n);

	for (size_t i = 0; !err && i < n; i++)
		if (!strcmp(v[i].name, name)) {
			snprintf(hash, 33, "%s", v[i].hash);
			free(v);
			return 0;
		}
	free(v);
	return err ? err : tm_err(-ENOENT, "no model named '%s' in the store", name);
}

int tm_model_identity(const struct tm_model *m, const char *name, char hash[33])
{
	return name ? tm_store_model_hash(name, hash) : tm_model_content_hash(m, hash);
}
