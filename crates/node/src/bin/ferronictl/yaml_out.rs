//! Writing YAML the way patronictl prints it (`yaml.safe_dump(data, default_flow_style=False)`):
//! keys sorted, two-space indentation, lists at the indentation of their key, `{}`/`[]` for empty
//! containers, and strings quoted only when they would otherwise read back as something else.
//!
//! The quoting has to hold for two readers: PyYAML (YAML 1.1, for people who paste the output into
//! Patroni tooling) and ferroni's own reader (which `edit-config` uses on the edited text). A string
//! is written plain only when both would read it back as the same string; otherwise it is
//! single-quoted, or double-quoted with escapes when it holds line breaks or control characters.
//! Unlike PyYAML, long lines are never folded.

use serde_json::{Map, Value};

/// Block-style YAML of `value`, ending with a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_mapping(&mut out, map, 0, false),
        Value::Array(items) if !items.is_empty() => write_sequence(&mut out, items, 0, false),
        other => {
            out.push_str(&flow(other));
            out.push('\n');
        }
    }
    out
}

/// One-line flow-style YAML (`{a: 1, b: [x, y]}`), as patronictl's tsv output shows tags.
pub fn flow(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar(s, true),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(flow).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", scalar(k, true), flow(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// `first_inline`: the first key continues a line already started (after `- `).
fn write_mapping(out: &mut String, map: &Map<String, Value>, level: usize, first_inline: bool) {
    // serde_json's map is ordered by key (no `preserve_order`), which is PyYAML's `sort_keys` order:
    // both compare code points.
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !first_inline {
            indent(out, level);
        }
        out.push_str(&scalar(key, false));
        out.push(':');
        match value {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                write_mapping(out, m, level + 2, false);
            }
            // PyYAML does not indent a list under its key.
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                write_sequence(out, items, level, false);
            }
            other => {
                out.push(' ');
                out.push_str(&flow(other));
                out.push('\n');
            }
        }
    }
}

fn write_sequence(out: &mut String, items: &[Value], level: usize, first_inline: bool) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !first_inline {
            indent(out, level);
        }
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => write_mapping(out, m, level + 2, true),
            Value::Array(a) if !a.is_empty() => write_sequence(out, a, level + 2, true),
            other => {
                out.push_str(&flow(other));
                out.push('\n');
            }
        }
    }
}

/// A string as a YAML scalar: plain when safe, else quoted. `in_flow`: inside `{}`/`[]`, where
/// `,[]{}` also end a plain scalar.
fn scalar(s: &str, in_flow: bool) -> String {
    if s.chars().any(|c| c.is_control()) {
        return double_quoted(s);
    }
    if plain_is_safe(s, in_flow) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// JSON string escapes (`\n`, `\"`, `\\`, `\u0001`) are all valid in YAML double-quoted scalars.
fn double_quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn plain_is_safe(s: &str, in_flow: bool) -> bool {
    let Some(first) = s.chars().next() else { return false };
    if s.trim() != s || "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    if in_flow && s.contains([',', '[', ']', '{', '}']) {
        return false;
    }
    if resolves_to_non_string(s) {
        return false;
    }
    // Whatever the rules above miss, ferroni's own reader must give the string back unchanged.
    matches!(crate::yaml_in::parse(&format!("k: {s}")), Ok(Value::Object(m)) if m.get("k") == Some(&Value::String(s.to_string())))
}

/// PyYAML's (YAML 1.1) implicit types, following its resolver patterns for int and float, plus
/// what serde-saphyr also reads as non-strings: booleans and nulls in any letter case, `y`/`n`.
/// Dates are matched loosely (four digits and a dash), which at worst quotes a harmless string.
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "n", "yes", "no", "true", "false", "on", "off", "null", "~", "<<", "=",
    ];
    if WORDS.contains(&s.to_ascii_lowercase().as_str()) {
        return true;
    }
    let b = s.as_bytes();
    let date_like = b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-';
    date_like || yaml11_int(s) || yaml11_float(s)
}

fn all_of(s: &str, allowed: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.chars().all(allowed)
}

fn strip_sign(s: &str) -> &str {
    s.strip_prefix(['-', '+']).unwrap_or(s)
}

