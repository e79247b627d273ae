// SPDX-License-Identifier: GPL-2.0
/*
 * tiermem counters in sysfs, one value per file, the same numbers as
 * TIERMEM_IOC_STATS:
 *   /sys/kernel/tiermem/{ddr,pmem}/<counter>        per tier
 *   /sys/kernel/tiermem/regions/<name>/<counter>    per region in the registry
 *
 * A region's directory is added and removed with its registry membership,
 * under tm_lock. Its show() takes no lock: kobject_del() waits for running
 * readers, and the registry's reference keeps the region alive until then.
 * The kobject lives in its own allocation, freed by its release whenever
 * the last sysfs user lets go of it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kobject.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/stddef.h>
#include <linux/sysfs.h>

#include "tiermem.h"

struct tm_region_kobj {
	struct kobject kobj;
	struct tm_region *r;		/* valid until kobject_del() returns */
};

static struct tm_region *tm_kobj_region(struct kobject *kobj)
{
	return container_of(kobj, struct tm_region_kobj, kobj)->r;
}

struct tm_attr {
	struct kobj_attribute ka;
	size_t off;
};

static struct kobject *tm_kobj, *tm_regions_kobj, *tm_tier_kobj[3];

static ssize_t tm_attr_show(struct kobject *kobj, struct kobj_attribute *ka,
			    char *buf)
{
	struct tm_attr *a = container_of(ka, struct tm_attr, ka);
	u32 tier = kobj == tm_tier_kobj[TIERMEM_TIER_DDR] ? TIERMEM_TIER_DDR :
							   TIERMEM_TIER_PMEM;
	struct tiermem_counters c;

	tm_tier_counters(tier, &c, true);
	return sysfs_emit(buf, "%llu\n", *(u64 *)((char *)&c + a->off));
}

static ssize_t tm_region_show(struct kobject *kobj, struct kobj_attribute *ka,
			      char *buf)
{
	struct tm_attr *a = container_of(ka, struct tm_attr, ka);
	struct tm_region *r = tm_kobj_region(kobj);
	struct tiermem_counters c;

	tm_region_counters(r, &c, true);
	return sysfs_emit(buf, "%llu\n", *(u64 *)((char *)&c + a->off));
}

/* PMEM: "offset length" in bytes of the region, per run of bad blocks. */
static ssize_t badblocks_show(struct kobject *kobj, struct kobj_attribute *ka,
			      char *buf)
{
	struct tm_region *r = tm_kobj_region(kobj);

	return r->tier == TIERMEM_TIER_PMEM ? tm_pmem_bad_show(r, buf) : 0;
}

static struct kobj_attribute tm_rattr_badblocks = __ATTR_RO(badblocks);

/* PMEM: the namespace's node; DDR: of its first chunk. */
static ssize_t numa_node_show(struct kobject *kobj, struct kobj_attribute *ka,
			      char *buf)
{
	struct tm_region *r = tm_kobj_region(kobj);
	int node = NUMA_NO_NODE;

	if (r->pm)
		node = r->pm->node;
	else if (r->nr_chunks)
		node = page_to_nid(r->chunks[0]);
	return sysfs_emit(buf, "%d\n", node);
}

static struct kobj_attribute tm_rattr_numa_node = __ATTR_RO(numa_node);

#define TM_ATTR(f) \
	static struct tm_attr tm_attr_##f = { \
		.ka = __ATTR(f, 0444, tm_attr_show, NULL), \
		.off = offsetof(struct tiermem_counters, f), \
	}

TM_ATTR(faults_pte);
TM_ATTR(faults_pmd);
TM_ATTR(faults_pud);
TM_ATTR(bytes_mapped);
TM_ATTR(live_mappings);
TM_ATTR(bytes_copied);
TM_ATTR(media_errors);
TM_ATTR(pinned_pages);
TM_ATTR(bytes_read);
TM_ATTR(exports);

#define TM_RATTR(f) \
	static struct tm_attr tm_rattr_##f = { \
		.ka = __ATTR(f, 0444, tm_region_show, NULL), \
		.off = offsetof(struct tiermem_counters, f), \
	}

TM_RATTR(faults_pte);
TM_RATTR(faults_pmd);
TM_RATTR(faults_pud);
TM_RATTR(bytes_mapped);
TM_RATTR(live_mappings);
TM_RATTR(bytes_copied);
TM_RATTR(media_errors);
TM_RATTR(pinned_pages);
TM_RATTR(bytes_read);
TM_RATTR(exports);

