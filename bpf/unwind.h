/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* perfgate's shadow stack through C++ exceptions, Rust panics, longjmp and stack switches. Included by
 * perfgate.bpf.c after its maps and helpers (count, emit, ours, record) and before on_entry/on_return.
 *
 * # The problem
 *
 * A pending return probe replaces the return address in the probed frame's slot ([entry %rsp]) with the
 * kernel's trampoline in the [uprobes] page, which has no unwind information (no FDE). The DWARF unwinder
 * (_Unwind_RaiseException's phase 1) stops there with _URC_END_OF_STACK and __cxa_throw calls
 * std::terminate; glibc's backtrace() and Rust's Backtrace stop there too; a forced unwind (pthread_exit)
 * stops there and skips destructors.
 *
 * # What the kernel guarantees (kernel/events/uprobes.c, arch/x86/kernel/uprobes.c, 6.x up to 6.18)
 *
 * 1. current->utask->return_instances lists every pending return of the thread, newest first, at most
 *    MAX_URETPROBE_DEPTH (64): prepare_uretprobe() checks utask->depth before pushing. Each instance has the
 *    slot address (`stack`, the %rsp at entry) and the original return address (`orig_ret_vaddr`); a tail
 *    call (the slot already holds the trampoline) pushes a `chained` instance with the first one's address.
 * 2. Every consumer's entry handler (this program) runs before prepare_uretprobe(): at entry, [%rsp] is
 *    still the caller's return address, or the trampoline if the caller's frame tail-called.
 * 3. cleanup_return_instances() (at every new return probe) pops, from the top, every instance whose slot is
 *    at or below the new call's %rsp (arch_uretprobe_is_alive, RP_CHECK_CALL: regs->sp < ri->stack), without
 *    calling any handler and without looking at the slot's content. So after any push the list is ordered
 *    by slot, lowest on top.
 * 4. uprobe_handle_trampoline() returns to the orig_ret_vaddr of the top instance (after dropping stale
 *    chains above a valid one). It never checks that the returning frame's own instance is the one on top:
 *    a trampoline reached after its instance was dropped returns to some *other* frame's caller. That is
 *    the one way a return probe can change what a program does, and this file must never create it.
 * 5. The session cookie lives in the instance, not on the user stack: stores to a slot do not touch it.
 *
 * # What perfgate relies on, and does
 *
 * Invariant: whenever the unwinder runs, no pending slot at or above it holds the trampoline; whenever
 * ordinary code runs, a slot holds the trampoline only if the kernel has an instance for that slot that it
 * will not drop before the frame returns (the slot lies strictly above the current %rsp, fact 3).
 *
 *   restore  at every unwinder entry (entry-only hooks, enum pg_hook_kind): every instance whose slot is at
 *            or above %rsp and holds exactly the trampoline gets its orig_ret_vaddr back. A slot that holds
 *            something else belongs to a frame that is gone (a stale instance) and is left alone.
 *   settle   at the first traced event at or above the unwinder's %rsp (a catch, a cleanup pad's traced
 *            call, a return), and at every landing hook: every instance strictly above the event's %rsp whose
 *            slot still holds its orig_ret_vaddr gets the trampoline again. Events below the unwinder's
 *            %rsp are its own callees (personality routines, the FDE search) and never settle.
 *   switch   at swapcontext/setcontext/jump_fcontext: restore *every* slot, settle at the next event. Frames
 *            of the stack left behind keep their original addresses, so when the kernel drops their
 *            instances (it will, by address, fact 3) nothing points at the trampoline any more.
 *
 * Frames found left (their slot at or below a new call's %rsp, or below a landing) are closed: while an
 * exception is in flight they are measured up to now and recorded as calls (PG_EV_UNWOUND, counted in
 * PG_FRAMES_UNWOUND); otherwise a longjmp (or a stack switch) left them: counted, not measured, as in
 * every mode (PG_EV_ABANDONED; PG_FRAMES_ABANDONED or PG_FRAMES_SWITCHED). A forced unwind
 * (pthread_exit, pthread_cancel) that ends in the thread's exit leaves the frames it did not pass a
 * traced event in open: they count as unfinished at exit, like those of a thread that called exit().
 *
 * # The writer
 *
 * bpf_probe_write_user is refused under kernel lockdown (integrity mode, the default with Secure Boot):
 * the verifier rejects the helper. So write_slot() queues each store in `patches` and commit_writes()
 * stops the thread group with bpf_send_signal_thread(SIGSTOP) before the thread returns to user space;
 * perfgate (src/session/unwind.rs), which waits for its child's stop, applies every queued store with
 * process_vm_writev and sends SIGCONT. The thread executes no instruction between decision and store.
 * When the kernel allows the helper (detected at load), write_from_bpf stores directly and nothing stops.
 */
#ifndef PERFGATE_UNWIND_H
#define PERFGATE_UNWIND_H

#include <bpf/bpf_core_read.h>

/* The kernel fields the walk needs, relocated by CO-RE against the running kernel's BTF (no vmlinux.h).
 * Same names and meaning from 4.x to 6.18: return_instance.{stack,orig_ret_vaddr,next},
 * uprobe_task.return_instances, mm_struct.uprobes_state.xol_area->vaddr (the trampoline page). */
struct xol_area {
	unsigned long vaddr;
} __attribute__((preserve_access_index));
struct uprobes_state {
	struct xol_area *xol_area;
} __attribute__((preserve_access_index));
struct mm_struct {
	struct uprobes_state uprobes_state;
} __attribute__((preserve_access_index));
struct return_instance {
	unsigned long stack;
	unsigned long orig_ret_vaddr;
	struct return_instance *next;
} __attribute__((preserve_access_index));
struct uprobe_task {
	struct return_instance *return_instances;
} __attribute__((preserve_access_index));
struct task_struct {
	struct mm_struct *mm;
	struct uprobe_task *utask;
} __attribute__((preserve_access_index));

/* Store slots with bpf_probe_write_user instead of queueing them for user space. Set only when the kernel
 * accepts the helper (src/bpf/mod.rs tries it at load): with false, the verifier prunes the branch and never
 * sees the helper. */
const volatile bool write_from_bpf = false;

/* Stores waiting for user space. Small on purpose: user space drains it at every stop by iterating keys,
 * which scans the buckets; 64 pending slots per thread fit 16 threads stopping at once. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct pg_patch_key);
	__type(value, struct pg_patch);
} patches SEC(".maps");

enum pg_hook_kind _pg_hook_kind = 0;
struct pg_patch _pg_patch = {};

/* Frames more than this apart are on different stacks (a coroutine, a signal stack), not evidence. */
#define PG_SAME_STACK (8 << 20)
#define PG_SIGSTOP 19

static __always_inline __u64 trampoline_vaddr(struct task_struct *t)
{
	struct xol_area *area = BPF_CORE_READ(t, mm, uprobes_state.xol_area);
	return area ? BPF_CORE_READ(area, vaddr) : 0;
}

/* Whether the return-address slot at `slot` holds the kernel's trampoline (true when it cannot be read:
 * the caller then keeps its old rule). */
static __always_inline bool slot_holds_trampoline(__u64 slot)
{
	__u64 cur = 0;
	if (bpf_probe_read_user(&cur, sizeof(cur), (void *)slot))
		return true;
	return cur == trampoline_vaddr((struct task_struct *)bpf_get_current_task());
}

/* A frame is dead when a new call's stack pointer lies at or above its slot: its function was left by
 * longjmp, an exception or a stack switch (the stack grows down, so live callers sit at higher
 * addresses). This is the kernel's own rule (fact 3): the new call's return probe drops that frame's
 * instance, so its return can never be seen, on whatever stack it lies. At an equal slot the frame lives
 * on only if the slot still holds the trampoline: that is a tail call, and the kernel chains the two
 * returns (fact 1). A call made from the same place after a longjmp (uftrace's s-longjmp: foo left, then
 * bar called at foo's slot) wrote its own return address there, and the kernel drops foo's instance. */
static __always_inline bool frame_dead(struct pg_frame *f, __u64 sp, __u32 func)
{
	if (f->sp > sp)
		return false;
	return f->sp < sp || !slot_holds_trampoline(sp);
}

/* One 8-byte store into the current thread's stack, from BPF or queued for user space (see the top). */
static __always_inline bool write_slot(__u64 slot, __u64 value)
{
	if (write_from_bpf)
		return bpf_probe_write_user((void *)slot, &value, sizeof(value)) == 0;
	struct pg_patch_key k = { .tid = (__u32)bpf_get_current_pid_tgid(), .slot = slot };
	struct pg_patch p = { .value = value, .queued_ns = bpf_ktime_get_ns() };
	return bpf_map_update_elem(&patches, &k, &p, BPF_ANY) == 0;
}

/* After a walk that wrote: make the queued stores take effect before the thread runs on. SIGSTOP is
 * delivered before the thread returns to user space; it stops the whole group, and perfgate waits for the
 * group stop, so every thread that queued is stopped when the queue is drained. */
static __always_inline void commit_writes(__u32 wrote)
{
	if (!wrote || write_from_bpf)
		return;
	count(PG_WRITER_STOPS, 1);
	bpf_send_signal_thread(PG_SIGSTOP);
}

struct slot_walk {
	struct return_instance *ri;
	__u64 tramp;
	__u64 bound; /* restore: slots >= bound; rehijack: slots > bound */
	__u32 wrote; /* 0/1, a flag not a count: a count would keep the verifier from merging loop states */
	__u32 rehijack;
};

static long slot_step(__u64 i, void *ctx)
{
	struct slot_walk *w = ctx;
	struct return_instance *ri = w->ri;
	if (!ri)
		return 1;
	__u64 slot = BPF_CORE_READ(ri, stack);
	__u64 orig = BPF_CORE_READ(ri, orig_ret_vaddr);
	w->ri = BPF_CORE_READ(ri, next);
	__u64 cur = 0;
	if (bpf_probe_read_user(&cur, sizeof(cur), (void *)slot))
		return 0;
	__u64 value;
	if (!w->rehijack) {
		/* Only a slot that holds exactly the trampoline: anything else is a frame that is gone. */
		if (slot < w->bound || cur != w->tramp)
			return 0;
		value = orig;
	} else {
		/* Strictly above the event's %rsp (fact 3), only where the kernel still has the instance (we walk
		 * the live list) and the slot still holds its original address. Even if that instance is stale and
		 * a new frame reused the slot with the same return address, the trampoline then returns to that
		 * same address: behaviour is preserved, only the attribution of that one return can be wrong.
		 * Chained instances share a slot: the first writes, the next sees the trampoline and skips. */
		if (slot <= w->bound || cur != orig)
			return 0;
		value = w->tramp;
	}
	if (write_slot(slot, value)) {
		w->wrote = 1;
		count(w->rehijack ? PG_SLOTS_REHIJACKED : PG_SLOTS_RESTORED, 1);
	} else {
		count(PG_SLOT_WRITES_FAILED, 1);
	}
	return 0;
}

/* One walk of the kernel's list (at most MAX_URETPROBE_DEPTH = 64 instances, fact 1); returns 1 if it wrote. */
static __always_inline __u32 walk_slots(__u64 bound, bool rehijack)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct slot_walk w = {
		.ri = BPF_CORE_READ(t, utask, return_instances),
		.tramp = trampoline_vaddr(t),
		.bound = bound,
		.rehijack = rehijack,
	};
	if (!w.tramp)
		return 0; /* no return probe was ever hijacked in this process */
	bpf_loop(PG_MAX_DEPTH, slot_step, &w, 0);
	commit_writes(w.wrote);
	return w.wrote;
}

