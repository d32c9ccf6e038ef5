//! YAML text to an ordered tree.
//!
//! serde-saphyr reads the YAML the way Patroni's PyYAML does where it matters: YAML 1.1 booleans
//! (`on`/`off`/`yes`/`no`), `<<` merge keys, legacy octal (`0770` is 504, which is what
//! `unix_socket_permissions` needs). We deserialize into our own [`Node`] rather than
//! `serde_json::Value` because `serde_json::Map` sorts its keys, and several sections are passed
//! to commands in the order they are written (custom bootstrap and replica method arguments,
//! `initdb` and `basebackup` options).
//!
//! Known differences from PyYAML: `y`/`n` and mixed-case `tRue` are booleans here and strings
//! there; `1e3` is a number here and a string there; `1:30` (sexagesimal) and timestamps stay
//! strings here.

use crate::error::ConfigError;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// A YAML value with mapping keys kept in the order written.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Num(Number),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

/// Real configurations are a handful of levels deep; the limit keeps hostile input from
/// recursing through the stack in the deserializer or in our tree walks.
const MAX_DEPTH: usize = 64;

/// Parses one YAML document. Empty input (or only comments) is [`Node::Null`]. Duplicate keys
/// are an error, as a silently ignored duplicate is usually a mistake in a hand-written file.
pub fn parse(text: &str) -> Result<Node, ConfigError> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { max_depth: MAX_DEPTH },
        legacy_octal_numbers: true,
        reject_non_finite_typeless_float: false,
        with_snippet: false,
        emit_comments: false,
    };
    serde_saphyr::from_str_with_options::<Node>(text, options).map_err(|e| {
        // The library's hint is addressed to programmers, not to whoever edits the file.
        let message = e
            .to_string()
            .replace(", set DuplicateKeyPolicy in Options if acceptable", "");
        ConfigError::general(message)
    })
}

impl Node {
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Null)
    }

    /// The value under `key` when this is a map.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// How a value is named in "expected …, got …" messages: scalars as written (strings
    /// quoted), containers by kind, so a message never dumps a whole section.
    pub fn describe(&self) -> String {
        match self {
            Node::Null => "nothing".to_string(),
            Node::Bool(b) => b.to_string(),
            Node::Num(n) => n.to_string(),
            Node::Str(s) => quote(s),
            Node::Seq(_) => "a list".to_string(),
            Node::Map(_) => "a map".to_string(),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Num(n) => Value::Number(n.clone()),
            Node::Str(s) => Value::String(s.clone()),
            Node::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Node::Map(entries) => Value::Object(to_json_map(entries)),
        }
    }

    pub fn from_json(value: &Value) -> Node {
        match value {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => Node::Num(n.clone()),
            Value::String(s) => Node::Str(s.clone()),
            Value::Array(items) => Node::Seq(items.iter().map(Node::from_json).collect()),
            Value::Object(map) => Node::Map(map.iter().map(|(k, v)| (k.clone(), Node::from_json(v))).collect()),
        }
    }

    /// Applies `patch` with JSON merge patch rules (RFC 7386), which are also Patroni's rules
    /// for layering configuration files and environment variables: maps merge key by key, a
    /// null deletes, anything else replaces. Existing keys keep their place, new keys go last.
    pub fn merge(&mut self, patch: &Node) {
        let Node::Map(patch_entries) = patch else {
            *self = patch.clone();
            return;
        };
        if !matches!(self, Node::Map(_)) {
            *self = Node::Map(Vec::new());
        }
        let Node::Map(entries) = self else { return };
        for (key, value) in patch_entries {
            let position = entries.iter().position(|(k, _)| k == key);
            match (value, position) {
                (Node::Null, Some(i)) => {
                    entries.remove(i);
                }
                (Node::Null, None) => {}
                (_, Some(i)) => entries[i].1.merge(value),
                (_, None) => {
                    let mut fresh = Node::Null;
                    fresh.merge(value);
                    entries.push((key.clone(), fresh));
                }
            }
        }
    }
}

pub fn to_json_map(entries: &[(String, Node)]) -> Map<String, Value> {
    entries.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()
}

