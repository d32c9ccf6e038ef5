//! The dynamic configuration: the DCS `config` key, seeded once from `bootstrap.dcs` and later
//! changed with `patronictl edit-config` or `PATCH /config`.

use crate::error::ConfigError;
use crate::walk::{At, opt_with};
use crate::yaml::Node;
use ferroni_model::{DynamicConfig, StandbyCluster};
use serde_json::{Map, Value, json};

/// Ferroni allows shorter leases than Patroni's minimum of 20 s, for fast failover on reliable
/// networks; the timing rule below still keeps the lease longer than one loop plus retries.
pub const MIN_TTL: u32 = 5;

/// Validates a dynamic configuration. `path` prefixes every key path in errors (`bootstrap.dcs`
/// when the value comes from the local file, empty for the DCS). Unknown keys are kept in `raw`
/// and otherwise ignored, as other tools (and later ferroni versions) may set them.
pub fn parse_dynamic(value: &Value, path: &str) -> Result<DynamicConfig, ConfigError> {
    let node = Node::from_json(value);
    let mut config = parse_node(&At::new(&node, path))?;
    config.raw = if value.is_null() {
        Value::Object(Map::new())
    } else {
        value.clone()
    };
    Ok(config)
}

/// [`parse_dynamic`] for a value read from the DCS or received by `PATCH /config`, where key
/// paths need no prefix.
pub fn validate_dynamic(value: &Value) -> Result<DynamicConfig, ConfigError> {
    parse_dynamic(value, "")
}

pub(crate) fn parse_node(at: &At<'_>) -> Result<DynamicConfig, ConfigError> {
    at.entries()?;
    let defaults = DynamicConfig::default();
    let u32_or = |key: &str, min: u32, default: u32| -> Result<u32, ConfigError> {
        Ok(opt_with(at, key, |v| v.u32_min(min))?.unwrap_or(default))
    };
    let bool_or = |at: &At<'_>, key: &str, default: bool| -> Result<bool, ConfigError> {
        Ok(opt_with(at, key, |v| v.boolean())?.unwrap_or(default))
    };

    let ttl = u32_or("ttl", MIN_TTL, defaults.ttl)?;
    let loop_wait = u32_or("loop_wait", 1, defaults.loop_wait)?;
    let retry_timeout = u32_or("retry_timeout", 1, defaults.retry_timeout)?;
    // Every node must renew its lease within ttl even when a DCS call needs the full retry
    // time twice (a failed attempt and the retry) after sleeping a whole loop.
    let needed = u64::from(loop_wait) + 2 * u64::from(retry_timeout);
    if needed > u64::from(ttl) {
        return Err(at.err(format!(
            "loop_wait + 2*retry_timeout ({needed}) must not exceed ttl ({ttl})"
        )));
    }

    let maximum_lag_on_failover = match at.opt("maximum_lag_on_failover")? {
        Some(c) => c.at().int_in(0, i64::MAX)?.unsigned_abs(),
        None => defaults.maximum_lag_on_failover,
    };
    // `master_start_timeout` is the name before Patroni 3; the new name wins if both are set.
    let primary_start_timeout = match at.opt("primary_start_timeout")? {
        Some(c) => c.at().u32_min(0)?,
        None => u32_or("master_start_timeout", 0, defaults.primary_start_timeout)?,
    };
    let primary_race_backoff = u32_or("primary_race_backoff", 0, defaults.primary_race_backoff)?;

    let mut config = DynamicConfig {
        ttl,
        loop_wait,
        retry_timeout,
        maximum_lag_on_failover,
        primary_start_timeout,
        primary_race_backoff,
        check_timeline: bool_or(at, "check_timeline", defaults.check_timeline)?,
        pause: bool_or(at, "pause", defaults.pause)?,
        failsafe_mode: bool_or(at, "failsafe_mode", defaults.failsafe_mode)?,
        raw: Value::Object(Map::new()),
        ..defaults
    };

    if let Some(pg) = at.opt("postgresql")? {
        let pg = pg.at();
        config.use_pg_rewind = bool_or(&pg, "use_pg_rewind", config.use_pg_rewind)?;
        config.use_slots = bool_or(&pg, "use_slots", config.use_slots)?;
        if let Some(p) = pg.opt("parameters")? {
            config.parameters = parameters(&p.at())?;
        }
        config.pg_hba = opt_with(&pg, "pg_hba", |v| v.string_list())?;
    }
    if let Some(sc) = at.opt("standby_cluster")? {
        config.standby_cluster = standby_cluster(&sc.at())?;
    }
    if let Some(slots) = at.opt("slots")? {
        config.slots = permanent_slots(&slots.at())?;
    }
    config.raw = Value::Object(crate::yaml::to_json_map(at.entries()?));
    Ok(config)
}

