/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Types shared between perfgate.bpf.c and Rust: the skeleton exposes them as Rust types, never copied by hand. */
#ifndef PERFGATE_H
#define PERFGATE_H

/* Sizes and bit layouts shared with Rust. An enum, not #defines, so that they reach the BTF and the
 * generated skeleton: Rust reads them from there (src/bpf/kernel.rs), never from a copy. */
enum pg_layout {
	/* Equal to the kernel's MAX_URETPROBE_DEPTH: deeper calls get no return probe anyway. */
	PG_MAX_DEPTH = 64,
	/* Log-linear histogram: values 0..31 exactly, then 32 sub-buckets per power of two (3.1% wide), up to
	 * 2^43 ns: (43 - 5 + 1) * 32 buckets. 32 rather than 8 because a p99 read from 8 was off by up to 9%
	 * of the exact one (perfgate bench tail), too close to the gate's 10% quantile threshold; the cost is
	 * 19.6 KiB per (thread, function) in the stats map instead of 5.2 KiB. */
	PG_HIST_SUB_BITS = 5,
	PG_HIST_BUCKETS = 1248,
	/* The BPF cookie of a probe: function id in the low 32 bits, probe kind (enum pg_probe_kind) above. */
	PG_COOKIE_KIND_SHIFT = 32,
	/* Longest path read from the dynamic loader's link map. */
	PG_LIB_NAME = 256,
	/* Functions the survey counts (ids at or above are not surveyed, only traced). */
	PG_SURVEY_MAX = 65536,
};

enum pg_counter {
	PG_DEPTH_EXCEEDED = 0,      /* call not measured: shadow stack full (its time stays in the caller) */
	PG_RETURN_WITHOUT_ENTRY = 1,/* a return that matched no entry on the shadow stack */
	PG_STATS_MAP_FULL = 2,      /* a call measured but not stored: stats map full */
	PG_STACK_MAP_FULL = 3,      /* a call not measured: too many threads for the stack map */
	PG_FRAMES_ABANDONED = 4,    /* frames left without a return (longjmp past them) */
	PG_UNFINISHED_AT_EXIT = 5,  /* frames still open when their thread exited */
	PG_EVENTS_DROPPED = 6,      /* trace events the ring buffer had no room for */
	PG_NR_COUNTERS = 7,
};

struct pg_key {
	__u32 tid;
	__u32 func;
};

enum pg_probe_kind {
	PG_PROBE_NOP5 = 0,
	PG_PROBE_EMULATED = 1,
	PG_PROBE_SINGLE_STEP = 2,
	PG_PROBE_UNKNOWN = 3,
	PG_NR_PROBE_KINDS = 4,
};

struct pg_stats {
	__u64 calls;
	__u64 overhead_sum; /* calibrated probe cost of all traced descendants, summed over calls */
	__u64 out_sum;      /* the part of direct children's probe cost outside their own measured time:
			     * it lands in this function's self time; summed over calls */
	__u64 incl_sum;
	__u64 incl_min;
	__u64 incl_max;
	__u64 self_sum;
	__u64 self_min;
	__u64 self_max;
	__u64 incl_hist[PG_HIST_BUCKETS];
	__u64 self_hist[PG_HIST_BUCKETS];
};

struct pg_frame {
	__u64 sp;    /* stack pointer at entry: tells live frames from frames a longjmp skipped */
	__u64 start;
	__u64 child;
	__u64 overhead; /* calibrated probe cost of traced descendants so far */
	__u64 out;      /* of which outside the direct children's own measured time (in this self time) */
	__u32 func;
	__u32 _pad;
};

struct pg_stack {
	__u32 depth;
	__u32 _pad;
	struct pg_frame frames[PG_MAX_DEPTH];
};

enum pg_event_kind {
	PG_EV_ENTRY = 0,
	PG_EV_EXIT = 1,
};

/* One trace event. depth is the 1-based level of the frame, so a reader can resynchronise after a gap. */
struct pg_event {
	__u64 ts;
	__u32 tid;
	__u32 func;
	__u16 kind;
	__u16 depth;
	__u32 cpu;
};

/* A path from the dynamic loader's link map (libraries loaded at run time are found there). */
struct pg_lib_name {
	char name[PG_LIB_NAME];
};

#endif
