/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Types shared between perfgate.bpf.c and Rust: the skeleton exposes them as Rust types, never copied by hand. */
#ifndef PERFGATE_H
#define PERFGATE_H

/* Sizes and bit layouts shared with Rust. An enum, not #defines, so that they reach the BTF and the
 * generated skeleton: Rust reads them from there (src/bpf/kernel.rs), never from a copy. */
enum pg_layout {
	/* Equal to the kernel's MAX_URETPROBE_DEPTH: deeper calls get no return probe anyway. */
	PG_MAX_DEPTH = 64,
	/* Log-linear histogram: values 0..7 exactly, then 8 sub-buckets per power of two (12.5% wide), up to
	 * 2^43 ns. */
	PG_HIST_SUB_BITS = 3,
	PG_HIST_BUCKETS = 328,
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
	PG_OPEN_AT_EXEC = 7,        /* frames still open when their thread exec'd (the old image is gone) */
	PG_HOLD_FAILED = 8,         /* a library was added but the thread could not be stopped for perfgate */
	PG_RETURN_BEFORE_ATTACH = 9,/* a return whose call began before its process was attached (not lost) */
	/* Exceptions, panics and stack switches (bpf/unwind.h). */
	PG_FRAMES_UNWOUND = 10,     /* calls an exception (or panic) ended: measured up to the catch */
	PG_UNWINDS = 11,            /* unwinder entries: throw, resume, rethrow, forced unwind, backtrace */
	PG_LANDINGS = 12,           /* catches seen: __cxa_begin_catch, Rust's panic cleanup, a backtrace's end */
	PG_SLOTS_RESTORED = 13,     /* return addresses given back to the program for the unwinder */
	PG_SLOTS_REHIJACKED = 14,   /* return probes put back after the unwinder (or a stack switch) */
	PG_SLOT_WRITES_FAILED = 15, /* a slot write could not be queued or stored: the unwinder may stop there */
	PG_WRITER_STOPS = 16,       /* times the benchmark was stopped for perfgate to write its slots */
	PG_STACK_SWITCHES = 17,     /* swapcontext, setcontext, jump_fcontext calls */
	PG_FRAMES_SWITCHED = 18,    /* calls left on a stack a switch left behind: their return is not seen */
	PG_FOREIGN_STACK = 19,      /* entries on another stack with no switch seen (sigaltstack, unhooked switcher) */
	PG_NR_COUNTERS = 20,
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
	/* Of `calls`, those made while an outer call of the same function was active (recursion, also mutual):
	 * their inclusive time is already in the outermost call's, so the incl_* fields and overhead_sum leave
	 * them out; the self_* fields count every call. */
	__u64 nested_calls;
};

struct pg_frame {
	__u64 sp;    /* stack pointer at entry: tells live frames from frames a longjmp skipped */
	__u64 start;
	__u64 child;
	__u64 overhead; /* calibrated probe cost of traced descendants so far */
	__u64 out;      /* of which outside the direct children's own measured time (in this self time) */
	__u32 func;
	__u32 nested; /* an outer call of the same function is active below this frame */
};

/* A thread's state around exceptions and stack switches (bpf/unwind.h). */
struct pg_unwind {
	__u64 unwind_sp;  /* %rsp at the latest unwinder entry: events below it are the unwinder's own callees */
	__u32 restored;   /* some return-address slots hold the original address instead of the trampoline */
	__u32 unwinding;  /* an exception is in flight: frames found left are ended by it, and measured */
	__u32 switched;   /* the thread switched stacks: frames found left were left on the other stack */
	__u32 _pad;
};

struct pg_stack {
	__u32 depth;
	__u32 _pad;
	struct pg_frame frames[PG_MAX_DEPTH];
	struct pg_unwind unwind;
};

enum pg_event_kind {
	PG_EV_ENTRY = 0,
	PG_EV_EXIT = 1,
	/* The frame was ended by an exception (or panic): ts is the catch, or the first traced event after the
	 * unwinder left the frame. */
	PG_EV_UNWOUND = 2,
	/* The frame was left without returning (longjmp): ts is when that was found, at the next traced event. */
	PG_EV_ABANDONED = 3,
	/* The frame was left on a stack that a stack switch left behind: its return cannot be seen. */
	PG_EV_SWITCHED = 4,
};

/* What an entry-only hook probe (bpf/unwind.h) marks, in the cookie's kind bits. */
enum pg_hook_kind {
	PG_HOOK_UNWIND = 0, /* _Unwind_RaiseException, _Unwind_Resume, _Unwind_Resume_or_Rethrow, _Unwind_ForcedUnwind */
	PG_HOOK_WALK = 1,   /* _Unwind_Backtrace: walks the stack like an unwind, but no frame dies */
	PG_HOOK_LAND = 2,   /* called by the catching frame itself: __cxa_begin_catch, every `ret` of _Unwind_Backtrace */
	PG_HOOK_SWITCH = 3, /* swapcontext, setcontext, boost.context's jump_fcontext / ontop_fcontext */
	/* A catch signalled a few frames below the catching frame (Rust's __rust_panic_cleanup, called through
	 * std's do_catch and cleanup): frames the panic left may lie above its %rsp, so they are closed at the
	 * next traced return or call instead. */
	PG_HOOK_LAND_DEEP = 4,
	PG_NR_HOOK_KINDS = 5,
};

/* A return-address store perfgate applies from user space while the benchmark is stopped (bpf/unwind.h). */
struct pg_patch_key {
	__u32 tid;
	__u32 _pad;
	__u64 slot; /* address of the return-address slot on the thread's stack */
};

struct pg_patch {
	__u64 value;     /* the 8 bytes to store */
	__u64 queued_ns; /* bpf_ktime_get_ns() when queued: the pause starts here */
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

/* ---- Following processes and the libraries they load (src/session/follow.rs, src/session/live.rs) ---- */

/* Flags of a followed process (struct pg_proc.flags). */
enum pg_proc_flag {
	PG_PROC_HOLDS = 1, /* traced by perfgate's tracer: a thread that adds a library may be stopped */
	PG_PROC_MIDFLIGHT = 2, /* attached while running (a fork child, a live process): calls in progress */
};

/* Per followed process: its flags and the state of its loader's link map. */
struct pg_proc {
	__u32 flags;
	__u32 gen;          /* exec generation: the link map of each image is its own */
	__u32 changes;      /* consistent link-map states seen in this image (1 = start-up) */
	__u32 parent_tgid;  /* a fork child inherits its parent's link map: names seen there are not new */
	__u32 parent_gen;
	__u32 _pad;
};

/* When a link-map name was first seen in a process image (the value of the dl_seen map). */
enum pg_dl_when {
	PG_DL_AT_START = 1, /* at the loader's start-up (DT_NEEDED, LD_PRELOAD) or inherited through fork */
	PG_DL_LATER = 2,    /* added later: dlopen */
};

struct pg_dl_key {
	__u32 tgid;
	__u32 gen;
	char name[PG_LIB_NAME];
};

#endif