/// `postgresql.parameters`: a map of scalars (a nested map would be written to
/// postgresql.conf as garbage).
pub(crate) fn parameters(at: &At<'_>) -> Result<Map<String, Value>, ConfigError> {
    let mut out = Map::new();
    for (name, value) in at.entries()? {
        if matches!(value, Node::Seq(_) | Node::Map(_)) {
            let path = crate::walk::join(at.path(), name);
            return Err(ConfigError::new(
                path,
                format!(
                    "expected a parameter value (string, number or boolean), got {}",
                    value.describe()
                ),
            ));
        }
        out.insert(name.clone(), value.to_json());
    }
    Ok(out)
}

/// A string or a comma-separated string or a list, for method lists and host lists.
pub(crate) fn name_list(at: &At<'_>) -> Result<Vec<String>, ConfigError> {
    match at.node {
        Node::Str(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()),
        Node::Seq(_) => {
            let mut out = Vec::new();
            for item in at.items()? {
                out.push(item.at().non_empty_string()?);
            }
            Ok(out)
        }
        _ => Err(at.err(format!("expected a list of names, got {}", at.node.describe()))),
    }
}

fn standby_cluster(at: &At<'_>) -> Result<Option<StandbyCluster>, ConfigError> {
    // Patroni fills unset keys with "", so empty strings count as unset everywhere here.
    let text = |key: &str| -> Result<Option<String>, ConfigError> {
        Ok(opt_with(at, key, |v| v.string())?.filter(|s| !s.trim().is_empty()))
    };
    let port = match at.opt("port")? {
        Some(c) if matches!(c.node, Node::Str(s) if s.trim().is_empty()) => None,
        Some(c) => Some(c.at().port()?),
        None => None,
    };
    let create_replica_methods = match at.opt("create_replica_methods")? {
        Some(c) => name_list(&c.at())?,
        None => Vec::new(),
    };
    let sc = StandbyCluster {
        host: text("host")?,
        port,
        primary_slot_name: text("primary_slot_name")?,
        create_replica_methods,
        restore_command: text("restore_command")?,
        archive_cleanup_command: text("archive_cleanup_command")?,
        recovery_min_apply_delay: text("recovery_min_apply_delay")?,
    };
    let is_standby = sc.host.is_some() || sc.port.is_some() || sc.restore_command.is_some();
    Ok(is_standby.then_some(sc))
}

