//! The `etcd3` section: where the DCS is. Ferroni speaks only the etcd v3 API, so the other
//! backends Patroni supports are refused with a message that says so.

use crate::error::ConfigError;
use crate::local::string_of;
use crate::walk::At;
use crate::yaml::{Node, quote};
use ferroni_model::EtcdConfig;

/// Patroni's other DCS backends.
pub const OTHER_DCS: &[&str] = &["etcd", "consul", "zookeeper", "kubernetes", "raft", "exhibitor"];

pub const DEFAULT_ETCD_PORT: u16 = 2379;

pub fn etcd3(root: &At<'_>, warnings: &mut Vec<String>) -> Result<EtcdConfig, ConfigError> {
    let others: Vec<&str> = OTHER_DCS
        .iter()
        .copied()
        .filter(|k| root.node.get(k).is_some())
        .collect();
    if !root.has("etcd3") {
        if let Some(other) = others.first() {
            let hint = if *other == "etcd" {
                " (etcd servers of version 3 speak the v3 API: rename the section to etcd3)"
            } else {
                ""
            };
            return Err(ConfigError::new(
                *other,
                format!(
                    "ferroni supports only etcd3 as its DCS, but this configuration uses {}{hint}",
                    quote(other)
                ),
            ));
        }
        root.req("etcd3")?;
    }
    for other in others {
        warnings.push(format!(
            "section {} is ignored: ferroni supports only etcd3",
            quote(other)
        ));
    }
    let at = root.req("etcd3")?;
    let at = at.at();
    at.entries()?;

    let mut schemes = Vec::new();
    let hosts = if let Some(hosts) = at.opt("hosts")? {
        if at.has("host") {
            warnings.push("etcd3.host is ignored because etcd3.hosts is set".to_string());
        }
        let hosts = hosts.at();
        match hosts.node {
            Node::Seq(_) => {
                let mut out = Vec::new();
                for item in hosts.items()? {
                    out.push(endpoint(&item.at(), &item.at().non_empty_string()?, &mut schemes)?);
                }
                out
            }
            _ => {
                let text = hosts.string()?;
                let mut out = Vec::new();
                for part in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    out.push(endpoint(&hosts, part, &mut schemes)?);
                }
                out
            }
        }
    } else if let Some(host) = at.opt("host")? {
        let text = host.at().non_empty_string()?;
        vec![endpoint(&host.at(), text.trim(), &mut schemes)?]
    } else if let Some(url) = at.opt("url")? {
        let text = url.at().non_empty_string()?;
        vec![endpoint(&url.at(), text.trim(), &mut schemes)?]
    } else {
        for key in ["srv", "srv_suffix", "proxy"] {
            if at.has(key) {
                return Err(ConfigError::new(
                    at.child_path(key),
                    "is not supported by ferroni; list the etcd endpoints in etcd3.hosts",
                ));
            }
        }
        return Err(at.err("needs host or hosts (the etcd endpoints)"));
    };
    if hosts.is_empty() {
        return Err(ConfigError::new(
            at.child_path("hosts"),
            "must name at least one endpoint",
        ));
    }
    let protocol = match at.opt("protocol")? {
        Some(p) => {
            let p_at = p.at();
            let text = p_at.string()?.trim().to_ascii_lowercase();
            if text != "http" && text != "https" {
                return Err(p_at.err(format!("expected http or https, got {}", p_at.node.describe())));
            }
            text
        }
        None if schemes.iter().any(|s| s == "https") => "https".to_string(),
        None => "http".to_string(),
    };
    for key in ["cacert", "cert", "key", "key_password"] {
        if at.has(key) {
            warnings.push(format!("etcd3.{key} is not supported by ferroni yet and is ignored"));
        }
    }
    Ok(EtcdConfig {
        hosts,
        protocol,
        username: string_of(at.opt("username")?)?,
        password: string_of(at.opt("password")?)?,
    })
}

/// One etcd endpoint as `host:port`, accepting `http://` or `https://` in front (remembered
/// in `schemes`) and defaulting the port to 2379 like Patroni.
fn endpoint(at: &At<'_>, text: &str, schemes: &mut Vec<String>) -> Result<String, ConfigError> {
    let bad = || at.err(format!("expected host:port, got {}", quote(text)));
    let mut rest = text;
    if let Some((scheme, after)) = text.split_once("://") {
        if scheme != "http" && scheme != "https" {
            return Err(at.err(format!("expected an http or https endpoint, got {}", quote(text))));
        }
        schemes.push(scheme.to_string());
        rest = after.trim_end_matches('/');
    }
    if rest.is_empty() || rest.contains(char::is_whitespace) || rest.contains('/') {
        return Err(bad());
    }
    // A colon after the last `]` (or anywhere, without brackets) starts the port.
    let port_colon = match rest.rfind(']') {
        Some(close) => rest[close..].rfind(':').map(|i| close + i),
        None => rest.rfind(':'),
    };
    match port_colon {
        Some(i) => {
            let port: u16 = rest[i + 1..].parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
            if rest[..i].is_empty() {
                return Err(bad());
            }
            Ok(format!("{}:{port}", &rest[..i]))
        }
        None => Ok(format!("{rest}:{DEFAULT_ETCD_PORT}")),
    }
}
