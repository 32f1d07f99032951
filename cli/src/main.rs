//! `portactl`: parse, run, map errors to exit codes.

use clap::Parser;
use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: an export or a verification
/// allocates and frees every cell of millions of records, and mimalloc
/// does that at a fraction of the cost (docs/BENCHMARKS.md, logs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // A shell asking for completions is answered before anything else (and
    // before the runtime: completing names starts one of its own).
    portactl::complete::answer_if_asked(<portactl::args::Cli as clap::CommandFactory>::command);
    porta_proto::terminal::exit_quietly_on_closed_stdout();
    let cli = portactl::args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("portactl: could not start: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(portactl::commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("portactl: {}", porta_proto::describe_chain(error.chain()));
            if let Some(hint) = portactl::error::hint(&error) {
                eprintln!("hint: {hint}");
            }
            portactl::error::exit_code(&error)
        }
    }
}
