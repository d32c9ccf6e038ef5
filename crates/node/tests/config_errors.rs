//! Bad configuration is refused before anything is touched: non-zero exit, the key path and what was
//! expected in the message, no data directory created. Also the refusal to run as root.

use ferroni_testkit::node::postgres_tempdir;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ferroni");

const GOOD: &str = r#"
name: n0
scope: s
restapi:
  listen: 127.0.0.1:18001
etcd3:
  hosts: 127.0.0.1:1
bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
postgresql:
  listen: 127.0.0.1:15001
  data_dir: DATA
"#;

fn run(yaml: &str, args: &[&str]) -> (Option<i32>, String, std::path::PathBuf, tempfile::TempDir) {
    let dir = postgres_tempdir();
    let data = dir.path().join("data");
    let path = dir.path().join("bad.yml");
    std::fs::write(&path, yaml.replace("DATA", &data.display().to_string())).unwrap();
    let out = Command::new(BIN).args(args).arg(&path).output().expect("run ferroni");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text, data, dir)
}

fn refused(yaml: &str, expected: &str) {
    let (code, text, data, _dir) = run(yaml, &[]);
    assert_ne!(code, Some(0), "accepted: {yaml}");
    assert!(text.contains(expected), "expected {expected:?} in {text:?}");
    assert!(!data.exists(), "nothing may be created for a bad config");
}

#[test]
fn wrong_type_names_the_key_path() {
    refused(
        &GOOD.replace("loop_wait: 10", "loop_wait: ten"),
        r#"bootstrap.dcs.loop_wait: expected an integer >= 1, got "ten""#,
    );
}

#[test]
fn contradictory_timing_is_refused() {
    refused(
        &GOOD
            .replace("ttl: 30", "ttl: 20")
            .replace("loop_wait: 10", "loop_wait: 5"),
        "loop_wait + 2*retry_timeout (25) must not exceed ttl (20)",
    );
}

#[test]
fn missing_required_key_is_refused() {
    refused(&GOOD.replace("  data_dir: DATA\n", ""), "postgresql.data_dir");
}

#[test]
fn malformed_yaml_is_refused() {
    refused("name: [unclosed\n", "line");
}

#[test]
fn unsupported_dcs_is_refused() {
    refused(&GOOD.replace("etcd3:", "consul:"), "consul");
}

#[test]
fn forbidden_initdb_option_is_refused() {
    refused(
        &GOOD.replace("bootstrap:\n", "bootstrap:\n  initdb:\n    - pgdata: /x\n"),
        "bootstrap.initdb",
    );
}

#[test]
fn breaking_basebackup_option_is_refused() {
    refused(
        &GOOD.replace(
            "  data_dir: DATA\n",
            "  data_dir: DATA\n  basebackup:\n    - format: tar\n",
        ),
        "postgresql.basebackup",
    );
}

#[test]
fn misnamed_bootstrap_method_is_refused() {
    refused(
        &GOOD.replace("bootstrap:\n", "bootstrap:\n  method: clone\n"),
        "bootstrap.clone",
    );
}

#[test]
fn validate_config_accepts_a_good_file_and_touches_nothing() {
    let (code, text, data, _dir) = run(GOOD, &["--validate-config"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!data.exists());
}

#[test]
fn json_config_loads() {
    let json = r#"{"name": "n0", "scope": "s", "restapi": {"listen": "127.0.0.1:18001"},
        "etcd3": {"hosts": "127.0.0.1:1"}, "postgresql": {"listen": "127.0.0.1:15001", "data_dir": "DATA"}}"#;
    let (code, text, _, _dir) = run(json, &["--validate-config"]);
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn unknown_section_is_warned_about() {
    let (code, text, _, _dir) = run(&format!("{GOOD}\nfoo:\n  bar: 1\n"), &["--validate-config"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("foo"), "{text}");
}

#[test]
fn refuses_to_run_as_root() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: nothing to check");
        return;
    }
    let (code, text, data, _dir) = run(GOOD, &[]);
    assert_eq!(code, Some(1));
    assert!(
        text.contains("refusing to run as root") && text.contains("runuser -u postgres"),
        "{text}"
    );
    assert!(!data.exists());
}