fn permanent_slots(at: &At<'_>) -> Result<Map<String, Value>, ConfigError> {
    let mut out = Map::new();
    for (name, _) in at.entries()? {
        let Some(slot) = at.opt(name)? else {
            // `slots: {name: }` is the shortest way to ask for a physical slot.
            out.insert(name.clone(), json!({"type": "physical"}));
            continue;
        };
        let slot = slot.at();
        slot.entries()?;
        let kind = opt_with(&slot, "type", |v| v.string())?.unwrap_or_else(|| "physical".to_string());
        match kind.as_str() {
            "physical" => {}
            "logical" => {
                for key in ["database", "plugin"] {
                    if !slot.has(key) {
                        return Err(ConfigError::new(
                            slot.child_path(key),
                            "required key is missing (a logical slot needs database and plugin)",
                        ));
                    }
                    slot.req(key)?.at().non_empty_string()?;
                }
            }
            other => {
                return Err(ConfigError::new(
                    slot.child_path("type"),
                    format!("expected physical or logical, got {}", crate::yaml::quote(other)),
                ));
            }
        }
        out.insert(name.clone(), slot.node.to_json());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dynamic(yaml: &str) -> Result<DynamicConfig, ConfigError> {
        parse_dynamic(&crate::yaml::parse(yaml).unwrap().to_json(), "bootstrap.dcs")
    }

    fn err(yaml: &str) -> String {
        dynamic(yaml).unwrap_err().to_string()
    }

    #[test]
    fn defaults_for_an_empty_config() {
        let d = parse_dynamic(&Value::Null, "").unwrap();
        assert_eq!(d, DynamicConfig::default());
        assert_eq!(d.raw, json!({}));
        let d = parse_dynamic(&json!({}), "").unwrap();
        assert_eq!((d.ttl, d.loop_wait, d.retry_timeout), (30, 10, 10));
        assert_eq!(d.maximum_lag_on_failover, 1_048_576);
        assert_eq!(d.primary_start_timeout, 300);
        assert!(d.use_slots);
        assert!(!d.use_pg_rewind);
        assert!(d.standby_cluster.is_none());
    }

    #[test]
    fn full_dynamic_config() {
        let d = dynamic(
            r#"
ttl: "20"
loop_wait: 5
retry_timeout: 5
maximum_lag_on_failover: 33554432
master_start_timeout: 30
primary_race_backoff: 2
check_timeline: on
pause: no
failsafe_mode: yes
synchronous_mode: quorum
postgresql:
  use_pg_rewind: true
  use_slots: off
  parameters:
    wal_level: replica
    hot_standby: on
    max_connections: 200
    archive_command: null
  pg_hba:
    - host replication replicator 0.0.0.0/0 md5
slots:
  keep_me:
  logical1: {type: logical, database: app, plugin: pgoutput}
"#,
        )
        .unwrap();
        assert_eq!((d.ttl, d.loop_wait, d.retry_timeout), (20, 5, 5));
        assert_eq!(d.maximum_lag_on_failover, 33_554_432);
        assert_eq!(d.primary_start_timeout, 30);
        assert_eq!(d.primary_race_backoff, 2);
        assert!(d.check_timeline && !d.pause && d.failsafe_mode);
        assert!(d.use_pg_rewind && !d.use_slots);
        assert_eq!(d.parameters["hot_standby"], json!(true));
        assert_eq!(d.parameters["max_connections"], json!(200));
        assert_eq!(
            d.pg_hba.as_deref(),
            Some(&["host replication replicator 0.0.0.0/0 md5".to_string()][..])
        );
        assert_eq!(d.slots["keep_me"], json!({"type": "physical"}));
        assert_eq!(d.slots["logical1"]["plugin"], json!("pgoutput"));
        assert_eq!(d.raw["synchronous_mode"], json!("quorum"));
        assert_eq!(d.raw["ttl"], json!("20"));
    }

    #[test]
    fn primary_start_timeout_wins_over_legacy_name() {
        let d = dynamic("primary_start_timeout: 0\nmaster_start_timeout: 60").unwrap();
        assert_eq!(d.primary_start_timeout, 0);
    }

    #[test]
    fn timing_rule() {
        let e = dynamic("ttl: 20\nloop_wait: 5\nretry_timeout: 10").unwrap_err();
        assert_eq!(e.path, "bootstrap.dcs");
        assert_eq!(e.message, "loop_wait + 2*retry_timeout (25) must not exceed ttl (20)");
        assert_eq!(
            e.to_string(),
            "bootstrap.dcs: loop_wait + 2*retry_timeout (25) must not exceed ttl (20)"
        );
        let e = parse_dynamic(&json!({"ttl": 20, "loop_wait": 5, "retry_timeout": 10}), "").unwrap_err();
        assert_eq!(
            e.to_string(),
            "loop_wait + 2*retry_timeout (25) must not exceed ttl (20)"
        );
        // Exactly equal is allowed, and so is a short ttl that still fits.
        assert!(dynamic("ttl: 25\nloop_wait: 5\nretry_timeout: 10").is_ok());
        let d = dynamic("ttl: 5\nloop_wait: 1\nretry_timeout: 2").unwrap();
        assert_eq!(d.ttl, 5);
    }

    #[test]
    fn huge_values_do_not_overflow_the_timing_rule() {
        let e = err("ttl: 4294967295\nloop_wait: 4294967295\nretry_timeout: 4294967295");
        assert!(e.contains("must not exceed ttl (4294967295)"), "{e}");
        assert_eq!(
            err("ttl: 4294967296"),
            "bootstrap.dcs.ttl: expected an integer from 5 to 4294967295, got 4294967296"
        );
    }

    #[test]
    fn minimums() {
        assert_eq!(err("ttl: 4"), "bootstrap.dcs.ttl: expected an integer >= 5, got 4");
        assert_eq!(
            err("loop_wait: ten"),
            r#"bootstrap.dcs.loop_wait: expected an integer >= 1, got "ten""#
        );
        assert!(err("retry_timeout: 0").starts_with("bootstrap.dcs.retry_timeout: expected an integer"));
        assert!(err("maximum_lag_on_failover: -1").starts_with("bootstrap.dcs.maximum_lag_on_failover"));
    }

    #[test]
    fn type_errors_name_the_path() {
        assert_eq!(
            err("pause: maybe"),
            r#"bootstrap.dcs.pause: expected a boolean, got "maybe""#
        );
        assert_eq!(
            err("postgresql: {parameters: {shared_buffers: [1]}}"),
            "bootstrap.dcs.postgresql.parameters.shared_buffers: expected a parameter value (string, number or boolean), got a list"
        );
        assert_eq!(
            err("postgresql: {pg_hba: [host all all 0/0 md5, [x]]}"),
            "bootstrap.dcs.postgresql.pg_hba[1]: expected a string, got a list"
        );
        assert_eq!(
            err("postgresql: [1]"),
            "bootstrap.dcs.postgresql: expected a map, got a list"
        );
        assert_eq!(
            parse_dynamic(&json!([1]), "bootstrap.dcs").unwrap_err().to_string(),
            "bootstrap.dcs: expected a map, got a list"
        );
    }

    #[test]
    fn standby_cluster_needs_host_port_or_restore_command() {
        let d = dynamic(
            "standby_cluster:\n  host: 10.0.0.1\n  port: '5433'\n  primary_slot_name: patroni\n  create_replica_methods: [pgbackrest, basebackup]\n  recovery_min_apply_delay: 300\n",
        )
        .unwrap();
        let sc = d.standby_cluster.unwrap();
        assert_eq!(sc.host.as_deref(), Some("10.0.0.1"));
        assert_eq!(sc.port, Some(5433));
        assert_eq!(sc.primary_slot_name.as_deref(), Some("patroni"));
        assert_eq!(sc.create_replica_methods, ["pgbackrest", "basebackup"]);
        assert_eq!(sc.recovery_min_apply_delay.as_deref(), Some("300"));

        let d = dynamic("standby_cluster:\n  restore_command: cp /a/%f %p").unwrap();
        assert_eq!(
            d.standby_cluster.unwrap().restore_command.as_deref(),
            Some("cp /a/%f %p")
        );

        for none in [
            "standby_cluster:",
            "standby_cluster: {primary_slot_name: x}",
            "standby_cluster: {host: '', port: ''}",
        ] {
            assert!(dynamic(none).unwrap().standby_cluster.is_none(), "{none}");
        }
        assert_eq!(
            err("standby_cluster: {port: 70000}"),
            "bootstrap.dcs.standby_cluster.port: expected an integer from 1 to 65535, got 70000"
        );
    }

    #[test]
    fn slot_errors() {
        assert_eq!(
            err("slots: {s: {type: logical, database: app}}"),
            "bootstrap.dcs.slots.s.plugin: required key is missing (a logical slot needs database and plugin)"
        );
        assert_eq!(
            err("slots: {s: {type: magic}}"),
            r#"bootstrap.dcs.slots.s.type: expected physical or logical, got "magic""#
        );
        assert_eq!(err("slots: {s: 1}"), "bootstrap.dcs.slots.s: expected a map, got 1");
    }
}
