//! `-d/--dcs-url`: patronictl's `DCS://HOST:PORT/NAMESPACE` form. Ferroni speaks only the etcd v3
//! API, so `etcd3://` and a bare `HOST:PORT` are the normal spellings; `etcd://` is accepted because
//! existing patronictl habits use it, and is spoken to with the v3 API as well. Other Patroni
//! backends are refused by name instead of being misread as etcd.

use crate::error::{CtlError, CtlResult};

pub const DEFAULT_DCS_URL: &str = "etcd3://127.0.0.1:2379";
const DEFAULT_PORT: u16 = 2379;
const OTHER_BACKENDS: &[&str] = &["consul", "zookeeper", "exhibitor", "kubernetes", "raft"];

/// What a DCS URL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcsUrl {
    /// `host:port` endpoints, in the form `EtcdDcs::connect` takes.
    pub endpoints: Vec<String>,
    /// The path of the URL, when it names one (`/service`); otherwise the configured namespace applies.
    pub namespace: Option<String>,
}

pub fn parse(url: &str) -> CtlResult<DcsUrl> {
    let url = url.trim();
    let bad = |why: &str| CtlError::usage(format!("invalid DCS URL {url:?}: {why}"));
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => (String::new(), url.strip_prefix("//").unwrap_or(url)),
    };
    match scheme.as_str() {
        "" | "etcd3" | "etcd" => {}
        s if OTHER_BACKENDS.contains(&s) => {
            return Err(CtlError::usage(format!(
                "DCS {s} is not supported: ferroni supports only etcd (v3 API), e.g. etcd3://127.0.0.1:2379"
            )));
        }
        s => return Err(CtlError::usage(format!("Unknown dcs scheme: {s}"))),
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(bad(
            "credentials do not belong in the URL; set etcd3.username and etcd3.password in the configuration file",
        ));
    }
    let mut endpoints = Vec::new();
    // Several hosts separated by commas are an extension over patronictl, which takes one.
    for host_port in authority.split(',').map(str::trim) {
        endpoints.push(endpoint(host_port).map_err(|why| bad(&why))?);
    }
    let path = path.trim();
    let namespace = (!path.is_empty() && path != "/").then(|| path.to_string());
    Ok(DcsUrl { endpoints, namespace })
}

/// `host[:port]` or `[v6addr][:port]`, with patronictl's defaults: host `localhost`, port 2379.
fn endpoint(text: &str) -> Result<String, String> {
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(|| format!("unclosed [ in {text:?}"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("expected :PORT after ] in {text:?}"))?,
            ),
        };
        (format!("[{addr}]"), port)
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (text.to_string(), None),
        }
    };
    let port = match port {
        None | Some("") => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{p:?} is not a port number"))?,
    };
    let host = if host.is_empty() || host == "[]" {
        "localhost".to_string()
    } else {
        host
    };
    if host.contains(char::is_whitespace) {
        return Err(format!("{host:?} is not a host name"));
    }
    Ok(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> DcsUrl {
        parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn patronictl_forms() {
        assert_eq!(
            ok("etcd3://10.0.0.1:2379/service"),
            DcsUrl {
                endpoints: vec!["10.0.0.1:2379".into()],
                namespace: Some("/service".into())
            }
        );
        assert_eq!(ok("etcd://h").endpoints, vec!["h:2379"]);
        assert_eq!(ok("h:1234").endpoints, vec!["h:1234"]);
        assert_eq!(ok("//h:1234/").namespace, None);
        assert_eq!(ok("etcd3://:2380").endpoints, vec!["localhost:2380"]);
        assert_eq!(ok(DEFAULT_DCS_URL).endpoints, vec!["127.0.0.1:2379"]);
    }

    #[test]
    fn extensions() {
        assert_eq!(ok("etcd3://a:1,b:2/ns").endpoints, vec!["a:1", "b:2"]);
        assert_eq!(ok("etcd3://[::1]:2379").endpoints, vec!["[::1]:2379"]);
        assert_eq!(ok("etcd3://[::1]").endpoints, vec!["[::1]:2379"]);
    }

    #[test]
    fn refusals() {
        let e = parse("consul://h:8500").unwrap_err().to_string();
        assert!(e.contains("only etcd"), "{e}");
        assert_eq!(parse("foo://h").unwrap_err().to_string(), "Unknown dcs scheme: foo");
        assert!(parse("etcd3://h:notaport").is_err());
        assert!(parse("etcd3://h:0").is_err());
        assert!(
            parse("etcd3://u:p@h:1")
                .unwrap_err()
                .to_string()
                .contains("credentials")
        );
        assert!(matches!(parse("etcd3://[::1:2379"), Err(CtlError::Usage(_))));
    }
}
