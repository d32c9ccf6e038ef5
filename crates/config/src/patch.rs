//! Changing the dynamic configuration: JSON merge patch for `PATCH /config`, and the
//! `patronictl edit-config --set key.path=value` rule.

use crate::error::ConfigError;
use crate::yaml;
use serde_json::{Map, Value};

/// Applies `patch` to `target` by RFC 7386 (JSON merge patch): objects merge key by key, `null`
/// deletes a key, anything else replaces. A non-object patch replaces the whole target.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else { return };
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Sets `dotted` (`postgresql.parameters.work_mem`) to `value_text` read as YAML, the way
/// `patronictl edit-config --set` does: `8MB` is a string, `10` a number, `true`/`on` a boolean,
/// and `null` or nothing deletes the key. Missing or non-map intermediate keys become maps, and
/// maps left empty by a deletion are removed.
///
/// Under `postgresql.parameters` the rest of the path is one parameter name, because parameter
/// names contain dots themselves (`auto_explain.log_min_duration`).
pub fn set_path(target: &mut Value, dotted: &str, value_text: &str) -> Result<(), ConfigError> {
    let dotted = dotted.trim();
    let mut keys: Vec<String> = dotted.split('.').map(str::to_string).collect();
    if keys.iter().any(String::is_empty) {
        return Err(ConfigError::new(dotted, "invalid key path (empty key between dots)"));
    }
    if keys.len() > 2 && keys[0] == "postgresql" && keys[1] == "parameters" {
        let name = keys.split_off(2).join(".");
        keys.push(name);
    }
    let value = yaml::parse(value_text)
        .map_err(|e| ConfigError::new(dotted, format!("cannot read the value as YAML: {}", e.message)))?
        .to_json();
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    set_in(target, &keys, value);
    Ok(())
}

fn set_in(config: &mut Value, keys: &[String], value: Value) {
    let Value::Object(map) = config else { return };
    let (key, rest) = match keys {
        [key] => {
            if value.is_null() {
                map.remove(key);
            } else {
                map.insert(key.clone(), value);
            }
            return;
        }
        [key, rest @ ..] => (key, rest),
        [] => return,
    };
    let child = map.entry(key.clone()).or_insert(Value::Null);
    if !child.is_object() {
        *child = Value::Object(Map::new());
    }
    set_in(child, rest, value);
    if child.as_object().is_some_and(Map::is_empty) {
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc_7386_examples() {
        // The examples table of RFC 7386, appendix A.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": "b", "b": "c"}), json!({"a": null}), json!({"b": "c"})),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
            (json!([1, 2]), json!({"a": "b", "c": null}), json!({"a": "b"})),
            (json!({}), json!({"a": {"bb": {"ccc": null}}}), json!({"a": {"bb": {}}})),
        ];
        for (mut target, patch, expected) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, expected, "patch {patch}");
        }
    }

    #[test]
    fn set_path_parses_values_as_yaml() {
        let mut c = json!({"ttl": 30, "postgresql": {"parameters": {"work_mem": "4MB"}}});
        set_path(&mut c, "postgresql.parameters.work_mem", "8MB").unwrap();
        set_path(&mut c, "loop_wait", "10").unwrap();
        set_path(&mut c, "pause", "true").unwrap();
        set_path(&mut c, "postgresql.use_pg_rewind", "on").unwrap();
        set_path(&mut c, "standby_cluster.host", "10.0.0.1").unwrap();
        assert_eq!(
            c,
            json!({
                "ttl": 30, "loop_wait": 10, "pause": true,
                "postgresql": {"parameters": {"work_mem": "8MB"}, "use_pg_rewind": true},
                "standby_cluster": {"host": "10.0.0.1"}
            })
        );
    }

    #[test]
    fn set_path_null_deletes_and_prunes_empty_maps() {
        let mut c = json!({"ttl": 30, "standby_cluster": {"host": "h"}});
        set_path(&mut c, "standby_cluster.host", "null").unwrap();
        set_path(&mut c, "ttl", "").unwrap();
        set_path(&mut c, "not.there", "null").unwrap();
        assert_eq!(c, json!({}));
    }

    #[test]
    fn set_path_keeps_dotted_parameter_names_whole() {
        let mut c = json!({});
        set_path(&mut c, "postgresql.parameters.auto_explain.log_min_duration", "250ms").unwrap();
        assert_eq!(
            c,
            json!({"postgresql": {"parameters": {"auto_explain.log_min_duration": "250ms"}}})
        );
    }

    #[test]
    fn set_path_replaces_scalars_on_the_way() {
        let mut c = json!({"standby_cluster": "oops"});
        set_path(&mut c, "standby_cluster.port", "5433").unwrap();
        assert_eq!(c, json!({"standby_cluster": {"port": 5433}}));
    }

    #[test]
    fn set_path_errors() {
        let mut c = json!({});
        assert_eq!(
            set_path(&mut c, "a..b", "1").unwrap_err().to_string(),
            "a..b: invalid key path (empty key between dots)"
        );
        assert!(set_path(&mut c, "", "1").is_err());
        let e = set_path(&mut c, "a", "[1, 2").unwrap_err();
        assert!(e.to_string().starts_with("a: cannot read the value as YAML"), "{e}");
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|i| json!(i)),
            "[a-c]{0,2}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                proptest::collection::btree_map("[a-d]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn merge_patch_is_idempotent(target in json_value(), patch in json_value()) {
            let mut once = target.clone();
            merge_patch(&mut once, &patch);
            let mut twice = once.clone();
            merge_patch(&mut twice, &patch);
            prop_assert_eq!(once, twice);
        }

        #[test]
        fn set_path_never_panics(target in json_value(), path in "[a-c.]{0,8}", value in ".{0,12}") {
            let mut t = target;
            let _ = set_path(&mut t, &path, &value);
        }
    }
}