/* Control is back in ordinary code at `sp`: give live frames above it their return probes back. */
static __always_inline void unwind_settle(struct pg_stack *st, __u64 sp)
{
	if (!st->unwind.restored || sp < st->unwind.unwind_sp)
		return; /* nothing restored, or still inside the unwinder (its callees run below its %rsp) */
	walk_slots(sp, true);
	st->unwind.restored = 0;
}

/* Pops the top frame, which was left without a return. While an exception is in flight it ended the call,
 * which is measured up to `now` like a return (its time goes to the parent); otherwise longjmp or a stack
 * switch left it: counted, not measured. */
static __always_inline void leave_top(__u32 tid, struct pg_stack *st, __u64 now)
{
	__u32 d = st->depth;
	if (d == 0 || d > PG_MAX_DEPTH)
		return;
	__u32 idx = (d - 1) & (PG_MAX_DEPTH - 1);
	struct pg_frame *f = &st->frames[idx];
	st->depth = d - 1;
	if (!st->unwind.unwinding) {
		count(st->unwind.switched ? PG_FRAMES_SWITCHED : PG_FRAMES_ABANDONED, 1);
		if (trace_events)
			emit(tid, f->func, st->unwind.switched ? PG_EV_SWITCHED : PG_EV_ABANDONED, d, now);
		return;
	}
	__u64 incl = now > f->start ? now - f->start : 0;
	__u64 self = incl > f->child ? incl - f->child : 0;
	if (idx > 0) {
		struct pg_frame *parent = &st->frames[(idx - 1) & (PG_MAX_DEPTH - 1)];
		parent->child += incl;
		/* The frame's own probe kind is not kept in the frame: its descendants' cost is passed on, its
		 * own is not (a small under-compensation of the caller, on exceptions only). */
		parent->overhead += f->overhead;
		parent->out += f->out;
	}
	count(PG_FRAMES_UNWOUND, 1);
	if (trace_events)
		emit(tid, f->func, PG_EV_UNWOUND, d, now);
	record(tid, f->func, incl, self, f->overhead, f->out, f->nested);
}

