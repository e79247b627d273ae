// SPDX-License-Identifier: GPL-2.0
/*
 * tiermem counters in sysfs: /sys/kernel/tiermem/{ddr,pmem}/<counter>, one
 * value per file, the same numbers as TIERMEM_IOC_STATS with
 * TIERMEM_STATS_TIER. Per-region counters are only available by ioctl.
 */
#include <linux/kobject.h>
#include <linux/stddef.h>
#include <linux/sysfs.h>

#include "tiermem.h"

struct tm_attr {
	struct kobj_attribute ka;
	size_t off;
};

static struct kobject *tm_kobj, *tm_tier_kobj[3];

static ssize_t tm_attr_show(struct kobject *kobj, struct kobj_attribute *ka,
			    char *buf)
{
	struct tm_attr *a = container_of(ka, struct tm_attr, ka);
	u32 tier = kobj == tm_tier_kobj[TIERMEM_TIER_DDR] ? TIERMEM_TIER_DDR :
							   TIERMEM_TIER_PMEM;
	struct tiermem_counters c;

	tm_tier_counters(tier, &c);
	return sysfs_emit(buf, "%llu\n", *(u64 *)((char *)&c + a->off));
}

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
	kobject_put(tm_kobj);
	tm_kobj = NULL;
}
