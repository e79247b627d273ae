// SPDX-License-Identifier: GPL-2.0
/*
 * tiermem on-media region table, at the start of each PMEM namespace:
 *
 *   [0, 4 KiB)        header (magic, version, geometry, crc32)
 *   [4 KiB, 2 MiB)    entries, 128 bytes each
 *   [2 MiB, end)      region data, 2 MiB aligned
 *
 * An entry's state is one 64-bit word (state | ~state << 32) written with a
 * single 8-byte non-temporal store after the rest of the entry (covered by
 * its crc32) is durable. A crash therefore leaves either a free slot or a
 * complete entry; a region becomes sealed only by the seal ioctl, after its
 * data was flushed. Anything else found at attach (bad checksum, impossible
 * geometry, overlapping or duplicate regions) is refused and logged.
 * See Documentation/tiermem.rst.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/crc32.h>
#include <linux/dax.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "tiermem.h"

#define TM_TABLE_MAGIC		0x3130544d52454954ULL	/* "TIERMT01" */
#define TM_TABLE_VERSION	1
#define TM_HDR_SIZE		4096
#define TM_ENTRY_SIZE		128
#define TM_TABLE_SIZE		TIERMEM_CHUNK_SIZE
#define TM_NR_SLOTS		((TM_TABLE_SIZE - TM_HDR_SIZE) / TM_ENTRY_SIZE)

struct tm_media_header {
	__le64 magic;
	__le32 version;
	__le32 header_size;
	__le32 entry_size;
	__le32 nr_entries;
	__le64 entries_offset;
	__le64 data_offset;
	__le64 media_size;
	u8 reserved[12];
	__le32 crc;		/* crc32 of the bytes before it */
};

struct tm_media_entry {
	__le64 state;		/* 0: free; else state | ~state << 32 */
	char name[TIERMEM_NAME_MAX];
	__le64 offset;
	__le64 size;
	__le32 uid;
	__le32 gid;
	__le32 mode;
	__le32 reserved[6];
	__le32 crc;		/* crc32 of the bytes from name to here */
};

static_assert(sizeof(struct tm_media_header) == 64);
static_assert(sizeof(struct tm_media_entry) == TM_ENTRY_SIZE);

u64 tm_table_data_start(void)
{
	return TM_TABLE_SIZE;
}

static u32 tm_crc(const void *p, size_t n)
{
	return crc32_le(~0U, p, n) ^ ~0U;
}

static u64 tm_state_word(u32 state)
{
	return state ? (u64)state | ((u64)~state << 32) : 0;
}

/* The table's kernel address, between tm_pmem_enter() and _exit(). */
static void *tm_table_enter(struct tm_pmem *pm, struct tm_pmem_lock *l)
{
	void *kaddr;
	pfn_t pfn;
	int ret;

	ret = tm_pmem_enter(pm, l);
	if (ret)
		return ERR_PTR(ret);
	ret = tm_pmem_direct(pm, 0, TM_TABLE_SIZE, &kaddr, &pfn);
	if (ret) {
		tm_pmem_exit(l);
		return ERR_PTR(ret);
	}
	return kaddr;
}

static struct tm_media_entry *tm_slot(void *table, u32 slot)
{
	return table + TM_HDR_SIZE + (size_t)slot * TM_ENTRY_SIZE;
}

static void tm_write_state(void *table, u32 slot, u32 state)
{
	__le64 w = cpu_to_le64(tm_state_word(state));

	memcpy_flushcache(&tm_slot(table, slot)->state, &w, sizeof(w));
	tm_fence();
}

int tm_table_write(struct tm_pmem *pm, struct tm_region *r, u32 state)
{
	struct tm_media_entry e = {};
	struct tm_media_entry *m;
	struct tm_pmem_lock l;
	void *table;

	table = tm_table_enter(pm, &l);
	if (IS_ERR(table))
		return PTR_ERR(table);
	if (state == TIERMEM_STATE_SEALED) {
		tm_write_state(table, r->slot, state);
		tm_pmem_exit(&l);
		return 0;
	}
	m = tm_slot(table, r->slot);
	/* A new entry: body first, then the state word makes it live. */
	memcpy(e.name, r->name, sizeof(e.name));
	e.offset = cpu_to_le64(r->pm_off);
	e.size = cpu_to_le64(r->size);
	e.uid = cpu_to_le32(from_kuid(&init_user_ns, r->uid));
	e.gid = cpu_to_le32(from_kgid(&init_user_ns, r->gid));
	e.mode = cpu_to_le32(r->mode);
	e.crc = cpu_to_le32(tm_crc(e.name, offsetof(struct tm_media_entry, crc) -
				   offsetof(struct tm_media_entry, name)));
	memcpy_flushcache(m->name, e.name, sizeof(e) - sizeof(e.state));
	tm_fence();
	tm_write_state(table, r->slot, state);
	tm_pmem_exit(&l);
	return 0;
}

