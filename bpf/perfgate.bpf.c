// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* perfgate: per-thread shadow stack of function entries, in-kernel latency aggregation, optional event stream. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <asm/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <stdbool.h>
#include "perfgate.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set before load. */
const volatile __u32 target_tgid = 0;
const volatile bool trace_events = false;
/* Wake the reader only when this much is waiting: a wakeup per event would cost more than the event. */
const volatile __u64 wakeup_bytes = 1 << 20;
/* Calibrated cost of one traced call (entry + return probe) as seen by its caller, per probe kind, ns; and
 * the part of it that falls inside the call's own measured interval (between its two timestamps). */
const volatile __u64 probe_cost_ns[PG_NR_PROBE_KINDS] = {};
const volatile __u64 probe_in_ns[PG_NR_PROBE_KINDS] = {};

/* Survey mode: per-function totals in memory user space maps and reads while the benchmark runs (no
 * system call per read), so functions too hot for their probe can be found early and unprobed. */
const volatile bool survey = false;
__u64 survey_calls[PG_SURVEY_MAX] = {};
__u64 survey_incl[PG_SURVEY_MAX] = {};
__u64 survey_overhead[PG_SURVEY_MAX] = {};

/* `perfgate bench cost` only: the minimal counting program's hits (entries and returns). */
__u64 count_hits = 0;

/* Make the event type and the enums visible in the skeleton's BTF (the map types already are), so Rust
 * takes every constant from the generated types. */
struct pg_event _pg_event = {};
enum pg_layout _pg_layout = 0;
enum pg_counter _pg_counter = 0;
enum pg_probe_kind _pg_probe_kind = 0;
enum pg_event_kind _pg_event_kind = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct pg_stack);
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pg_key);
	__type(value, struct pg_stats);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pg_stats);
} zero_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pg_stack);
} zero_stack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PG_NR_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

/* Every path ever seen in the loader's link map: dlopen'd libraries show up here even if they are closed
 * again before the benchmark exits. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct pg_lib_name);
	__type(value, __u8);
} dl_libs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pg_lib_name);
} lib_scratch SEC(".maps");

/* _r_debug minus _dl_debug_state, as laid out in the loader. */
const volatile __s64 r_debug_delta = 0;

extern bool bpf_session_is_return(void) __ksym __weak;
extern __u64 *bpf_session_cookie(void) __ksym __weak;

static __always_inline void count(__u32 which, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);
	if (c)
		*c += n;
}

/* 1 when x is non-zero, else 0, without a branch. */
static __always_inline __u64 nonzero(__u64 x)
{
	__u64 n = 0 - x;
	/* Hide n = -x from clang, which would turn the expression back into a compare and a branch. */
	barrier_var(n);
	return (x | n) >> 63;
}

/* Index of the highest set bit (0 for 0 and 1). Branchless on purpose: with a branch per step the
 * verifier walks every one of the 64 outcomes through the rest of the program, each with its exact value
 * (the histogram index must be precise), and verifying pg_session took 100 ms — most of perfgate's fixed
 * cost per run. */
static __always_inline __u32 log2_u64(__u64 v)
{
	__u64 r = 0, s;
	s = nonzero(v >> 32) << 5; v >>= s; r |= s;
	s = nonzero(v >> 16) << 4; v >>= s; r |= s;
	s = nonzero(v >> 8) << 3; v >>= s; r |= s;
	s = nonzero(v >> 4) << 2; v >>= s; r |= s;
	s = nonzero(v >> 2) << 1; v >>= s; r |= s;
	r |= nonzero(v >> 1);
	return r;
}

static __always_inline __u64 hist_bucket(__u64 v)
{
	if (v < (1 << PG_HIST_SUB_BITS))
		return v;
	/* 64-bit throughout: a 32-bit index is zero-extended after its bounds check, which the verifier then
	 * no longer sees. */
	__u64 msb = log2_u64(v);
	__u64 idx = (msb - PG_HIST_SUB_BITS + 1) * (1 << PG_HIST_SUB_BITS) +
		    ((v >> (msb - PG_HIST_SUB_BITS)) & ((1 << PG_HIST_SUB_BITS) - 1));
	return idx < PG_HIST_BUCKETS ? idx : PG_HIST_BUCKETS - 1;
}

