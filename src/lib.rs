//! perfgate: trace every function of a benchmark with eBPF uprobes, measure per-function latency,
//! and gate performance regressions against a committed baseline.
//!
//! The data flows one way (docs/ARCHITECTURE.md): [`cli`] → [`cmd`] → [`session`] →
//! {[`bpf`], [`run`], [`plan`]} → {[`elf`], [`profile`]}; [`gate`] and [`report`] read profiles and
//! comparisons; [`config`] reads `perfgate.toml` for the command layer; [`files`] and [`sys`] serve every
//! layer.
#![warn(missing_docs)]

pub mod bpf;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod elf;
pub mod files;
pub mod gate;
pub mod plan;
pub mod profile;
pub mod report;
pub mod run;
pub mod session;
pub mod sys;
