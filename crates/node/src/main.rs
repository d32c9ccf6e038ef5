//! `ferroni <config.yml>`: the HA daemon. Validates the configuration before touching anything,
//! refuses to run as root, then runs the HA loop until SIGTERM or SIGINT.

mod callbacks;
mod control;
mod daemon;
mod execute;
mod fence;
mod fencing;
mod history;
mod logging;
mod long_action;
mod loop_timer;
mod member;
mod metrics;
mod peers;
mod progress;
mod reread;
mod rewind_marker;
mod serve;
mod snapshot;
mod watchdog;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ferroni",
    version,
    about = "PostgreSQL high availability, compatible with Patroni"
)]
struct Args {
    /// Only validate the configuration and exit (0 when valid).
    #[arg(long = "validate-config")]
    validate_config: bool,
    /// Patroni-style YAML configuration file (or directory of YAML files). Without it the whole
    /// configuration comes from PATRONI_CONFIGURATION.
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    // The fencing process is this binary in its own session; it must not parse a config or log.
    let mut argv = std::env::args_os().skip(1).peekable();
    if argv.peek().is_some_and(|a| a == fence::FENCE_FLAG) {
        argv.next();
        return fence::fence_main(argv);
    }
    let args = Args::parse();
    let env = ferroni_config::process_env();
    let loaded = match &args.config {
        Some(path) => ferroni_config::load_file_with_env(path, &env),
        None => ferroni_config::load_from_env(&env),
    };
    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ferroni: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    for w in &loaded.warnings {
        eprintln!("ferroni: warning: {w}");
    }
    if args.validate_config {
        println!("configuration is valid");
        return ExitCode::SUCCESS;
    }
    if nix::unistd::geteuid().is_root() {
        eprintln!(
            "ferroni: refusing to run as root: PostgreSQL will not run as root and its files must belong to \
             the postgres user. Run it as that user, e.g. `runuser -u postgres -- ferroni {}`",
            args.config
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        return ExitCode::from(1);
    }
    // SIGHUP re-reads the file with the variables the daemon started with.
    let source = reread::ConfigSource::new(args.config.clone(), env);
    // Secrets in PATRONI_* must not reach Postgres, scripts or callbacks; no thread runs yet.
    ferroni_config::scrub_process_env();
    logging::init(&loaded.config);
    // One thread runs the loop, the REST API and the DCS client: they wait on the same few sockets,
    // and a second worker only added cross-thread wake-ups (futex + eventfd per I/O event) to every
    // idle cycle. Blocking work still goes to tokio's blocking pool.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferroni: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // A spawned task, not the future block_on polls: waking that future goes through the
    // runtime's eventfd (a write and an extra epoll_wait), waking a task from its own thread does not.
    let result = runtime.block_on(async { tokio::spawn(serve::run(loaded.config, source)).await });
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
        Err(e) => {
            tracing::error!("the daemon task failed: {e}");
            ExitCode::from(1)
        }
    }
}
