//! perfgate: trace every function of a benchmark with eBPF uprobes, measure per-function latency,
//! and gate performance regressions against a committed baseline.
//!
//! The data flows one way: [`elf`] → [`plan`] → [`bpf`] → [`profile`] → gate → [`report`].
#![warn(missing_docs)]

pub mod app;
pub mod bench;
pub mod bpf;
pub mod calibrate;
pub mod cli;
pub mod elf;
pub mod gate;
pub mod plan;
pub mod profile;
pub mod record;
pub mod report;
pub mod run;
