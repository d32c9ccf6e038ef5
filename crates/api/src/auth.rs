//! HTTP Basic authentication for the unsafe methods (PATCH, PUT, POST, DELETE), as Patroni's
//! `check_access` does it: the header's token is compared with `base64(username:password)` in
//! constant time; GET, HEAD and OPTIONS stay open so health checks need no secrets.
//!
//! Failure story: a missing or wrong header yields the reason Patroni gives (`no auth header
//! received` / `not authenticated`); the caller answers 401 with `WWW-Authenticate`.

use std::fmt;

/// The realm Patroni announces (`Basic realm="Patroni"`).
pub const WWW_AUTHENTICATE: &str = "Basic realm=\"Patroni\"";

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648), all Basic auth needs.
pub fn base64(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Expected credentials. `Debug` does not print the secret.
#[derive(Clone)]
pub struct BasicAuth {
    token: String,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BasicAuth(..)")
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Only the length leaks, which the attacker controls anyway.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl BasicAuth {
    pub fn new(username: &str, password: &str) -> BasicAuth {
        BasicAuth {
            token: base64(format!("{username}:{password}").as_bytes()),
        }
    }

    /// Checks an `Authorization` header value.
    pub fn check(&self, header: Option<&[u8]>) -> Result<(), &'static str> {
        let Some(h) = header else {
            return Err("no auth header received");
        };
        match h.strip_prefix(b"Basic ") {
            Some(token) if constant_time_eq(token, self.token.as_bytes()) => Ok(()),
            _ => Err("not authenticated"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(base64(b"Aladdin:open sesame"), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }

    #[test]
    fn check_header() {
        let a = BasicAuth::new("admin", "s3cret");
        let good = format!("Basic {}", base64(b"admin:s3cret"));
        assert_eq!(a.check(Some(good.as_bytes())), Ok(()));
        assert_eq!(a.check(None), Err("no auth header received"));
        assert_eq!(a.check(Some(b"Basic YWRtaW46d3Jvbmc=")), Err("not authenticated"));
        assert_eq!(a.check(Some(b"Bearer x")), Err("not authenticated"));
        assert_eq!(format!("{a:?}"), "BasicAuth(..)");
    }
}