enum pg_close_rule {
	PG_CLOSE_DEAD_AT_CALL = 0, /* frame_dead(): a new call at sp */
	PG_CLOSE_AT_OR_BELOW = 1,  /* a landing at sp: every frame whose slot is at or below it */
	PG_CLOSE_DEEPER = 2,       /* a return matched level `keep`: every frame above it */
};

struct close_walk {
	__u64 now;
	__u64 sp;
	__u32 tid;
	__u32 func;
	__u32 rule;
	__u32 keep;
};

static long close_step(__u64 i, void *ctx)
{
	struct close_walk *c = ctx;
	struct pg_stack *st = bpf_map_lookup_elem(&stacks, &c->tid);
	if (!st)
		return 1;
	__u32 d = st->depth;
	if (d == 0 || d > PG_MAX_DEPTH)
		return 1;
	struct pg_frame *f = &st->frames[(d - 1) & (PG_MAX_DEPTH - 1)];
	bool close;
	if (c->rule == PG_CLOSE_DEAD_AT_CALL)
		close = frame_dead(f, c->sp, c->func);
	else if (c->rule == PG_CLOSE_AT_OR_BELOW)
		close = f->sp <= c->sp;
	else
		close = d > c->keep;
	if (!close)
		return 1;
	leave_top(c->tid, st, c->now);
	return 0;
}

