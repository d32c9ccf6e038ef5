//! The HTTP layer: [`ApiState`], the axum [`router`], [`serve`], and the dispatch table.
//!
//! Routing copies Patroni's `parse_request`: method plus the *first path segment* picks a dedicated
//! handler (`GET /patroni/anything` is `/patroni`); every other GET, and every HEAD and OPTIONS on
//! any path, falls into the generic health check. That is why one fallback handler does the
//! routing instead of axum's path router: `OPTIONS /primary` (HAProxy), `HEAD /replica?lag=1MB` and
//! `GET /whatever` (503 + status JSON) all behave like Patroni.
//!
//! Unsafe methods (PATCH, PUT, POST, DELETE) are authenticated before routing when credentials are
//! configured (and, over HTTPS with `verify_client`, need a client certificate), so an
//! unauthenticated client cannot even learn which of them exist.
//!
//! Failure story: [`serve`] fails only if accepting connections fails fatally; handlers never panic
//! on input, and every error becomes an HTTP status (see the handler modules).

use crate::auth::{BasicAuth, WWW_AUTHENTICATE};
use crate::control::NodeControl;
use crate::handlers::switchover::Action;
use crate::handlers::{self, text};
use crate::snapshot::SnapshotHandle;
use crate::tls::TlsPeer;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, header};
use axum::response::Response;
use axum::serve::ListenerExt;
use ferroni_dcs::Dcs;
use ferroni_model::Credentials;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Validates a dynamic configuration before it is written to the DCS; `Err` carries the message
/// returned to the client with 400.
pub type ConfigValidator = Arc<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

/// What the handlers share. Build it with [`ApiState::new`] and the `with_*` methods.
#[derive(Clone)]
pub struct ApiState {
    pub(crate) snapshots: SnapshotHandle,
    pub(crate) dcs: Arc<dyn Dcs>,
    pub(crate) validator: ConfigValidator,
    pub(crate) wake: Arc<Notify>,
    pub(crate) auth: Option<BasicAuth>,
    /// The daemon's side of `/restart`, `/reload`, `/reinitialize`; `None` answers 503.
    pub(crate) control: Option<Arc<dyn NodeControl>>,
    /// How often a switchover/failover request re-reads the DCS while waiting for the new leader.
    pub(crate) poll_interval: Duration,
    /// How long it waits; `None` is Patroni's `2 * max(10, loop_wait)` seconds.
    pub(crate) poll_timeout: Option<Duration>,
    /// HTTPS with `verify_client: optional|required`: the unsafe methods need a client
    /// certificate (403 otherwise), as in Patroni. Set by [`crate::tls::serve_tls`].
    pub(crate) client_cert_for_unsafe: bool,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("auth", &self.auth)
            .field("control", &self.control.is_some())
            .field("poll_interval", &self.poll_interval)
            .field("poll_timeout", &self.poll_timeout)
            .field("client_cert_for_unsafe", &self.client_cert_for_unsafe)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// Accepts any configuration, wakes nobody and requires no credentials until told otherwise.
    pub fn new(snapshots: SnapshotHandle, dcs: Arc<dyn Dcs>) -> ApiState {
        // Any reqwest client built later in this process (tests included) needs a rustls provider.
        crate::tls::install_crypto_provider();
        ApiState {
            snapshots,
            dcs,
            validator: Arc::new(|_| Ok(())),
            wake: Arc::new(Notify::new()),
            auth: None,
            control: None,
            poll_interval: Duration::from_millis(250),
            poll_timeout: None,
            client_cert_for_unsafe: false,
        }
    }

    /// The daemon's implementation of the node actions (`POST /restart`, `/reload`,
    /// `/reinitialize`). Without it those endpoints answer 503 `not available`.
    pub fn with_control(mut self, control: Arc<dyn NodeControl>) -> ApiState {
        self.control = Some(control);
        self
    }

    /// How a switchover or failover request waits for the leader to change: the DCS is re-read
    /// every `interval` (default 250 ms) for up to `timeout` (default `None`: Patroni's
    /// `2 * max(10, loop_wait)` seconds, `loop_wait` from the DCS config or the snapshot).
    pub fn with_failover_poll(mut self, interval: Duration, timeout: Option<Duration>) -> ApiState {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self.poll_timeout = timeout;
        self
    }

    pub fn with_validator(mut self, validator: ConfigValidator) -> ApiState {
        self.validator = validator;
        self
    }

