// SPDX-License-Identifier: MIT
/*
 * Run-time choice of the kernel table: the CPU must report the instructions
 * (cpuid) and the OS must save their registers (xgetbv), else we fall back.
 * AMX tiles also need the kernel's leave (arch_prctl), asked for once.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "kern.h"

enum { ISA_SCALAR, ISA_AVX2, ISA_AVX512, ISA_AVX512VNNI, ISA_AVX512AMX };

#if defined(__x86_64__) || defined(__i386__)
static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

/*
 * AMX-TILE and AMX-INT8 (cpuid 7 EDX 24, 25), tile state in XCR0 (17, 18),
 * and Linux's permission for this process to use it (ARCH_REQ_XCOMP_PERM
 * for XTILEDATA, feature 18): without it the first tile load faults.
 */
static int amx_ok(unsigned int d7, uint64_t xcr0)
{
	if (!(d7 & (1u << 24)) || !(d7 & (1u << 25)) || (xcr0 & (3ull << 17)) != (3ull << 17))
		return 0;
	return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
}

static int detect(void)
{
	unsigned int a, b, c, d, b7, c7, d7;
	uint64_t xcr0;
	int avx2, avx512;

	if (!__get_cpuid(1, &a, &b, &c, &d))
		return ISA_SCALAR;
	/* OSXSAVE, AVX, FMA, F16C */
	if (!(c & (1u << 27)) || !(c & (1u << 28)) || !(c & (1u << 12)) || !(c & (1u << 29)))
		return ISA_SCALAR;
	xcr0 = xgetbv0();
	if ((xcr0 & 0x6) != 0x6)	/* XMM and YMM state */
		return ISA_SCALAR;
	if (!__get_cpuid_count(7, 0, &a, &b7, &c7, &d7))
		return ISA_SCALAR;
	avx2 = !!(b7 & (1u << 5));
	if (!avx2)
		return ISA_SCALAR;
	/* F (16), DQ (17), BW (30), VL (31); opmask and ZMM state in XCR0 */
	avx512 = (b7 & (1u << 16)) && (b7 & (1u << 17)) && (b7 & (1u << 30)) &&
		 (b7 & (1u << 31)) && (xcr0 & 0xe0) == 0xe0;
	if (!avx512)
		return ISA_AVX2;
	if (!(c7 & (1u << 11)))
		return ISA_AVX512;
	return amx_ok(d7, xcr0) ? ISA_AVX512AMX : ISA_AVX512VNNI;
}

/* An AMD CPU's family and *model from cpuid 1; 0 for other vendors. */
static int amd_family(unsigned int *model)
{
	unsigned int a, b, c, d;

	if (!__get_cpuid(0, &a, &b, &c, &d) || b != 0x68747541 || d != 0x69746e65 || c != 0x444d4163)
		return 0;	/* "AuthenticAMD" */
	if (!__get_cpuid(1, &a, &b, &c, &d))
		return 0;
	*model = ((a >> 4) & 0xf) | ((a >> 12) & 0xf0);
	return ((a >> 8) & 0xf) + ((a >> 20) & 0xff);
}

/*
 * AMD family 17h below model 30h (Zen, Zen+) splits every 256-bit instruction
 * into two 128-bit halves and issues about three halves a cycle: there the
 * kernels are bound by instruction count, and the interleaved-row layout,
 * which needs fewer per weight byte, pays (repack.c says what was measured).
 */
int tm_cpu_avx2_split(void)
{
	unsigned int model;

	return amd_family(&model) == 0x17 && model < 0x30;
}

/* Zen 5 (kern.h: tm_prefetch_l2); other CPUs are unmeasured or measured slower (Intel, AMX) */
static int prefetch_to_l1(void)
{
	unsigned int model;

	return amd_family(&model) == 0x1a;
}
#else
static int prefetch_to_l1(void)
{
	return 0;
}

static int detect(void)
{
	return ISA_SCALAR;
}

int tm_cpu_avx2_split(void)
{
	return 0;
}
#endif

static const struct tm_kern *const tables[] = {
	[ISA_SCALAR] = &tm_kern_scalar,
	[ISA_AVX2] = &tm_kern_avx2,
	[ISA_AVX512] = &tm_kern_avx512,
	[ISA_AVX512VNNI] = &tm_kern_avx512vnni,
	[ISA_AVX512AMX] = &tm_kern_avx512amx,
};

static _Atomic int best = -1;
static _Atomic(const struct tm_kern *) current;
int tm_prefetch_to_l1;

const struct tm_kern *tm_kern(void)
{
	const struct tm_kern *k = atomic_load_explicit(&current, memory_order_relaxed);

	if (!k) {
		const char *env = getenv("TIERMEM_ISA"), *pf = getenv("TIERMEM_PREFETCH");

		/* l1 or l2 as asked; anything else leaves this CPU's choice */
		tm_prefetch_to_l1 = pf && !strcmp(pf, "l1") ? 1 : pf && !strcmp(pf, "l2") ? 0 : prefetch_to_l1();
		best = detect();
		k = tables[best];
		atomic_store(&current, k);
		/* tests and benches run a whole program on another table; a name this CPU lacks leaves the best */
		if (env && *env && !tm_kernels_force_isa(env))
			k = atomic_load(&current);
	}
	return k;
}

const char *tm_kernels_isa(void)
{
	return tm_kern()->name;
}

/*
 * "avx512" picks the best flavour the CPU has (AMX, else VNNI); "avx512-vnni"
 * never takes AMX, "avx512-novnni" neither AMX nor VNNI; "avx512-vnni-dot"
 * is avx512-vnni with prefill on the per-row kernels (the old path).
 */
int tm_kernels_force_isa(const char *isa)
{
	int want;

	if (!strcmp(isa, "avx512-vnni-dot")) {
		tm_kern();
		if (best < ISA_AVX512VNNI)
			return -1;
		atomic_store(&current, &tm_kern_avx512vnni_dot);
		return 0;
	}

	tm_kern();
	if (!strcmp(isa, "scalar"))
		want = ISA_SCALAR;
	else if (!strcmp(isa, "avx2"))
		want = ISA_AVX2;
	else if (!strcmp(isa, "avx512"))
		want = best >= ISA_AVX512 ? best : ISA_AVX512;
	else if (!strcmp(isa, "avx512-amx"))
		want = ISA_AVX512AMX;
	else if (!strcmp(isa, "avx512-vnni"))
		want = best >= ISA_AVX512VNNI ? ISA_AVX512VNNI : ISA_AVX512;
	else if (!strcmp(isa, "avx512-novnni"))
		want = ISA_AVX512;
	else
		return -1;
	if (want > best)
		return -1;
	atomic_store(&current, tables[want]);
	return 0;
}
