//! libpq connection strings (`key=value ...`) and member `conn_url`s (`postgres://host:port/db`).
//!
//! ferroni builds conninfo strings itself (for `primary_conninfo`, `pg_basebackup --dbname`, scripts)
//! because tokio-postgres only understands a subset of libpq's keys. None of these strings ever holds a
//! password: libpq reads it from the pgpass file named by `passfile` or `PGPASSFILE`.
//!
//! Failure: parsers return a message naming what is malformed.

use std::borrow::Cow;

/// Quote a conninfo value when libpq needs it: empty, or containing whitespace, `'` or `\`.
/// Inside quotes `'` and `\` are escaped with a backslash.
pub fn quote_value(value: &str) -> Cow<'_, str> {
    let needs = value.is_empty() || value.chars().any(|c| c.is_whitespace() || c == '\'' || c == '\\');
    if !needs {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    Cow::Owned(out)
}

/// `key=value` pairs joined with spaces, values quoted as needed. Pairs with an empty key are skipped.
pub fn build<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    pairs
        .iter()
        .filter(|(k, _)| !k.as_ref().is_empty())
        .map(|(k, v)| format!("{}={}", k.as_ref(), quote_value(v.as_ref())))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parse a `key=value` conninfo string (libpq's rules: optional spaces around `=`, single-quoted
/// values with backslash escapes, backslash escapes in unquoted values).
pub fn parse(conninfo: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = conninfo.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("missing \"=\" after {key:?} in connection info string"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quoted value for {key:?}")),
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// The value of `key` in parsed pairs (the last one wins, as in libpq).
pub fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Reject a conninfo carrying a password: it would end up on a command line or in a config file.
pub fn ensure_no_password(conninfo: &str) -> Result<(), String> {
    let pairs = parse(conninfo)?;
    if pairs.iter().any(|(k, _)| k == "password") {
        return Err("connection string contains a password; passwords must come from the pgpass file".into());
    }
    Ok(())
}

/// `host:port` of a conninfo (first host), as reported in `ReplicationInfo::upstream`.
pub fn host_port(conninfo: &str) -> Option<String> {
    let pairs = parse(conninfo).ok()?;
    let host = get(&pairs, "host").or_else(|| get(&pairs, "hostaddr"))?;
    let host = host.split(',').next()?;
    let port = get(&pairs, "port").and_then(|p| p.split(',').next()).unwrap_or("5432");
    Some(format!("{host}:{port}"))
}

/// A member's `conn_url` split into parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnUrl {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: Option<String>,
}

/// Parse `postgres://[user[:password]@]host[:port][/dbname][?...]`; IPv6 hosts in brackets. A password
/// in the URL is ignored, never returned.
pub fn parse_conn_url(url: &str) -> Result<ConnUrl, String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or_else(|| format!("{url:?} is not a postgres:// URL"))?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let user = userinfo
        .map(|u| u.split(':').next().unwrap_or_default().to_string())
        .filter(|u| !u.is_empty());
    let (host, port) = split_host_port(hostport).ok_or_else(|| format!("{url:?} has no valid host:port"))?;
    let dbname = if path.is_empty() {
        "postgres".to_string()
    } else {
        path.to_string()
    };
    Ok(ConnUrl {
        host,
        port,
        dbname,
        user,
    })
}

fn split_host_port(hostport: &str) -> Option<(String, u16)> {
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 5432,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (hostport, 5432),
    };
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// The member `conn_url` for a `connect_address` (`host:port`), as Patroni publishes it.
pub fn conn_url(connect_address: &str) -> String {
    format!("postgres://{connect_address}/postgres")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(quote_value("simple"), "simple");
        assert_eq!(quote_value(""), "''");
        assert_eq!(quote_value("va'lue"), r"'va\'lue'");
        assert_eq!(quote_value(r"a\b c"), r"'a\\b c'");
        assert_eq!(
            build(&[("host", "h"), ("password_free", "x y"), ("", "skipped")]),
            "host=h password_free='x y'"
        );
    }

    #[test]
    fn parse_round_trips_build() {
        let pairs = [
            ("user", "rep l"),
            ("passfile", r"/tmp/o'k\x"),
            ("host", "10.0.0.1"),
            ("empty", ""),
        ];
        let text = build(&pairs);
        let parsed = parse(&text).unwrap();
        let expected: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(parsed, expected);
        assert_eq!(
            parse("a = 1   b='x'").unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "x".into())]
        );
        assert!(parse("novalue").is_err());
        assert!(parse("a='open").is_err());
    }

    #[test]
    fn detects_passwords_and_upstream() {
        assert!(ensure_no_password("host=a password=secret").is_err());
        assert!(ensure_no_password("host=a passfile=/p").is_ok());
        assert_eq!(
            host_port("user=r host=10.0.0.5 port=5433").as_deref(),
            Some("10.0.0.5:5433")
        );
        assert_eq!(host_port("host=a,b port=1,2").as_deref(), Some("a:1"));
        assert_eq!(host_port("host=a").as_deref(), Some("a:5432"));
        assert_eq!(host_port("user=x"), None);
    }

    #[test]
    fn parses_conn_urls() {
        let u = parse_conn_url("postgres://10.0.0.1:5433/postgres").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.dbname.as_str(), u.user),
            ("10.0.0.1", 5433, "postgres", None)
        );
        let u = parse_conn_url("postgresql://rep:pw@[::1]:6000/db?sslmode=require").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.dbname.as_str(), u.user.as_deref()),
            ("::1", 6000, "db", Some("rep"))
        );
        let u = parse_conn_url("postgres://node1").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("node1", 5432));
        assert!(parse_conn_url("http://x").is_err());
        assert!(parse_conn_url("postgres://:5432/db").is_err());
        assert!(parse_conn_url("postgres://h:notaport/db").is_err());
        assert_eq!(conn_url("10.0.0.1:5432"), "postgres://10.0.0.1:5432/postgres");
    }
}