/* Closes frames from the top while `rule` says they were left. In bpf_loop: as an open loop the verifier
 * follows every depth reached as a separate state. */
static __always_inline void close_frames(__u32 tid, __u64 now, __u32 rule, __u64 sp, __u32 func, __u32 keep)
{
	struct close_walk c = { .now = now, .sp = sp, .tid = tid, .func = func, .rule = rule, .keep = keep };
	bpf_loop(PG_MAX_DEPTH, close_step, &c, 0);
}

/* At a traced entry or return at `sp`, after unwind_settle and the closing of left frames: an event at or
 * above the unwinder's %rsp with every slot settled means the exception reached ordinary code again. */
static __always_inline void unwind_entered(struct pg_stack *st, __u64 sp)
{
	if (st->unwind.unwinding && !st->unwind.restored && sp >= st->unwind.unwind_sp)
		st->unwind.unwinding = 0;
}

/* Entries on another stack than the top frame's with no switch hook seen: a signal handler on sigaltstack
 * or a stack switcher perfgate does not hook. The kernel may then drop live instances by address (fact 3),
 * which is reported (PG_FOREIGN_STACK), not silent. */
static __always_inline void note_foreign_stack(struct pg_stack *st, __u32 d, __u64 sp)
{
	if (d == 0 || st->unwind.switched)
		return;
	__u64 top = st->frames[(d - 1) & (PG_MAX_DEPTH - 1)].sp;
	__u64 dist = top > sp ? top - sp : sp - top;
	if (dist > PG_SAME_STACK)
		count(PG_FOREIGN_STACK, 1);
}

