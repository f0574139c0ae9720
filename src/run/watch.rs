//! The watcher: a small process that outlives perfgate by a moment and ends everything perfgate started.
//!
//! Why a process: when perfgate is killed (SIGKILL, the OOM killer, a cancelled CI job), the kernel closes
//! its files in `do_exit` *before* it notifies anyone of the death, and closing a `uprobe_multi` link waits
//! for the benchmark's pending return probes (DESIGN.md): perfgate would hang in the kernel while the
//! benchmark runs on. No signal, pidfd or wait reaches another process in time, and the order in which
//! the dying process's files are released is not perfgate's to choose. What is visible at once is the
//! `PF_EXITING` flag in `/proc/PID/stat`, set at the very start of `do_exit`. The watcher polls it (and
//! the end of a pipe only perfgate holds) and kills perfgate's descendants; the benchmark's pending
//! return probes die with it, and perfgate's exit completes.
//!
//! The watcher ignores SIGINT, SIGTERM and SIGHUP (Ctrl-C reaches the whole foreground group: perfgate
//! handles those itself); a SIGKILL of the whole process group ends it together with the benchmark.
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result};

use super::tree;

/// The hidden first argument of the watcher mode.
pub const WATCH_ARG: &str = "__watch";
/// How often the watcher looks at perfgate.
const POLL: Duration = Duration::from_millis(20);
/// Descriptor of the watcher's end of the pipe.
const WATCH_FD: i32 = 3;

/// perfgate's end of the pipe, held for the whole process; its closing is one of the signs of death.
static WATCHER: OnceLock<(OwnedFd, u32)> = OnceLock::new();

/// Starts the watcher once per perfgate process (later calls return the same one). Also makes perfgate
/// the subreaper of its descendants, so orphans stay findable.
pub fn ensure(holder: &std::path::Path) -> Result<u32> {
    if let Some((_, pid)) = WATCHER.get() {
        return Ok(*pid);
    }
    crate::sys::become_subreaper()
        .context("becoming the subreaper of the benchmark's processes")?;
    let (rd, wr) = crate::sys::pipe_cloexec().context("creating the watcher's pipe")?;
    let mut cmd = Command::new(holder);
    {
        use std::os::unix::process::CommandExt;
        cmd.arg0("perfgate-watch");
    }
    cmd.arg(WATCH_ARG)
        .arg(crate::sys::pid().to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    crate::sys::inherit_fd_as(&mut cmd, rd.as_raw_fd(), WATCH_FD);
    let child = cmd.spawn().context("starting perfgate's watcher")?;
    drop(rd);
    let pid = child.id();
    // The watcher is never waited for: it ends after perfgate (its zombie goes to init then).
    std::mem::forget(child);
    let _ = WATCHER.set((wr, pid));
    Ok(WATCHER.get().map_or(pid, |(_, p)| *p))
}

/// The watcher's pid, if started.
pub fn watcher_pid() -> Option<u32> {
    WATCHER.get().map(|(_, p)| *p)
}

/// The watcher mode: `perfgate __watch PERFGATE_PID`. Returns the exit code.
pub fn watch_main(args: &[std::ffi::OsString]) -> i32 {
    let Some(perfgate) = args
        .first()
        .and_then(|a| a.to_str())
        .and_then(|a| a.parse::<u32>().ok())
    else {
        return 2;
    };
    for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        crate::sys::ignore_signal(s);
    }
    let Some(pipe) = crate::sys::take_inherited_fd(WATCH_FD) else {
        return 2;
    };
    loop {
        let closed = crate::sys::wait_readable(pipe.as_fd(), POLL);
        if closed || crate::sys::parent_pid() != perfgate || tree::exiting(perfgate) {
            break;
        }
    }
    let me = crate::sys::pid();
    tree::kill_descendants(perfgate, &[me], 200);
    0
}
