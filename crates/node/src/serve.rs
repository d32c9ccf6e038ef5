//! Wires the daemon together: DCS client, Postgres control, REST API listener, signals, and the HA
//! loop. Fails early (before touching the data directory) when the REST port cannot be bound.

use crate::control::Control;
use crate::daemon::{Daemon, Links};
use crate::long_action::LongActions;
use crate::reread::ConfigSource;
use crate::snapshot::Publisher;
use anyhow::{Context, Result};
use ferroni_api::{ApiState, NodeSnapshot, TlsSettings};
use ferroni_dcs::{Dcs, EtcdDcs, NodeIdentity};
use ferroni_model::{Config, DynamicConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tracing::{Instrument, info, info_span};

pub async fn run(cfg: Config, source: ConfigSource) -> Result<()> {
    let span = info_span!("node", member = %cfg.name);
    run_node(cfg, source).instrument(span).await
}

async fn run_node(mut cfg: Config, source: ConfigSource) -> Result<()> {
    if !crate::fencing::Fencing::may_lead(&cfg) {
        tracing::error!(
            "watchdog.mode is required but the watchdog device cannot be used: this member will never \
             become the leader (it runs as if tagged nofailover)"
        );
        cfg.tags.nofailover = true;
    }
    let dynamic =
        ferroni_config::parse_dynamic(&cfg.bootstrap.dcs, "bootstrap.dcs").context("validate bootstrap.dcs")?;
    // Certificates are read now, so a bad file stops the daemon before it touches anything.
    ferroni_api::tls::install_crypto_provider();
    let tls = TlsSettings::from_config(&cfg.restapi).context("set up HTTPS for the REST API")?;
    let peer_client = crate::peers::client(&cfg).context("set up the client for the other members' REST APIs")?;
    let dcs = connect_dcs(&cfg, &dynamic)?;
    let listener = tokio::net::TcpListener::bind(&cfg.restapi.listen)
        .await
        .with_context(|| format!("bind the REST API to restapi.listen ({})", cfg.restapi.listen))?;
    info!(
        "ferroni {} starting: scope {}, REST API on {} ({})",
        ferroni_model::VERSION,
        cfg.scope,
        cfg.restapi.listen,
        cfg.restapi.scheme()
    );

    let wake = Arc::new(Notify::new());
    let publisher = Publisher::new(NodeSnapshot {
        name: cfg.name.clone(),
        scope: cfg.scope.clone(),
        version: ferroni_model::VERSION.to_string(),
        ..NodeSnapshot::default()
    });
    let restart_timeout = Duration::from_secs(u64::from(cfg.postgresql.pg_ctl_timeout) * 2 + 10);
    let (control, requests) = Control::new(wake.clone(), restart_timeout);
    let api = ApiState::new(publisher.clone(), dcs.clone())
        .with_control(Arc::new(control))
        .with_validator(Arc::new(|v| {
            ferroni_config::validate_dynamic(v)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }))
        .with_wake(wake.clone())
        .with_credentials(cfg.restapi.authentication.as_ref());
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api_stopped = async {
        let _ = api_stopped.await;
    };
    let api_task = match tls {
        Some(tls) => tokio::spawn(ferroni_api::serve_tls(listener, api, api_stopped, tls)),
        None => tokio::spawn(ferroni_api::serve(listener, api, api_stopped)),
    };

    let long = LongActions::new(&cfg, dynamic.clone(), wake.clone());
    let reread = Arc::new(AtomicBool::new(false));
    let hangups = tokio::spawn(on_hangup(reread.clone(), wake.clone()).in_current_span());
    let links = Links {
        wake,
        publisher,
        requests,
        http: peer_client,
        reread,
    };
    let daemon = Daemon::new(cfg, source, dynamic, dcs, long, links);
    let result = daemon.run(shutdown_signal()).await;
    hangups.abort();
    let _ = stop_api.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), api_task).await;
    result
}

fn connect_dcs(cfg: &Config, dynamic: &DynamicConfig) -> Result<Arc<dyn Dcs>> {
    let identity = NodeIdentity {
        name: cfg.name.clone(),
        scope: cfg.scope.clone(),
        namespace: cfg.namespace.clone(),
        ttl: dynamic.ttl,
        retry_timeout: Duration::from_secs(u64::from(dynamic.retry_timeout)),
    };
    let user = match (&cfg.etcd3.username, &cfg.etcd3.password) {
        (Some(u), Some(p)) => Some((u.clone(), p.clone())),
        _ => None,
    };
    let dcs = EtcdDcs::connect(cfg.etcd3.endpoints(), user, identity)
        .context("configure the etcd3 client")?
        .with_watched_copy();
    Ok(Arc::new(dcs))
}

/// SIGHUP asks the loop to re-read the configuration, as it does Patroni (and systemd's reload).
/// Without a handler the signal would end the daemon.
async fn on_hangup(reread: Arc<AtomicBool>, wake: Arc<Notify>) {
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot handle SIGHUP: {e}");
            return;
        }
    };
    while hangup.recv().await.is_some() {
        info!("SIGHUP: re-reading the configuration");
        reread.store(true, Ordering::SeqCst);
        wake.notify_one();
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => info!("received SIGTERM"),
        _ = int.recv() => info!("received SIGINT"),
    }
}
