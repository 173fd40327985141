//! The `zapini-id` binary: command line, configuration, and the wiring of the
//! protocol, login and store crates into one HTTP server.

mod bench;
mod cli;
mod config;
mod metrics;
mod proxies;
mod reload;
mod secret;
mod server;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "zapini-id",
    version,
    about = "Zapini ID, an OpenID Connect identity provider"
)]
struct Args {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        env = "ZAPINI_ID_CONFIG",
        default_value = "config/zapini-id.toml"
    )]
    config: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    Users(cli::UsersCommand),
    /// Inspect clients and make client secrets.
    #[command(subcommand)]
    Clients(cli::ClientsCommand),
    /// The security log.
    #[command(subcommand)]
    Audit(cli::AuditCommand),
    /// Rotate and list the signing keys.
    #[command(subcommand)]
    Keys(cli::KeysCommand),
    /// Check the settings file and every client file.
    #[command(subcommand)]
    Config(cli::ConfigCommand),
    /// Helpers for the benchmark in tests/bench.
    #[command(subcommand, hide = true)]
    Bench(bench::BenchCommand),
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let explicit = std::env::args_os()
        .any(|a| a == "--config" || a.to_string_lossy().starts_with("--config="))
        || std::env::var_os("ZAPINI_ID_CONFIG").is_some();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match args.command {
            Command::Serve => server::serve(&args.config, explicit).await,
            Command::Migrate => cli::migrate(&args.config, explicit).await,
            Command::Users(cmd) => cli::users(&args.config, explicit, cmd).await,
            Command::Clients(cmd) => cli::clients(&args.config, explicit, cmd),
            Command::Audit(cmd) => cli::audit(&args.config, explicit, cmd).await,
            Command::Keys(cmd) => cli::keys(&args.config, explicit, cmd).await,
            Command::Config(cli::ConfigCommand::Check) => cli::config_check(&args.config, explicit),
            Command::Bench(cmd) => bench::run(&args.config, explicit, cmd).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