static struct attribute *tm_region_attrs[] = {
	&tm_rattr_faults_pte.ka.attr,
	&tm_rattr_faults_pmd.ka.attr,
	&tm_rattr_faults_pud.ka.attr,
	&tm_rattr_bytes_mapped.ka.attr,
	&tm_rattr_live_mappings.ka.attr,
	&tm_rattr_bytes_copied.ka.attr,
	&tm_rattr_media_errors.ka.attr,
	&tm_rattr_pinned_pages.ka.attr,
	&tm_rattr_bytes_read.ka.attr,
	&tm_rattr_exports.ka.attr,
	&tm_rattr_badblocks.attr,
	&tm_rattr_numa_node.attr,
	NULL,
};
ATTRIBUTE_GROUPS(tm_region);

static void tm_region_kobj_release(struct kobject *kobj)
{
	kfree(container_of(kobj, struct tm_region_kobj, kobj));
}

static const struct kobj_type tm_region_ktype = {
	.release = tm_region_kobj_release,
	.sysfs_ops = &kobj_sysfs_ops,
	.default_groups = tm_region_groups,
};

void tm_registry_add(struct tm_region *r)
{
	struct tm_region_kobj *k;

	lockdep_assert_held(&tm_lock);
	list_add_tail(&r->node, &tm_regions);
	k = kzalloc(sizeof(*k), GFP_KERNEL);
	if (!k)
		goto fail;
	k->r = r;
	if (kobject_init_and_add(&k->kobj, &tm_region_ktype, tm_regions_kobj,
				 "%s", r->name)) {
		kobject_put(&k->kobj);
		goto fail;
	}
	r->kobj = k;
	return;
fail:
	pr_warn("no sysfs directory for region %s\n", r->name);
}

void tm_registry_del(struct tm_region *r)
{
	lockdep_assert_held(&tm_lock);
	list_del_init(&r->node);
	if (!r->kobj)
		return;
	kobject_del(&r->kobj->kobj);
	kobject_put(&r->kobj->kobj);
	r->kobj = NULL;
}

static struct attribute *tm_attrs[] = {
	&tm_attr_faults_pte.ka.attr,
	&tm_attr_faults_pmd.ka.attr,
	&tm_attr_faults_pud.ka.attr,
	&tm_attr_bytes_mapped.ka.attr,
	&tm_attr_live_mappings.ka.attr,
	&tm_attr_bytes_copied.ka.attr,
	&tm_attr_media_errors.ka.attr,
	&tm_attr_pinned_pages.ka.attr,
	&tm_attr_bytes_read.ka.attr,
	&tm_attr_exports.ka.attr,
	NULL,
};

static const struct attribute_group tm_group = {
	.attrs = tm_attrs,
};

static int tm_tier_add(u32 tier, const char *name)
{
	struct kobject *k = kobject_create_and_add(name, tm_kobj);
	int ret;

	if (!k)
		return -ENOMEM;
	ret = sysfs_create_group(k, &tm_group);
	if (ret) {
		kobject_put(k);
		return ret;
	}
	tm_tier_kobj[tier] = k;
	return 0;
}

int tm_sysfs_init(void)
{
	int ret;

	tm_kobj = kobject_create_and_add("tiermem", kernel_kobj);
	if (!tm_kobj)
		return -ENOMEM;
	tm_regions_kobj = kobject_create_and_add("regions", tm_kobj);
	if (!tm_regions_kobj) {
		tm_sysfs_exit();
		return -ENOMEM;
	}
	ret = tm_tier_add(TIERMEM_TIER_DDR, "ddr");
	if (!ret)
		ret = tm_tier_add(TIERMEM_TIER_PMEM, "pmem");
	if (ret)
		tm_sysfs_exit();
	return ret;
}

void tm_sysfs_exit(void)
{
	u32 i;

	for (i = 0; i < ARRAY_SIZE(tm_tier_kobj); i++) {
		if (tm_tier_kobj[i]) {
			sysfs_remove_group(tm_tier_kobj[i], &tm_group);
			kobject_put(tm_tier_kobj[i]);
			tm_tier_kobj[i] = NULL;
		}
	}
	kobject_put(tm_regions_kobj);
	tm_regions_kobj = NULL;
	kobject_put(tm_kobj);
	tm_kobj = NULL;
}
