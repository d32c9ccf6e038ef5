//! Typed reads from a [`Node`] that carry the key path along, so every error can say where it is
//! and what was expected: `bootstrap.dcs.loop_wait: expected an integer >= 1, got "ten"`.
//!
//! Leniency follows Patroni, which runs `int()` and `parse_bool()` over most values: integers
//! may be written as strings (`"30"`), booleans as `"on"`/`"yes"`/`1`. A key whose value is
//! null (`key:` with nothing after it) counts as absent, as Patroni's `.get(key) or default`
//! does.

use crate::error::ConfigError;
use crate::yaml::Node;

/// A node and the key path that leads to it.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub node: &'a Node,
    path: &'a str,
}

/// Owns the path string of a child so the child [`At`] can borrow it.
#[derive(Debug)]
pub struct Child<'a> {
    pub node: &'a Node,
    pub path: String,
}

impl<'a> Child<'a> {
    pub fn at(&self) -> At<'_> {
        At {
            node: self.node,
            path: &self.path,
        }
    }
}

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'a> At<'a> {
    pub fn new(node: &'a Node, path: &'a str) -> Self {
        At { node, path }
    }

    pub fn path(&self) -> &str {
        self.path
    }

    pub fn err(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.path, message)
    }

    fn expected(&self, what: &str) -> ConfigError {
        self.err(format!("expected {what}, got {}", self.node.describe()))
    }

    pub fn child_path(&self, key: &str) -> String {
        join(self.path, key)
    }

    /// The entries of a map; null counts as an empty map.
    pub fn entries(&self) -> Result<&'a [(String, Node)], ConfigError> {
        match self.node {
            Node::Map(entries) => Ok(entries),
            Node::Null => Ok(&[]),
            _ => Err(self.expected("a map")),
        }
    }

    /// The value under `key` unless it is missing or null. Errors if this node is not a map.
    pub fn opt(&self, key: &str) -> Result<Option<Child<'a>>, ConfigError> {
        let entries = self.entries()?;
        Ok(entries
            .iter()
            .find(|(k, v)| k == key && !v.is_null())
            .map(|(_, node)| Child {
                node,
                path: self.child_path(key),
            }))
    }

    pub fn req(&self, key: &str) -> Result<Child<'a>, ConfigError> {
        let entries = self.entries()?;
        match entries.iter().find(|(k, _)| k == key) {
            Some((_, Node::Null)) => Err(ConfigError::new(self.child_path(key), "required key has no value")),
            Some((_, node)) => Ok(Child {
                node,
                path: self.child_path(key),
            }),
            None => Err(ConfigError::new(self.child_path(key), "required key is missing")),
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.node.get(key).is_some_and(|v| !v.is_null())
    }

    /// Children of a list, each with its `[i]` path.
    pub fn items(&self) -> Result<Vec<Child<'a>>, ConfigError> {
        match self.node {
            Node::Seq(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, node)| Child {
                    node,
                    path: format!("{}[{i}]", self.path),
                })
                .collect()),
            _ => Err(self.expected("a list")),
        }
    }

    /// A string. Numbers are accepted and written out (`name: 1` is the name "1"), since
    /// Patroni would use them the same way; booleans and containers are not, as they are
    /// almost always a quoting mistake (`name: yes`).
    pub fn string(&self) -> Result<String, ConfigError> {
        match self.node {
            Node::Str(s) => Ok(s.clone()),
            Node::Num(n) => Ok(n.to_string()),
            _ => Err(self.expected("a string")),
        }
    }

    pub fn non_empty_string(&self) -> Result<String, ConfigError> {
        let s = self.string()?;
        if s.trim().is_empty() {
            return Err(self.err("must not be empty"));
        }
        Ok(s)
    }

    pub fn string_list(&self) -> Result<Vec<String>, ConfigError> {
        self.items()?.iter().map(|c| c.at().string()).collect()
    }

    /// An integer in `min..=max`. Messages name the range as `>= min` when the upper bound is
    /// only a storage limit nobody would write on purpose, unless the value is above it.
    pub fn int_in(&self, min: i64, max: i64) -> Result<i64, ConfigError> {
        let value = match self.node {
            Node::Num(n) => n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            }),
            Node::Str(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        let above_max = match (value, self.node) {
            (Some(v), _) => v > max,
            (None, Node::Num(n)) => n.as_u64().is_some(),
            _ => false,
        };
        match value {
            Some(v) if (min..=max).contains(&v) => Ok(v),
            _ if min == i64::MIN && max == i64::MAX => Err(self.expected("an integer")),
            _ if max < i64::from(u32::MAX) || above_max => {
                Err(self.expected(&format!("an integer from {min} to {max}")))
            }
            _ => Err(self.expected(&format!("an integer >= {min}"))),
        }
    }

    pub fn u32_min(&self, min: u32) -> Result<u32, ConfigError> {
        let v = self.int_in(i64::from(min), i64::from(u32::MAX))?;
        Ok(u32::try_from(v).unwrap_or(u32::MAX))
    }

    pub fn port(&self) -> Result<u16, ConfigError> {
        let v = self.int_in(1, 65535)?;
        Ok(u16::try_from(v).unwrap_or(u16::MAX))
    }

    /// Patroni's `parse_bool`: `true/false`, `on/off`, `yes/no`, `1/0` in any case, as booleans,
    /// numbers or strings.
    pub fn boolean(&self) -> Result<bool, ConfigError> {
        match self.node {
            Node::Bool(b) => Ok(*b),
            Node::Num(n) if n.as_i64() == Some(1) => Ok(true),
            Node::Num(n) if n.as_i64() == Some(0) => Ok(false),
            Node::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "on" | "yes" | "1" => Ok(true),
                "false" | "off" | "no" | "0" => Ok(false),
                _ => Err(self.expected("a boolean")),
            },
            _ => Err(self.expected("a boolean")),
        }
    }

    /// Like [`At::boolean`], but any non-zero integer is true: method flags are documented as
    /// `no_leader: 1` and Patroni tests them with Python truthiness.
    pub fn flag(&self) -> Result<bool, ConfigError> {
        match self.node {
            Node::Num(n) if n.as_i64().is_some() => Ok(n.as_i64() != Some(0)),
            _ => self.boolean(),
        }
    }
}