/// `:[0-5]?[0-9]` repeated at least once (sexagesimal, `1:30`), given the text after the first `:`.
fn sexagesimal_tail(parts: std::str::Split<'_, char>) -> bool {
    let mut any = false;
    for p in parts {
        let ok = match p.as_bytes() {
            [d] => d.is_ascii_digit(),
            [t, d] => (b'0'..=b'5').contains(t) && d.is_ascii_digit(),
            _ => false,
        };
        if !ok {
            return false;
        }
        any = true;
    }
    any
}

/// PyYAML: `[-+]?(0b[0-1_]+ | 0[0-7_]+ | 0 | [1-9][0-9_]* | 0x[0-9a-fA-F_]+ | [1-9][0-9_]*(:[0-5]?[0-9])+)`.
fn yaml11_int(s: &str) -> bool {
    let t = strip_sign(s);
    if let Some(bits) = t.strip_prefix("0b") {
        return all_of(bits, |c| matches!(c, '0' | '1' | '_'));
    }
    if let Some(hex) = t.strip_prefix("0x") {
        return all_of(hex, |c| c.is_ascii_hexdigit() || c == '_');
    }
    if t == "0" {
        return true;
    }
    if let Some(octal) = t.strip_prefix('0') {
        return all_of(octal, |c| ('0'..='7').contains(&c) || c == '_');
    }
    if !t.starts_with(|c: char| ('1'..='9').contains(&c)) {
        return false;
    }
    let mut parts = t.split(':');
    let head = parts.next().unwrap_or_default();
    all_of(head, |c| c.is_ascii_digit() || c == '_') && (!t.contains(':') || sexagesimal_tail(parts))
}

/// PyYAML: `[-+]?[0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)? | \.[0-9][0-9_]*([eE][-+][0-9]+)? |
/// [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]* | [-+]?\.(inf|Inf|INF) | \.(nan|NaN|NAN)`.
fn yaml11_float(s: &str) -> bool {
    let digits_ = |x: &str| x.chars().all(|c| c.is_ascii_digit() || c == '_');
    let exponent = |x: &str| match x.strip_prefix(['e', 'E']).map(strip_sign_required) {
        None => x.is_empty(),
        Some(Some(d)) => all_of(d, |c| c.is_ascii_digit()),
        Some(None) => false,
    };
    if [".nan", ".NaN", ".NAN"].contains(&s) || [".inf", ".Inf", ".INF"].contains(&strip_sign(s)) {
        return true;
    }
    if let Some(rest) = s.strip_prefix('.') {
        let end = rest.find(['e', 'E']).unwrap_or(rest.len());
        return rest.starts_with(|c: char| c.is_ascii_digit()) && digits_(&rest[..end]) && exponent(&rest[end..]);
    }
    let t = strip_sign(s);
    if !t.starts_with(|c: char| c.is_ascii_digit()) {
        return false;
    }
    let Some((int_part, frac)) = t.split_once('.') else {
        return false;
    };
    if int_part.contains(':') {
        let mut parts = int_part.split(':');
        let head = parts.next().unwrap_or_default();
        return digits_(head) && sexagesimal_tail(parts) && digits_(frac);
    }
    let end = frac.find(['e', 'E']).unwrap_or(frac.len());
    digits_(int_part) && digits_(&frac[..end]) && exponent(&frac[end..])
}

