//! Requests to the members' REST APIs, as patronictl's `request_patroni` makes them: the URL is the
//! scheme and address of the member's published `api_url` plus the endpoint, the body is JSON, and
//! Basic-auth credentials from the configuration file go with every request. HTTPS members
//! (`https://` api_url) are verified as [`ClientTls`] says: `ctl.cacert`/`restapi.cafile` or the
//! system trust store, `-k/--insecure` (or `ctl.insecure`) accepts any certificate.
//!
//! Failure story: an answer with any status code is an [`Answer`] for the caller to judge; no answer
//! at all is a [`CallError`], which tells whether the connection could not even be made (so trying
//! another member is safe) or the member went quiet after taking the request (which may still be
//! carried out, so callers must not send it elsewhere).

use crate::error::{CtlError, CtlResult};
use ferroni_api::ClientTls;
use ferroni_model::Member;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

/// For requests the member answers at once (status, configuration changes).
pub const SHORT: Duration = Duration::from_secs(5);
/// For `/reload` and `/reinitialize`: the node hands them to its HA loop and waits up to 30 s for
/// the loop to take them.
pub const HA_LOOP: Duration = Duration::from_secs(35);
const CONNECT: Duration = Duration::from_secs(5);

/// An HTTP answer: status code and body text.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.text).ok()
    }
}

#[derive(Debug)]
pub struct CallError {
    /// Nothing reached the member: no address, connection refused, unreachable.
    pub not_sent: bool,
    pub message: String,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

pub struct Rest {
    client: reqwest::Client,
    auth: Option<(String, String)>,
}

/// A client builder for the members' REST APIs, HTTP or HTTPS. A certificate file that cannot
/// be read is a usage error.
pub fn client_builder(tls: &ClientTls) -> CtlResult<reqwest::ClientBuilder> {
    let config = tls.config().map_err(|e| CtlError::usage(e.to_string()))?;
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .connect_timeout(CONNECT)
        .user_agent(concat!("ferronictl/", env!("CARGO_PKG_VERSION"))))
}

impl Rest {
    pub fn new(auth: Option<(String, String)>, tls: &ClientTls) -> CtlResult<Rest> {
        let client = client_builder(tls)?
            .build()
            .map_err(|e| CtlError::failed(format!("cannot create an HTTP client: {e}")))?;
        Ok(Rest { client, auth })
    }

    pub async fn call(
        &self,
        member: &Member,
        method: Method,
        endpoint: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        let url = endpoint_url(&member.data.api_url, endpoint).map_err(|message| CallError {
            not_sent: true,
            message,
        })?;
        tracing::debug!(%method, %url, ?body, "REST request");
        let mut request = self.client.request(method, &url).timeout(timeout);
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, Some(password));
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let failed = |e: reqwest::Error| CallError {
            not_sent: e.is_connect() || e.is_builder(),
            message: describe(&e),
        };
        let response = request.send().await.map_err(failed)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(failed)?;
        tracing::debug!(status, %text, "REST answer");
        Ok(Answer { status, text })
    }
}

/// `scheme://host:port/<endpoint>` from an `api_url` such as `http://10.0.0.1:8008/patroni`.
fn endpoint_url(api_url: &str, endpoint: &str) -> Result<String, String> {
    if api_url.is_empty() {
        return Err("the member publishes no REST API address (api_url)".into());
    }
    let (scheme, rest) = api_url
        .split_once("://")
        .ok_or_else(|| format!("unusable api_url {api_url:?}"))?;
    let netloc = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if netloc.is_empty() {
        return Err(format!("unusable api_url {api_url:?}"));
    }
    Ok(format!("{scheme}://{netloc}/{endpoint}"))
}

/// reqwest's own text ("error sending request") hides the cause; the chain of sources names it.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time (timed out)".into();
    }
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_from_api_url() {
        assert_eq!(
            endpoint_url("http://10.0.0.1:8008/patroni", "switchover"),
            Ok("http://10.0.0.1:8008/switchover".into())
        );
        assert_eq!(
            endpoint_url("https://[::1]:8008", "restart"),
            Ok("https://[::1]:8008/restart".into())
        );
        assert!(endpoint_url("", "restart").is_err());
        assert!(endpoint_url("10.0.0.1:8008", "restart").is_err());
        assert!(endpoint_url("http:///patroni", "restart").is_err());
    }
}