/* A namespace going away keeps its entries: they are back on re-attach. */
void tm_table_clear(struct tm_pmem *pm, u32 slot)
{
	struct tm_pmem_lock l;
	void *table;

	table = tm_table_enter(pm, &l);
	if (IS_ERR(table))
		return;
	tm_write_state(table, slot, 0);
	tm_pmem_exit(&l);
}

/* Only over a chunk found all zero (see tm_table_load). */
static int tm_table_format(struct tm_pmem *pm)
{
	struct tm_media_header h = {};
	struct tm_pmem_lock l;
	void *table;

	table = tm_table_enter(pm, &l);
	if (IS_ERR(table))
		return PTR_ERR(table);
	h.magic = cpu_to_le64(TM_TABLE_MAGIC);
	h.version = cpu_to_le32(TM_TABLE_VERSION);
	h.header_size = cpu_to_le32(sizeof(h));
	h.entry_size = cpu_to_le32(TM_ENTRY_SIZE);
	h.nr_entries = cpu_to_le32(TM_NR_SLOTS);
	h.entries_offset = cpu_to_le64(TM_HDR_SIZE);
	h.data_offset = cpu_to_le64(TM_TABLE_SIZE);
	h.media_size = cpu_to_le64(pm->size);
	h.crc = cpu_to_le32(tm_crc(&h, offsetof(struct tm_media_header, crc)));
	memcpy_flushcache(table, &h, sizeof(h));
	tm_fence();
	tm_pmem_exit(&l);
	pr_info("%s: blank media, wrote an empty region table (%u slots)\n",
		pm->path, (u32)TM_NR_SLOTS);
	return 0;
}

static int tm_check_header(struct tm_pmem *pm, const struct tm_media_header *h)
{
	if (le32_to_cpu(h->crc) !=
	    tm_crc(h, offsetof(struct tm_media_header, crc))) {
		pr_err("%s: region table header checksum mismatch; refusing to attach (table not trusted)\n",
		       pm->path);
		return -EUCLEAN;
	}
	if (le32_to_cpu(h->version) != TM_TABLE_VERSION) {
		pr_err("%s: region table version %u not supported; refusing to attach\n",
		       pm->path, le32_to_cpu(h->version));
		return -EPROTO;
	}
	if (le32_to_cpu(h->header_size) != sizeof(*h) ||
	    le32_to_cpu(h->entry_size) != TM_ENTRY_SIZE ||
	    le32_to_cpu(h->nr_entries) != TM_NR_SLOTS ||
	    le64_to_cpu(h->entries_offset) != TM_HDR_SIZE ||
	    le64_to_cpu(h->data_offset) != TM_TABLE_SIZE ||
	    le64_to_cpu(h->media_size) > pm->size) {
		pr_err("%s: region table geometry impossible for this namespace; refusing to attach\n",
		       pm->path);
		return -EUCLEAN;
	}
	return 0;
}

/* Checks one used entry against itself and the namespace. */
static int tm_check_entry(struct tm_pmem *pm, u32 slot,
			  const struct tm_media_entry *e, u32 *state)
{
	u64 w = le64_to_cpu(e->state), off, size;
	const char *why = NULL;

	*state = (u32)w;
	off = le64_to_cpu(e->offset);
	size = le64_to_cpu(e->size);
	if ((u32)(w >> 32) != (u32)~*state ||
	    (*state != TIERMEM_STATE_FILLING && *state != TIERMEM_STATE_SEALED))
		why = "bad state word";
	else if (le32_to_cpu(e->crc) !=
		 tm_crc(e->name, offsetof(struct tm_media_entry, crc) -
				 offsetof(struct tm_media_entry, name)))
		why = "bad checksum";
	else if (!tm_name_valid(e->name))
		why = "bad name";
	else if (!size || !IS_ALIGNED(off | size, TIERMEM_CHUNK_SIZE) ||
		 off < TM_TABLE_SIZE || off > pm->size ||
		 size > pm->size - off || size > TM_REGION_MAX_SIZE)
		why = "impossible offset or size";
	else if (le32_to_cpu(e->mode) & ~0777U)
		why = "bad mode";
	if (!why)
		return 0;
	pr_err("%s: region table entry %u: %s; refusing to attach (table not trusted)\n",
	       pm->path, slot, why);
	return -EUCLEAN;
}

/* Entries are sorted by offset when this runs. */
static int tm_check_overlaps(struct tm_pmem *pm)
{
	struct tm_region *r, *prev = NULL, *o;

	list_for_each_entry(r, &pm->regions, pmem_node) {
		if (prev && prev->pm_off + prev->size > r->pm_off) {
			pr_err("%s: region table entries %u and %u overlap; refusing to attach (table not trusted)\n",
			       pm->path, prev->slot, r->slot);
			return -EUCLEAN;
		}
		list_for_each_entry(o, &pm->regions, pmem_node) {
			if (o == r)
				break;
			if (!strcmp(o->name, r->name)) {
				pr_err("%s: region table entries %u and %u have the same name; refusing to attach (table not trusted)\n",
				       pm->path, o->slot, r->slot);
				return -EUCLEAN;
			}
		}
		if (tm_name_taken(r->name)) {
			pr_err("%s: region %s already exists; refusing to attach\n",
			       pm->path, r->name);
			return -EEXIST;
		}
		prev = r;
	}
	return 0;
}