static __always_inline void emit(__u32 tid, __u32 func, __u16 kind, __u32 depth, __u64 ts)
{
	struct pg_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(PG_EVENTS_DROPPED, 1);
		return;
	}
	e->ts = ts;
	e->tid = tid;
	e->func = func;
	e->kind = kind;
	e->depth = depth;
	e->cpu = bpf_get_smp_processor_id();
	__u64 waiting = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	bpf_ringbuf_submit(e, waiting >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

/* Processes perfgate follows besides target_tgid (the section "Following processes" at the end). */
static __always_inline bool pg_followed(__u32 tgid);

static __always_inline bool ours(__u64 pid_tgid)
{
	/* The uprobe_multi PID filter already does this; the check keeps other processes out on older kernels,
	 * and a vfork child (which shares its parent's memory, so its parent's links fire for it) out always. */
	return (pid_tgid >> 32) == target_tgid || pg_followed(pid_tgid >> 32);
}

static __always_inline void record(__u32 tid, __u32 func, __u64 incl, __u64 self, __u64 overhead,
				   __u64 out, __u32 nested);

/* Exceptions, longjmp and stack switches: frame_dead, the unwinder hooks, closing left frames. */
#include "unwind.h"

/* Push a frame; returns its 1-based depth, or 0 when the call is not measured. */
static __always_inline __u32 on_entry(__u32 func, __u64 sp)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!ours(pid_tgid))
		return 0;
	__u32 tid = (__u32)pid_tgid;
	struct pg_stack *st = bpf_map_lookup_elem(&stacks, &tid);
	if (!st) {
		__u32 zero = 0;
		struct pg_stack *z = bpf_map_lookup_elem(&zero_stack, &zero);
		if (!z)
			return 0;
		bpf_map_update_elem(&stacks, &tid, z, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&stacks, &tid);
		if (!st) {
			count(PG_STACK_MAP_FULL, 1);
			return 0;
		}
	}
	__u32 d = st->depth;
	if (d > PG_MAX_DEPTH)
		d = PG_MAX_DEPTH;
	/* unwind.h: after the unwinder (or a stack switch) restored return addresses, the trampolines go back
	 * above sp; frames left without a return (longjmp, exception, switch) are closed. */
	if (st->unwind.restored)
		unwind_settle(st, sp);
	if (d && frame_dead(&st->frames[(d - 1) & (PG_MAX_DEPTH - 1)], sp, func)) {
		close_frames(tid, bpf_ktime_get_ns(), PG_CLOSE_DEAD_AT_CALL, sp, func, 0);
		d = st->depth;
		if (d > PG_MAX_DEPTH)
			d = PG_MAX_DEPTH;
	}
	unwind_entered(st, sp);
	note_foreign_stack(st, d, sp);
	if (d >= PG_MAX_DEPTH) {
		count(PG_DEPTH_EXCEEDED, 1);
		return 0;
	}
	/* Keep the mask in the program: the verifier needs it to bound the index. */
	__u32 idx = d;
	barrier_var(idx);
	idx &= PG_MAX_DEPTH - 1;
	struct pg_frame *f = &st->frames[idx];
	f->sp = sp;
	f->func = func;
	f->child = 0;
	f->overhead = 0;
	f->out = 0;
	/* Recursion (also mutual): an outer call of this function is active, whose inclusive time covers this
	 * one's. */
	__u32 nested = 0;
	for (int i = 0; i < PG_MAX_DEPTH; i++) {
		if ((__u32)i >= d)
			break;
		if (st->frames[i & (PG_MAX_DEPTH - 1)].func == func) {
			nested = 1;
			break;
		}
	}
	f->nested = nested;
	st->depth = d + 1;
	/* Timestamp last, so the probe's own work before it is not charged to the function. */
	__u64 now = bpf_ktime_get_ns();
	f->start = now;
	if (trace_events)
		emit(tid, func, PG_EV_ENTRY, d + 1, now);
	return d + 1;
}