/// `opt(key)` then a typed read, for the common "optional with default" case.
pub fn opt_with<'a, T>(
    at: &At<'a>,
    key: &str,
    read: impl FnOnce(&At<'_>) -> Result<T, ConfigError>,
) -> Result<Option<T>, ConfigError> {
    match at.opt(key)? {
        Some(child) => read(&child.at()).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;

    #[test]
    fn integers_from_numbers_and_strings() {
        let n = parse("a: 30\nb: '30'\nc: ten\nd: 8.0\ne: 2.5\nf: true").unwrap();
        let at = At::new(&n, "x");
        let int = |k: &str| at.req(k).unwrap().at().u32_min(1);
        assert_eq!(int("a").unwrap(), 30);
        assert_eq!(int("b").unwrap(), 30);
        assert_eq!(
            int("c").unwrap_err().to_string(),
            r#"x.c: expected an integer >= 1, got "ten""#
        );
        assert_eq!(int("d").unwrap(), 8);
        assert!(int("e").is_err());
        assert_eq!(
            int("f").unwrap_err().to_string(),
            "x.f: expected an integer >= 1, got true"
        );
    }

    #[test]
    fn booleans_are_lenient_like_patroni() {
        let n = parse("a: on\nb: 'yes'\nc: 0\nd: 'OFF'\ne: maybe\nf: 2").unwrap();
        let at = At::new(&n, "");
        let b = |k: &str| at.req(k).unwrap().at().boolean();
        assert!(b("a").unwrap());
        assert!(b("b").unwrap());
        assert!(!b("c").unwrap());
        assert!(!b("d").unwrap());
        assert_eq!(b("e").unwrap_err().to_string(), r#"e: expected a boolean, got "maybe""#);
        assert!(b("f").is_err());
        assert!(at.req("f").unwrap().at().flag().unwrap());
    }

    #[test]
    fn null_is_absent_for_optional_keys() {
        let n = parse("a:\nb: 1").unwrap();
        let at = At::new(&n, "s");
        assert!(at.opt("a").unwrap().is_none());
        assert!(at.opt("zz").unwrap().is_none());
        assert_eq!(at.req("a").unwrap_err().to_string(), "s.a: required key has no value");
        assert_eq!(at.req("zz").unwrap_err().to_string(), "s.zz: required key is missing");
    }

    #[test]
    fn wrong_container_types_are_named() {
        let n = parse("a: [1]\nb: {c: 1}").unwrap();
        let at = At::new(&n, "");
        assert_eq!(
            at.req("a").unwrap().at().string().unwrap_err().to_string(),
            "a: expected a string, got a list"
        );
        assert_eq!(
            at.req("b").unwrap().at().items().unwrap_err().to_string(),
            "b: expected a list, got a map"
        );
        let a = at.req("a").unwrap();
        let items = a.at().items().unwrap();
        assert_eq!(items[0].path, "a[0]");
    }
}
