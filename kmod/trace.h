/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tiermem tracepoints, for perf trace and bpftrace users: regions created,
 * sealed and deleted, faults by size, copies. In tracefs under
 * events/tiermem/.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM tiermem

#if !defined(_TIERMEM_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _TIERMEM_TRACE_H

#include <linux/tracepoint.h>

DECLARE_EVENT_CLASS(tiermem_region,
	TP_PROTO(u64 id, const char *name, u32 tier, u64 size, int ret),
	TP_ARGS(id, name, tier, size, ret),
	TP_STRUCT__entry(
		__field(u64, id)
		__string(name, name)
		__field(u32, tier)
		__field(u64, size)
		__field(int, ret)
	),
	TP_fast_assign(
		__entry->id = id;
		__assign_str(name, name);
		__entry->tier = tier;
		__entry->size = size;
		__entry->ret = ret;
	),
	TP_printk("id=%llu name=%s tier=%s size=%llu ret=%d", __entry->id,
		  __get_str(name), __entry->tier == 1 ? "ddr" : "pmem",
		  __entry->size, __entry->ret)
);

DEFINE_EVENT(tiermem_region, tiermem_region_create,
	TP_PROTO(u64 id, const char *name, u32 tier, u64 size, int ret),
	TP_ARGS(id, name, tier, size, ret));

DEFINE_EVENT(tiermem_region, tiermem_region_seal,
	TP_PROTO(u64 id, const char *name, u32 tier, u64 size, int ret),
	TP_ARGS(id, name, tier, size, ret));

DEFINE_EVENT(tiermem_region, tiermem_region_delete,
	TP_PROTO(u64 id, const char *name, u32 tier, u64 size, int ret),
	TP_ARGS(id, name, tier, size, ret));

TRACE_EVENT(tiermem_fault,
	TP_PROTO(u64 id, u64 offset, u64 size, unsigned int ret),
	TP_ARGS(id, offset, size, ret),
	TP_STRUCT__entry(
		__field(u64, id)
		__field(u64, offset)
		__field(u64, size)
		__field(unsigned int, ret)
	),
	TP_fast_assign(
		__entry->id = id;
		__entry->offset = offset;
		__entry->size = size;
		__entry->ret = ret;
	),
	TP_printk("id=%llu offset=%llu size=%llu ret=%#x", __entry->id,
		  __entry->offset, __entry->size, __entry->ret)
);

TRACE_EVENT(tiermem_copy,
	TP_PROTO(u64 src, u64 soff, u64 dst, u64 doff, u64 len, u64 copied,
		 int ret),
	TP_ARGS(src, soff, dst, doff, len, copied, ret),
	TP_STRUCT__entry(
		__field(u64, src)
		__field(u64, soff)
		__field(u64, dst)
		__field(u64, doff)
		__field(u64, len)
		__field(u64, copied)
		__field(int, ret)
	),
	TP_fast_assign(
		__entry->src = src;
		__entry->soff = soff;
		__entry->dst = dst;
		__entry->doff = doff;
		__entry->len = len;
		__entry->copied = copied;
		__entry->ret = ret;
	),
	TP_printk("src=%llu+%llu dst=%llu+%llu len=%llu copied=%llu ret=%d",
		  __entry->src, __entry->soff, __entry->dst, __entry->doff,
		  __entry->len, __entry->copied, __entry->ret)
);

#endif /* _TIERMEM_TRACE_H */

/* Out of tree: define_trace.h finds this file by its path. */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE trace
#include <trace/define_trace.h>
