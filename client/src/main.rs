//! `porta`: the staff client. Parse, run, print the error chain.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = porta_client::Cli::parse();
    if !matches!(
        cli.command,
        porta_client::Command::Up { foreground: true } | porta_client::Command::Daemon { .. }
    ) {
        // Commands that print and end; `up` is a service and stays immune.
        porta_proto::terminal::exit_quietly_on_closed_stdout();
    }
    porta_client::init_logging(cli.verbose);
    match porta_client::run_to_end(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<porta_client::tunnel::NotConnected>() => {
            if error
                .downcast_ref::<porta_client::tunnel::NotConnected>()
                .is_some_and(|e| !e.answered)
            {
                println!("not connected");
            }
            ExitCode::from(3)
        }
        Err(error) => {
            eprintln!("porta: {}", porta_proto::describe_chain(error.chain()));
            ExitCode::FAILURE
        }
    }
}