/// A string as it appears in messages: JSON-quoted, shortened when long.
pub fn quote(s: &str) -> String {
    const LIMIT: usize = 80;
    if s.chars().count() > LIMIT {
        let short: String = s.chars().take(LIMIT).collect();
        format!("{}…", Value::String(short))
    } else {
        Value::String(s.to_string()).to_string()
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Num(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Num(v.into()))
    }

    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(match (i64::try_from(v), u64::try_from(v)) {
            (Ok(i), _) => Node::Num(i.into()),
            (_, Ok(u)) => Node::Num(u.into()),
            _ => float_node(v as f64),
        })
    }

    fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
        Ok(match u64::try_from(v) {
            Ok(u) => Node::Num(u.into()),
            Err(_) => float_node(v as f64),
        })
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(float_node(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries: Vec<(String, Node)> = Vec::new();
        // Keys are read as strings: serde-saphyr keeps the spelling (`on: x` stays "on"), and
        // anything that cannot be a string (a list as a key) is an error.
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Node>()?;
            // serde-saphyr rejects duplicates by YAML identity; keys that only become equal as
            // strings (`1` and `"1"`) would otherwise silently collapse.
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format!("duplicate mapping key: {key}")));
            }
            entries.push((key, value));
        }
        Ok(Node::Map(entries))
    }
}

fn float_node(v: f64) -> Node {
    match Number::from_f64(v) {
        Some(n) => Node::Num(n),
        // Only reachable for NaN and infinities, which JSON cannot hold.
        None => Node::Str(v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(text: &str) -> Value {
        parse(text).unwrap().to_json()
    }

    #[test]
    fn yaml_1_1_booleans_like_pyyaml() {
        assert_eq!(p("a: on\nb: off\nc: yes\nd: no\ne: True\nf: FALSE"), {
            json!({"a": true, "b": false, "c": true, "d": false, "e": true, "f": false})
        });
        assert_eq!(p("a: 'on'"), json!({"a": "on"}));
    }

    #[test]
    fn numbers_like_pyyaml() {
        assert_eq!(p("a: 0770\nb: 0x1F\nc: 1_000\nd: 10\ne: 1.5"), {
            json!({"a": 504, "b": 31, "c": 1000, "d": 10, "e": 1.5})
        });
        assert_eq!(p("a: .inf"), json!({"a": ".inf"}));
    }

    #[test]
    fn merge_keys_are_applied() {
        let v = p("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n");
        assert_eq!(v["use"], json!({"x": 1, "y": 3}));
    }

    #[test]
    fn order_is_kept() {
        let n = parse("z: 1\na: 2\nm: 3").unwrap();
        let Node::Map(entries) = n else { panic!() };
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["z", "a", "m"]);
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.path, "");
        assert!(e.message.starts_with("duplicate mapping key: a"), "{e}");
        assert!(e.message.contains("line 3"), "{e}");
        assert!(!e.message.contains("DuplicateKeyPolicy"), "{e}");
    }

    #[test]
    fn keys_equal_only_as_strings_are_duplicates() {
        assert!(parse("1: a\n'1': b\n").is_err());
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert_eq!(e.path, "");
        assert!(e.message.contains("line"), "{e}");
    }

    #[test]
    fn empty_input_is_null() {
        assert!(parse("").unwrap().is_null());
        assert!(parse("# nothing\n").unwrap().is_null());
    }

    #[test]
    fn json_is_yaml() {
        assert_eq!(p(r#"{"a": [1, "x", null, true], "b": {"c": 2.5}}"#), {
            json!({"a": [1, "x", null, true], "b": {"c": 2.5}})
        });
    }

    #[test]
    fn json_with_tabs_and_no_spaces() {
        assert_eq!(
            p("{\n\t\"a\": {\n\t\t\"b\": [1,\n\t\t2]\n\t}\n}\n"),
            json!({"a": {"b": [1, 2]}})
        );
        assert_eq!(p(r#"{"a":1,"b":{"c":"d:e"}}"#), json!({"a": 1, "b": {"c": "d:e"}}));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(10_000);
        assert!(parse(&deep).is_err());
        let deep_block: String = (0..200).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        assert!(parse(&deep_block).is_err());
    }

    #[test]
    fn merge_follows_rfc_7386_and_keeps_order() {
        let mut n = parse("a: 1\nb: {c: 1, d: 2}\ne: 5").unwrap();
        n.merge(&parse("b: {c: null, x: {y: null, z: 1}}\na: 9\nf: 6").unwrap());
        assert_eq!(
            n.to_json(),
            json!({"a": 9, "b": {"d": 2, "x": {"z": 1}}, "e": 5, "f": 6})
        );
        let Node::Map(entries) = &n else { panic!() };
        assert_eq!(entries[0].0, "a");
        assert_eq!(entries[3].0, "f");
    }

    #[test]
    fn describe_names_values_briefly() {
        assert_eq!(Node::Str("ten".into()).describe(), "\"ten\"");
        assert_eq!(Node::Seq(vec![]).describe(), "a list");
        assert_eq!(Node::Map(vec![]).describe(), "a map");
        assert_eq!(Node::Bool(true).describe(), "true");
        assert_eq!(Node::Num(10.into()).describe(), "10");
        assert!(quote(&"x".repeat(200)).ends_with('…'));
    }
}
