//! The perfgate binary: dispatch the hidden child modes, parse arguments, run, map the error to one line
//! and an exit code.
use std::process::ExitCode;

use clap::Parser;
use perfgate::cmd::{self, Exit};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // perfgate re-executes itself as the held benchmark, its watcher, its tracer and the calibration child.
    match args.get(1).and_then(|a| a.to_str()) {
        Some(perfgate::run::HELD_EXEC_ARG) => {
            return ExitCode::from(perfgate::run::held_exec_main(&args[2..]) as u8)
        }
        Some(perfgate::run::watch::WATCH_ARG) => {
            return ExitCode::from(perfgate::run::watch::watch_main(&args[2..]) as u8)
        }
        Some(perfgate::run::follow::FOLLOW_ARG) => {
            return ExitCode::from(perfgate::run::follow::follow_main() as u8)
        }
        Some(perfgate::session::calibrate::CALIBRATE_ARG) => {
            return ExitCode::from(perfgate::session::calibrate::calibrate_main() as u8)
        }
        _ => {}
    }
    let cli = perfgate::cli::Cli::parse();
    let code = run(cli);
    perfgate::bpf::finish_closing();
    // `perfgate bench memory` measures perfgate's own peak this way: a child's ru_maxrss would include
    // the memory of the process that spawned it (the kernel counts the old image's peak at exec).
    if let Some(path) = std::env::var_os(cmd::PEAK_RSS_FILE_ENV) {
        if let Some(bytes) = perfgate::sys::peak_rss() {
            let _ = std::fs::write(path, bytes.to_string());
        }
    }
    code
}

fn run(cli: perfgate::cli::Cli) -> ExitCode {
    match cmd::run(cli) {
        Ok(code) => code.into(),
        // A reader that went away (`| head`) is not an error.
        Err(e) if cmd::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("perfgate: error: {}", cmd::one_line(&e));
            Exit::Error.into()
        }
    }
}
