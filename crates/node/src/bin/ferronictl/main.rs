//! `ferronictl`: the command-line tool for ferroni clusters, a drop-in for `patronictl`. Same
//! commands, flags, environment variables (`PATRONICTL_CONFIG_FILE`, `DCS_URL`) and output formats;
//! it reads the cluster from the DCS and writes the dynamic configuration with compare-and-swap.
//! Actions (switchover, restart, pause, ...) go through the members' REST APIs like patronictl's,
//! with the Basic-auth credentials of the configuration file.
//!
//! Exit codes: 0 success, 1 the operation failed (DCS unreachable, concurrent change, refused
//! confirmation, an action that failed on any member), 2 usage errors (arguments, configuration
//! file, invalid new configuration). Errors are one line on stderr; stdout carries only the
//! requested output, so it can be piped.

mod args;
mod cluster_role;
mod config_cmds;
mod context;
mod dcs_url;
mod diff;
mod dsn;
mod editor;
mod error;
mod history;
mod list;
mod member_cmds;
mod members;
mod output;
mod pause;
mod prompt;
mod remove;
mod rest;
mod settings;
mod switchover;
mod timestamp;
mod version;
mod yaml_in;
mod yaml_out;

use args::{Cli, Command};
use clap::Parser;
use context::Ctl;
use error::CtlResult;
use list::ListOptions;
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, so scripts can log it; library messages sometimes span several.
            let text = e.to_string();
            let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            eprintln!("Error: {}", lines.join(" "));
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: Cli) -> CtlResult<()> {
    if let Command::Version(args) = &cli.command
        && args.cluster_name.is_none()
    {
        // Needs no configuration, so it works even when the configuration file is broken.
        output::print(&version::own());
        return Ok(());
    }
    // reqwest is built without a default crypto provider; any client built without our TLS
    // configuration would panic without this.
    ferroni_api::tls::install_crypto_provider();
    let mut settings = settings::resolve(cli.config_file.as_deref(), cli.dcs_url.as_deref())?;
    settings.tls.insecure |= cli.insecure;
    tracing::debug!(?settings.endpoints, namespace = %settings.namespace, "DCS");
    let ctl = Ctl { settings };
    match &cli.command {
        Command::List(a) => {
            let opts = ListOptions {
                extended: a.extended,
                timestamp: a.timestamp,
                format: a.format,
                interval: a.watch.interval(),
                topology: false,
            };
            list::run(&ctl, &a.cluster_names, &opts).await
        }
        Command::Topology(a) => {
            let opts = ListOptions {
                extended: false,
                timestamp: false,
                format: args::Format::Pretty,
                interval: a.watch.interval(),
                topology: true,
            };
            list::run(&ctl, &a.cluster_names, &opts).await
        }
        Command::ShowConfig(a) => config_cmds::show(&ctl, a.cluster_name.as_deref()).await,
        Command::EditConfig(a) => config_cmds::edit(&ctl, a).await,
        Command::History(a) => history::run(&ctl, a.cluster_name.as_deref(), a.format).await,
        Command::Dsn(a) => dsn::run(&ctl, a).await,
        Command::Remove(a) => remove::run(&ctl, a).await,
        Command::Version(a) => version::run(&ctl, a).await,
        Command::Switchover(a) => {
            let req = switchover::Request {
                action: switchover::Action::Switchover,
                cluster: a.cluster_name.as_deref(),
                leader: a.leader.as_deref(),
                candidate: a.candidate.as_deref(),
                scheduled: a.scheduled.as_deref(),
                force: a.force,
            };
            switchover::run(&ctl, req).await
        }
        Command::Failover(a) => {
            let req = switchover::Request {
                action: switchover::Action::Failover,
                cluster: a.cluster_name.as_deref(),
                leader: None,
                candidate: a.candidate.as_deref(),
                scheduled: None,
                force: a.force,
            };
            switchover::run(&ctl, req).await
        }
        Command::Restart(a) => member_cmds::restart(&ctl, a).await,
        Command::Reinit(a) => member_cmds::reinit(&ctl, a).await,
        Command::Reload(a) => member_cmds::reload(&ctl, a).await,
        Command::Flush(a) => member_cmds::flush(&ctl, a).await,
        Command::Pause(a) => pause::run(&ctl, a.cluster_name.as_deref(), true, a.wait).await,
        Command::Resume(a) => pause::run(&ctl, a.cluster_name.as_deref(), false, a.wait).await,
        Command::DemoteCluster(a) => cluster_role::demote(&ctl, a).await,
        Command::PromoteCluster(a) => cluster_role::promote(&ctl, a.cluster_name.as_deref(), a.force).await,
    }
}

/// patronictl's log level variables (default WARNING), to stderr, colours only on a terminal.
/// `RUST_LOG` takes over when set.
fn init_logging() {
    let level = ["LOGLEVEL", "PATRONI_LOGLEVEL", "PATRONI_LOG_LEVEL"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .next_back()
        .unwrap_or_default();
    let level = match level.to_ascii_lowercase().as_str() {
        "debug" => "debug",
        "info" => "info",
        "error" | "critical" => "error",
        _ => "warn",
    };
    // Library chatter (h2, tonic) stays at warn even when our own level is lower.
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "warn,ferronictl={level},ferroni_dcs={level},ferroni_config={level}"
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