static __always_inline void record(__u32 tid, __u32 func, __u64 incl, __u64 self, __u64 overhead,
				   __u64 out, __u32 nested)
{
	struct pg_key key = { .tid = tid, .func = func };
	struct pg_stats *s = bpf_map_lookup_elem(&stats, &key);
	if (!s) {
		__u32 zero = 0;
		struct pg_stats *z = bpf_map_lookup_elem(&zero_stats, &zero);
		if (!z)
			return;
		bpf_map_update_elem(&stats, &key, z, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&stats, &key);
		if (!s) {
			count(PG_STATS_MAP_FULL, 1);
			return;
		}
	}
	/* Keyed by thread: only this thread writes this entry, so plain increments are safe. */
	s->calls += 1;
	/* Self time excludes the callees' intervals, so its probe share counts for every call, nested too. */
	s->out_sum += out;
	s->self_sum += self;
	if (s->calls == 1 || self < s->self_min)
		s->self_min = self;
	if (self > s->self_max)
		s->self_max = self;
	if (nested) {
		/* Its inclusive time is inside the outermost active call's: counted there, once. */
		s->nested_calls += 1;
	} else {
		s->overhead_sum += overhead;
		s->incl_sum += incl;
		if (s->calls - s->nested_calls == 1 || incl < s->incl_min)
			s->incl_min = incl;
		if (incl > s->incl_max)
			s->incl_max = incl;
		__u64 bi = hist_bucket(incl);
		/* Keep the bounds check on the register that indexes (clang knows it holds and would drop it). */
		barrier_var(bi);
		if (bi < PG_HIST_BUCKETS)
			s->incl_hist[bi] += 1;
	}
	__u64 bs = hist_bucket(self);
	barrier_var(bs);
	if (bs < PG_HIST_BUCKETS)
		s->self_hist[bs] += 1;
}

/* Counts a return that matched no entry (the section "Following processes" tells a call that began
 * before its process was attached from a loss). */
static __always_inline void pg_unmatched_return(__u64 pid_tgid);

/* Pop the frame at 1-based depth `want` (0 = unknown: search the top of the stack for `func`). */
static __always_inline void on_return(__u32 func, __u32 kind, __u32 want, __u64 sp)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!ours(pid_tgid))
		return;
	__u32 tid = (__u32)pid_tgid;
	struct pg_stack *st = bpf_map_lookup_elem(&stacks, &tid);
	if (!st) {
		pg_unmatched_return(pid_tgid);
		return;
	}
	/* unwind.h: sp is the caller's %rsp after the return (slot + 8): frames above it are live. */
	if (st->unwind.restored)
		unwind_settle(st, sp);
	__u32 d = st->depth;
	if (d > PG_MAX_DEPTH)
		return;
	if (want == 0) {
		/* No session cookie: the frame is normally on top; a few levels deeper after a longjmp. */
		for (int i = 0; i < 8; i++) {
			if ((__u32)i >= d)
				break;
			__u32 k = (d - 1 - i) & (PG_MAX_DEPTH - 1);
			if (st->frames[k].func == func) {
				want = d - i;
				break;
			}
		}
	}
	if (want == 0 || want > d) {
		pg_unmatched_return(pid_tgid);
		return;
	}
	__u32 idx = (want - 1) & (PG_MAX_DEPTH - 1);
	struct pg_frame *f = &st->frames[idx];
	if (f->func != func) {
		pg_unmatched_return(pid_tgid);
		return;
	}
	/* Frames above it never returned (longjmp, exception): closed, with an event each (unwind.h). */
	if (d > want)
		close_frames(tid, now, PG_CLOSE_DEEPER, sp, func, want);
	unwind_entered(st, sp);
	__u64 incl = now > f->start ? now - f->start : 0;
	__u64 self = incl > f->child ? incl - f->child : 0;
	__u64 overhead = f->overhead;
	__u64 out = f->out;
	st->depth = want - 1;
	if (idx > 0) {
		struct pg_frame *parent = &st->frames[(idx - 1) & (PG_MAX_DEPTH - 1)];
		parent->child += incl;
		__u32 k = kind & (PG_NR_PROBE_KINDS - 1);
		__u64 cost = probe_cost_ns[k];
		__u64 in = probe_in_ns[k];
		parent->overhead += overhead + cost;
		parent->out += cost > in ? cost - in : 0;
	}
	if (trace_events)
		emit(tid, func, PG_EV_EXIT, want, now);
	if (survey && func < PG_SURVEY_MAX) {
		/* Keep the mask in the program: the verifier needs it to bound the index. Threads share these
		 * totals: atomic adds. Every call's own interval (nested ones too): the survey judges a call's
		 * size against its probe. */
		__u32 si = func;
		barrier_var(si);
		si &= PG_SURVEY_MAX - 1;
		__sync_fetch_and_add(&survey_calls[si], 1);
		__sync_fetch_and_add(&survey_incl[si], incl);
		__sync_fetch_and_add(&survey_overhead[si], overhead);
	}
	record(tid, func, incl, self, overhead, out, f->nested);
}

