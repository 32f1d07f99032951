//! `porta-gateway`: parse, set up logging, run; errors print their chain.

use clap::Parser;
use porta_gateway::options::{Cli, Command, MAN_EXTRAS};
use porta_gateway::remote::{self, GatewayRetired};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!(
                "porta-gateway: {}",
                porta_proto::describe_chain(error.chain())
            );
            exit_code(&error)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Some(Command::Docs(docs)) => {
            porta_proto::terminal::exit_quietly_on_closed_stdout();
            Ok(docs.run(<Cli as clap::CommandFactory>::command(), &MAN_EXTRAS)?)
        }
        None => {
            porta_proto::terminal::init_logging(
                &cli.log_level,
                cli.log_format.as_deref() == Some("json"),
            );
            porta_proto::limits::raise_open_files_limit();
            let stop = porta_proto::terminal::termination_signal()?;
            remote::run(cli.gateway.to_options(), stop).await
        }
    }
}

/// 4 when the controller removed this gateway (the unit does not restart
/// it), 1 for any other error.
fn exit_code(error: &anyhow::Error) -> ExitCode {
    if error.is::<GatewayRetired>() {
        ExitCode::from(4)
    } else {
        ExitCode::FAILURE
    }
}
