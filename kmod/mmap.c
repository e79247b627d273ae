// SPDX-License-Identifier: GPL-2.0
/*
 * tiermem mappings: MAP_SHARED only, 2 MiB PMD entries wherever the virtual
 * address and the region offset allow, 4 KiB entries elsewhere (counted).
 *
 * On 6.1 ->huge_fault is only called for DAX VMAs, so PMDs are inserted from
 * the ordinary ->fault handler. A PUD cannot be inserted from there: the PMD
 * table already exists when ->fault runs, so 1 GiB entries are not used.
 *
 * PMD entries inserted by pfn take no page reference: the VMA holds a
 * reference on the region instead, so the memory stays until the last VMA
 * is gone (and the last pin, see region.c).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cred.h>
#include <linux/mm.h>
#include <linux/huge_mm.h>
#include <linux/pfn_t.h>

#include "tiermem.h"
#include "trace.h"

static struct tm_region *tm_vma_region(struct vm_area_struct *vma)
{
	return vma->vm_private_data;
}

/* Byte offset inside the region of a user address in this VMA. */
static u64 tm_vma_rel(struct vm_area_struct *vma, unsigned long addr)
{
	struct tm_region *r = tm_vma_region(vma);
	u64 off = ((u64)vma->vm_pgoff << PAGE_SHIFT) - tm_region_offset(r);

	return off + (addr - vma->vm_start);
}

static void tm_vm_open(struct vm_area_struct *vma)
{
	struct tm_region *r = tm_vma_region(vma);

	tm_region_get(r);
	TM_STAT(r, live_mappings, 1);
	if (vma->vm_flags & VM_MAYWRITE)
		atomic_inc(&r->writers);
}

static void tm_vm_close(struct vm_area_struct *vma)
{
	struct tm_region *r = tm_vma_region(vma);

	TM_STAT(r, live_mappings, -1);
	if (vma->vm_flags & VM_MAYWRITE)
		atomic_dec(&r->writers);
	tm_region_put(r);
}

/* Splitting inside a 2 MiB entry would need a PMD split we never do. */
static int tm_vm_may_split(struct vm_area_struct *vma, unsigned long addr)
{
	if (!IS_ALIGNED(addr, PMD_SIZE))
		return -EINVAL;
	return 0;
}

static unsigned long tm_vm_pagesize(struct vm_area_struct *vma)
{
	return PMD_SIZE;
}

static pfn_t tm_ddr_pfn(struct tm_region *r, u64 rel)
{
	struct page *chunk = r->chunks[rel >> TIERMEM_CHUNK_SHIFT];

	return page_to_pfn_t(chunk + ((rel & (TIERMEM_CHUNK_SIZE - 1)) >>
				     PAGE_SHIFT));
}

/*
 * The pfn of [rel, rel + len) of @r. PMEM asks the driver each time, inside
 * the caller's tm_pmem_enter(): a known bad block in the range is -EIO.
 */
static int tm_rel_pfn(struct tm_region *r, u64 rel, u64 len, pfn_t *pfn)
{
	void *kaddr;

	if (r->tier == TIERMEM_TIER_PMEM)
		return tm_pmem_region_direct(r, rel, len, &kaddr, pfn);
	*pfn = tm_ddr_pfn(r, rel);
	return 0;
}

static vm_fault_t tm_fault_pmd(struct vm_fault *vmf, struct tm_region *r)
{
	struct vm_area_struct *vma = vmf->vma;
	unsigned long haddr = vmf->address & PMD_MASK;
	bool write = vma->vm_flags & VM_WRITE;
	vm_fault_t ret;
	pfn_t pfn;
	u64 rel;

	/* vmf_insert_pfn_pmd only checks the start: check the end too. */
	if (haddr < vma->vm_start || haddr + PMD_SIZE > vma->vm_end)
		return VM_FAULT_FALLBACK;
	rel = tm_vma_rel(vma, haddr);
	if (!IS_ALIGNED(rel, PMD_SIZE) || (r->pm && !r->pm->pmd_ok))
		return VM_FAULT_FALLBACK;
	/* A bad block inside: the good pages still map, one by one. */
	if (tm_rel_pfn(r, rel, PMD_SIZE, &pfn))
		return VM_FAULT_FALLBACK;
	/*
	 * Writable VMAs get writable entries at once: no dirty tracking is
	 * needed, and a later write fault would split the PMD.
	 */
	ret = vmf_insert_pfn_pmd(vmf, pfn, write);
	trace_tiermem_fault(r->id, rel, PMD_SIZE, ret);
	if (ret == VM_FAULT_NOPAGE) {
		TM_STAT(r, faults_pmd, 1);
		TM_STAT(r, bytes_mapped, PMD_SIZE);
	}
	return ret;
}

/*
 * A normal, refcounted PTE for one 4 KiB page of a DDR chunk: pinnable like
 * any page. Not through vmf->page: finish_fault() would map the whole
 * compound page as a PMD at the aligned address, whatever our offset.
 */
vm_fault_t tm_insert_page(struct vm_area_struct *vma, unsigned long addr,
			  struct page *page)
{
	int err = vm_insert_page(vma, addr & PAGE_MASK, page);

	if (!err || err == -EBUSY)
		return VM_FAULT_NOPAGE;
	return err == -ENOMEM ? VM_FAULT_OOM : VM_FAULT_SIGBUS;
}

