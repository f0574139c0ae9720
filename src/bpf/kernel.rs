//! The one decoder of the kernel's types: the generated skeleton, and every conversion between the BPF
//! program's structs, enums and cookie layout and perfgate's own types.
//!
//! Invariant: no constant of `bpf/perfgate.h` is written out here. Sizes, enum values and bit layouts are
//! taken from the skeleton's generated types (`types::pg_layout`, `pg_counter`, `pg_probe_kind`,
//! `pg_event_kind`, `pg_hook_kind`); where perfgate keeps a Rust mirror (the histogram size of `profile::hist`), a
//! compile-time assert ties the two together.
use crate::profile::file::{Event, EventKind};
use crate::profile::hist::BUCKETS;
use crate::profile::{FuncId, FuncStats, Histogram, LossCounters, ProbeKind, TimeStats, Unwinding};

#[allow(
    missing_docs,
    clippy::all,
    unsafe_op_in_unsafe_fn,
    non_camel_case_types,
    dead_code
)]
pub(super) mod skel {
    include!(concat!(env!("OUT_DIR"), "/perfgate.skel.rs"));
}
pub(super) use skel::types;
use types::{pg_counter, pg_event_kind, pg_hook_kind, pg_layout, pg_probe_kind};

const _: () = assert!(
    BUCKETS == pg_layout::PG_HIST_BUCKETS.0 as usize,
    "profile::hist::BUCKETS must equal PG_HIST_BUCKETS of bpf/perfgate.h"
);
const _: () = assert!(
    crate::profile::hist::SUB_BITS == pg_layout::PG_HIST_SUB_BITS.0,
    "profile::hist::SUB_BITS must equal PG_HIST_SUB_BITS of bpf/perfgate.h"
);

const _: () = assert!(
    crate::profile::calls::MAX_LEVEL as u32 == pg_layout::PG_MAX_DEPTH.0,
    "profile::calls::MAX_LEVEL must equal PG_MAX_DEPTH of bpf/perfgate.h"
);

/// Frames per thread the BPF shadow stack holds (the kernel's own uretprobe nesting limit).
pub const MAX_DEPTH: usize = pg_layout::PG_MAX_DEPTH.0 as usize;

/// Functions the survey counts (the length of its .bss arrays).
pub const SURVEY_MAX: usize = pg_layout::PG_SURVEY_MAX.0 as usize;

/// Number of probe kinds the program knows (the length of `probe_cost_ns`).
pub(super) const PROBE_KINDS: usize = pg_probe_kind::PG_NR_PROBE_KINDS.0 as usize;

/// `enum pg_probe_kind` of a probe kind.
pub(super) fn probe_kind_value(k: ProbeKind) -> pg_probe_kind {
    match k {
        ProbeKind::Nop5 => pg_probe_kind::PG_PROBE_NOP5,
        ProbeKind::Emulated => pg_probe_kind::PG_PROBE_EMULATED,
        ProbeKind::SingleStep => pg_probe_kind::PG_PROBE_SINGLE_STEP,
        ProbeKind::Unknown => pg_probe_kind::PG_PROBE_UNKNOWN,
    }
}

const _: () = assert!(
    ProbeKind::ALL.len() == PROBE_KINDS,
    "every enum pg_probe_kind has a ProbeKind and back"
);

/// The BPF cookie of a probe: the function id in the low bits, the probe kind above
/// `PG_COOKIE_KIND_SHIFT`.
pub(super) fn cookie(func: FuncId, kind: ProbeKind) -> u64 {
    u64::from(func) | (u64::from(probe_kind_value(kind).0) << pg_layout::PG_COOKIE_KIND_SHIFT.0)
}

/// What an entry-only hook marks (see `bpf/unwind.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// An unwinder entry (throw, resume, rethrow, forced unwind): return addresses are restored.
    Unwind,
    /// `_Unwind_Backtrace`: restores like an unwind, no frame dies.
    Walk,
    /// A catch called by the catching frame, or a `ret` of `_Unwind_Backtrace`: return probes go back.
    Land,
    /// A catch signalled a few frames below the catching frame (Rust's panic cleanup).
    LandDeep,
    /// A stack switch: every return address is restored.
    Switch,
}

