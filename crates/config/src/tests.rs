//! Whole-configuration tests: realistic Patroni files in, typed values or exact messages out.

use crate::*;
use ferroni_model::{BootstrapMethod, Credentials, ReplicaMethod, VerifyClient, WatchdogMode};
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn no_env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn ok(yaml: &str) -> Loaded {
    match parse_str(yaml, &no_env()) {
        Ok(l) => l,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn err(yaml: &str) -> String {
    match parse_str(yaml, &no_env()) {
        Ok(l) => panic!("expected an error, got {:?}", l.config),
        Err(e) => e.to_string(),
    }
}

/// The smallest valid configuration, plus `extra` appended at the top level.
fn minimal(extra: &str) -> String {
    format!(
        "name: pg1\nscope: demo\nrestapi:\n  listen: 10.0.0.1:8008\netcd3:\n  hosts: 10.0.0.5:2379\npostgresql:\n  listen: 10.0.0.1:5432\n  data_dir: /data/pg\n{extra}"
    )
}

/// Replaces the whole `postgresql` section of [`minimal`].
fn with_postgresql(section: &str) -> String {
    format!(
        "name: pg1\nscope: demo\nrestapi:\n  listen: 10.0.0.1:8008\netcd3:\n  hosts: 10.0.0.5:2379\npostgresql:\n  listen: 10.0.0.1:5432\n  data_dir: /data/pg\n{section}"
    )
}

const FULL: &str = r#"
scope: batman
namespace: /service
name: postgresql0

x-common-auth: &auth
  username: admin
  password: 's3cr3t'

restapi:
  listen: 0.0.0.0:8008
  connect_address: 10.0.0.11:8008
  certfile: /etc/ssl/certs/rest.pem
  keyfile: /etc/ssl/private/rest.key
  authentication: *auth

ctl:
  insecure: off
  authentication:
    <<: *auth
    username: ctl-user

etcd3:
  hosts:
    - 10.0.0.21:2379
    - https://10.0.0.22:2379
    - etcd3.example.com
  username: etcd-user
  password: etcd-pass

bootstrap:
  dcs:
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
    maximum_lag_on_failover: 1048576
    master_start_timeout: 120
    synchronous_mode: off
    postgresql:
      use_pg_rewind: true
      use_slots: yes
      parameters: &params
        wal_level: hot_standby
        hot_standby: "on"
        archive_mode: on
        archive_command: /bin/true
        max_wal_senders: 10
        unix_socket_permissions: 0770
    standby_cluster:
      host: 10.1.0.1
      port: 5432
      primary_slot_name: patroni
      create_replica_methods:
        - pgbackrest
        - basebackup
  method: pitr
  pitr:
    command: /usr/local/bin/restore.sh --stanza='main db'
    keep_existing_recovery_conf: False
    no_params: False
    recovery_conf:
      recovery_target_action: promote
      recovery_target_timeline: latest
      restore_command: pgbackrest --stanza=main archive-get %f "%p"
    target: 2024-05-01
    verbose: true
  initdb:
    - encoding: UTF8
    - data-checksums
    - locale: en_US.UTF-8
  pg_hba:
    - host replication replicator 127.0.0.1/32 md5
  post_bootstrap: /usr/local/bin/post_bootstrap.sh

postgresql:
  listen: 0.0.0.0:5432
  connect_address: 10.0.0.11:5432
  data_dir: /var/lib/postgresql/15/main
  bin_dir: /usr/lib/postgresql/15/bin
  config_dir: /etc/postgresql/15/main
  pgpass: /tmp/pgpass0
  authentication:
    replication:
      username: replicator
      password: rep-pass
    superuser:
      username: postgres
      password: zalando
    rewind:
      username: rewind_user
      password: rewind_password
  parameters:
    <<: *params
    shared_buffers: 256MB
  pg_hba:
    - local all all trust
    - host all all 0.0.0.0/0 scram-sha-256
  callbacks:
    on_start: /usr/local/bin/cb.sh
    on_role_change: /usr/local/bin/cb.sh
  create_replica_methods:
    - wal_e
    - pgbackrest
    - basebackup
  wal_e:
    command: patroni_wale_restore
    no_leader: 1
    envdir: WALE_ENV_DIR
    use_iam: 1
  pgbackrest:
    command: /usr/bin/pgbackrest --stanza=main --delta restore
    keep_data: True
    no_params: True
  basebackup:
    max-rate: '100M'
    checkpoint: 'fast'
  use_unix_socket: yes
  pg_ctl_timeout: 90
  use_pg_rewind: on
  remove_data_directory_on_rewind_failure: yes
  remove_data_directory_on_diverged_timelines: no

watchdog:
  mode: required
  device: /dev/watchdog
  safety_margin: -1

tags:
  nofailover: false
  noloadbalance: off
  clonefrom: on
  nosync: no
  replicatefrom: postgresql1
  zone: eu-1

log:
  level: DEBUG
  format: '%(asctime)s %(levelname)s: %(message)s'
"#;

#[test]
fn full_realistic_config() {
    let Loaded { config: c, warnings } = ok(FULL);
    assert_eq!(warnings, [r#"unknown section "x-common-auth" is ignored"#]);

    assert_eq!(
        (c.name.as_str(), c.scope.as_str(), c.namespace.as_str()),
        ("postgresql0", "batman", "/service/")
    );

    assert_eq!(c.restapi.listen, "0.0.0.0:8008");
    assert_eq!(c.restapi.connect_address, "10.0.0.11:8008");
    assert_eq!(c.restapi.certfile, Some(PathBuf::from("/etc/ssl/certs/rest.pem")));
    assert_eq!(c.restapi.keyfile, Some(PathBuf::from("/etc/ssl/private/rest.key")));
    assert_eq!(
        c.restapi.authentication,
        Some(Credentials {
            username: "admin".into(),
            password: Some("s3cr3t".into())
        })
    );
    assert_eq!(
        c.ctl.authentication,
        Some(Credentials {
            username: "ctl-user".into(),
            password: Some("s3cr3t".into())
        })
    );
    assert!(!c.ctl.insecure);

    assert_eq!(
        c.etcd3.hosts,
        ["10.0.0.21:2379", "10.0.0.22:2379", "etcd3.example.com:2379"]
    );
    assert_eq!(c.etcd3.protocol, "https");
    assert_eq!(c.etcd3.username.as_deref(), Some("etcd-user"));
    assert_eq!(c.etcd3.password.as_deref(), Some("etcd-pass"));

    // bootstrap.dcs is kept as written (YAML 1.1 `on` already a boolean) and is valid.
    let dcs = &c.bootstrap.dcs;
    assert_eq!(dcs["master_start_timeout"], json!(120));
    assert_eq!(dcs["synchronous_mode"], json!(false));
    assert_eq!(dcs["postgresql"]["parameters"]["archive_mode"], json!(true));
    assert_eq!(dcs["postgresql"]["parameters"]["hot_standby"], json!("on"));
    assert_eq!(dcs["postgresql"]["parameters"]["unix_socket_permissions"], json!(504));
    let d = parse_dynamic(dcs, "bootstrap.dcs").unwrap();
    assert_eq!(d.primary_start_timeout, 120);
    assert!(d.use_pg_rewind && d.use_slots);
    let sc = d.standby_cluster.unwrap();
    assert_eq!(sc.create_replica_methods, ["pgbackrest", "basebackup"]);
    assert_eq!(sc.port, Some(5432));

    let BootstrapMethod::Custom(pitr) = &c.bootstrap.method else {
        panic!("{:?}", c.bootstrap.method)
    };
    assert_eq!(pitr.name, "pitr");
    assert_eq!(pitr.command, ["/usr/local/bin/restore.sh", "--stanza=main db"]);
    assert!(!pitr.keep_existing_recovery_conf && !pitr.no_params);
    assert_eq!(
        pitr.recovery_conf,
        BTreeMap::from([
            ("recovery_target_action".to_string(), "promote".to_string()),
            ("recovery_target_timeline".to_string(), "latest".to_string()),
            (
                "restore_command".to_string(),
                r#"pgbackrest --stanza=main archive-get %f "%p""#.to_string()
            ),
        ])
    );
    assert_eq!(
        pitr.extra_args,
        [
            ("target".to_string(), "2024-05-01".to_string()),
            ("verbose".to_string(), "True".to_string())
        ]
    );
    assert_eq!(
        c.bootstrap.initdb,
        [
            ("encoding".to_string(), Some("UTF8".to_string())),
            ("data-checksums".to_string(), None),
            ("locale".to_string(), Some("en_US.UTF-8".to_string())),
        ]
    );
    assert_eq!(c.bootstrap.pg_hba, ["host replication replicator 127.0.0.1/32 md5"]);
    assert_eq!(
        c.bootstrap.post_bootstrap.as_deref(),
        Some("/usr/local/bin/post_bootstrap.sh")
    );

    let pg = &c.postgresql;
    assert_eq!(pg.listen, "0.0.0.0:5432");
    assert_eq!(pg.connect_address, "10.0.0.11:5432");
    assert_eq!(pg.port(), 5432);
    assert_eq!(pg.data_dir, PathBuf::from("/var/lib/postgresql/15/main"));
    assert_eq!(pg.config_dir, PathBuf::from("/etc/postgresql/15/main"));
    assert_eq!(pg.bin(""), PathBuf::from("/usr/lib/postgresql/15/bin/"));
    assert_eq!(pg.pgpass, PathBuf::from("/tmp/pgpass0"));
    assert_eq!(
        pg.superuser,
        Credentials {
            username: "postgres".into(),
            password: Some("zalando".into())
        }
    );
    assert_eq!(
        pg.replication,
        Credentials {
            username: "replicator".into(),
            password: Some("rep-pass".into())
        }
    );
    assert_eq!(
        pg.rewind,
        Some(Credentials {
            username: "rewind_user".into(),
            password: Some("rewind_password".into())
        })
    );
    assert_eq!(pg.parameters["shared_buffers"], json!("256MB"));
    assert_eq!(pg.parameters["archive_mode"], json!(true));
    assert_eq!(pg.parameters["max_wal_senders"], json!(10));
    assert_eq!(pg.pg_hba.as_ref().unwrap().len(), 2);
    assert_eq!(pg.callbacks.keys().collect::<Vec<_>>(), ["on_role_change", "on_start"]);
    assert_eq!(pg.create_replica_methods, ["wal_e", "pgbackrest", "basebackup"]);
    assert_eq!(
        pg.replica_methods["wal_e"],
        ReplicaMethod {
            name: "wal_e".into(),
            command: vec!["patroni_wale_restore".into()],
            no_leader: true,
            keep_data: false,
            no_params: false,
            extra_args: vec![("envdir".into(), "WALE_ENV_DIR".into()), ("use_iam".into(), "1".into())],
        }
    );
    let pgbackrest = &pg.replica_methods["pgbackrest"];
    assert_eq!(
        pgbackrest.command,
        ["/usr/bin/pgbackrest", "--stanza=main", "--delta", "restore"]
    );
    assert!(pgbackrest.keep_data && pgbackrest.no_params && !pgbackrest.no_leader);
    assert_eq!(pg.replica_methods.len(), 2);
    assert_eq!(
        pg.basebackup,
        [
            ("max-rate".to_string(), Some("100M".to_string())),
            ("checkpoint".to_string(), Some("fast".to_string()))
        ]
    );
    assert!(pg.use_unix_socket);
    assert_eq!(pg.pg_ctl_timeout, 90);
    assert_eq!(pg.use_pg_rewind, Some(true));
    assert!(pg.remove_data_directory_on_rewind_failure);
    assert!(!pg.remove_data_directory_on_diverged_timelines);

    assert_eq!(c.watchdog.mode, WatchdogMode::Required);
    assert_eq!(c.watchdog.device, Some(PathBuf::from("/dev/watchdog")));
    assert_eq!(c.watchdog.safety_margin, -1);

    assert!(!c.tags.nofailover && c.tags.clonefrom && !c.tags.noloadbalance && !c.tags.nosync);
    assert_eq!(c.tags.failover_priority, None);
    assert_eq!(c.tags.replicatefrom.as_deref(), Some("postgresql1"));
    assert_eq!(c.tags.all["zone"], json!("eu-1"));
    assert_eq!(c.tags.all["clonefrom"], json!(true));

    assert_eq!(c.log.level, "debug");
    assert!(!c.log.json);
}

#[test]
fn minimal_config_defaults() {
    let Loaded { config: c, warnings } = ok(&minimal(""));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.namespace, "/service/");
    assert_eq!(c.restapi.connect_address, "10.0.0.1:8008");
    assert_eq!(c.restapi.authentication, None);
    assert_eq!(c.postgresql.connect_address, "10.0.0.1:5432");
    assert_eq!(c.postgresql.bin_dir, PathBuf::from("/usr/lib/postgresql/15/bin"));
    assert_eq!(c.postgresql.config_dir, PathBuf::from("/data/pg"));
    assert_eq!(c.postgresql.pgpass, PathBuf::from("/tmp/pgpass_pg1"));
    assert_eq!(c.postgresql.pg_ctl_timeout, 60);
    assert_eq!(
        c.postgresql.superuser,
        Credentials {
            username: "postgres".into(),
            password: None
        }
    );
    assert_eq!(c.postgresql.replication.username, "replicator");
    assert_eq!(c.postgresql.rewind, None);
    assert!(c.postgresql.create_replica_methods.is_empty());
    assert!(c.postgresql.basebackup.is_empty());
    assert_eq!(c.postgresql.pg_hba, None);
    assert_eq!(c.postgresql.use_pg_rewind, None);
    assert_eq!(c.bootstrap.method, BootstrapMethod::Initdb);
    assert_eq!(c.bootstrap.dcs, json!({}));
    assert_eq!(c.etcd3.hosts, ["10.0.0.5:2379"]);
    assert_eq!(c.etcd3.protocol, "http");
    assert_eq!(c.etcd3.endpoints(), ["http://10.0.0.5:2379"]);
    assert_eq!(c.watchdog.mode, WatchdogMode::Automatic);
    assert_eq!(c.watchdog.safety_margin, 5);
    assert_eq!(c.log.level, "info");
    assert_eq!(c.tags, Default::default());
}

#[test]
fn namespace_is_normalised() {
    for (given, expected) in [
        ("/service", "/service/"),
        ("service", "/service/"),
        ("//a//b/", "/a/b/"),
        ("/", "/"),
        ("", "/"),
    ] {
        let c = ok(&minimal(&format!("namespace: '{given}'\n"))).config;
        assert_eq!(c.namespace, expected, "{given}");
    }
}

#[test]
fn initdb_map_form_and_basebackup_list_form() {
    let c = ok(&with_postgresql(
        "  basebackup:\n    - verbose\n    - max-rate: '100M'\n    - waldir: /pg-wal-mount/external-waldir\nbootstrap:\n  initdb:\n    encoding: UTF8\n    data-checksums:\n    locale: C\n",
    ))
    .config;
    assert_eq!(
        c.bootstrap.initdb,
        [
            ("encoding".to_string(), Some("UTF8".to_string())),
            ("data-checksums".to_string(), None),
            ("locale".to_string(), Some("C".to_string()))
        ]
    );
    assert_eq!(
        c.postgresql.basebackup,
        [
            ("verbose".to_string(), None),
            ("max-rate".to_string(), Some("100M".to_string())),
            ("waldir".to_string(), Some("/pg-wal-mount/external-waldir".to_string())),
        ]
    );
}

#[test]
fn json_input_loads() {
    let text = r#"{
        "name": "pg1", "scope": "demo",
        "restapi": {"listen": "127.0.0.1:8008"},
        "etcd3": {"host": "127.0.0.1:2379"},
        "postgresql": {"listen": "127.0.0.1:5432", "data_dir": "/d", "parameters": {"max_connections": 100}},
        "bootstrap": {"dcs": {"ttl": 30}, "initdb": ["data-checksums", {"encoding": "UTF8"}]},
        "tags": {"nofailover": true}
    }"#;
    let c = ok(text).config;
    assert_eq!(c.etcd3.hosts, ["127.0.0.1:2379"]);
    assert_eq!(c.postgresql.parameters["max_connections"], json!(100));
    assert_eq!(c.bootstrap.initdb.len(), 2);
    assert!(c.tags.nofailover);
}

#[test]
fn duplicate_keys_are_rejected() {
    let e = err(&minimal("scope: other\n"));
    assert!(e.starts_with("duplicate mapping key: scope"), "{e}");
}

#[test]
fn yaml_syntax_errors_have_no_path_and_a_location() {
    let e = parse_str("name: [pg1\nscope: x\n", &no_env()).unwrap_err();
    assert_eq!(e.path, "");
    assert!(e.message.contains("line") && e.message.contains("column"), "{e}");
}

#[test]
fn required_keys() {
    assert_eq!(err(""), "the configuration is empty");
    assert_eq!(
        err("- a\n- b"),
        "the configuration must be a map of sections, got a list"
    );
    assert_eq!(
        err(&minimal("").replace("name: pg1\n", "")),
        "name: required key is missing"
    );
    assert_eq!(
        err(&minimal("").replace("scope: demo\n", "scope:\n")),
        "scope: required key has no value"
    );
    assert_eq!(
        err(&minimal("").replace("  data_dir: /data/pg\n", "")),
        "postgresql.data_dir: required key is missing"
    );
    assert_eq!(
        err(&minimal("").replace("  listen: 10.0.0.1:8008\n", "  connect_address: 10.0.0.1:8008\n")),
        "restapi.listen: required key is missing"
    );
    assert_eq!(
        err(&minimal("").replace("  listen: 10.0.0.1:5432\n", "")),
        "postgresql.listen: required key is missing"
    );
    assert_eq!(
        err(&minimal("").replace("restapi:\n  listen: 10.0.0.1:8008\n", "")),
        "restapi: required key is missing"
    );
    assert_eq!(
        err(&minimal("").replace("  data_dir: /data/pg\n", "  data_dir: ''\n")),
        "postgresql.data_dir: must not be empty"
    );
}

#[test]
fn etcd3_is_required_and_the_only_dcs() {
    let no_dcs = minimal("").replace("etcd3:\n  hosts: 10.0.0.5:2379\n", "");
    assert_eq!(err(&no_dcs), "etcd3: required key is missing");
    let consul = minimal("").replace("etcd3:\n  hosts: 10.0.0.5:2379\n", "consul:\n  host: 127.0.0.1:8500\n");
    assert_eq!(
        err(&consul),
        r#"consul: ferroni supports only etcd3 as its DCS, but this configuration uses "consul""#
    );
    let etcd2 = minimal("").replace("etcd3:", "etcd:");
    let e = err(&etcd2);
    assert!(
        e.starts_with(r#"etcd: ferroni supports only etcd3 as its DCS, but this configuration uses "etcd""#),
        "{e}"
    );
    for dcs in ["zookeeper", "kubernetes", "raft", "exhibitor"] {
        let e = err(&minimal("").replace("etcd3:\n  hosts: 10.0.0.5:2379\n", &format!("{dcs}:\n  hosts: [x]\n")));
        assert!(e.starts_with(&format!("{dcs}: ferroni supports only etcd3")), "{e}");
    }
    let both = ok(&minimal("consul:\n  host: x:8500\n"));
    assert_eq!(
        both.warnings,
        [r#"section "consul" is ignored: ferroni supports only etcd3"#]
    );
    assert_eq!(
        err(&minimal("").replace("  hosts: 10.0.0.5:2379\n", "  protocol: http\n")),
        "etcd3: needs host or hosts (the etcd endpoints)"
    );
    assert_eq!(
        err(&minimal("").replace("  hosts: 10.0.0.5:2379\n", "  srv: example.com\n")),
        "etcd3.srv: is not supported by ferroni; list the etcd endpoints in etcd3.hosts"
    );
}

#[test]
fn etcd3_host_forms() {
    let hosts = |section: &str| {
        ok(&minimal("").replace("etcd3:\n  hosts: 10.0.0.5:2379\n", section))
            .config
            .etcd3
    };
    assert_eq!(
        hosts("etcd3:\n  hosts: 'a:2379, b:2380,c'\n").hosts,
        ["a:2379", "b:2380", "c:2379"]
    );
    assert_eq!(
        hosts("etcd3:\n  hosts: [a, '[::1]:2379', '[::2]']\n").hosts,
        ["a:2379", "[::1]:2379", "[::2]:2379"]
    );
    assert_eq!(hosts("etcd3:\n  host: e:1\n").hosts, ["e:1"]);
    let url = hosts("etcd3:\n  url: https://e.example:2379/\n");
    assert_eq!(
        (url.hosts, url.protocol),
        (vec!["e.example:2379".to_string()], "https".to_string())
    );
    let explicit = hosts("etcd3:\n  hosts: [https://a]\n  protocol: HTTP\n");
    assert_eq!(explicit.protocol, "http");
    assert_eq!(
        err(&minimal("").replace("  hosts: 10.0.0.5:2379\n", "  hosts: [a, 'b:x']\n")),
        r#"etcd3.hosts[1]: expected host:port, got "b:x""#
    );
    assert_eq!(
        err(&minimal("").replace("  hosts: 10.0.0.5:2379\n", "  hosts: 'a,b:0'\n")),
        r#"etcd3.hosts: expected host:port, got "b:0""#
    );
    assert_eq!(
        err(&minimal("").replace("  hosts: 10.0.0.5:2379\n", "  hosts: a\n  protocol: ftp\n")),
        r#"etcd3.protocol: expected http or https, got "ftp""#
    );
    let both = ok(&minimal("").replace("  hosts: 10.0.0.5:2379\n", "  hosts: a\n  host: b\n"));
    assert_eq!(both.config.etcd3.hosts, ["a:2379"]);
    assert_eq!(both.warnings, ["etcd3.host is ignored because etcd3.hosts is set"]);
}

#[test]
fn address_errors() {
    assert_eq!(
        err(&minimal("").replace("listen: 10.0.0.1:8008", "listen: abc")),
        r#"restapi.listen: expected host:port, got "abc""#
    );
    assert_eq!(
        err(&minimal("").replace("listen: 10.0.0.1:8008", "listen: a:99999")),
        r#"restapi.listen: expected host:port, got "a:99999""#
    );
    assert_eq!(
        err(&minimal("").replace("listen: 10.0.0.1:8008", "listen: [a]")),
        "restapi.listen: expected a string, got a list"
    );
    assert_eq!(
        err(&minimal("").replace("listen: 10.0.0.1:5432", "listen: 10.0.0.1:5432\n  connect_address: x")),
        r#"postgresql.connect_address: expected host:port, got "x""#
    );
    // Several listen addresses for PostgreSQL; the first is what others connect to.
    let c = ok(&minimal("").replace("listen: 10.0.0.1:5432", "listen: '10.0.0.1, 127.0.0.1:5433'")).config;
    assert_eq!(c.postgresql.connect_address, "10.0.0.1:5433");
    assert_eq!(c.postgresql.port(), 5433);
    let ipv6 = ok(&minimal("").replace("listen: 10.0.0.1:8008", "listen: '[::1]:8008'")).config;
    assert_eq!(ipv6.restapi.connect_address, "[::1]:8008");
}

#[test]
fn wildcard_listen_without_connect_address_warns() {
    let l = ok(&minimal("").replace("listen: 10.0.0.1:8008", "listen: 0.0.0.0:8008"));
    assert_eq!(l.config.restapi.connect_address, "0.0.0.0:8008");
    assert_eq!(
        l.warnings,
        [
            "restapi.connect_address is not set and restapi.listen (0.0.0.0:8008) is not an address other members can reach; set restapi.connect_address"
        ]
    );
    let l = ok(&minimal("").replace("listen: 10.0.0.1:5432", "listen: '*:5432'"));
    assert!(
        l.warnings[0].starts_with("postgresql.connect_address is not set"),
        "{:?}",
        l.warnings
    );
}

#[test]
fn bootstrap_errors() {
    assert_eq!(
        err(&minimal("bootstrap:\n  initdb:\n    - pgdata: /x\n")),
        r#"bootstrap.initdb: option "pgdata" is not allowed (ferroni sets it)"#
    );
    assert_eq!(
        err(&minimal("bootstrap:\n  initdb:\n    - --pgdata\n")),
        r#"bootstrap.initdb: option "pgdata" is not allowed (ferroni sets it)"#
    );
    assert_eq!(
        err(&minimal("bootstrap:\n  method: clone\n")),
        r#"bootstrap.method: names "clone", but there is no section bootstrap.clone"#
    );
    assert_eq!(
        err(&minimal(
            "bootstrap:\n  method: clone\n  clone:\n    keep_existing_recovery_conf: true\n"
        )),
        "bootstrap.clone.command: required key is missing"
    );
    assert_eq!(
        err(&minimal(
            "bootstrap:\n  dcs:\n    ttl: 20\n    loop_wait: 5\n    retry_timeout: 10\n"
        )),
        "bootstrap.dcs: loop_wait + 2*retry_timeout (25) must not exceed ttl (20)"
    );
    assert_eq!(
        err(&minimal("bootstrap:\n  dcs:\n    loop_wait: ten\n")),
        r#"bootstrap.dcs.loop_wait: expected an integer >= 1, got "ten""#
    );
    assert_eq!(
        err(&minimal("bootstrap:\n  pg_hba: host all all 0/0 md5\n")),
        r#"bootstrap.pg_hba: expected a list, got "host all all 0/0 md5""#
    );
    assert_eq!(
        err(&minimal("bootstrap: [1]\n")),
        "bootstrap: expected a map, got a list"
    );
}

#[test]
fn bootstrap_legacy_and_removed_keys() {
    let l = ok(&minimal(
        "bootstrap:\n  post_init: /bin/post\n  users:\n    admin: {password: x}\n",
    ));
    assert_eq!(l.config.bootstrap.post_bootstrap.as_deref(), Some("/bin/post"));
    assert_eq!(
        l.warnings,
        ["bootstrap.users is ignored: Patroni 4 removed it; create users in bootstrap.post_bootstrap"]
    );
}

#[test]
fn replica_method_errors() {
    assert_eq!(
        err(&with_postgresql(
            "  create_replica_methods:\n    - basebackup\n    - wal_e\n"
        )),
        r#"postgresql.create_replica_methods[1]: method "wal_e" has no section postgresql.wal_e"#
    );
    assert_eq!(
        err(&with_postgresql(
            "  create_replica_methods: [wal_e]\n  wal_e:\n    envdir: /x\n"
        )),
        "postgresql.wal_e.command: required key is missing"
    );
    assert_eq!(
        err(&with_postgresql(
            "  create_replica_methods: [wal_e]\n  wal_e: patroni_wale_restore\n"
        )),
        r#"postgresql.wal_e: expected a map, got "patroni_wale_restore""#
    );
    assert_eq!(
        err(&minimal(
            "bootstrap:\n  dcs:\n    standby_cluster:\n      host: 10.0.0.9\n      create_replica_methods: [basebackup, pgbackrest]\n"
        )),
        r#"bootstrap.dcs.standby_cluster.create_replica_methods[1]: method "pgbackrest" has no section postgresql.pgbackrest"#
    );
    assert_eq!(
        err(&with_postgresql("  create_replica_methods: {a: 1}\n")),
        "postgresql.create_replica_methods: expected a list of names, got a map"
    );
}

#[test]
fn legacy_create_replica_method_and_standby_methods() {
    let c = ok(&with_postgresql(
        "  create_replica_method:\n    - wal_e\n    - basebackup\n  wal_e:\n    command: patroni_wale_restore\n    no_master: 1\n  restore:\n    command: /bin/restore\n    no_leader: true\nbootstrap:\n  dcs:\n    standby_cluster:\n      host: 10.0.0.9\n      create_replica_methods: [restore]\n",
    ))
    .config;
    assert_eq!(c.postgresql.create_replica_methods, ["wal_e", "basebackup"]);
    assert!(c.postgresql.replica_methods["wal_e"].no_leader);
    assert!(c.postgresql.replica_methods["restore"].no_leader);
}

#[test]
fn standby_methods_as_a_comma_separated_string() {
    let c = ok(&with_postgresql(
        "  restore:\n    command: /bin/restore\nbootstrap:\n  dcs:\n    standby_cluster:\n      restore_command: cp %f %p\n      create_replica_methods: 'restore, basebackup'\n",
    ))
    .config;
    assert!(c.postgresql.replica_methods.contains_key("restore"));
    let d = parse_dynamic(&c.bootstrap.dcs, "bootstrap.dcs").unwrap();
    assert_eq!(
        d.standby_cluster.unwrap().create_replica_methods,
        ["restore", "basebackup"]
    );
    assert_eq!(
        err(&minimal(
            "bootstrap:\n  dcs:\n    standby_cluster:\n      host: h\n      create_replica_methods: 'basebackup,nope'\n"
        )),
        r#"bootstrap.dcs.standby_cluster.create_replica_methods: method "nope" has no section postgresql.nope"#
    );
}

#[test]
fn broken_unlisted_method_sections_only_warn() {
    let l = ok(&with_postgresql("  restore:\n    command: \"x 'y\"\n"));
    assert!(!l.config.postgresql.replica_methods.contains_key("restore"));
    assert_eq!(
        l.warnings,
        [
            "postgresql.restore.command: cannot split the command into words: unterminated single quote (the section is not named by any create_replica_methods list)"
        ]
    );
}

#[test]
fn unlisted_method_sections_are_kept_and_reported() {
    let l = ok(&with_postgresql(
        "  pgbackrest:\n    command: pgbackrest restore\n    keep_data: true\n",
    ));
    assert!(l.config.postgresql.replica_methods.contains_key("pgbackrest"));
    assert_eq!(
        l.warnings,
        [
            "postgresql.pgbackrest looks like a replica method (it has a command), but no create_replica_methods list names it"
        ]
    );
}

#[test]
fn basebackup_errors() {
    assert_eq!(
        err(&with_postgresql("  basebackup:\n    format: tar\n")),
        r#"postgresql.basebackup: option "format" is not allowed (ferroni needs a plain data directory)"#
    );
    assert_eq!(
        err(&with_postgresql("  basebackup:\n    - -X: fetch\n")),
        r#"postgresql.basebackup: option "-X" is not allowed (use long option names, such as "max-rate")"#
    );
    let c = ok(&with_postgresql("  basebackup:\n    compress: server-lz4\n")).config;
    assert_eq!(
        c.postgresql.basebackup,
        [("compress".to_string(), Some("server-lz4".to_string()))]
    );
}

#[test]
fn postgresql_section_errors() {
    assert_eq!(
        err(&with_postgresql("  callbacks:\n    on_promote: /bin/x\n")),
        "postgresql.callbacks.on_promote: unknown callback (expected one of on_start, on_stop, on_restart, on_reload, on_role_change)"
    );
    assert_eq!(
        err(&with_postgresql("  callbacks:\n    on_start: [x]\n")),
        "postgresql.callbacks.on_start: expected a string, got a list"
    );
    assert_eq!(
        err(&with_postgresql(
            "  pg_hba:\n    - local all all trust\n    - 5\n    - [x]\n"
        )),
        "postgresql.pg_hba[2]: expected a string, got a list"
    );
    assert_eq!(
        err(&with_postgresql(
            "  parameters:\n    shared_preload_libraries:\n      - pg_stat_statements\n"
        )),
        "postgresql.parameters.shared_preload_libraries: expected a parameter value (string, number or boolean), got a list"
    );
    assert_eq!(
        err(&with_postgresql("  parameters: [a]\n")),
        "postgresql.parameters: expected a map, got a list"
    );
    assert_eq!(
        err(&with_postgresql("  pg_ctl_timeout: soon\n")),
        r#"postgresql.pg_ctl_timeout: expected an integer >= 1, got "soon""#
    );
    assert_eq!(
        err(&with_postgresql("  use_unix_socket: sometimes\n")),
        r#"postgresql.use_unix_socket: expected a boolean, got "sometimes""#
    );
    assert_eq!(
        err(&with_postgresql("  use_pg_rewind: [x]\n")),
        "postgresql.use_pg_rewind: expected a boolean, got a list"
    );
    assert_eq!(
        err(&with_postgresql("  authentication:\n    rewind:\n      password: x\n")),
        "postgresql.authentication.rewind.username: required key is missing"
    );
    assert_eq!(
        err(&with_postgresql("  authentication:\n    superuser: admin\n")),
        r#"postgresql.authentication.superuser: expected a map, got "admin""#
    );
    assert_eq!(
        err(&minimal("").replace(
            "  listen: 10.0.0.1:8008\n",
            "  listen: 10.0.0.1:8008\n  authentication:\n    password: x\n"
        )),
        "restapi.authentication.username: required key is missing"
    );
    // An explicit empty bin_dir means PATH lookup.
    let c = ok(&with_postgresql("  bin_dir: ''\n")).config;
    assert_eq!(c.postgresql.bin("pg_ctl"), PathBuf::from("pg_ctl"));
}

#[test]
fn tags() {
    let t = ok(&minimal(
        "tags:\n  nofailover: 'yes'\n  failover_priority: 3\n  nosync: true\n  sync_priority: 1\n",
    ));
    assert!(t.config.tags.nofailover);
    assert_eq!(t.config.tags.failover_priority, None);
    assert_eq!(
        t.warnings,
        [
            "tags: nofailover (true) and failover_priority (3) are both set; nofailover wins and failover_priority is ignored",
            "tags: nosync and sync_priority are both set; nosync wins",
        ]
    );
    let t = ok(&minimal("tags:\n  failover_priority: 0\n")).config.tags;
    assert!(t.nofailover, "priority 0 means never promote");
    assert_eq!(t.failover_priority, Some(0));
    let t = ok(&minimal(
        "tags:\n  failover_priority: '5'\n  replicatefrom: pg2\n  custom: {a: 1}\n",
    ))
    .config
    .tags;
    assert!(!t.nofailover);
    assert_eq!(t.failover_priority, Some(5));
    assert_eq!(t.all["custom"], json!({"a": 1}));
    assert_eq!(
        err(&minimal("tags:\n  nofailover: perhaps\n")),
        r#"tags.nofailover: expected a boolean, got "perhaps""#
    );
    assert_eq!(
        err(&minimal("tags:\n  failover_priority: high\n")),
        r#"tags.failover_priority: expected an integer, got "high""#
    );
    assert_eq!(
        err(&minimal("tags:\n  replicatefrom: [a]\n")),
        "tags.replicatefrom: expected a string, got a list"
    );
    assert_eq!(err(&minimal("tags: [a]\n")), "tags: expected a map, got a list");
}

#[test]
fn watchdog_modes() {
    let mode = |m: &str| ok(&minimal(&format!("watchdog:\n  mode: {m}\n"))).config.watchdog.mode;
    assert_eq!(mode("off"), WatchdogMode::Off);
    assert_eq!(mode("'off'"), WatchdogMode::Off);
    assert_eq!(mode("false"), WatchdogMode::Off);
    assert_eq!(mode("true"), WatchdogMode::Automatic);
    assert_eq!(mode("automatic"), WatchdogMode::Automatic);
    assert_eq!(mode("Required"), WatchdogMode::Required);
    assert_eq!(
        err(&minimal("watchdog:\n  mode: requird\n")),
        r#"watchdog.mode: expected off, automatic or required, got "requird""#
    );
    assert_eq!(
        ok(&minimal("watchdog:\n  device: /dev/wd1\n")).config.watchdog.mode,
        WatchdogMode::Automatic
    );
}

#[test]
fn log_settings() {
    let log = |s: &str| ok(&minimal(&format!("log:\n{s}"))).config.log;
    assert_eq!(log("  level: WARNING\n").level, "warning");
    assert_eq!(log("  level: warn\n").level, "warning");
    assert!(log("  format: json\n").json);
    assert!(log("  type: json\n").json);
    assert!(!log("  format: '%(message)s'\n").json);
    assert_eq!(
        err(&minimal("log:\n  level: verbose\n")),
        r#"log.level: expected one of debug, info, warning, error, critical, got "verbose""#
    );
    assert_eq!(
        err(&minimal("log:\n  level: true\n")),
        "log.level: expected a log level, got true"
    );
}

#[test]
fn top_level_warnings() {
    let l = ok(&minimal(
        "foo: 1\nttl: 20\nsynchronous_mode: true\ncitus: {group: 0, database: x}\nthread_pool_size: 5\n",
    ));
    assert_eq!(
        l.warnings,
        [
            r#"unknown section "foo" is ignored"#,
            r#""ttl" belongs to the dynamic configuration (bootstrap.dcs, or patronictl edit-config once the cluster exists) and is ignored here"#,
            r#""synchronous_mode" belongs to the dynamic configuration (bootstrap.dcs, or patronictl edit-config once the cluster exists) and is ignored here"#,
            r#"section "citus" is ignored: ferroni does not support Citus clusters"#,
        ]
    );
}

#[test]
fn type_errors_say_what_was_found() {
    assert_eq!(
        err(&minimal("").replace("name: pg1", "name: true")),
        "name: expected a string, got true"
    );
    assert_eq!(
        err(&minimal("").replace("name: pg1", "name: [a]")),
        "name: expected a string, got a list"
    );
    assert_eq!(
        err(&minimal("").replace("restapi:\n  listen: 10.0.0.1:8008", "restapi: 8008")),
        "restapi: expected a map, got 8008"
    );
    // Numbers are fine where strings are expected.
    assert_eq!(ok(&minimal("").replace("name: pg1", "name: 1")).config.name, "1");
}

#[test]
fn reserved_member_name() {
    let e = err(&minimal("").replace("name: pg1", "name: __patroni_strict_sync_replica_placeholder__"));
    assert!(e.starts_with("name: "), "{e}");
}

#[test]
fn env_overrides_the_file() {
    let e = env(&[
        ("PATRONI_NAME", "from-env"),
        ("PATRONI_RESTAPI_CONNECT_ADDRESS", "10.9.9.9:8008"),
        ("PATRONI_RESTAPI_USERNAME", "u"),
        ("PATRONI_RESTAPI_PASSWORD", "p"),
        ("PATRONI_POSTGRESQL_DATA_DIR", "/env/data"),
        ("PATRONI_SUPERUSER_PASSWORD", "supw"),
        ("PATRONI_REPLICATION_USERNAME", "repl"),
        ("PATRONI_ETCD3_HOST", "etcd-env:2379"),
        ("PATRONI_ETCD3_PROTOCOL", "https"),
        ("PATRONI_CTL_USERNAME", "ctl"),
        ("PATRONI_LOG_LEVEL", "ERROR"),
        ("PATRONI_LOG_FORMAT", "json"),
    ]);
    let Loaded { config: c, warnings } = parse_str(&minimal(""), &e).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.name, "from-env");
    assert_eq!(c.restapi.listen, "10.0.0.1:8008");
    assert_eq!(c.restapi.connect_address, "10.9.9.9:8008");
    assert_eq!(
        c.restapi.authentication,
        Some(Credentials {
            username: "u".into(),
            password: Some("p".into())
        })
    );
    assert_eq!(c.postgresql.data_dir, PathBuf::from("/env/data"));
    assert_eq!(c.postgresql.config_dir, PathBuf::from("/env/data"));
    assert_eq!(c.postgresql.pgpass, PathBuf::from("/tmp/pgpass_from-env"));
    assert_eq!(
        c.postgresql.superuser,
        Credentials {
            username: "postgres".into(),
            password: Some("supw".into())
        }
    );
    assert_eq!(c.postgresql.replication.username, "repl");
    assert_eq!(c.etcd3.hosts, ["etcd-env:2379"]);
    assert_eq!(c.etcd3.protocol, "https");
    assert_eq!(c.ctl.authentication.unwrap().username, "ctl");
    assert_eq!(c.log.level, "error");
    assert!(c.log.json);
}

#[test]
fn env_errors_name_the_variable() {
    let e = parse_str(&minimal(""), &env(&[("PATRONI_RESTAPI_LISTEN", "abc")])).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"restapi.listen: expected host:port, got "abc" (set by PATRONI_RESTAPI_LISTEN)"#
    );
}

#[test]
fn env_host_lists_are_checked_like_the_file() {
    let e = parse_str(&minimal(""), &env(&[("PATRONI_ETCD3_HOSTS", "a:1,b:x")])).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"etcd3.hosts[1]: expected host:port, got "b:x" (set by PATRONI_ETCD3_HOSTS)"#
    );
    let e = parse_str(&minimal(""), &env(&[("PATRONI_ETCD3_HOSTS", "[a, b")])).unwrap_err();
    assert!(
        e.to_string().starts_with("PATRONI_ETCD3_HOSTS: cannot read the list"),
        "{e}"
    );
}

#[test]
fn env_alone_is_a_configuration() {
    let e = env(&[
        ("PATRONI_NAME", "pg1"),
        ("PATRONI_SCOPE", "demo"),
        ("PATRONI_RESTAPI_LISTEN", "10.0.0.1:8008"),
        ("PATRONI_POSTGRESQL_LISTEN", "10.0.0.1:5432"),
        ("PATRONI_POSTGRESQL_DATA_DIR", "/data"),
        ("PATRONI_ETCD3_HOSTS", "['e1:2379', 'e2:2379']"),
    ]);
    let c = load_from_env(&e).unwrap().config;
    assert_eq!(c.name, "pg1");
    assert_eq!(c.etcd3.hosts, ["e1:2379", "e2:2379"]);
    let mut missing = e.clone();
    missing.remove("PATRONI_POSTGRESQL_DATA_DIR");
    assert_eq!(
        load_from_env(&missing).unwrap_err().to_string(),
        "postgresql.data_dir: required key is missing"
    );
    let e = load_from_env(&no_env()).unwrap_err();
    assert!(e.message.starts_with("no configuration"), "{e}");
}

#[test]
fn patroni_configuration_variable() {
    let e = env(&[
        ("PATRONI_CONFIGURATION", &minimal("")),
        ("PATRONI_NAME", "ignored"),
        ("PATRONI_SUPERUSER_PASSWORD", "x"),
    ]);
    let l = load_from_env(&e).unwrap();
    assert_eq!(l.config.name, "pg1");
    assert_eq!(l.config.postgresql.superuser.password, None);
    assert_eq!(
        l.warnings,
        [
            "PATRONI_NAME is ignored because PATRONI_CONFIGURATION is set",
            "PATRONI_SUPERUSER_PASSWORD is ignored because PATRONI_CONFIGURATION is set",
        ]
    );
    let bad = load_from_env(&env(&[("PATRONI_CONFIGURATION", "a: [")])).unwrap_err();
    assert!(bad.to_string().starts_with("PATRONI_CONFIGURATION: "), "{bad}");
    // With a file, PATRONI_CONFIGURATION plays no part.
    let l = parse_str(&minimal(""), &env(&[("PATRONI_CONFIGURATION", "name: other")])).unwrap();
    assert_eq!(l.config.name, "pg1");
    assert_eq!(
        l.warnings,
        ["PATRONI_CONFIGURATION is ignored because a configuration file is given"]
    );
}

#[test]
fn files_and_directories() {
    let dir = std::env::temp_dir().join(format!("ferroni-config-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    let file = dir.join("patroni.yml");
    std::fs::write(&file, minimal("")).unwrap();
    assert_eq!(load_file(&file).unwrap().name, "pg1");

    let d = dir.join("conf.d");
    std::fs::write(d.join("10-base.yml"), minimal("tags: {zone: a}\n")).unwrap();
    std::fs::write(d.join("20-override.yaml"), "name: pg2\ntags: {zone: null, rack: r1}\n").unwrap();
    std::fs::write(d.join("15-empty.yml"), "").unwrap();
    std::fs::write(d.join("99-ignored.txt"), "name: nope\n").unwrap();
    let l = load_file_with_env(&d, &env(&[("PATRONI_SCOPE", "envscope")])).unwrap();
    assert_eq!(l.config.name, "pg2");
    assert_eq!(l.config.scope, "envscope");
    assert_eq!(l.config.tags.all, json!({"rack": "r1"}).as_object().unwrap().clone());

    std::fs::write(d.join("30-broken.yml"), "name: [").unwrap();
    let e = load_file(&d).unwrap_err();
    assert!(e.message.contains("30-broken.yml"), "{e}");

    let e = load_file(&dir.join("missing.yml")).unwrap_err();
    assert!(e.message.starts_with("cannot read"), "{e}");
    std::fs::create_dir_all(dir.join("empty.d")).unwrap();
    let e = load_file(&dir.join("empty.d")).unwrap_err();
    assert!(e.message.ends_with("has no *.yml or *.yaml files"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dcs_config_from_bootstrap_round_trips_through_merge_patch() {
    let c = ok(FULL).config;
    let mut dcs = c.bootstrap.dcs.clone();
    merge_patch(&mut dcs, &json!({"ttl": 40, "standby_cluster": null}));
    set_path(&mut dcs, "postgresql.parameters.work_mem", "8MB").unwrap();
    let d = parse_dynamic(&dcs, "").unwrap();
    assert_eq!(d.ttl, 40);
    assert!(d.standby_cluster.is_none());
    assert_eq!(d.parameters["work_mem"], json!("8MB"));
    assert_eq!(d.raw, dcs);
}

/// Generates YAML made of the keys ferroni reads, so the generated input gets past the first
/// checks and into the deeper ones.
fn yaml_tree() -> impl Strategy<Value = serde_json::Value> {
    let keys = prop::sample::select(vec![
        "name",
        "scope",
        "namespace",
        "restapi",
        "listen",
        "connect_address",
        "etcd3",
        "hosts",
        "host",
        "postgresql",
        "data_dir",
        "bootstrap",
        "dcs",
        "ttl",
        "loop_wait",
        "retry_timeout",
        "method",
        "initdb",
        "basebackup",
        "create_replica_methods",
        "command",
        "tags",
        "nofailover",
        "failover_priority",
        "watchdog",
        "mode",
        "log",
        "level",
        "standby_cluster",
        "port",
        "slots",
        "type",
        "parameters",
        "callbacks",
        "on_start",
        "authentication",
        "username",
        "superuser",
        "pgbackrest",
        "recovery_conf",
        "pg_hba",
        "clone",
    ]);
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z0-9:., '\"-]{0,12}".prop_map(|s| json!(s)),
        Just(json!("10.0.0.1:5432")),
        Just(json!("basebackup")),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_str_never_panics_on_text(text in "\\PC{0,200}") {
        let _ = parse_str(&text, &no_env());
    }

    #[test]
    fn parse_str_never_panics_on_yamlish_text(text in "[a-z_:\\-\\[\\]{}, \n'\"&*<|>!%@`#0-9.]{0,300}") {
        let _ = parse_str(&text, &no_env());
    }

    #[test]
    fn parse_str_never_panics_on_structures(tree in yaml_tree(), base in any::<bool>()) {
        let text = tree.to_string();
        let _ = parse_str(&text, &no_env());
        // Also grafted onto a valid configuration, so the deep checks run.
        if let serde_json::Value::Object(_) = tree {
            let mut merged = crate::yaml::parse(&minimal("")).unwrap().to_json();
            if base {
                merge_patch(&mut merged, &tree);
            } else {
                merged["postgresql"] = tree.clone();
                merged["postgresql"]["listen"] = json!("a:1");
                merged["postgresql"]["data_dir"] = json!("/d");
            }
            let _ = parse_str(&merged.to_string(), &no_env());
        }
    }

    #[test]
    fn parse_dynamic_never_panics(tree in yaml_tree()) {
        let _ = parse_dynamic(&tree, "bootstrap.dcs");
    }

    #[test]
    fn env_never_panics(values in prop::collection::vec("\\PC{0,30}", 8)) {
        let names = ["PATRONI_NAME", "PATRONI_ETCD3_HOSTS", "PATRONI_ETCD3_HOST", "PATRONI_RESTAPI_LISTEN",
            "PATRONI_POSTGRESQL_LISTEN", "PATRONI_CONFIGURATION", "PATRONI_CONSUL_HOST", "PATRONI_LOG_LEVEL"];
        let e: BTreeMap<String, String> = names.iter().map(|n| n.to_string()).zip(values).collect();
        let _ = parse_str(&minimal(""), &e);
        let _ = load_from_env(&e);
    }
}

#[test]
fn basebackup_retries_are_configurable() {
    let c = ok(&with_postgresql(
        "  basebackup_attempts: 5\n  basebackup_retry_delay: 30\n",
    ))
    .config;
    assert_eq!(
        (c.postgresql.basebackup_attempts, c.postgresql.basebackup_retry_delay),
        (5, 30)
    );
    let c = ok(&with_postgresql("")).config;
    assert_eq!(
        (c.postgresql.basebackup_attempts, c.postgresql.basebackup_retry_delay),
        (2, 5)
    );
    assert_eq!(
        err(&with_postgresql("  basebackup_attempts: 0\n")),
        "postgresql.basebackup_attempts: expected an integer >= 1, got 0"
    );
}

/// `minimal` with extra lines inside the `restapi` section.
fn with_restapi(lines: &str) -> String {
    minimal("").replace(
        "  listen: 10.0.0.1:8008\n",
        &format!("  listen: 10.0.0.1:8008\n{lines}"),
    )
}

#[test]
fn restapi_https_settings() {
    let l = ok(&with_restapi(
        "  certfile: /tls/rest.pem\n  keyfile: /tls/rest.key\n  cafile: /tls/ca.pem\n  verify_client: Required\n",
    ));
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let r = l.config.restapi;
    assert_eq!(r.certfile, Some(PathBuf::from("/tls/rest.pem")));
    assert_eq!(r.keyfile, Some(PathBuf::from("/tls/rest.key")));
    assert_eq!(r.cafile, Some(PathBuf::from("/tls/ca.pem")));
    assert_eq!(r.verify_client, VerifyClient::Required);
    assert_eq!(r.scheme(), "https");

    // A certfile that holds the key too (Python's load_cert_chain accepts that): no keyfile.
    let r = ok(&with_restapi(
        "  certfile: /tls/combined.pem\n  verify_client: optional\n  cafile: /tls/ca.pem\n",
    ))
    .config
    .restapi;
    assert_eq!((r.keyfile, r.verify_client), (None, VerifyClient::Optional));
    let r = ok(&with_restapi("  certfile: /tls/combined.pem\n  verify_client: none\n"))
        .config
        .restapi;
    assert_eq!(r.verify_client, VerifyClient::None);

    let plain = ok(&minimal("")).config.restapi;
    assert_eq!(plain.scheme(), "http");
    assert_eq!(
        (plain.certfile, plain.cafile, plain.verify_client),
        (None, None, VerifyClient::None)
    );
}

#[test]
fn restapi_https_mistakes() {
    assert_eq!(
        err(&with_restapi("  certfile: /tls/rest.pem\n  verify_client: sometimes\n")),
        r#"restapi.verify_client: expected none, optional or required, got "sometimes""#
    );
    assert_eq!(
        err(&with_restapi(
            "  certfile: /tls/rest.pem\n  verify_client: [required]\n"
        )),
        "restapi.verify_client: expected none, optional or required, got a list"
    );
    assert_eq!(
        err(&with_restapi("  certfile: /tls/rest.pem\n  verify_client: required\n")),
        "restapi.verify_client: needs restapi.cafile, the CA certificates that client certificates must be signed by"
    );
    assert_eq!(
        err(&with_restapi("  certfile: [a, b]\n")),
        "restapi.certfile: expected a string, got a list"
    );
    // TLS keys without a certificate do nothing, which is worth a warning; the CA stays
    // available to ferronictl (patronictl falls back to restapi.cafile).
    let l = ok(&with_restapi(
        "  keyfile: /tls/rest.key\n  cafile: /tls/ca.pem\n  verify_client: required\n",
    ));
    assert_eq!(l.config.restapi.certfile, None);
    assert_eq!(l.config.restapi.keyfile, None);
    assert_eq!(l.config.restapi.cafile, Some(PathBuf::from("/tls/ca.pem")));
    assert_eq!(l.config.restapi.verify_client, VerifyClient::None);
    assert_eq!(
        l.warnings,
        [
            "restapi.keyfile has no effect without restapi.certfile (the REST API speaks plain HTTP)",
            "restapi.verify_client has no effect without restapi.certfile (the REST API speaks plain HTTP)",
        ]
    );
    let l = ok(&with_restapi(
        "  certfile: /tls/rest.pem\n  keyfile_password: secret\n  ciphers: HIGH\n",
    ));
    assert_eq!(
        l.warnings,
        [
            "restapi.keyfile_password is ignored: ferroni cannot decrypt private keys; give an unencrypted key",
            "restapi.ciphers is ignored: ferroni offers only TLS 1.2/1.3 with strong ciphers",
        ]
    );
}

#[test]
fn ctl_tls_settings() {
    let c = ok(&minimal(
        "ctl:\n  insecure: true\n  cacert: /tls/ca.pem\n  certfile: /tls/client.pem\n  keyfile: /tls/client.key\n",
    ))
    .config
    .ctl;
    assert!(c.insecure);
    assert_eq!(c.cacert, Some(PathBuf::from("/tls/ca.pem")));
    assert_eq!(c.certfile, Some(PathBuf::from("/tls/client.pem")));
    assert_eq!(c.keyfile, Some(PathBuf::from("/tls/client.key")));
    let none = ok(&minimal("")).config.ctl;
    assert_eq!((none.insecure, none.cacert, none.certfile), (false, None, None));
}

#[test]
fn tls_settings_from_environment() {
    let e = env(&[
        ("PATRONI_RESTAPI_CERTFILE", "/env/rest.pem"),
        ("PATRONI_RESTAPI_CAFILE", "/env/ca.pem"),
        ("PATRONI_RESTAPI_VERIFY_CLIENT", "optional"),
        ("PATRONI_CTL_CACERT", "/env/ctl-ca.pem"),
        ("PATRONI_CTL_CERTFILE", "/env/ctl.pem"),
        ("PATRONI_CTL_KEYFILE", "/env/ctl.key"),
        ("PATRONI_CTL_INSECURE", "on"),
    ]);
    let c = parse_str(&minimal(""), &e).unwrap().config;
    assert_eq!(c.restapi.certfile, Some(PathBuf::from("/env/rest.pem")));
    assert_eq!(c.restapi.cafile, Some(PathBuf::from("/env/ca.pem")));
    assert_eq!(c.restapi.verify_client, VerifyClient::Optional);
    assert_eq!(c.ctl.cacert, Some(PathBuf::from("/env/ctl-ca.pem")));
    assert_eq!(c.ctl.certfile, Some(PathBuf::from("/env/ctl.pem")));
    assert_eq!(c.ctl.keyfile, Some(PathBuf::from("/env/ctl.key")));
    assert!(c.ctl.insecure);
}