static vm_fault_t tm_fault_pte(struct vm_fault *vmf, struct tm_region *r)
{
	struct vm_area_struct *vma = vmf->vma;
	u64 rel = tm_vma_rel(vma, vmf->address & PAGE_MASK);
	vm_fault_t ret;
	pfn_t pfn;

	if (tm_rel_pfn(r, rel, PAGE_SIZE, &pfn)) {
		/* Poison is never mapped: the reader gets SIGBUS. */
		TM_STAT(r, media_errors, 1);
		trace_tiermem_fault(r->id, rel, PAGE_SIZE, VM_FAULT_SIGBUS);
		return VM_FAULT_SIGBUS;
	}
	if (r->tier == TIERMEM_TIER_DDR)
		ret = tm_insert_page(vma, vmf->address, pfn_t_to_page(pfn));
	else
		ret = vmf_insert_mixed(vma, vmf->address & PAGE_MASK, pfn);
	trace_tiermem_fault(r->id, rel, PAGE_SIZE, ret);
	if (!(ret & VM_FAULT_ERROR)) {
		TM_STAT(r, faults_pte, 1);
		TM_STAT(r, bytes_mapped, PAGE_SIZE);
	}
	return ret;
}

static vm_fault_t tm_fault(struct vm_fault *vmf, struct tm_region *r)
{
	vm_fault_t ret;

	if (pmd_none(*vmf->pmd)) {
		ret = tm_fault_pmd(vmf, r);
		if (ret != VM_FAULT_FALLBACK)
			return ret;
	}
	return tm_fault_pte(vmf, r);
}

/*
 * PMEM entries are inserted inside tm_pmem_enter(), so a namespace being
 * removed either waits for this fault or makes it fail: see
 * tm_pmem_revoke(), which zaps what was inserted before.
 */
static vm_fault_t tm_vm_fault(struct vm_fault *vmf)
{
	struct tm_region *r = tm_vma_region(vmf->vma);
	u64 rel = tm_vma_rel(vmf->vma, vmf->address & PAGE_MASK);
	struct tm_pmem_lock l;
	vm_fault_t ret;

	if (rel >= r->size)
		return VM_FAULT_SIGBUS;
	if (r->tier == TIERMEM_TIER_DDR)
		return tm_fault(vmf, r);
	if (tm_pmem_enter(r->pm, &l))
		return VM_FAULT_SIGBUS;
	ret = tm_fault(vmf, r);
	tm_pmem_exit(&l);
	return ret;
}

static const struct vm_operations_struct tm_vm_ops = {
	.open = tm_vm_open,
	.close = tm_vm_close,
	.may_split = tm_vm_may_split,
	.pagesize = tm_vm_pagesize,
	.fault = tm_vm_fault,
};

/* The counters page is neither data nor a writer of it. */
static void tm_ctr_vm_open(struct vm_area_struct *vma)
{
	tm_region_get(tm_vma_region(vma));
}

static void tm_ctr_vm_close(struct vm_area_struct *vma)
{
	tm_region_put(tm_vma_region(vma));
}

static const struct vm_operations_struct tm_ctr_vm_ops = {
	.open = tm_ctr_vm_open,
	.close = tm_ctr_vm_close,
};

static int tm_mmap_counters(struct tm_region *r, struct vm_area_struct *vma)
{
	int ret;

	if (vma->vm_end - vma->vm_start != PAGE_SIZE)
		return -EINVAL;
	vma->vm_flags |= VM_DONTEXPAND | VM_DONTDUMP;
	ret = vm_insert_page(vma, vma->vm_start, r->ctr_page);
	if (ret)
		return ret;
	vma->vm_private_data = r;
	vma->vm_ops = &tm_ctr_vm_ops;
	tm_ctr_vm_open(vma);
	return 0;
}

/*
 * @rel: byte offset of the mapping inside the region's offset window.
 * @writable: the file's handle allows writing to the region.
 * Called with tm_lock held, so a seal cannot race a writable mapping.
 */
int tm_mmap_region(struct tm_region *r, struct vm_area_struct *vma,
		   bool writable, u64 rel)
{
	u64 len = vma->vm_end - vma->vm_start;

	lockdep_assert_held(&tm_lock);
	/* VM_MAYSHARE: a read-only file's MAP_SHARED loses VM_SHARED. */
	if (!(vma->vm_flags & VM_MAYSHARE))
		return -EINVAL;
	if (r->pm && READ_ONCE(r->pm->dead))
		return -ENXIO;
	/*
	 * Sealed data is read-only; the counters page stays writable through
	 * a writable handle, for readers that add the bytes they stream.
	 */
	if (rel != TM_CTR_REL &&
	    (r->state == TIERMEM_STATE_SEALED || r->sealing))
		writable = false;
	if (!writable && (vma->vm_flags & VM_WRITE))
		return -EACCES;
	/*
	 * Write access is decided at mmap: mprotect cannot add it later, and
	 * a mapping keeps counting as a writer (VM_MAYWRITE) until it is gone.
	 */
	if (!(vma->vm_flags & VM_WRITE))
		vma->vm_flags &= ~VM_MAYWRITE;
	if (rel == TM_CTR_REL)
		return tm_mmap_counters(r, vma);
	if (rel >= r->size || len > r->size - rel)
		return -EINVAL;
	vma->vm_flags |= VM_MIXEDMAP | VM_DONTEXPAND | VM_DONTDUMP;
	vma->vm_private_data = r;
	vma->vm_ops = &tm_vm_ops;
	tm_vm_open(vma);
	return 0;
}

unsigned long tm_get_unmapped_area(struct file *file, unsigned long addr,
				   unsigned long len, unsigned long pgoff,
				   unsigned long flags)
{
	/* Aligns addr to pgoff modulo 2 MiB; our offsets are 1 GiB aligned. */
	return thp_get_unmapped_area(file, addr, len, pgoff, flags);
}
