//! Who stores return addresses around the unwinder (see `bpf/unwind.h`): the BPF program itself with
//! `bpf_probe_write_user`, when the kernel allows it, or perfgate from user space while the benchmark is
//! stopped, from the queue the program fills ([`SlotQueue`]).
//!
//! Invariant: the helper is used only after a probe program that calls it was accepted by this kernel
//! ([`bpf_writes_allowed`]); otherwise the program is loaded with `write_from_bpf = false`, a constant the
//! verifier prunes, so it never sees the helper and a locked-down kernel still loads perfgate.
use anyhow::Result;
use libbpf_rs::{MapCore, MapFlags, MapHandle};

use super::kernel;

/// Who writes the slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotWriter {
    /// The BPF program, with `bpf_probe_write_user`: no pause.
    Bpf,
    /// perfgate, with `process_vm_writev`, while the benchmark is stopped (SIGSTOP from the program,
    /// SIGCONT from perfgate).
    Stop,
}

impl SlotWriter {
    /// The name in profiles.
    pub fn name(self) -> &'static str {
        match self {
            SlotWriter::Bpf => "bpf",
            SlotWriter::Stop => "stop",
        }
    }
}

/// Whether this kernel lets perfgate load a program that calls `bpf_probe_write_user` (helper 36): it
/// refuses under lockdown (integrity or confidentiality, the default with Secure Boot) and without
/// CAP_SYS_ADMIN. Tried with a minimal kprobe program that is never attached.
pub fn bpf_writes_allowed() -> bool {
    // struct bpf_insn: code u8, dst_reg:4 | src_reg:4, off i16, imm i32 (little endian).
    const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
        let o = off.to_le_bytes();
        let i = imm.to_le_bytes();
        u64::from_le_bytes([code, (src << 4) | dst, o[0], o[1], i[0], i[1], i[2], i[3]])
    }
    let program: [u64; 8] = [
        insn(0x7a, 10, 0, -8, 0), // *(u64 *)(r10 - 8) = 0
        insn(0xb7, 1, 0, 0, 0),   // r1 = 0 (the user address: any value passes the verifier)
        insn(0xbf, 2, 10, 0, 0),  // r2 = r10
        insn(0x07, 2, 0, 0, -8),  // r2 += -8
        insn(0xb7, 3, 0, 0, 8),   // r3 = 8
        insn(0x85, 0, 0, 0, 36),  // call bpf_probe_write_user
        insn(0xb7, 0, 0, 0, 0),   // r0 = 0
        insn(0x95, 0, 0, 0, 0),   // exit
    ];
    let license = c"GPL";
    let name = c"pg_write_probe";
    // SAFETY: the instructions are 8 readable, 8-aligned u64s laid out as struct bpf_insn (repr C, 8
    // bytes); the strings are NUL-terminated; opts may be NULL. The returned descriptor is ours and is
    // closed right away by OwnedFd.
    let fd = unsafe {
        libbpf_rs::libbpf_sys::bpf_prog_load(
            libbpf_rs::libbpf_sys::BPF_PROG_TYPE_KPROBE,
            name.as_ptr(),
            license.as_ptr(),
            program.as_ptr().cast(),
            program.len() as _,
            std::ptr::null_mut(),
        )
    };
    if fd < 0 {
        return false;
    }
    // SAFETY: fd is a fresh descriptor returned by the kernel, owned by nobody else.
    drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    true
}

/// One store the program queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedStore {
    /// The thread whose stack it is.
    pub tid: u32,
    /// Address of the return-address slot.
    pub slot: u64,
    /// The 8 bytes to store there.
    pub value: u64,
    /// When it was queued, kernel monotonic time (`CLOCK_MONOTONIC`), ns.
    pub queued_ns: u64,
}

/// The queue of stores the stop writer applies; owns its own descriptor of the map, so it can be moved
/// to the thread that waits for the benchmark's stops.
#[derive(Debug)]
pub struct SlotQueue {
    map: MapHandle,
}

impl SlotQueue {
    pub(super) fn new(map: MapHandle) -> SlotQueue {
        SlotQueue { map }
    }

    /// Takes every queued store out of the queue (at most the map's 1024 entries).
    pub fn take(&self) -> Result<Vec<QueuedStore>> {
        let keys: Vec<Vec<u8>> = self.map.keys().collect();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(value) = self.map.lookup(&key, MapFlags::ANY)? {
                if let Some((tid, slot, value, queued_ns)) = kernel::decode_patch(&key, &value) {
                    out.push(QueuedStore {
                        tid,
                        slot,
                        value,
                        queued_ns,
                    });
                }
            }
            // Gone already is fine: nobody else deletes, but a failed delete must not loop forever.
            let _ = self.map.delete(&key);
        }
        Ok(out)
    }
}
