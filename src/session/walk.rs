//! The calls a thread is in when perfgate attaches to a running process: its stack, read once while the
//! tracer holds it, walked by frame pointers (and, below the innermost frame pointer, by a scan for
//! return addresses that follow a call instruction, for code built without them, as libc is).
//!
//! These calls began before their probes: their time is not measured, and a uprobe never reports their
//! return. They are counted here so that a profile of a live process says what it missed.
//!
//! Invariants: every read is bounded (64 frames, 64 KiB of scan) and of untrusted memory: an unreadable
//! or absurd stack gives fewer frames, never an error or a panic. A frame without a frame pointer below
//! another such frame is missed (the count is a lower bound, said so in the report).
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::sys::ptrace::StackRegisters;

/// Frames followed at most.
const MAX_FRAMES: usize = 64;
/// Bytes scanned above the stack pointer for the first return address.
const SCAN_BYTES: u64 = 64 << 10;

/// One mapping of a file, from `/proc/PID/maps`.
#[derive(Debug, Clone)]
pub(super) struct Mapping {
    start: u64,
    end: u64,
    offset: u64,
    /// The file.
    pub(super) path: PathBuf,
}

impl Mapping {
    /// The file offset of `addr` in this mapping.
    pub(super) fn file_offset(&self, addr: u64) -> u64 {
        addr - self.start + self.offset
    }
}

/// The executable file mappings of process `pid`.
pub(super) fn executable_mappings(pid: u32) -> Vec<Mapping> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    maps.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (range, perms, offset) = (f.next()?, f.next()?, f.next()?);
            let path = f.nth(2)?;
            if !perms.contains('x') || !path.starts_with('/') {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(a, 16).ok()?,
                end: u64::from_str_radix(b, 16).ok()?,
                offset: u64::from_str_radix(offset, 16).ok()?,
                path: PathBuf::from(path),
            })
        })
        .collect()
}

/// The mapping holding `addr`.
pub(super) fn mapping_of(maps: &[Mapping], addr: u64) -> Option<&Mapping> {
    maps.iter().find(|m| m.start <= addr && addr < m.end)
}

fn read_u64(mem: &std::fs::File, addr: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    mem.read_exact_at(&mut b, addr).ok()?;
    Some(u64::from_le_bytes(b))
}

/// Whether the bytes before `ret` end with a call instruction (`call rel32`, `call *%reg`,
/// `call *disp8(%reg)`, `call *rel32(%rip)`), so that `ret` can be a return address.
fn after_call(mem: &std::fs::File, ret: u64) -> bool {
    let mut b = [0u8; 7];
    if ret < 7 || mem.read_exact_at(&mut b, ret - 7).is_err() {
        return false;
    }
    // b[6] is the last byte before `ret`.
    b[2] == 0xe8
        || (b[5] == 0xff && b[6] & 0xf8 == 0xd0)
        || (b[4] == 0xff && b[5] & 0xf8 == 0x50)
        || (b[1] == 0xff && b[2] == 0x15)
}

/// The code addresses of the calls thread `tid` of `pid` is in, innermost first: its instruction pointer,
/// then the return addresses on its stack. `traced(addr)` says whether an address is in a traced
/// function (the scan below the innermost frame pointer only accepts those).
pub(super) fn call_chain(pid: u32, regs: StackRegisters, traced: &dyn Fn(u64) -> bool) -> Vec<u64> {
    let Ok(mem) = std::fs::File::open(format!("/proc/{pid}/mem")) else {
        return vec![regs.rip];
    };
    let mut out = vec![regs.rip];
    let frame_ok = |fp: u64, above: u64| fp > above && fp - above < (8 << 20) && fp % 8 == 0;
    if !traced(regs.rip) {
        // Stopped in code without probes (a system call in libc): the return address into the
        // innermost traced caller is somewhere between the stack pointer and the frame pointer.
        let limit = if frame_ok(regs.rbp, regs.rsp) {
            regs.rbp.min(regs.rsp + SCAN_BYTES)
        } else {
            regs.rsp + SCAN_BYTES
        };
        let mut at = regs.rsp;
        while at < limit {
            match read_u64(&mem, at) {
                Some(w) if traced(w) && after_call(&mem, w) => {
                    out.push(w);
                    break;
                }
                Some(_) => at += 8,
                None => break,
            }
        }
    }
    let mut fp = regs.rbp;
    let mut below = regs.rsp;
    while out.len() < MAX_FRAMES && frame_ok(fp, below.saturating_sub(1)) {
        let (Some(next), Some(ret)) = (read_u64(&mem, fp), read_u64(&mem, fp + 8)) else {
            break;
        };
        if ret == 0 {
            break;
        }
        out.push(ret);
        below = fp;
        fp = next;
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_thread_has_a_call_chain_through_its_frames() {
        // The test's own stack: no registers of a stopped thread here, but the maps and the reader
        // must cope with garbage (an absurd frame pointer ends the walk at once).
        let pid = crate::sys::pid();
        let maps = executable_mappings(pid);
        assert!(!maps.is_empty());
        let chain = call_chain(
            pid,
            StackRegisters {
                rip: 1,
                rsp: 8,
                rbp: 3,
            },
            &|_| false,
        );
        assert_eq!(chain, vec![1]);
        assert!(mapping_of(&maps, 0).is_none());
    }
}