SEC("uprobe.session")
int pg_session(struct pt_regs *ctx)
{
	__u64 attach = bpf_get_attach_cookie(ctx);
	__u32 func = (__u32)attach;
	__u64 *cookie = bpf_session_cookie();
	if (!cookie)
		return 1;
	if (!bpf_session_is_return()) {
		__u32 d = on_entry(func, ctx->rsp);
		*cookie = d;
		/* 1 = no return probe for a call we did not push. */
		return d ? 0 : 1;
	}
	on_return(func, (__u32)(attach >> PG_COOKIE_KIND_SHIFT), (__u32)*cookie, ctx->rsp);
	return 0;
}

/* The least a probe can do, attached the same way as pg_session: count the hit, ask for the return probe.
 * `perfgate bench cost` compares perfgate's per-call cost with it. */
SEC("uprobe.session")
int pg_count(struct pt_regs *ctx)
{
	__sync_fetch_and_add(&count_hits, 1);
	return 0;
}

SEC("uprobe.multi")
int pg_entry(struct pt_regs *ctx)
{
	on_entry((__u32)bpf_get_attach_cookie(ctx), ctx->rsp);
	return 0;
}

SEC("uretprobe.multi")
int pg_return(struct pt_regs *ctx)
{
	__u64 attach = bpf_get_attach_cookie(ctx);
	on_return((__u32)attach, (__u32)(attach >> PG_COOKIE_KIND_SHIFT), 0, ctx->rsp);
	return 0;
}

/* Classic per-function uprobes (perf events), for kernels without uprobe_multi (before 6.6): the same
 * handlers, one link per probe; the cookie comes through bpf_get_attach_cookie as well (5.15+). */
SEC("uprobe")
int pg_entry_classic(struct pt_regs *ctx)
{
	on_entry((__u32)bpf_get_attach_cookie(ctx), ctx->rsp);
	return 0;
}

SEC("uretprobe")
int pg_return_classic(struct pt_regs *ctx)
{
	__u64 attach = bpf_get_attach_cookie(ctx);
	on_return((__u32)attach, (__u32)(attach >> PG_COOKIE_KIND_SHIFT), 0, ctx->rsp);
	return 0;
}

SEC("raw_tp/sched_process_exit")
int pg_thread_exit(void *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!ours(pid_tgid))
		return 0;
	__u32 tid = (__u32)pid_tgid;
	struct pg_stack *st = bpf_map_lookup_elem(&stacks, &tid);
	if (st) {
		if (st->depth)
			count(PG_UNFINISHED_AT_EXIT, st->depth);
		bpf_map_delete_elem(&stacks, &tid);
	}
	return 0;
}

/* A global function: verified once on its own, not inside each loader-hook program's own walk. */
__noinline int pg_dl_follow(__u64 r_debug);

/* Entries of a loader's link map walked at most. */
#define PG_LINK_MAP_MAX 128

/* One entry of the link map for dl_change: remember its path; `ctx` is the entry's address, advanced to the
 * next. In bpf_loop, so the verifier checks one step instead of every one of PG_LINK_MAP_MAX. */
static long dl_change_step(__u64 i, void *ctx)
{
	__u64 *lm = ctx;
	if (!*lm)
		return 1;
	__u32 zero = 0;
	__u8 one = 1;
	struct pg_lib_name *n = bpf_map_lookup_elem(&lib_scratch, &zero);
	if (!n)
		return 1;
	for (int k = 0; k < PG_LIB_NAME / 8; k++)
		((__u64 *)n->name)[k] = 0;
	__u64 name = 0;
	bpf_probe_read_user(&name, sizeof(name), (void *)(*lm + 8));
	if (name && bpf_probe_read_user_str(n->name, sizeof(n->name), (void *)name) > 1)
		bpf_map_update_elem(&dl_libs, n, &one, BPF_ANY);
	if (bpf_probe_read_user(lm, sizeof(*lm), (void *)(*lm + 24)))
		return 1;
	return 0;
}

/* The loader calls _dl_debug_state after every change of its link map (start-up, dlopen, dlclose): walk the
 * list (struct r_debug { int; struct link_map *r_map; ... }, struct link_map { addr; char *l_name; dyn *;
 * struct link_map *l_next; ... }) and remember every path. */