static void tm_insert_sorted(struct tm_pmem *pm, struct tm_region *r)
{
	struct tm_region *o;

	list_for_each_entry(o, &pm->regions, pmem_node) {
		if (o->pm_off > r->pm_off) {
			list_add_tail(&r->pmem_node, &o->pmem_node);
			return;
		}
	}
	list_add_tail(&r->pmem_node, &pm->regions);
}

static int tm_region_from_entry(struct tm_pmem *pm, u32 slot,
				const struct tm_media_entry *e, u32 state)
{
	struct tm_region *r;

	r = tm_region_alloc(e->name, TIERMEM_TIER_PMEM, le64_to_cpu(e->size),
			    le32_to_cpu(e->mode));
	if (IS_ERR(r))
		return PTR_ERR(r);
	r->uid = make_kuid(&init_user_ns, le32_to_cpu(e->uid));
	r->gid = make_kgid(&init_user_ns, le32_to_cpu(e->gid));
	r->state = state;
	r->pm = pm;
	r->pm_off = le64_to_cpu(e->offset);
	r->slot = slot;
	set_bit(slot, pm->slot_used);
	tm_insert_sorted(pm, r);
	return 0;
}

/* Frees regions built by a failed load (not yet in the registry). */
static void tm_table_unload(struct tm_pmem *pm)
{
	struct tm_region *r, *tmp;

	list_for_each_entry_safe(r, tmp, &pm->regions, pmem_node) {
		list_del_init(&r->pmem_node);
		r->pm = NULL;
		tm_region_husk_free(r);
	}
	bitmap_zero(pm->slot_used, pm->nr_slots);
}

static int tm_table_parse(struct tm_pmem *pm, const void *buf)
{
	const struct tm_media_entry *e = buf + TM_HDR_SIZE;
	u32 slot, state;
	int ret;

	for (slot = 0; slot < TM_NR_SLOTS; slot++, e++) {
		if (!e->state)
			continue;
		ret = tm_check_entry(pm, slot, e, &state);
		if (!ret)
			ret = tm_region_from_entry(pm, slot, e, state);
		if (ret)
			return ret;
	}
	return tm_check_overlaps(pm);
}

/*
 * Reads the table with machine-check-safe copies and turns it into regions.
 * Called with tm_lock held; on success the regions are in the registry.
 */
int tm_table_load(struct tm_pmem *pm, bool format)
{
	const struct tm_media_header *h;
	struct tm_pmem_lock l;
	struct tm_region *r;
	void *buf, *table;
	int ret;

	lockdep_assert_held(&tm_lock);
	pm->nr_slots = TM_NR_SLOTS;
	pm->slot_used = bitmap_zalloc(TM_NR_SLOTS, GFP_KERNEL);
	buf = vmalloc(TM_TABLE_SIZE);
	if (!pm->slot_used || !buf) {
		ret = -ENOMEM;
		goto out;
	}
	table = tm_table_enter(pm, &l);
	if (IS_ERR(table)) {
		ret = PTR_ERR(table);
		goto out;
	}
	ret = copy_mc_to_kernel(buf, table, TM_TABLE_SIZE) ? -EIO : 0;
	tm_pmem_exit(&l);
	if (ret) {
		pr_err("%s: media error reading the region table; refusing to attach\n",
		       pm->path);
		ret = -EIO;
		goto out;
	}
	h = buf;
	/*
	 * Blank means the whole table chunk is zero: other formats (btrfs,
	 * bcache, ZFS labels) leave their first 4 KiB zero.
	 */
	if (!memchr_inv(buf, 0, TM_TABLE_SIZE)) {
		if (!format) {
			pr_err("%s: no region table (blank media); attach with TIERMEM_ATTACH_FORMAT to create one\n",
			       pm->path);
			ret = -ENODATA;
			goto out;
		}
		ret = tm_table_format(pm);
		goto out;
	}
	if (le64_to_cpu(h->magic) != TM_TABLE_MAGIC) {
		pr_err("%s: no tiermem region table (unknown data in the first 2 MiB); refusing to attach\n",
		       pm->path);
		ret = -EUCLEAN;
		goto out;
	}
	ret = tm_check_header(pm, h);
	if (!ret)
		ret = tm_table_parse(pm, buf);
	if (ret) {
		tm_table_unload(pm);
		goto out;
	}
	list_for_each_entry(r, &pm->regions, pmem_node)
		tm_registry_add(r);
out:
	vfree(buf);
	if (ret) {
		bitmap_free(pm->slot_used);
		pm->slot_used = NULL;
	}
	return ret;
}