    /// The `Notify` the HA loop sleeps on; it is notified after every successful config change.
    pub fn with_wake(mut self, wake: Arc<Notify>) -> ApiState {
        self.wake = wake;
        self
    }

    pub fn with_basic_auth(mut self, username: &str, password: &str) -> ApiState {
        self.auth = Some(BasicAuth::new(username, password));
        self
    }

    /// `restapi.authentication` as configured; `None` leaves the API open.
    pub fn with_credentials(mut self, credentials: Option<&Credentials>) -> ApiState {
        self.auth = credentials.map(|c| BasicAuth::new(&c.username, c.password.as_deref().unwrap_or("")));
        self
    }

    pub fn snapshots(&self) -> &SnapshotHandle {
        &self.snapshots
    }

    pub fn wake(&self) -> &Arc<Notify> {
        &self.wake
    }

    /// Patroni's `check_access` for the unsafe methods: `Some(403)` without the client certificate
    /// that `verify_client` asks for, `Some(401)` when credentials are required and the request
    /// does not carry them.
    fn deny(&self, headers: &HeaderMap, extensions: &Extensions) -> Option<Response> {
        if self.client_cert_for_unsafe
            && !extensions
                .get::<ConnectInfo<TlsPeer>>()
                .is_some_and(|c| c.0.client_cert)
        {
            tracing::warn!("REST API request rejected: client certificate required");
            return Some(text(403, "client certificate required"));
        }
        let auth = self.auth.as_ref()?;
        let reason = auth
            .check(headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes))
            .err()?;
        tracing::warn!("REST API request rejected: {reason}");
        let mut resp = text(401, reason);
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(WWW_AUTHENTICATE));
        Some(resp)
    }
}

/// The whole REST API as one axum router (no state left to provide).
pub fn router(state: ApiState) -> Router {
    Router::new().fallback(dispatch).with_state(Arc::new(state))
}

/// Serves the API on a listener the daemon bound, until `shutdown` completes; open connections
/// are then closed gracefully.
pub async fn serve<F>(listener: TcpListener, state: ApiState, shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    // Health checks are tiny request/response pairs; Nagle would only add latency.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Patroni's routing: `/` → `""`, `/patroni/x` → `patroni`.
fn first_segment(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or("")
}

fn unsupported(method: &str) -> Response {
    // What Python's BaseHTTPRequestHandler answers for a method without handler.
    text(501, format!("Unsupported method ('{method}')"))
}

async fn dispatch(State(api): State<Arc<ApiState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let query = parts.uri.query();
    let segment = first_segment(path);
    match parts.method.as_str() {
        "GET" => match segment {
            "patroni" => handlers::health::patroni(&api),
            "metrics" => handlers::health::metrics(&api),
            "liveness" => handlers::health::liveness(&api),
            "readiness" => handlers::health::readiness(&api, query),
            "cluster" => handlers::dcs::cluster(&api).await,
            "history" => handlers::dcs::history(&api).await,
            "config" => handlers::dcs::config(&api).await,
            _ => handlers::health::check(&api, path, query, true),
        },
        "HEAD" | "OPTIONS" => handlers::health::check(&api, path, query, false),
        m @ ("PATCH" | "PUT" | "POST" | "DELETE") => {
            if let Some(denied) = api.deny(&parts.headers, &parts.extensions) {
                return denied;
            }
            match (m, segment) {
                ("PATCH", "config") => handlers::config::patch(&api, &parts.headers, body).await,
                ("PUT", "config") => handlers::config::put(&api, &parts.headers, body).await,
                ("POST", "switchover") => {
                    handlers::switchover::post(&api, &parts.headers, body, Action::Switchover).await
                }
                ("POST", "failover") => handlers::switchover::post(&api, &parts.headers, body, Action::Failover).await,
                ("DELETE", "switchover") => handlers::switchover::delete(&api).await,
                ("POST", "restart") => handlers::node::restart(&api, &parts.headers, body).await,
                ("DELETE", "restart") => handlers::node::delete_restart(),
                ("POST", "reload") => handlers::node::reload(&api).await,
                ("POST", "reinitialize") => handlers::node::reinitialize(&api, &parts.headers, body).await,
                _ => unsupported(m),
            }
        }
        m => unsupported(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments() {
        assert_eq!(first_segment("/"), "");
        assert_eq!(first_segment(""), "");
        assert_eq!(first_segment("/patroni"), "patroni");
        assert_eq!(first_segment("/patroni/x/y"), "patroni");
        assert_eq!(first_segment("//config"), "config");
    }
}
