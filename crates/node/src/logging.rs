//! Log setup: `log.level`, and `log.format: json` for JSON lines. Every line carries the member name
//! so the logs of several nodes can be read together. Colours only on a terminal.

use ferroni_model::Config;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init(cfg: &Config) {
    let level = match cfg.log.level.to_ascii_lowercase().as_str() {
        "debug" => "debug",
        "warning" | "warn" => "warn",
        "error" | "critical" => "error",
        _ => "info",
    };
    // Library chatter (h2, tonic, hyper) stays at warn unless RUST_LOG asks for more.
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "warn,ferroni={level},ferroni_postgres={level},ferroni_dcs={level},ferroni_api={level}"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cfg.log.json {
        builder.json().init();
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .init();
    }
}
