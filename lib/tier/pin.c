// SPDX-License-Identifier: MIT
/*
 * May a mapping be pinned long-term, as cudaHostRegister (and RDMA
 * registration) pin it: pin_user_pages(FOLL_LONGTERM)? The GPU's pcie path
 * reads weights in place through such a pin. The kernel's rules, as far as
 * the backends here meet them (/work/shared/notes/kernel-facts.md, measured
 * on 6.1 with RDMA registration in the VM; no GPU here):
 *
 * - ordinary pages (anonymous 4 KiB or THP, hugetlb, the page cache of a
 *   plain file) and device-dax mappings: yes, on every kernel;
 * - a file on a DAX filesystem (fsdax): no (vma_is_fsdax);
 * - a /dev/tiermem DDR region: yes (refcounted pages);
 * - a /dev/tiermem PMEM region: fsdax pages behind a character device, so
 *   6.1's check does not see them and the pin works; newer kernels also
 *   refuse fsdax pages themselves (folio_is_fsdax in
 *   folio_is_longterm_pinnable, 6.15 by the notes, not verified here).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "tiermem/error.h"
#include "tiermem/mapping.h"

#define FSDAX_PIN_REFUSED_MAJOR 6
#define FSDAX_PIN_REFUSED_MINOR 15

/* Does this kernel refuse long-term pins of fsdax pages wherever they are mapped? Unparsable: assume so. */
static int refuses_fsdax_pages(const char *kernel)
{
	int major, minor;

	if (sscanf(kernel, "%d.%d", &major, &minor) != 2)
		return 1;
	return major > FSDAX_PIN_REFUSED_MAJOR ||
	       (major == FSDAX_PIN_REFUSED_MAJOR && minor >= FSDAX_PIN_REFUSED_MINOR);
}

static int refuse(const struct tm_mapping *m, const char *why)
{
	return tm_err(-EOPNOTSUPP, "%s (%s): %s, so the GPU cannot read it in place over PCIe; stage it in DDR "
		      "(import it with a ddr tier) or leave it to the CPU (-ot REGEX=CPU)",
		      m->path[0] ? m->path : "a mapping", m->backend, why);
}

int tm_mapping_pinnable(const struct tm_mapping *m, const char *kernel)
{
	static const char *const plain[] = { "anon-4k", "anon-thp", "hugetlb", "file", "devdax" };
	struct utsname u;

	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		if (!strcmp(m->backend, plain[i]))
			return 0;
	if (!strcmp(m->backend, "fsdax"))
		return refuse(m, "a file on a DAX filesystem is not long-term pinnable");
	if (strcmp(m->backend, "tiermem"))
		return refuse(m, "an unknown kind of mapping");
	if (m->tier != TM_TIER_PMEM)
		return 0;
	if (!kernel)
		kernel = uname(&u) ? "" : u.release;
	if (refuses_fsdax_pages(kernel))
		return refuse(m, "a tiermem PMEM region holds fsdax pages, which this kernel does not pin long-term");
	return 0;
}