static __always_inline int dl_change(__u64 ip, __u64 cookie)
{
	if (!ours(bpf_get_current_pid_tgid()))
		return 0;
	/* A followed process may run another loader than the command: its hook carries its own delta. */
	__u64 r_debug = ip + (cookie ? (__s64)cookie : r_debug_delta);
	pg_dl_follow(r_debug);
	__u64 lm = 0;
	if (bpf_probe_read_user(&lm, sizeof(lm), (void *)(r_debug + 8)))
		return 0;
	bpf_loop(PG_LINK_MAP_MAX, dl_change_step, &lm, 0);
	return 0;
}

SEC("uprobe.multi")
int pg_dl_change(struct pt_regs *ctx)
{
	return dl_change(bpf_get_func_ip(ctx), bpf_get_attach_cookie(ctx));
}

SEC("uprobe")
int pg_dl_change_classic(struct pt_regs *ctx)
{
	/* At an entry probe the instruction pointer is the probed address (bpf_get_func_ip is 6.x only). */
	return dl_change(ctx->rip, bpf_get_attach_cookie(ctx));
}

/* ---- Following processes and the libraries they load (src/session/follow.rs, src/session/live.rs) ----
 *
 * perfgate's tracer (src/run/follow.rs) holds every process the benchmark starts until its probes are
 * attached with its own PID (a uprobe_multi link only fires for its task's memory). Here: the set of
 * followed processes (`procs`, consulted by ours()), the frames an exec leaves open, and the hold of a
 * thread whose dlopen added a library: the loader hook stops it with SIGSTOP, which the tracer turns
 * into a signal-delivery-stop the program never sees, and perfgate attaches the new library before the
 * thread returns from dlopen. */

/* Whether the procs map is consulted at all (off: ours() costs one comparison, as without following). */
const volatile bool follow_enabled = false;
/* Whether a thread that adds a library to the link map is stopped for perfgate (a --lib glob exists). */
const volatile bool hold_dlopen = false;

/* The SIGSTOP of <asm/signal.h> on every Linux architecture perfgate supports. */
#define PG_SIGSTOP 19
/* RT_CONSISTENT of enum r_state: the link map is complete (after start-up, dlopen, dlclose). */
#define PG_RT_CONSISTENT 0

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct pg_proc);
} procs SEC(".maps");

/* Threads stopped by pg_dl_follow and not yet resumed: the tracer's SIGSTOP is ours iff the tid is here. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u32);
} dl_holds SEC(".maps");

/* Link-map names seen per process image, with when (enum pg_dl_when). LRU: entries of processes long
 * gone make room; an evicted name of a live process is only seen as new once more (one extra hold). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct pg_dl_key);
	__type(value, __u8);
} dl_seen SEC(".maps");

/* The walk's working memory. What changes from one entry to the next lives here, not in registers: the
 * verifier then explores one state per iteration instead of one per combination of outcomes. */
struct pg_dl_walk {
	struct pg_dl_key key;
	struct pg_dl_key parent_key;
	__u64 added;
	__u8 value;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pg_dl_walk);
} dl_scratch SEC(".maps");

enum pg_proc_flag _pg_proc_flag = 0;
enum pg_dl_when _pg_dl_when = 0;

static __always_inline bool pg_followed(__u32 tgid)
{
	return follow_enabled && bpf_map_lookup_elem(&procs, &tgid) != NULL;
}

/* In a process attached while it ran, a return without its entry is of a call that began before: a
 * fork child returning from what its parent had called (uretprobe.multi and classic return probes fire
 * for every consumer, not only those that saw the entry), a live process's calls in progress. */
static __always_inline void pg_unmatched_return(__u64 pid_tgid)
{
	__u32 tgid = pid_tgid >> 32;
	struct pg_proc *p = follow_enabled ? bpf_map_lookup_elem(&procs, &tgid) : NULL;
	count(p && (p->flags & PG_PROC_MIDFLIGHT) ? PG_RETURN_BEFORE_ATTACH : PG_RETURN_WITHOUT_ENTRY, 1);
}

/* At a consistent link map: note every name not seen before in this image; if there is one and the
 * process is held by perfgate's tracer, stop this thread (it is inside dlopen, before dlopen returns and
 * before the new library's constructors run) until perfgate has attached what the selection covers. */
/* One entry of the link map for pg_dl_follow: a name this process image has not had is recorded in
 * dl_seen (the walk's scratch in dl_scratch counts the new ones). In bpf_loop, as dl_change_step. */
