//! The processes below a process, read from `/proc`: what perfgate ends when a run is over, times out,
//! is interrupted, or when perfgate itself dies.
//!
//! Invariant: perfgate is its descendants' subreaper (`sys::become_subreaper`), so an orphan the
//! benchmark leaves (a daemon) is re-parented to perfgate and still found here.
use std::collections::BTreeMap;

/// One process as `/proc/PID/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Parent process id.
    pub ppid: u32,
    /// Kernel state letter (`R`, `S`, `D`, `Z`…).
    pub state: char,
    /// The task's `PF_*` flags.
    pub flags: u64,
}

/// The kernel's `PF_EXITING`: set at the start of `do_exit`, before the process's files are closed.
pub const PF_EXITING: u64 = 0x4;

/// Parses the text of `/proc/PID/stat`. The command name (in parentheses) may hold any byte, so the
/// fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    // pgrp, session, tty_nr, tpgid, then flags.
    let flags = f.nth(4)?.parse().ok()?;
    Some(ProcStat { ppid, state, flags })
}

/// `/proc/PID/stat` of one process, if it exists.
pub fn stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Whether `pid` is gone, a zombie, or already in `do_exit` (its files about to be closed).
pub fn exiting(pid: u32) -> bool {
    stat(pid).is_none_or(|s| s.flags & PF_EXITING != 0 || matches!(s.state, 'Z' | 'X'))
}

/// The live children of `pid` (from `/proc/PID/task/*/children`).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(
            list.split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The threads of process `pid` (from `/proc/PID/task`).
pub fn threads(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// The process (thread group) of thread `tid`, from `/proc/TID/status`.
pub fn tgid(tid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()
}

/// Every live process below `root` (children, their children…), nearest first; `root` itself is not
/// included.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut children: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(s) = stat(pid) {
            if !matches!(s.state, 'Z' | 'X') {
                children.entry(s.ppid).or_default().push(pid);
            }
        }
    }
    let mut out = Vec::new();
    let mut next = vec![root];
    while let Some(p) = next.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            if !out.contains(&c) {
                out.push(c);
                next.push(c);
            }
        }
    }
    out
}

/// Sends SIGKILL to every descendant of `root` but `spare`, again until none is left or `rounds` scans
/// found nothing new to kill (a process may fork while it is being killed). Returns how many were
/// signalled.
pub fn kill_descendants(root: u32, spare: &[u32], rounds: usize) -> usize {
    let mut killed = 0;
    for _ in 0..rounds {
        let targets: Vec<u32> = descendants(root)
            .into_iter()
            .filter(|p| !spare.contains(p))
            .collect();
        if targets.is_empty() {
            break;
        }
        for p in targets {
            killed += usize::from(crate::sys::kill(p, libc::SIGKILL));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let text = "4242 (a (b) c) S 17 4242 4242 0 -1 4194564 120 0 0 0 5 1 0 0 20 0 1 0";
        let s = parse_stat(text).unwrap();
        assert_eq!(s.ppid, 17);
        assert_eq!(s.state, 'S');
        assert_eq!(s.flags, 4194564);
        assert_eq!(s.flags & PF_EXITING, 4);
        assert!(parse_stat("garbage").is_none());
        assert!(parse_stat("1 (x) S").is_none());
    }

    #[test]
    fn a_child_and_its_child_are_descendants_and_are_killed() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30; wait"])
            .spawn()
            .unwrap();
        let me = crate::sys::pid();
        let pid = child.id();
        let mut found = Vec::new();
        for _ in 0..200 {
            found = descendants(pid);
            if found.len() >= 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(descendants(me).contains(&pid));
        assert!(kill_descendants(pid, &[], 10) >= 2);
        assert!(crate::sys::kill(pid, libc::SIGKILL));
        child.wait().unwrap();
        assert!(stat(pid).is_none() || exiting(pid));
    }
}