/// The digits after a mandatory `+` or `-` (YAML 1.1 exponents need the sign).
fn strip_sign_required(s: &str) -> Option<&str> {
    s.strip_prefix(['-', '+'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Strings that trip up YAML writers: implicit types of YAML 1.1 and of serde-saphyr, indicator
    /// characters, whitespace at the ends, line breaks and control characters.
    const TRICKY: &[&str] = &[
        "",
        " ",
        "a b",
        " lead",
        "trail ",
        "on",
        "Off",
        "YES",
        "y",
        "N",
        "null",
        "~",
        "true",
        "10",
        "1.5",
        "1e3",
        "0x1F",
        "0770",
        "1_000",
        "1:30",
        ".inf",
        "-.inf",
        ".NaN",
        "10.0.0.1",
        "2024-01-01",
        "2024-01-01 10:00:00",
        "8MB",
        "-c",
        "- x",
        "a: b",
        "a #b",
        "a#b",
        "key:",
        "#x",
        "&a",
        "*a",
        "!t",
        "|",
        ">",
        "'q'",
        "\"d\"",
        "%x",
        "@x",
        "`x",
        "a,b",
        "[x]",
        "{x}",
        "it's",
        "line\nbreak",
        "tab\there",
        "bell\u{7}",
        "ünïcödé",
        "host all all 0.0.0.0/0 md5",
        "<<",
        "=",
        "?",
        "?x",
        ":x",
        "0",
        "-1",
        "+1",
    ];

    #[test]
    fn patroni_layout() {
        let config = json!({
            "ttl": 30,
            "loop_wait": 10,
            "postgresql": {
                "parameters": {"max_connections": 100, "work_mem": "8MB", "archive_mode": "on"},
                "pg_hba": ["host all all 0.0.0.0/0 md5", "local all all trust"],
                "use_pg_rewind": true,
            },
            "standby_cluster": {},
            "slots": [],
            "nested": [{"b": 1, "a": [1, 2]}, [3, 4], {}],
            "empty_string": "",
            "nothing": null,
        });
        let expected = "\
empty_string: ''
loop_wait: 10
nested:
- a:
  - 1
  - 2
  b: 1
- - 3
  - 4
- {}
nothing: null
postgresql:
  parameters:
    archive_mode: 'on'
    max_connections: 100
    work_mem: 8MB
  pg_hba:
  - host all all 0.0.0.0/0 md5
  - local all all trust
  use_pg_rewind: true
slots: []
standby_cluster: {}
ttl: 30
";
        assert_eq!(to_yaml(&config), expected);
        assert_eq!(to_yaml(&json!({})), "{}\n");
        assert_eq!(to_yaml(&json!([])), "[]\n");
    }

    #[test]
    fn flow_style() {
        assert_eq!(
            flow(&json!({"nofailover": true, "replicatefrom": "pg 2", "x": ["a,b", 1]})),
            "{nofailover: true, replicatefrom: pg 2, x: ['a,b', 1]}"
        );
    }

    #[test]
    fn every_string_reads_back_unchanged() {
        for &s in TRICKY {
            let value = json!({ s: s, "list": [s], "nested": {"k": s} });
            let text = to_yaml(&value);
            let back = crate::yaml_in::parse(&text).unwrap_or_else(|e| panic!("{s:?}: {e}\n{text}"));
            assert_eq!(back, value, "{s:?} written as\n{text}");
            let text = flow(&value);
            let back = crate::yaml_in::parse(&text).unwrap_or_else(|e| panic!("{s:?}: {e}\n{text}"));
            assert_eq!(back, value, "{s:?} written in flow style as\n{text}");
        }
    }

    #[test]
    fn pyyaml_resolvers() {
        for s in ["0", "-12", "+1_000", "0b101", "0x1F", "0770", "1:30", "190:20:30"] {
            assert!(yaml11_int(s), "{s:?} is an int in YAML 1.1");
        }
        for s in ["08", "1:60", "0x", "1.5", "12a", "", "-"] {
            assert!(!yaml11_int(s), "{s:?} is not an int in YAML 1.1");
        }
        for s in [
            "1.5", "-1.", "1.5e+3", ".5", "1:30.5", ".inf", "-.Inf", ".NaN", "1_0.0_1",
        ] {
            assert!(yaml11_float(s), "{s:?} is a float in YAML 1.1");
        }
        for s in ["10.0.0.1", "1e3", "1.5e3", "127.0.0.1:5432", ".", "1", "a.5", ".e1"] {
            assert!(!yaml11_float(s), "{s:?} is not a float in YAML 1.1");
        }
    }

    #[test]
    fn quotes_what_pyyaml_would_type() {
        for s in ["on", "No", "2024-01-01", "1:30", "0770", "~", "", "1e3", "1.5", "12"] {
            assert!(scalar(s, false).starts_with('\''), "{s:?} should be quoted");
        }
        for s in [
            "8MB",
            "replica",
            "host all all 0.0.0.0/0 md5",
            "pg_hba.conf",
            "a#b",
            "10.0.0.1",
            "127.0.0.1:5432",
        ] {
            assert_eq!(scalar(s, false), s, "{s:?} should be plain");
        }
        assert_eq!(scalar("it's: x", false), "'it''s: x'");
        assert_eq!(scalar("a\nb", false), "\"a\\nb\"");
    }
}
