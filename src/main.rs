//! The perfgate binary: parse arguments, run, map the error to a message and an exit code.
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == perfgate::run::HELD_EXEC_ARG)
    {
        return ExitCode::from(perfgate::run::held_exec_main(&args[2..]) as u8);
    }
    if args
        .get(1)
        .is_some_and(|a| a == perfgate::calibrate::CALIBRATE_ARG)
    {
        return ExitCode::from(perfgate::calibrate::calibrate_main() as u8);
    }
    let cli = perfgate::cli::Cli::parse();
    match perfgate::app::run(cli) {
        Ok(code) => ExitCode::from(code),
        // A reader that went away (`| head`) is not an error.
        Err(e) if perfgate::app::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("perfgate: error: {}", perfgate::app::one_line(&e));
            ExitCode::from(2)
        }
    }
}