/// The cookie of a hook: its id in the low bits, the `enum pg_hook_kind` above `PG_COOKIE_KIND_SHIFT`.
pub(super) fn hook_cookie(id: u32, kind: HookKind) -> u64 {
    let k = match kind {
        HookKind::Unwind => pg_hook_kind::PG_HOOK_UNWIND,
        HookKind::Walk => pg_hook_kind::PG_HOOK_WALK,
        HookKind::Land => pg_hook_kind::PG_HOOK_LAND,
        HookKind::LandDeep => pg_hook_kind::PG_HOOK_LAND_DEEP,
        HookKind::Switch => pg_hook_kind::PG_HOOK_SWITCH,
    };
    u64::from(id) | (u64::from(k.0) << pg_layout::PG_COOKIE_KIND_SHIFT.0)
}

/// Plain-old-data types the kernel fills.
pub(super) trait Pod: Copy {}
impl Pod for u64 {}
impl Pod for types::pg_key {}
impl Pod for types::pg_stats {}
impl Pod for types::pg_event {}
impl Pod for types::pg_proc {}
impl Pod for types::pg_dl_key {}
impl Pod for types::pg_stack {}

/// The bytes of a `T` to hand to the kernel (a map key or value).
pub(super) fn pod_bytes<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: T is a repr(C) struct of integers without implicit padding (Pod: every field is a u32 or
    // u64 or an array of them, laid out by bpf/perfgate.h with explicit padding), so all its bytes are
    // initialised; the slice borrows `v` and cannot outlive it.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}
impl Pod for types::pg_patch_key {}
impl Pod for types::pg_patch {}

/// Copies a `T` out of bytes the kernel wrote; `None` when there are too few.
pub(super) fn read_pod<T: Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: T is a repr(C) struct of integers (Pod), so every bit pattern is valid, and the slice holds
    // at least size_of::<T>() bytes; read_unaligned copes with the Vec's alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// One ring-buffer record as an [`Event`]; `None` for a record of another size or an unknown kind.
pub(super) fn decode_event(data: &[u8]) -> Option<Event> {
    let e = read_pod::<types::pg_event>(data)?;
    let kind = match pg_event_kind(u32::from(e.kind)) {
        pg_event_kind::PG_EV_ENTRY => EventKind::Entry,
        pg_event_kind::PG_EV_EXIT => EventKind::Exit,
        pg_event_kind::PG_EV_UNWOUND => EventKind::Unwound,
        pg_event_kind::PG_EV_ABANDONED => EventKind::Abandoned,
        pg_event_kind::PG_EV_SWITCHED => EventKind::SwitchedAway,
        _ => return None,
    };
    Some(Event {
        ts: e.ts,
        tid: e.tid,
        func: e.func,
        depth: e.depth,
        kind,
    })
}

/// One entry of the `stats` map as a [`FuncStats`].
pub(super) fn decode_stats(key: &[u8], value: &[u8]) -> Option<FuncStats> {
    let k = read_pod::<types::pg_key>(key)?;
    let v = read_pod::<types::pg_stats>(value)?;
    Some(FuncStats {
        func: k.func,
        tid: k.tid,
        calls: v.calls,
        nested_calls: v.nested_calls.min(v.calls),
        overhead_ns: v.overhead_sum,
        out_ns: v.out_sum,
        inclusive: TimeStats {
            sum_ns: v.incl_sum,
            min_ns: v.incl_min,
            max_ns: v.incl_max,
            hist: Histogram::from_dense(&v.incl_hist),
        },
        self_time: TimeStats {
            sum_ns: v.self_sum,
            min_ns: v.self_min,
            max_ns: v.self_max,
            hist: Histogram::from_dense(&v.self_hist),
        },
    })
}

/// The counters the program keeps, in `enum pg_counter` order.
pub(super) const COUNTERS: usize = pg_counter::PG_NR_COUNTERS.0 as usize;

/// The loss counters from the per-CPU values of every `enum pg_counter` (outer index: the counter).
pub(super) fn decode_counters(per_cpu: &[Vec<u64>]) -> LossCounters {
    let total = |c: pg_counter| -> u64 {
        per_cpu
            .get(c.0 as usize)
            .map_or(0, |v| v.iter().sum::<u64>())
    };
    let dropped_per_cpu = per_cpu
        .get(pg_counter::PG_EVENTS_DROPPED.0 as usize)
        .cloned()
        .unwrap_or_default();
    LossCounters {
        depth_exceeded: total(pg_counter::PG_DEPTH_EXCEEDED),
        return_without_entry: total(pg_counter::PG_RETURN_WITHOUT_ENTRY),
        stats_map_full: total(pg_counter::PG_STATS_MAP_FULL),
        stack_map_full: total(pg_counter::PG_STACK_MAP_FULL),
        frames_abandoned: total(pg_counter::PG_FRAMES_ABANDONED),
        unfinished_at_exit: total(pg_counter::PG_UNFINISHED_AT_EXIT),
        events_dropped: dropped_per_cpu.iter().sum(),
        events_dropped_per_cpu: dropped_per_cpu,
        open_at_exec: total(pg_counter::PG_OPEN_AT_EXEC),
        holds_failed: total(pg_counter::PG_HOLD_FAILED),
        returned_before_attach: total(pg_counter::PG_RETURN_BEFORE_ATTACH),
        open_at_detach: 0,
        in_progress_at_attach: 0,
    }
}

/// The kernel side's counts about exceptions and stack switches, from the same per-CPU counters (the
/// writer, hooks and pauses are filled in by the caller).
pub(super) fn decode_unwinding(per_cpu: &[Vec<u64>]) -> Unwinding {
    let total = |c: pg_counter| -> u64 {
        per_cpu
            .get(c.0 as usize)
            .map_or(0, |v| v.iter().sum::<u64>())
    };
    Unwinding {
        unwinds: total(pg_counter::PG_UNWINDS),
        landings: total(pg_counter::PG_LANDINGS),
        frames_unwound: total(pg_counter::PG_FRAMES_UNWOUND),
        slots_restored: total(pg_counter::PG_SLOTS_RESTORED),
        slots_rehijacked: total(pg_counter::PG_SLOTS_REHIJACKED),
        slot_writes_failed: total(pg_counter::PG_SLOT_WRITES_FAILED),
        pauses: total(pg_counter::PG_WRITER_STOPS),
        stack_switches: total(pg_counter::PG_STACK_SWITCHES),
        frames_switched: total(pg_counter::PG_FRAMES_SWITCHED),
        foreign_stack_entries: total(pg_counter::PG_FOREIGN_STACK),
        ..Unwinding::default()
    }
}

/// One queued slot store: (thread, slot address, value, when it was queued in kernel time).
pub(super) fn decode_patch(key: &[u8], value: &[u8]) -> Option<(u32, u64, u64, u64)> {
    let k = read_pod::<types::pg_patch_key>(key)?;
    let v = read_pod::<types::pg_patch>(value)?;
    Some((k.tid, k.slot, v.value, v.queued_ns))
}

/// A loader link-map path as stored in the `dl_libs` map (NUL-padded).
pub(super) fn decode_lib_name(key: &[u8]) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let len = (pg_layout::PG_LIB_NAME.0 as usize).min(key.len());
    let key = &key[..len];
    let end = key.iter().position(|&b| b == 0).unwrap_or(key.len());
    std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&key[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_put_the_kind_above_the_function_id() {
        let shift = pg_layout::PG_COOKIE_KIND_SHIFT.0;
        assert_eq!(cookie(7, ProbeKind::Nop5), 7);
        assert_eq!(
            cookie(7, ProbeKind::SingleStep) >> shift,
            u64::from(pg_probe_kind::PG_PROBE_SINGLE_STEP.0)
        );
        assert_eq!(
            cookie(u32::MAX, ProbeKind::Unknown) & 0xffff_ffff,
            0xffff_ffff
        );
        for (i, k) in ProbeKind::ALL.iter().enumerate() {
            assert_eq!(probe_kind_value(*k).0 as usize, i, "{k:?}");
        }
    }

    #[test]
    fn events_decode_by_the_kernel_kinds() {
        let mut e = types::pg_event {
            ts: 5,
            tid: 6,
            func: 7,
            kind: pg_event_kind::PG_EV_EXIT.0 as u16,
            depth: 2,
            cpu: 0,
        };
        let bytes = |e: &types::pg_event| {
            let mut v = Vec::new();
            v.extend_from_slice(&e.ts.to_ne_bytes());
            v.extend_from_slice(&e.tid.to_ne_bytes());
            v.extend_from_slice(&e.func.to_ne_bytes());
            v.extend_from_slice(&e.kind.to_ne_bytes());
            v.extend_from_slice(&e.depth.to_ne_bytes());
            v.extend_from_slice(&e.cpu.to_ne_bytes());
            v
        };
        let d = decode_event(&bytes(&e)).unwrap();
        assert_eq!((d.ts, d.tid, d.func, d.depth), (5, 6, 7, 2));
        assert_eq!(d.kind, EventKind::Exit);
        for (k, want) in [
            (pg_event_kind::PG_EV_UNWOUND, EventKind::Unwound),
            (pg_event_kind::PG_EV_ABANDONED, EventKind::Abandoned),
            (pg_event_kind::PG_EV_SWITCHED, EventKind::SwitchedAway),
        ] {
            e.kind = k.0 as u16;
            assert_eq!(decode_event(&bytes(&e)).unwrap().kind, want);
        }
        e.kind = 9;
        assert!(decode_event(&bytes(&e)).is_none());
        assert!(decode_event(&[0u8; 3]).is_none());
    }

    #[test]
    fn counters_are_read_by_their_enum_values() {
        let mut per_cpu = vec![vec![0u64; 2]; COUNTERS];
        per_cpu[pg_counter::PG_FRAMES_ABANDONED.0 as usize] = vec![2, 3];
        per_cpu[pg_counter::PG_EVENTS_DROPPED.0 as usize] = vec![1, 4];
        let l = decode_counters(&per_cpu);
        assert_eq!(l.frames_abandoned, 5);
        assert_eq!(l.events_dropped, 5);
        assert_eq!(l.events_dropped_per_cpu, vec![1, 4]);
        assert_eq!(l.depth_exceeded, 0);
        per_cpu[pg_counter::PG_FRAMES_UNWOUND.0 as usize] = vec![7, 10];
        per_cpu[pg_counter::PG_WRITER_STOPS.0 as usize] = vec![1, 1];
        per_cpu[pg_counter::PG_FOREIGN_STACK.0 as usize] = vec![0, 3];
        let u = decode_unwinding(&per_cpu);
        assert_eq!(
            (u.frames_unwound, u.pauses, u.foreign_stack_entries),
            (17, 2, 3)
        );
        assert_eq!(
            (u.unwinds, u.stack_switches, u.slot_writes_failed),
            (0, 0, 0)
        );
    }

    #[test]
    fn hook_cookies_carry_the_kernel_hook_kinds() {
        let shift = pg_layout::PG_COOKIE_KIND_SHIFT.0;
        for (k, want) in [
            (HookKind::Unwind, pg_hook_kind::PG_HOOK_UNWIND),
            (HookKind::Walk, pg_hook_kind::PG_HOOK_WALK),
            (HookKind::Land, pg_hook_kind::PG_HOOK_LAND),
            (HookKind::LandDeep, pg_hook_kind::PG_HOOK_LAND_DEEP),
            (HookKind::Switch, pg_hook_kind::PG_HOOK_SWITCH),
        ] {
            let c = hook_cookie(5, k);
            assert_eq!(c >> shift, u64::from(want.0), "{k:?}");
            assert_eq!(c & 0xffff_ffff, 5);
        }
    }

    #[test]
    fn queued_stores_decode_from_the_kernel_layout() {
        let key = types::pg_patch_key {
            tid: 42,
            _pad: 0,
            slot: 0x7ffd_0000_1008,
        };
        let value = types::pg_patch {
            value: 0x5555_0000_1234,
            queued_ns: 99,
        };
        let kb: Vec<u8> = [
            &key.tid.to_ne_bytes()[..],
            &0u32.to_ne_bytes(),
            &key.slot.to_ne_bytes(),
        ]
        .concat();
        let vb: Vec<u8> = [value.value.to_ne_bytes(), value.queued_ns.to_ne_bytes()].concat();
        assert_eq!(
            decode_patch(&kb, &vb),
            Some((42, 0x7ffd_0000_1008, 0x5555_0000_1234, 99))
        );
        assert_eq!(decode_patch(&kb[..8], &vb), None);
    }
}
