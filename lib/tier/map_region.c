// SPDX-License-Identifier: MIT
/*
 * The "tiermem" backend of struct tm_mapping: a /dev/tiermem region mapped
 * whole, so the inference code takes weights from a region exactly as from
 * any other mapping. The mapping owns its own device file descriptor (the
 * kernel keeps regions open per file) and, where the region allows, its
 * counters page, through which readers report bytes read.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tiermem/device.h"
#include "tiermem/error.h"

struct region_mapping {
	struct tm_device dev;
	struct tm_region region;
	struct tiermem_user_counters *uc;
};

static void region_release(struct tm_mapping *m)
{
	struct region_mapping *rm = m->priv;

	if (!rm)
		return;
	if (m->map_addr)
		tm_region_munmap(&rm->region, m->map_addr);
	tm_region_counters_unmap(rm->uc);
	tm_device_close(&rm->dev);
	free(rm);
	m->priv = NULL;
	m->addr = m->map_addr = NULL;
	m->size = m->map_size = 0;
}

/*
 * Counting bytes read needs a writable counters page, which needs the
 * handle opened for writing. The data is already mapped (read-only when
 * that was asked for), so the handle is upgraded only now; a reader without
 * write permission maps and reads anyway, uncounted.
 */
static void map_counters(struct region_mapping *rm)
{
	struct tm_region w;

	rm->uc = NULL;
	if (rm->region.writable || !tm_region_open(&rm->dev, rm->region.name, TM_REGION_WRITE, &w))
		if (tm_region_counters_map(&rm->dev, &rm->region, 1, &rm->uc))
			rm->uc = NULL;
	tm_clear_error();
}

int tm_map_region(struct tm_mapping *m, const char *name, unsigned int flags)
{
	struct region_mapping *rm;
	void *addr;
	int ret;

	if (!m)
		return tm_err(-EINVAL, "tm_map_region: no mapping struct");
	memset(m, 0, sizeof(*m));
	if ((ret = tm_region_name_check(name)))
		return ret;
	if (flags & ~(TM_MAP_WRITE | TM_MAP_POPULATE))
		return tm_err(-EINVAL, "map region '%s': unknown flags %#x", name, flags);
	rm = calloc(1, sizeof(*rm));
	if (!rm)
		return tm_err(-ENOMEM, "map region '%s': out of memory", name);
	ret = tm_device_open(&rm->dev, NULL);
	if (ret)
		goto out_free;
	ret = tm_region_open(&rm->dev, name, flags & TM_MAP_WRITE ? TM_REGION_WRITE : 0,
			     &rm->region);
	if (ret)
		goto out_close;
	ret = tm_region_mmap(&rm->dev, &rm->region, flags, &addr);
	if (ret)
		goto out_close;
	map_counters(rm);

	m->addr = m->map_addr = addr;
	m->size = m->map_size = rm->region.size;
	m->tier = rm->region.tier;
	snprintf(m->backend, sizeof(m->backend), "tiermem");
	snprintf(m->path, sizeof(m->path), "%s:%s", TIERMEM_DEVICE, name);
	m->priv = rm;
	m->release = region_release;
	return 0;

out_close:
	tm_device_close(&rm->dev);
out_free:
	free(rm);
	return ret;
}

struct tiermem_user_counters *tm_mapping_counters(const struct tm_mapping *m)
{
	if (!m || m->release != region_release || !m->priv)
		return NULL;
	return ((struct region_mapping *)m->priv)->uc;
}
