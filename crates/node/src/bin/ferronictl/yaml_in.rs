//! Reading YAML typed by people (`--apply`/`--replace` files, the edited configuration, the lenient
//! read of a configuration file) the way ferroni's configuration loader reads YAML, so a value means
//! the same in `edit-config` as in the daemon's files: YAML 1.1 booleans (`on`, `off`), legacy
//! octal (`0770`), `<<` merge keys, and duplicate keys rejected.

use serde_json::Value;

/// Hand-written configurations are a few levels deep; the limit keeps hostile input from recursing
/// through the stack.
const MAX_DEPTH: usize = 64;

/// Parses one YAML document; empty input (or only comments) is `null`.
pub fn parse(text: &str) -> Result<Value, String> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { max_depth: MAX_DEPTH },
        legacy_octal_numbers: true,
        reject_non_finite_typeless_float: false,
        with_snippet: false,
        emit_comments: false,
    };
    serde_saphyr::from_str_with_options::<Option<Value>>(text, options)
        .map(Option::unwrap_or_default)
        .map_err(|e| {
            // The library's hint is addressed to programmers, not to whoever edits the file.
            e.to_string()
                .replace(", set DuplicateKeyPolicy in Options if acceptable", "")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_like_the_configuration_loader() {
        assert_eq!(
            parse("a: on\nb: 0770\nc: 8MB\nd: '10'\ne:\n  - x\n").expect("valid"),
            json!({"a": true, "b": 504, "c": "8MB", "d": "10", "e": ["x"]})
        );
        assert_eq!(parse("").expect("valid"), Value::Null);
        assert_eq!(parse("# nothing\n").expect("valid"), Value::Null);
        let dup = parse("a: 1\na: 2\n").unwrap_err();
        assert!(dup.contains("duplicate"), "{dup}");
        assert!(!dup.contains("DuplicateKeyPolicy"), "{dup}");
        assert!(parse("a: [1, 2\n").is_err());
    }
}
