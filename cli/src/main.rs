//! `portactl`: parse, run, map errors to exit codes.

use clap::Parser;
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    porta_proto::terminal::exit_quietly_on_closed_stdout();
    let cli = portactl::args::Cli::parse();
    match portactl::commands::run(cli).await {
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