struct dl_follow_walk {
	__u64 lm;
	__u8 when;
};

static long dl_follow_step(__u64 i, void *ctx)
{
	struct dl_follow_walk *c = ctx;
	if (!c->lm)
		return 1;
	__u32 zero = 0;
	struct pg_dl_walk *w = bpf_map_lookup_elem(&dl_scratch, &zero);
	if (!w)
		return 1;
	for (int k = 0; k < PG_LIB_NAME / 8; k++)
		((__u64 *)w->key.name)[k] = 0;
	__u64 name = 0;
	bpf_probe_read_user(&name, sizeof(name), (void *)(c->lm + 8));
	if (name && bpf_probe_read_user_str(w->key.name, sizeof(w->key.name), (void *)name) > 1 &&
	    !bpf_map_lookup_elem(&dl_seen, &w->key)) {
		w->value = c->when;
		if (w->parent_key.tgid) {
			/* A fork child's names are new only if its parent's image did not have them. */
			__builtin_memcpy(w->parent_key.name, w->key.name, sizeof(w->key.name));
			if (bpf_map_lookup_elem(&dl_seen, &w->parent_key))
				w->value = PG_DL_AT_START;
		}
		bpf_map_update_elem(&dl_seen, &w->key, &w->value, BPF_ANY);
		w->added += w->value == PG_DL_AT_START && w->parent_key.tgid ? 0 : 1;
	}
	if (bpf_probe_read_user(&c->lm, sizeof(c->lm), (void *)(c->lm + 24)))
		return 1;
	return 0;
}

__noinline int pg_dl_follow(__u64 r_debug)
{
	__u32 state = 1;
	if (bpf_probe_read_user(&state, sizeof(state), (void *)(r_debug + 24)) || state != PG_RT_CONSISTENT)
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct pg_proc *p = bpf_map_lookup_elem(&procs, &tgid);
	if (!p) {
		struct pg_proc fresh = {};
		bpf_map_update_elem(&procs, &tgid, &fresh, BPF_NOEXIST);
		p = bpf_map_lookup_elem(&procs, &tgid);
		if (!p)
			return 0;
	}
	p->changes += 1;
	__u8 when = p->changes <= 1 ? PG_DL_AT_START : PG_DL_LATER;
	__u32 zero = 0;
	struct pg_dl_walk *w = bpf_map_lookup_elem(&dl_scratch, &zero);
	if (!w)
		return 0;
	w->added = 0;
	w->parent_key.tgid = p->parent_tgid;
	w->parent_key.gen = p->parent_gen;
	w->key.tgid = tgid;
	w->key.gen = p->gen;
	__u64 lm = 0;
	if (bpf_probe_read_user(&lm, sizeof(lm), (void *)(r_debug + 8)))
		return 0;
	struct dl_follow_walk c = { .lm = lm, .when = when };
	bpf_loop(PG_LINK_MAP_MAX, dl_follow_step, &c, 0);
	if (!w->added || !hold_dlopen || !(p->flags & PG_PROC_HOLDS))
		return 0;
	__u32 tid = (__u32)pid_tgid, one = 1;
	bpf_map_update_elem(&dl_holds, &tid, &one, BPF_ANY);
	if (bpf_send_signal_thread(PG_SIGSTOP)) {
		bpf_map_delete_elem(&dl_holds, &tid);
		count(PG_HOLD_FAILED, 1);
	}
	return 0;
}

/* A followed thread exec'd: the frames of its old image never return, and the new image has its own link
 * map. args: (struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm); old_pid is the thread's
 * id before exec (a thread that execs takes its process's id). */
SEC("raw_tp/sched_process_exec")
int pg_exec(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!ours(pid_tgid))
		return 0;
	__u32 old = (__u32)ctx->args[1];
	struct pg_stack *st = bpf_map_lookup_elem(&stacks, &old);
	if (st) {
		if (st->depth)
			count(PG_OPEN_AT_EXEC, st->depth);
		bpf_map_delete_elem(&stacks, &old);
	}
	__u32 tgid = pid_tgid >> 32;
	struct pg_proc *p = bpf_map_lookup_elem(&procs, &tgid);
	if (p) {
		p->flags &= ~PG_PROC_MIDFLIGHT;
		p->gen += 1;
		p->changes = 0;
		p->parent_tgid = 0;
		p->parent_gen = 0;
	}
	return 0;
}
