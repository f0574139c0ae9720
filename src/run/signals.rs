//! SIGINT, SIGTERM and SIGHUP while perfgate runs a benchmark: noted, never fatal at once, so perfgate
//! can end the benchmark, close its probes in order, keep what was measured and say so.
//!
//! A signal the kernel sent (Ctrl-C at the terminal reaches the whole foreground group, the benchmark
//! included) is not forwarded; one sent with `kill` to perfgate alone is forwarded to the benchmark.
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);
static FROM_KERNEL: AtomicBool = AtomicBool::new(false);
static INSTALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(signal: libc::c_int, from_kernel: bool) {
    // Only atomics: async-signal-safe. The first signal decides; later ones change nothing.
    if SIGNAL
        .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
    {
        FROM_KERNEL.store(from_kernel, Ordering::SeqCst);
    }
}

/// Installs the handlers (once per process).
pub fn install() {
    if !INSTALLED.swap(true, Ordering::SeqCst) {
        crate::sys::set_signal_handlers(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP], on_signal);
    }
}

/// A signal that asked perfgate to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    /// The signal number.
    pub signal: i32,
    /// Sent by the kernel (the terminal), so the benchmark got it too.
    pub from_kernel: bool,
}

impl Stop {
    /// `SIGINT (Ctrl-C)`, `SIGTERM`, `SIGHUP`.
    pub fn name(&self) -> &'static str {
        match self.signal {
            libc::SIGINT => "SIGINT (Ctrl-C)",
            libc::SIGTERM => "SIGTERM",
            libc::SIGHUP => "SIGHUP",
            _ => "a signal",
        }
    }
}

/// The stop request received so far, if any.
pub fn stop_requested() -> Option<Stop> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(Stop {
            signal,
            from_kernel: FROM_KERNEL.load(Ordering::SeqCst),
        }),
    }
}