static __always_inline struct pg_stack *unwind_stack(__u32 tid)
{
	struct pg_stack *st = bpf_map_lookup_elem(&stacks, &tid);
	if (st)
		return st;
	__u32 zero = 0;
	struct pg_stack *z = bpf_map_lookup_elem(&zero_stack, &zero);
	if (!z)
		return 0;
	bpf_map_update_elem(&stacks, &tid, z, BPF_NOEXIST);
	return bpf_map_lookup_elem(&stacks, &tid);
}

/* An entry-only hook (enum pg_hook_kind in the cookie's kind bits) at `sp`. None of the hooked functions
 * may get a return probe (the plan excludes them): a pending return on the unwinder would itself be a
 * trampoline on the stack it walks, installed after this handler ran (fact 2). */
static __always_inline int unwind_hook(__u64 sp, __u64 cookie)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!ours(pid_tgid))
		return 0;
	__u32 tid = (__u32)pid_tgid;
	struct pg_stack *st = unwind_stack(tid);
	if (!st) {
		count(PG_STACK_MAP_FULL, 1);
		return 0;
	}
	__u32 kind = (__u32)(cookie >> PG_COOKIE_KIND_SHIFT);
	if (kind == PG_HOOK_UNWIND || kind == PG_HOOK_WALK) {
		count(PG_UNWINDS, 1);
		/* A backtrace walks like an unwind but leaves every frame alive. */
		if (kind == PG_HOOK_UNWIND)
			st->unwind.unwinding = 1;
		/* The frames the unwinder walks are at or above its %rsp. */
		if (walk_slots(sp, false))
			st->unwind.restored = 1;
		st->unwind.unwind_sp = sp;
		return 0;
	}
	if (kind == PG_HOOK_SWITCH) {
		count(PG_STACK_SWITCHES, 1);
		st->unwind.switched = 1;
		/* Every stack but the next one goes dormant, and the kernel will drop their instances at the next
		 * probed call on a higher stack (fact 3): clean them all. A switch has no callees below it that
		 * must not settle: any next event may. */
		if (walk_slots(0, false)) {
			st->unwind.restored = 1;
			st->unwind.unwind_sp = 0;
		}
		return 0;
	}
	/* PG_HOOK_LAND: a catch (or the end of a backtrace walk) at sp, called by the catching frame. Every frame
	 * at or below it is gone: its slot lies in the part of the stack the catching frame's callees used.
	 * PG_HOOK_LAND_DEEP: the same, but the catching frame is a few frames above, so frames the exception
	 * left may lie above sp too: the exception stays in flight until the next traced event at or above
	 * the unwinder's %rsp closes them (unwind_entered). If none comes before the thread exits (only some
 * functions traced), they count as unfinished at exit: perfgate does not know where the catching frame
 * was. */
	count(PG_LANDINGS, 1);
	if (st->unwind.restored && sp >= st->unwind.unwind_sp) {
		walk_slots(sp, true);
		st->unwind.restored = 0;
	}
	if (st->depth && st->frames[(st->depth - 1) & (PG_MAX_DEPTH - 1)].sp <= sp)
		close_frames(tid, bpf_ktime_get_ns(), PG_CLOSE_AT_OR_BELOW, sp, 0, 0);
	if (!st->unwind.restored && kind == PG_HOOK_LAND)
		st->unwind.unwinding = 0;
	return 0;
}

SEC("uprobe.multi")
int pg_hook(struct pt_regs *ctx)
{
	return unwind_hook(ctx->rsp, bpf_get_attach_cookie(ctx));
}

SEC("uprobe")
int pg_hook_classic(struct pt_regs *ctx)
{
	return unwind_hook(ctx->rsp, bpf_get_attach_cookie(ctx));
}

#endif
