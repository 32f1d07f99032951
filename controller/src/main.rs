//! `porta-controller`: parse, set up logging, run; errors print their chain.

use anyhow::Result;
use clap::Parser;
use porta_controller::clock::now;
use porta_controller::init::{self, InitReport};
use porta_controller::options::{
    Cli, Command, FileConfig, LogFormat, ServeSettings, default_data_dir,
};
use porta_controller::server;
use porta_gateway::remote;
use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: under an enrollment burst glibc
/// gives each busy thread its own 64 MiB arena and keeps what is freed
/// there, so a controller with 163 MiB live held 330–375 MiB resident
/// (measured with 50,000 devices, docs/BENCHMARKS.md); mimalloc returns
/// freed pages to the system.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Command::Init(_) | Command::InviteAdmin(_) | Command::Docs(_)
    ) {
        // Commands that print and end; the services stay immune.
        porta_proto::terminal::exit_quietly_on_closed_stdout();
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!(
                "porta-controller: {}",
                porta_proto::describe_chain(error.chain())
            );
            if error.is::<remote::GatewayRetired>() {
                ExitCode::from(4)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Init(args) => {
            init_logging(
                cli.log_format.unwrap_or(LogFormat::Human),
                cli.log_level.as_deref().unwrap_or("warn"),
            );
            let report = init::init(args.to_options()?, now()).await?;
            print_init_report(&report, args.json)
        }
        Command::Serve(args) => {
            // Before the settings: the connection cap is sized from it.
            porta_proto::limits::raise_open_files_limit();
            let file = args
                .config
                .as_deref()
                .map(FileConfig::load)
                .transpose()?
                .unwrap_or_default();
            let settings = ServeSettings::resolve(&cli, args, file)?;
            init_logging(settings.log_format, &settings.log_level);
            let stop = server::termination_signal()?;
            if args.init && !init::is_initialised(&settings.data) {
                let report =
                    init::init(init::InitOptions::defaults(settings.data.clone()), now()).await?;
                print_init_report(&report, false)?;
            }
            server::serve(&settings, stop).await
        }
        Command::InviteAdmin(args) => {
            init_logging(
                cli.log_format.unwrap_or(LogFormat::Human),
                cli.log_level.as_deref().unwrap_or("warn"),
            );
            let data = args.data.clone().unwrap_or_else(default_data_dir);
            let response = porta_controller::operator::invite_admin_locally(
                &data,
                &args.name,
                args.expires.as_secs().max(1),
                now(),
            )
            .await?;
            let expires = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(response.expires_at),
            );
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "admin_invitation": response.invitation,
                        "expires": expires.to_string(),
                    })
                );
            } else {
                println!("New admin invitation (shown only now; valid until {expires}):");
                println!();
                println!("  {}", response.invitation);
                println!();
                println!("Log in with:  portactl login <invitation>");
            }
            Ok(())
        }
        Command::Docs(docs) => Ok(docs.run(
            <Cli as clap::CommandFactory>::command(),
            &porta_controller::options::MAN_EXTRAS,
        )?),
        Command::Gateway(args) => {
            init_logging(
                cli.log_format.unwrap_or(LogFormat::Human),
                cli.log_level.as_deref().unwrap_or("info"),
            );
            porta_proto::limits::raise_open_files_limit();
            let stop = server::termination_signal()?;
            remote::run(args.to_options(), stop).await
        }
    }
}

fn print_init_report(report: &InitReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    println!("Initialised Porta in {}", report.data.display());
    println!("  API endpoint:        {}", report.api_endpoint);
    println!("  WireGuard endpoint:  {}", report.wg_endpoint);
    println!("  VPN prefixes:        {}", report.vpn_prefixes.join(", "));
    println!("  Certificate SHA-256: {}", report.certificate_sha256);
    println!("  Gateway public key:  {}", report.gateway_public_key);
    if !report.routes.is_empty() {
        println!("  Town-wide routes:    {}", report.routes.join(", "));
    }
    for warning in &report.warnings {
        println!();
        println!("WARNING: {warning}");
    }
    println!();
    println!(
        "First admin invitation (shown only now; valid until {}):",
        report.admin_invitation_expires
    );
    println!();
    println!("  {}", report.admin_invitation);
    println!();
    println!("Log in with:  portactl login <invitation>");
    Ok(())
}

fn init_logging(format: LogFormat, filter: &str) {
    porta_proto::terminal::init_logging(filter, format == LogFormat::Json);
}
