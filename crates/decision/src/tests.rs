//! One test per rule: each builds an observation, calls `decide`, and checks the actions and reason.

use crate::*;
use ferroni_model::*;
use serde_json::json;
use std::collections::BTreeMap;

fn config(name: &str) -> Config {
    Config {
        name: name.into(),
        scope: "batman".into(),
        namespace: "/service/".into(),
        restapi: RestApiConfig {
            listen: "127.0.0.1:8008".into(),
            connect_address: "127.0.0.1:8008".into(),
            authentication: None,
            certfile: None,
            keyfile: None,
            cafile: None,
            verify_client: VerifyClient::None,
        },
        ctl: CtlConfig::default(),
        etcd3: EtcdConfig {
            hosts: vec!["127.0.0.1:2379".into()],
            protocol: "http".into(),
            username: None,
            password: None,
        },
        bootstrap: BootstrapConfig {
            dcs: json!({"ttl": 30}),
            method: BootstrapMethod::Initdb,
            initdb: vec![],
            post_bootstrap: None,
            pg_hba: vec![],
        },
        postgresql: PostgresqlConfig {
            listen: "127.0.0.1:5432".into(),
            connect_address: "127.0.0.1:5432".into(),
            data_dir: "/data/pg".into(),
            config_dir: "/data/pg".into(),
            bin_dir: "/usr/lib/postgresql/15/bin".into(),
            pgpass: "/tmp/pgpass".into(),
            superuser: Credentials {
                username: "postgres".into(),
                password: None,
            },
            replication: Credentials {
                username: "replicator".into(),
                password: None,
            },
            rewind: None,
            parameters: Default::default(),
            pg_hba: None,
            create_replica_methods: vec![],
            replica_methods: BTreeMap::new(),
            basebackup: vec![],
            recovery_conf: Default::default(),
            basebackup_attempts: 2,
            basebackup_retry_delay: 5,
            use_unix_socket: false,
            pg_ctl_timeout: 60,
            callbacks: BTreeMap::new(),
            use_pg_rewind: None,
            remove_data_directory_on_rewind_failure: false,
            remove_data_directory_on_diverged_timelines: false,
        },
        tags: Tags::default(),
        watchdog: WatchdogConfig::default(),
        log: LogConfig::default(),
    }
}

fn member(name: &str, role: &str, lsn: u64) -> Member {
    Member {
        name: name.into(),
        data: MemberData {
            conn_url: format!("postgres://127.0.0.1:{}/postgres", 5432 + name.len()),
            api_url: format!("http://127.0.0.1:8008/{name}"),
            state: "running".into(),
            role: role.into(),
            xlog_location: Some(lsn),
            timeline: Some(1),
            ..Default::default()
        },
    }
}

fn cluster(leader: Option<&str>, members: Vec<Member>) -> ClusterView {
    ClusterView {
        initialize: Some("7000000000000000001".into()),
        config: Some(Versioned {
            version: 1,
            value: json!({}),
        }),
        leader: leader.map(|n| LeaderKey {
            name: n.into(),
            version: 1,
            lease: 1,
        }),
        members,
        status: Some(Status {
            optime: 1000,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn running(role: PgRole, lsn: u64) -> PgState {
    PgState::Running {
        sysid: "7000000000000000001".into(),
        role,
        timeline: 1,
        lsn: Lsn(lsn),
        replication: None,
        postmaster_start_time: None,
        server_version: 150000,
    }
}

fn stopped(standby: bool) -> PgState {
    PgState::Stopped {
        sysid: "7000000000000000001".into(),
        timeline: 1,
        clean_shutdown: true,
        standby,
    }
}

struct Case {
    config: Config,
    dynamic: DynamicConfig,
    cluster: Option<ClusterView>,
    pg: PgState,
    action: ActionStatus,
    finished: Option<ActionResult>,
    outcomes: Vec<Outcome>,
    peers: Option<Vec<PeerStatus>>,
    request: Option<Request>,
    config_changed: bool,
    memory: Memory,
}

impl Case {
    fn new(name: &str, cluster: Option<ClusterView>, pg: PgState) -> Case {
        Case {
            config: config(name),
            dynamic: DynamicConfig::default(),
            cluster,
            pg,
            action: ActionStatus::Idle,
            finished: None,
            outcomes: vec![],
            peers: None,
            request: None,
            config_changed: false,
            memory: Memory::default(),
        }
    }

    fn decide(&mut self) -> Decision {
        let obs = Observation {
            now_ms: 100_000,
            wall_ms: 1_800_000_000_000,
            config: &self.config,
            dynamic: &self.dynamic,
            cluster: self.cluster.as_ref(),
            pg: &self.pg,
            action: self.action.clone(),
            finished: self.finished.clone(),
            outcomes: self.outcomes.clone(),
            peers: self.peers.clone(),
            request: self.request,
            config_changed: self.config_changed,
        };
        decide(&obs, &mut self.memory)
    }
}

fn empty_cluster() -> ClusterView {
    ClusterView::default()
}

#[test]
fn empty_cluster_races_for_initialize_then_bootstraps() {
    let mut c = Case::new("n0", Some(empty_cluster()), PgState::NoData);
    let d = c.decide();
    assert_eq!(d.actions, vec![Action::TakeInitialize]);
    assert_eq!(d.role, Role::Uninitialized);
    c.outcomes.push(Outcome::InitializeWon);
    let d = c.decide();
    assert_eq!(d.actions, vec![Action::Start(LongAction::Bootstrap)]);
    assert_eq!(c.memory.bootstrap, BootstrapPhase::Running);
}

#[test]
fn losing_the_initialize_race_does_not_bootstrap() {
    let mut c = Case::new("n1", Some(empty_cluster()), PgState::NoData);
    c.outcomes.push(Outcome::InitializeLost);
    let d = c.decide();
    assert!(d.actions.is_empty());
    assert_eq!(d.reason, "failed to acquire initialize lock");
}

#[test]
fn nofailover_member_never_bootstraps() {
    let mut c = Case::new("n1", Some(empty_cluster()), PgState::NoData);
    c.config.tags.nofailover = true;
    assert!(c.decide().actions.is_empty());
}

#[test]
fn bootstrap_in_progress_elsewhere_means_wait() {
    let mut view = empty_cluster();
    view.initialize = Some(String::new());
    let mut c = Case::new("n1", Some(view), PgState::NoData);
    let d = c.decide();
    assert!(d.actions.is_empty());
    assert_eq!(d.reason, "waiting for leader to bootstrap");
}

#[test]
fn successful_bootstrap_publishes_sysid_config_and_takes_lock() {
    let mut c = Case::new(
        "n0",
        Some(ClusterView {
            initialize: Some(String::new()),
            ..Default::default()
        }),
        running(PgRole::Primary, 10),
    );
    c.memory.bootstrap = BootstrapPhase::Running;
    c.finished = Some(ActionResult {
        action: LongAction::Bootstrap,
        result: Ok(Some("7000000000000000001".into())),
    });
    let d = c.decide();
    assert_eq!(
        d.actions,
        vec![
            Action::SetInitialize("7000000000000000001".into()),
            Action::WriteConfig(json!({"ttl": 30})),
            Action::AcquireLeader
        ]
    );
    assert_eq!(c.memory.bootstrap, BootstrapPhase::None);
    // The executor re-runs decide after the guarded acquire; the bootstrap result is not applied twice.
    c.outcomes.push(Outcome::LeaderAcquired);
    let d = c.decide();
    assert!(!d.actions.contains(&Action::AcquireLeader), "{d:?}");
    assert!(d.reason.contains("the leader with the lock"), "{}", d.reason);
}

#[test]
fn failed_bootstrap_releases_initialize_and_steps_back() {
    let mut c = Case::new(
        "n0",
        Some(ClusterView {
            initialize: Some(String::new()),
            ..Default::default()
        }),
        PgState::NoData,
    );
    c.finished = Some(ActionResult {
        action: LongAction::Bootstrap,
        result: Err("initdb exited with 1".into()),
    });
    let d = c.decide();
    assert_eq!(d.actions, vec![Action::CancelInitialize]);
    assert!(c.memory.bootstrap_failed.is_some());
    // Next cycle: the key is gone, but this node does not race again right away.
    c.finished = None;
    c.cluster = Some(empty_cluster());
    let d = c.decide();
    assert!(d.actions.is_empty(), "{d:?}");
    assert!(d.reason.contains("stepping back"), "{}", d.reason);
}

#[test]
fn bootstrap_backoff_ends() {
    let mut c = Case::new("n0", Some(empty_cluster()), PgState::NoData);
    c.memory.bootstrap_failed = Some((0, "x".into()));
    c.dynamic.ttl = 30; // backoff 90 s; now is 100 s
    assert_eq!(c.decide().actions, vec![Action::TakeInitialize]);
}

#[test]
fn leader_with_lock_refreshes_and_publishes_status() {
    let mut c = Case::new(
        "n0",
        Some(cluster(Some("n0"), vec![member("n0", "primary", 1000)])),
        running(PgRole::Primary, 2000),
    );
    assert_eq!(c.decide().actions, vec![Action::RefreshLeader]);
    c.outcomes.push(Outcome::LeaderRefreshed);
    let d = c.decide();
    assert_eq!(d.reason, "no action. I am (n0), the leader with the lock");
    assert_eq!(
        d.actions,
        vec![
            Action::WriteStatus { optime: 2000 },
            Action::SyncSlots(Default::default())
        ]
    );
    assert_eq!(d.role, Role::Primary);
}

#[test]
fn leader_writes_missing_config() {
    let mut view = cluster(Some("n0"), vec![]);
    view.config = None;
    let mut c = Case::new("n0", Some(view), running(PgRole::Primary, 1000));
    c.outcomes.push(Outcome::LeaderRefreshed);
    c.memory.last_written_optime = Some(1000);
    assert_eq!(
        c.decide().actions,
        vec![
            Action::WriteConfig(json!({"ttl": 30})),
            Action::SyncSlots(Default::default())
        ]
    );
}

#[test]
fn primary_that_loses_the_lock_demotes() {
    let mut c = Case::new("n0", Some(cluster(Some("n0"), vec![])), running(PgRole::Primary, 1000));
    c.outcomes.push(Outcome::LeaderRefreshFailed);
    let d = c.decide();
    assert!(
        matches!(d.actions[..], [Action::Start(LongAction::Demote { .. })]),
        "{d:?}"
    );
    assert_eq!(d.role, Role::Demoted);
}

#[test]
fn primary_seeing_another_holder_demotes_and_follows_it() {
    let view = cluster(Some("n1"), vec![member("n1", "primary", 1000)]);
    let mut c = Case::new("n0", Some(view), running(PgRole::Primary, 1000));
    let d = c.decide();
    match &d.actions[..] {
        [Action::Start(LongAction::Demote { upstream: Some(u), .. })] => assert_eq!(u.name, "n1"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn paused_primary_does_not_demote() {
    let view = cluster(Some("n1"), vec![member("n1", "primary", 1000)]);
    let mut c = Case::new("n0", Some(view), running(PgRole::Primary, 1000));
    c.dynamic.pause = true;
    assert!(c.decide().actions.is_empty());
}

#[test]
fn unlocked_running_primary_takes_the_lock() {
    let mut c = Case::new("n0", Some(cluster(None, vec![])), running(PgRole::Primary, 1000));
    assert_eq!(c.decide().actions, vec![Action::AcquireLeader]);
    c.outcomes.push(Outcome::LeaderAcquired);
    let d = c.decide();
    assert!(
        d.reason.starts_with("acquired session lock as a leader"),
        "{}",
        d.reason
    );
}

#[test]
fn primary_losing_the_race_demotes() {
    let mut c = Case::new("n0", Some(cluster(None, vec![])), running(PgRole::Primary, 1000));
    c.outcomes.push(Outcome::LeaderLost);
    assert!(matches!(
        c.decide().actions[..],
        [Action::Start(LongAction::Demote { .. })]
    ));
}

#[test]
fn dcs_outage_demotes_a_primary_but_not_a_replica() {
    let mut c = Case::new("n0", None, running(PgRole::Primary, 1000));
    let d = c.decide();
    assert!(matches!(
        d.actions[..],
        [Action::Start(LongAction::Demote { upstream: None, .. })]
    ));
    let mut c = Case::new("n1", None, running(PgRole::Replica, 1000));
    let d = c.decide();
    assert!(d.actions.is_empty());
    assert_eq!(d.reason, "DCS is not accessible");
}

#[test]
fn crashed_leader_restarts_as_primary_after_refreshing_the_lock() {
    let mut c = Case::new(
        "n0",
        Some(cluster(Some("n0"), vec![])),
        PgState::Stopped {
            sysid: "7000000000000000001".into(),
            timeline: 1,
            clean_shutdown: false,
            standby: false,
        },
    );
    assert_eq!(c.decide().actions, vec![Action::RefreshLeader]);
    c.outcomes.push(Outcome::LeaderRefreshed);
    let d = c.decide();
    assert_eq!(d.actions, vec![Action::Start(LongAction::StartPrimary)]);
    assert_eq!(d.reason, "starting primary after failure");
}

#[test]
fn stopped_member_with_a_leader_starts_as_replica_of_it() {
    let view = cluster(Some("n1"), vec![member("n1", "primary", 1000)]);
    let mut c = Case::new("n0", Some(view), stopped(true));
    match &c.decide().actions[..] {
        [Action::Start(LongAction::StartReplica { upstream: Some(u) })] => assert_eq!(u.name, "n1"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn lone_former_primary_takes_the_lock_before_starting() {
    let mut c = Case::new("n0", Some(cluster(None, vec![])), stopped(false));
    assert_eq!(c.decide().actions, vec![Action::AcquireLeader]);
    c.outcomes.push(Outcome::LeaderAcquired);
    assert_eq!(c.decide().actions, vec![Action::Start(LongAction::StartPrimary)]);
}

#[test]
fn former_primary_with_peers_starts_read_only() {
    let mut c = Case::new(
        "n0",
        Some(cluster(None, vec![member("n1", "replica", 900)])),
        stopped(false),
    );
    assert_eq!(
        c.decide().actions,
        vec![Action::Start(LongAction::StartReplica { upstream: None })]
    );
}

#[test]
fn sysid_mismatch_is_fatal_with_both_identifiers() {
    let mut view = cluster(Some("n1"), vec![member("n1", "primary", 1000)]);
    view.initialize = Some("7999999999999999999".into());
    let mut c = Case::new("n0", Some(view), stopped(true));
    match &c.decide().actions[..] {
        [Action::Fatal(msg)] => {
            assert!(
                msg.contains("7999999999999999999") && msg.contains("7000000000000000001"),
                "{msg}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn existing_data_without_initialize_is_adopted() {
    let mut view = cluster(None, vec![]);
    view.initialize = None;
    let mut c = Case::new("n0", Some(view), running(PgRole::Primary, 10));
    let d = c.decide();
    assert_eq!(
        d.actions,
        vec![
            Action::SetInitialize("7000000000000000001".into()),
            Action::AcquireLeader
        ]
    );
}

#[test]
fn replica_follows_the_leader_and_repoints_when_it_changes() {
    let view = cluster(Some("n1"), vec![member("n1", "primary", 1000)]);
    let mut pg = running(PgRole::Replica, 900);
    if let PgState::Running { replication, .. } = &mut pg {
        *replication = Some(ReplicationInfo {
            upstream: Some("127.0.0.1:5434".into()),
            streaming: true,
            ..Default::default()
        });
    }
    let mut c = Case::new("n0", Some(view.clone()), pg);
    let d = c.decide();
    assert_eq!(d.actions, vec![Action::SyncSlots(Default::default())], "{d:?}");
    assert_eq!(
        d.reason,
        "no action. I am (n0), a secondary, and following a leader (n1)"
    );
    c.cluster = Some(cluster(Some("n22"), vec![member("n22", "primary", 1000)]));
    match &c.decide().actions[..] {
        [Action::Start(LongAction::Follow { upstream: Some(u) })] => assert_eq!(u.name, "n22"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn replicatefrom_cascades_while_that_member_runs() {
    let view = cluster(
        Some("n1"),
        vec![member("n1", "primary", 1000), member("n2", "replica", 1000)],
    );
    let mut c = Case::new("n0", Some(view), running(PgRole::Replica, 900));
    c.config.tags.replicatefrom = Some("n2".into());
    match &c.decide().actions[..] {
        [Action::Start(LongAction::Follow { upstream: Some(u) })] => assert_eq!(u.name, "n2"),
        other => panic!("{other:?}"),
    }
}

fn peer(name: &str, lsn: u64) -> PeerStatus {
    PeerStatus {
        name: name.into(),
        reachable: true,
        role: Some(Role::Replica),
        running: true,
        lsn,
        timeline: 1,
        nofailover: false,
        failover_priority: 1,
    }
}

#[test]
fn election_asks_peers_then_takes_lock_and_promotes() {
    let mut c = Case::new("n0", Some(cluster(None, vec![])), running(PgRole::Replica, 1000));
    assert_eq!(c.decide().actions, vec![Action::AskPeers]);
    c.peers = Some(vec![peer("n1", 900), peer("n2", 1000)]);
    assert_eq!(c.decide().actions, vec![Action::AcquireLeader]);
    c.outcomes.push(Outcome::LeaderAcquired);
    let d = c.decide();
    assert_eq!(d.actions, vec![Action::Start(LongAction::Promote)]);
    assert_eq!(d.role, Role::Promoted);
}

#[test]
fn election_stands_down_for_a_member_ahead() {
    let mut c = Case::new("n0", Some(cluster(None, vec![])), running(PgRole::Replica, 1000));
    c.peers = Some(vec![peer("n1", 1001)]);
    let d = c.decide();
    assert!(d.actions.is_empty());
    assert!(d.reason.contains("n1 is ahead of me"), "{}", d.reason);
}

#[test]
fn election_stands_down_for_higher_priority_at_equal_position() {
    let mut c = Case::new("n0", Some(cluster(None, vec![])), running(PgRole::Replica, 1000));
    let mut p = peer("n1", 1000);
    p.failover_priority = 5;
    c.peers = Some(vec![p]);
    assert!(c.decide().reason.contains("higher failover_priority"));
}

#[test]
fn ineligible_peers_do_not_block_the_election() {
    let mut c = Case::new("n0", Some(cluster(None, vec![])), running(PgRole::Replica, 1000));
    let mut p = peer("n1", 5000);
    p.nofailover = true;
    c.peers = Some(vec![p]);
    assert_eq!(c.decide().actions, vec![Action::AcquireLeader]);
}

#[test]
fn lagging_or_nofailover_replica_never_runs_for_leader() {
    let mut c = Case::new("n0", Some(cluster(None, vec![])), running(PgRole::Replica, 10));
    c.dynamic.maximum_lag_on_failover = 100; // optime is 1000
    let d = c.decide();
    assert!(d.actions.is_empty());
    assert!(d.reason.contains("exceeds maximum_lag_on_failover"), "{}", d.reason);
    let mut c = Case::new("n0", Some(cluster(None, vec![])), running(PgRole::Replica, 1000));
    c.config.tags.nofailover = true;
    assert!(c.decide().actions.is_empty());
    let mut c = Case::new("n0", Some(cluster(None, vec![])), running(PgRole::Replica, 1000));
    c.config.tags.failover_priority = Some(0);
    assert!(c.decide().actions.is_empty());
}

#[test]
fn a_running_primary_peer_blocks_promotion() {
    let mut c = Case::new("n0", Some(cluster(None, vec![])), running(PgRole::Replica, 1000));
    let mut p = peer("n1", 10);
    p.role = Some(Role::Primary);
    c.peers = Some(vec![p]);
    assert!(c.decide().reason.contains("still running as primary"));
}

#[test]
fn empty_member_clones_from_the_leader_with_basebackup_by_default() {
    let view = cluster(Some("n1"), vec![member("n1", "primary", 1000)]);
    let mut c = Case::new("n0", Some(view), PgState::NoData);
    let d = c.decide();
    match &d.actions[..] {
        [
            Action::Start(LongAction::CreateReplica {
                source: Some(s),
                methods,
            }),
        ] => {
            assert_eq!(s.name, "n1");
            assert_eq!(methods, &vec!["basebackup".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.reason, "trying to bootstrap from leader 'n1'");
}

#[test]
fn clonefrom_member_with_least_lag_is_the_source() {
    let mut a = member("ra", "replica", 500);
    a.data.tags.insert("clonefrom".into(), json!(true));
    let mut b = member("rb", "replica", 900);
    b.data.tags.insert("clonefrom".into(), json!(true));
    let view = cluster(Some("n1"), vec![member("n1", "primary", 1000), a, b]);
    let mut c = Case::new("n0", Some(view), PgState::NoData);
    match &c.decide().actions[..] {
        [Action::Start(LongAction::CreateReplica { source: Some(s), .. })] => assert_eq!(s.name, "rb"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_leader_method_restores_a_leaderless_cluster() {
    let mut c = Case::new("n0", Some(cluster(None, vec![])), PgState::NoData);
    c.config.postgresql.create_replica_methods = vec!["restore".into(), "basebackup".into()];
    c.config.postgresql.replica_methods.insert(
        "restore".into(),
        ReplicaMethod {
            name: "restore".into(),
            command: vec!["/bin/true".into()],
            no_leader: true,
            keep_data: false,
            no_params: false,
            extra_args: vec![],
        },
    );
    match &c.decide().actions[..] {
        [Action::Start(LongAction::CreateReplica { source: None, methods })] => {
            assert_eq!(methods, &vec!["restore".to_string()])
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn leaderless_initialized_cluster_without_no_leader_method_explains_the_wait() {
    let mut c = Case::new("n0", Some(cluster(None, vec![])), PgState::NoData);
    let d = c.decide();
    assert!(d.actions.is_empty());
    assert!(d.reason.contains("no_leader"), "{}", d.reason);
}

#[test]
fn failed_clone_waits_for_the_next_cycle() {
    let view = cluster(Some("n1"), vec![member("n1", "primary", 1000)]);
    let mut c = Case::new("n0", Some(view), PgState::NoData);
    c.finished = Some(ActionResult {
        action: LongAction::CreateReplica {
            source: None,
            methods: vec![],
        },
        result: Err("all methods failed".into()),
    });
    let d = c.decide();
    assert!(d.actions.is_empty());
    assert_eq!(c.memory.clone_failures, 1);
}

#[test]
fn leader_keeps_refreshing_during_a_long_action() {
    let mut c = Case::new("n0", Some(cluster(Some("n0"), vec![])), running(PgRole::Primary, 1000));
    c.action = ActionStatus::Running(LongAction::Promote);
    assert_eq!(c.decide().actions, vec![Action::RefreshLeader]);
    let mut c = Case::new("n2", Some(cluster(Some("n0"), vec![])), PgState::NoData);
    c.action = ActionStatus::Running(LongAction::Bootstrap);
    let d = c.decide();
    assert!(d.actions.is_empty());
    assert_eq!(d.reason, "bootstrap in progress");
}

#[test]
fn leader_without_data_releases_the_lock() {
    let mut c = Case::new("n0", Some(cluster(Some("n0"), vec![])), PgState::NoData);
    let d = c.decide();
    assert_eq!(d.actions.first(), Some(&Action::ReleaseLeader));
}

#[test]
fn decide_does_not_mutate_the_observation_inputs() {
    let view = cluster(Some("n1"), vec![member("n1", "primary", 1000)]);
    let mut c = Case::new("n0", Some(view.clone()), PgState::NoData);
    let _ = c.decide();
    assert_eq!(c.cluster, Some(view));
}

#[test]
fn leader_keeps_a_slot_per_member_and_the_permanent_ones() {
    let mut cascaded = member("n3", "replica", 900);
    cascaded.data.tags.insert("replicatefrom".into(), json!("n2"));
    let view = cluster(
        Some("n0"),
        vec![
            member("n0", "primary", 1000),
            member("n1", "replica", 900),
            member("n2", "replica", 900),
            cascaded,
        ],
    );
    let mut c = Case::new("n0", Some(view.clone()), running(PgRole::Primary, 1000));
    c.dynamic
        .slots
        .insert("standby_cluster".into(), json!({"type": "physical"}));
    c.dynamic.slots.insert(
        "logical_one".into(),
        json!({"type": "logical", "database": "x", "plugin": "y"}),
    );
    c.outcomes.push(Outcome::LeaderRefreshed);
    let d = c.decide();
    let expected: std::collections::BTreeSet<String> =
        ["n1", "n2", "standby_cluster"].iter().map(|s| s.to_string()).collect();
    assert!(d.actions.contains(&Action::SyncSlots(expected)), "{:?}", d.actions);
    // The replica n2 keeps the slot of the member cascading from it.
    let mut pg = running(PgRole::Replica, 900);
    if let PgState::Running { replication, .. } = &mut pg {
        *replication = Some(ReplicationInfo {
            upstream: Some(format!("127.0.0.1:{}", 5432 + 2)),
            ..Default::default()
        });
    }
    let mut c = Case::new("n2", Some(view), pg);
    let d = c.decide();
    let expected: std::collections::BTreeSet<String> = ["n3".to_string()].into();
    assert!(d.actions.contains(&Action::SyncSlots(expected)), "{:?}", d.actions);
}

#[test]
fn no_slots_when_disabled() {
    let view = cluster(Some("n0"), vec![member("n1", "replica", 900)]);
    let mut c = Case::new("n0", Some(view), running(PgRole::Primary, 1000));
    c.dynamic.use_slots = false;
    c.outcomes.push(Outcome::LeaderRefreshed);
    assert!(!c.decide().actions.iter().any(|a| matches!(a, Action::SyncSlots(_))));
}

fn with_failover(mut view: ClusterView, leader: Option<&str>, member: Option<&str>, at: Option<&str>) -> ClusterView {
    view.failover = Some(Versioned {
        version: 7,
        value: Failover {
            leader: leader.map(Into::into),
            member: member.map(Into::into),
            scheduled_at: at.map(Into::into),
        },
    });
    view
}

#[test]
fn switchover_leader_stops_then_releases_the_lock() {
    let view = with_failover(
        cluster(
            Some("n0"),
            vec![member("n0", "primary", 1000), member("n1", "replica", 1000)],
        ),
        Some("n0"),
        Some("n1"),
        None,
    );
    let mut c = Case::new("n0", Some(view.clone()), running(PgRole::Primary, 1000));
    c.outcomes.push(Outcome::LeaderRefreshed);
    let d = c.decide();
    assert_eq!(
        d.actions,
        vec![Action::Start(LongAction::Stop { mode: StopMode::Fast })]
    );
    assert_eq!(d.role, Role::Demoted);
    // Stopped, still holding the lock: release it and start as a replica.
    let mut c2 = Case::new("n0", Some(view), stopped(false));
    c2.memory = c.memory.clone();
    let d = c2.decide();
    assert_eq!(
        d.actions,
        vec![
            Action::ReleaseLeader,
            Action::Start(LongAction::StartReplica { upstream: None })
        ]
    );
    assert!(!c2.memory.switchover_demote);
}

#[test]
fn switchover_to_an_unhealthy_candidate_is_refused_and_cleared() {
    let mut sick = member("n1", "replica", 1000);
    sick.data.state = "stopped".into();
    let view = with_failover(
        cluster(Some("n0"), vec![member("n0", "primary", 1000), sick]),
        Some("n0"),
        Some("n1"),
        None,
    );
    let mut c = Case::new("n0", Some(view), running(PgRole::Primary, 1000));
    c.outcomes.push(Outcome::LeaderRefreshed);
    let d = c.decide();
    assert_eq!(d.actions, vec![Action::ClearFailover]);
    assert!(d.reason.contains("not a healthy member"), "{}", d.reason);
}

#[test]
fn scheduled_switchover_waits_for_its_time() {
    let view = with_failover(
        cluster(Some("n0"), vec![member("n1", "replica", 1000)]),
        Some("n0"),
        Some("n1"),
        Some("2099-01-01T00:00:00Z"),
    );
    let mut c = Case::new("n0", Some(view.clone()), running(PgRole::Primary, 1000));
    c.outcomes.push(Outcome::LeaderRefreshed);
    let d = c.decide();
    assert!(d.actions.is_empty());
    assert!(d.reason.starts_with("awaiting scheduled switchover"));
    let past = with_failover(
        cluster(Some("n0"), vec![member("n1", "replica", 1000)]),
        Some("n0"),
        Some("n1"),
        Some("2020-01-01T00:00:00+02:00"),
    );
    let mut c = Case::new("n0", Some(past), running(PgRole::Primary, 1000));
    c.outcomes.push(Outcome::LeaderRefreshed);
    assert_eq!(
        c.decide().actions,
        vec![Action::Start(LongAction::Stop { mode: StopMode::Fast })]
    );
}

#[test]
fn switchover_key_for_another_leader_is_cleared() {
    let view = with_failover(
        cluster(Some("n0"), vec![member("n1", "replica", 1000)]),
        Some("old"),
        Some("n1"),
        None,
    );
    let mut c = Case::new("n0", Some(view), running(PgRole::Primary, 1000));
    c.outcomes.push(Outcome::LeaderRefreshed);
    assert_eq!(c.decide().actions, vec![Action::ClearFailover]);
}

#[test]
fn the_candidate_takes_the_lock_promotes_and_clears_the_key() {
    let view = with_failover(
        cluster(None, vec![member("n1", "replica", 1000), member("n2", "replica", 1000)]),
        Some("n0"),
        Some("n1"),
        None,
    );
    let mut c = Case::new("n1", Some(view.clone()), running(PgRole::Replica, 1000));
    assert_eq!(
        c.decide().actions,
        vec![Action::AcquireLeader],
        "no peer round for the named candidate"
    );
    c.outcomes.push(Outcome::LeaderAcquired);
    assert_eq!(
        c.decide().actions,
        vec![Action::Start(LongAction::Promote), Action::ClearFailover]
    );
    // Another replica leaves the lock to the healthy candidate, even if it is ahead.
    let mut other = Case::new("n2", Some(view), running(PgRole::Replica, 5000));
    let d = other.decide();
    assert!(d.actions.is_empty(), "{d:?}");
}

#[test]
fn an_unhealthy_candidate_does_not_block_the_election() {
    let mut sick = member("n1", "replica", 1000);
    sick.data.state = "crashed".into();
    let view = with_failover(cluster(None, vec![sick]), None, Some("n1"), None);
    let mut c = Case::new("n2", Some(view), running(PgRole::Replica, 1000));
    assert_eq!(c.decide().actions, vec![Action::AskPeers]);
}

#[test]
fn former_primary_rejoins_with_rewind_when_allowed() {
    let view = cluster(Some("n1"), vec![member("n1", "primary", 1000)]);
    let mut c = Case::new("n0", Some(view.clone()), stopped(false));
    c.dynamic.use_pg_rewind = true;
    match &c.decide().actions[..] {
        [Action::Start(LongAction::Rejoin { upstream })] => assert_eq!(upstream.name, "n1"),
        other => panic!("{other:?}"),
    }
    // Without pg_rewind it starts as a replica directly.
    let mut c = Case::new("n0", Some(view.clone()), stopped(false));
    assert!(matches!(
        c.decide().actions[..],
        [Action::Start(LongAction::StartReplica { .. })]
    ));
    // A failed rejoin keeps the node out, with the reason.
    let mut c = Case::new("n0", Some(view), stopped(false));
    c.dynamic.use_pg_rewind = true;
    c.finished = Some(ActionResult {
        action: LongAction::Rejoin {
            upstream: Upstream {
                name: "n1".into(),
                conn_url: String::new(),
            },
        },
        result: Err("pg_rewind: could not find common ancestor".into()),
    });
    let d = c.decide();
    assert!(d.actions.is_empty());
    assert!(d.reason.contains("could not find common ancestor"), "{}", d.reason);
}

#[test]
fn promoted_leader_records_history() {
    let mut c = Case::new("n1", Some(cluster(Some("n1"), vec![])), running(PgRole::Primary, 1000));
    c.finished = Some(ActionResult {
        action: LongAction::Promote,
        result: Ok(None),
    });
    c.outcomes.push(Outcome::LeaderRefreshed);
    assert!(c.decide().actions.contains(&Action::WriteHistory));
    c.finished = None;
    assert!(!c.decide().actions.contains(&Action::WriteHistory), "written once");
}

#[test]
fn reinitialize_is_refused_on_the_leader_and_without_one() {
    let mut c = Case::new("n0", Some(cluster(Some("n0"), vec![])), running(PgRole::Primary, 1000));
    c.request = Some(Request::Reinitialize {
        force: false,
        from_leader: false,
    });
    let d = c.decide();
    assert_eq!(
        d.reply,
        Some(Err((503, "I am the leader, can not reinitialize".into())))
    );
    assert!(d.actions.is_empty());
    let mut c = Case::new("n1", Some(cluster(None, vec![])), running(PgRole::Replica, 1000));
    c.request = Some(Request::Reinitialize {
        force: false,
        from_leader: false,
    });
    assert_eq!(
        c.decide().reply,
        Some(Err((503, "Cluster has no leader, can not reinitialize".into())))
    );
}

#[test]
fn reinitialize_is_single_flight_unless_forced() {
    let view = cluster(Some("n0"), vec![member("n0", "primary", 1000)]);
    let mut c = Case::new("n1", Some(view), running(PgRole::Replica, 900));
    c.action = ActionStatus::Running(LongAction::CreateReplica {
        source: None,
        methods: vec![],
    });
    c.request = Some(Request::Reinitialize {
        force: false,
        from_leader: false,
    });
    assert_eq!(
        c.decide().reply,
        Some(Err((503, "creating replica already in progress".into())))
    );
    c.request = Some(Request::Reinitialize {
        force: true,
        from_leader: true,
    });
    let d = c.decide();
    assert_eq!(d.reply, Some(Ok("reinitialize started".into())));
    match &d.actions[..] {
        [
            Action::AbortLongAction,
            Action::Start(LongAction::Reinitialize { source, methods }),
        ] => {
            assert_eq!(source.name, "n0");
            assert_eq!(methods, &vec!["basebackup".to_string()]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn restart_request_runs_in_the_background_slot() {
    let mut c = Case::new("n0", Some(cluster(Some("n0"), vec![])), running(PgRole::Primary, 1000));
    c.request = Some(Request::Restart);
    let d = c.decide();
    assert_eq!(d.actions, vec![Action::Start(LongAction::Restart)]);
    c.action = ActionStatus::Running(LongAction::Restart);
    assert_eq!(c.decide().reply, Some(Err((503, "restart already in progress".into()))));
}

#[test]
fn changed_dynamic_configuration_is_rendered_and_reloaded() {
    let mut c = Case::new("n0", Some(cluster(Some("n0"), vec![])), running(PgRole::Primary, 1000));
    c.config_changed = true;
    c.outcomes.push(Outcome::LeaderRefreshed);
    let d = c.decide();
    assert!(
        d.actions.contains(&Action::Reload {
            primary: true,
            upstream: None
        }),
        "{:?}",
        d.actions
    );
    c.config_changed = false;
    assert!(!c.decide().actions.iter().any(|a| matches!(a, Action::Reload { .. })));
}

fn standby_section() -> StandbyCluster {
    StandbyCluster {
        host: Some("10.0.0.9".into()),
        port: Some(5433),
        ..Default::default()
    }
}

#[test]
fn standby_cluster_bootstrap_images_from_the_remote() {
    let mut c = Case::new("s0", Some(empty_cluster()), PgState::NoData);
    c.dynamic.standby_cluster = Some(standby_section());
    c.outcomes.push(Outcome::InitializeWon);
    match &c.decide().actions[..] {
        [
            Action::Start(LongAction::CreateReplica {
                source: Some(s),
                methods,
            }),
        ] => {
            assert_eq!(s.conn_url, "postgres://10.0.0.9:5433/postgres");
            assert_eq!(s.name, REMOTE_NAME);
            assert_eq!(methods, &vec!["basebackup".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    // The imaging finished: publish the identifier, write config, take the lock as standby leader.
    let mut c = Case::new(
        "s0",
        Some(ClusterView {
            initialize: Some(String::new()),
            ..Default::default()
        }),
        running(PgRole::Replica, 10),
    );
    c.dynamic.standby_cluster = Some(standby_section());
    c.memory.bootstrap = BootstrapPhase::Running;
    c.finished = Some(ActionResult {
        action: LongAction::CreateReplica {
            source: None,
            methods: vec![],
        },
        result: Ok(None),
    });
    let d = c.decide();
    assert_eq!(d.actions.last(), Some(&Action::AcquireLeader));
    assert_eq!(
        d.actions.first(),
        Some(&Action::SetInitialize("7000000000000000001".into()))
    );
    assert_eq!(d.role, Role::StandbyLeader);
}

#[test]
fn standby_leader_follows_the_remote_and_never_promotes() {
    let view = cluster(Some("s0"), vec![]);
    let mut c = Case::new("s0", Some(view), running(PgRole::Replica, 1000));
    c.dynamic.standby_cluster = Some(standby_section());
    c.outcomes.push(Outcome::LeaderRefreshed);
    let d = c.decide();
    assert_eq!(d.role, Role::StandbyLeader);
    match &d.actions[..] {
        [Action::Start(LongAction::Follow { upstream: Some(u) })] => assert_eq!(u.name, REMOTE_NAME),
        other => panic!("{other:?}"),
    }
    assert!(
        !d.actions
            .iter()
            .any(|a| matches!(a, Action::Start(LongAction::Promote)))
    );
}

#[test]
fn standby_election_winner_follows_the_remote() {
    let mut c = Case::new("s1", Some(cluster(None, vec![])), running(PgRole::Replica, 1000));
    c.dynamic.standby_cluster = Some(standby_section());
    c.peers = Some(vec![]);
    assert_eq!(c.decide().actions, vec![Action::AcquireLeader]);
    c.outcomes.push(Outcome::LeaderAcquired);
    assert!(matches!(
        c.decide().actions[..],
        [Action::Start(LongAction::Follow { upstream: Some(_) })]
    ));
}

#[test]
fn removing_standby_cluster_promotes_and_adding_it_demotes() {
    // Promote: the section is gone, the lock holder runs as a replica.
    let mut c = Case::new("s0", Some(cluster(Some("s0"), vec![])), running(PgRole::Replica, 1000));
    c.outcomes.push(Outcome::LeaderRefreshed);
    assert_eq!(c.decide().actions, vec![Action::Start(LongAction::Promote)]);
    // Demote: a primary with the lock sees the section appear.
    let mut c = Case::new("n0", Some(cluster(Some("n0"), vec![])), running(PgRole::Primary, 1000));
    c.dynamic.standby_cluster = Some(standby_section());
    c.outcomes.push(Outcome::LeaderRefreshed);
    let d = c.decide();
    assert_eq!(d.role, Role::StandbyLeader);
    assert!(matches!(
        d.actions[..],
        [Action::Start(LongAction::Demote {
            mode: StopMode::Fast,
            upstream: Some(_)
        })]
    ));
}

#[test]
fn stopped_standby_leader_starts_following_the_remote() {
    let mut c = Case::new("s0", Some(cluster(Some("s0"), vec![])), stopped(true));
    c.dynamic.standby_cluster = Some(standby_section());
    c.outcomes.push(Outcome::LeaderRefreshed);
    match &c.decide().actions[..] {
        [Action::Start(LongAction::StartReplica { upstream: Some(u) })] => assert_eq!(u.name, REMOTE_NAME),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rejoin_waits_for_the_new_leaders_checkpoint() {
    let mut leader = member("n1", "primary", 1000);
    leader
        .data
        .extra
        .insert("checkpoint_after_promote".into(), json!(false));
    let mut c = Case::new("n0", Some(cluster(Some("n1"), vec![leader])), stopped(false));
    c.dynamic.use_pg_rewind = true;
    let d = c.decide();
    assert!(d.actions.is_empty());
    assert!(d.reason.contains("to finish its promotion"), "{}", d.reason);
}

#[test]
fn a_blind_demotion_rewinds_before_following() {
    let mut c = Case::new("n0", None, running(PgRole::Primary, 1000));
    let _ = c.decide();
    assert!(c.memory.rewind_pending, "demoted without knowing the new leader");
    let view = cluster(Some("n1"), vec![member("n1", "primary", 2000)]);
    let mut pg = running(PgRole::Replica, 1000);
    if let PgState::Running { replication, .. } = &mut pg {
        *replication = Some(ReplicationInfo {
            upstream: Some(format!("127.0.0.1:{}", 5432 + 2)),
            ..Default::default()
        });
    }
    let mut c2 = Case::new("n0", Some(view), pg);
    c2.memory = c.memory.clone();
    c2.dynamic.use_pg_rewind = true;
    assert!(matches!(
        c2.decide().actions[..],
        [Action::Start(LongAction::Rejoin { .. })]
    ));
    c2.finished = Some(ActionResult {
        action: LongAction::Rejoin {
            upstream: Upstream {
                name: "n1".into(),
                conn_url: String::new(),
            },
        },
        result: Ok(None),
    });
    let _ = c2.decide();
    assert!(!c2.memory.rewind_pending);
}

#[test]
fn a_failed_rejoin_is_retried_after_a_while() {
    let view = cluster(Some("n1"), vec![member("n1", "primary", 1000)]);
    let mut c = Case::new("n0", Some(view), stopped(false));
    c.dynamic.use_pg_rewind = true;
    c.dynamic.ttl = 10;
    c.memory.rejoin_failed = Some((95_000, "leader restarting".into()));
    let d = c.decide();
    assert!(
        d.actions.is_empty() && d.reason.contains("trying again in 15 s"),
        "{}",
        d.reason
    );
    c.memory.rejoin_failed = Some((70_000, "leader restarting".into()));
    assert!(matches!(
        c.decide().actions[..],
        [Action::Start(LongAction::Rejoin { .. })]
    ));
}

#[test]
fn elections_ignore_peers_that_could_not_lead_and_compare_positions_only() {
    let mut c = Case::new("n0", Some(cluster(None, vec![])), running(PgRole::Replica, 1000));
    let mut far_behind = peer("n1", 10);
    far_behind.timeline = 5;
    c.dynamic.maximum_lag_on_failover = 100;
    c.peers = Some(vec![far_behind]);
    assert_eq!(
        c.decide().actions,
        vec![Action::AcquireLeader],
        "a lagging peer on a newer timeline does not block"
    );
}

/// With check_timeline a peer behind the cluster's timeline may not lead, so it must not stand in
/// the way either, however far ahead its WAL position is (a diverged former primary that cannot
/// stream); nor may a failover key naming such a member hold up the others.
#[test]
fn with_check_timeline_a_peer_or_candidate_behind_the_cluster_timeline_does_not_block() {
    let mut view = cluster(None, vec![]);
    view.history = Some(vec![HistoryLine(
        1,
        900,
        "no recovery target specified".into(),
        None,
        None,
    )]);
    let mut on_timeline_2 = running(PgRole::Replica, 1000);
    if let PgState::Running { timeline, .. } = &mut on_timeline_2 {
        *timeline = 2;
    }
    let mut c = Case::new("n0", Some(view.clone()), on_timeline_2.clone());
    c.dynamic.check_timeline = true;
    let mut diverged = peer("n1", 9000);
    diverged.timeline = 1;
    c.peers = Some(vec![diverged.clone()]);
    assert_eq!(c.decide().actions, vec![Action::AcquireLeader]);
    // Without check_timeline it leads and nobody else may: Patroni compares positions only.
    let mut c = Case::new("n0", Some(view.clone()), on_timeline_2.clone());
    c.peers = Some(vec![diverged]);
    assert!(c.decide().reason.contains("n1 is ahead of me"));

    let mut behind = member("n1", "replica", 9000);
    behind.data.timeline = Some(1);
    view.members.push(behind);
    let mut c = Case::new("n2", Some(with_failover(view, None, Some("n1"), None)), on_timeline_2);
    c.dynamic.check_timeline = true;
    assert_eq!(
        c.decide().actions,
        vec![Action::AskPeers],
        "n1 may not lead: n2 runs for it"
    );
}

#[test]
fn a_lagging_or_nofailover_candidate_is_refused() {
    let mut lagging = member("n1", "replica", 10);
    lagging.data.xlog_location = Some(10);
    let view = with_failover(
        cluster(Some("n0"), vec![member("n0", "primary", 1000), lagging]),
        Some("n0"),
        Some("n1"),
        None,
    );
    let mut c = Case::new("n0", Some(view), running(PgRole::Primary, 5_000_000));
    c.outcomes.push(Outcome::LeaderRefreshed);
    assert_eq!(c.decide().actions, vec![Action::ClearFailover]);
    // The candidate itself checks its own eligibility too.
    let view = with_failover(
        cluster(None, vec![member("n1", "replica", 1000)]),
        Some("n0"),
        Some("n1"),
        None,
    );
    let mut c = Case::new("n1", Some(view), running(PgRole::Replica, 1000));
    c.config.tags.nofailover = true;
    let d = c.decide();
    assert!(d.actions.is_empty(), "{d:?}");
}

#[test]
fn primary_start_timeout_zero_fails_over_instead_of_restarting() {
    let view = cluster(
        Some("n0"),
        vec![member("n0", "primary", 1000), member("n1", "replica", 1000)],
    );
    let crashed = PgState::Stopped {
        sysid: "7000000000000000001".into(),
        timeline: 1,
        clean_shutdown: false,
        standby: false,
    };
    let mut c = Case::new("n0", Some(view.clone()), crashed.clone());
    c.dynamic.primary_start_timeout = 0;
    c.outcomes.push(Outcome::LeaderRefreshed);
    assert_eq!(c.decide().actions, vec![Action::ReleaseLeader]);
    // Without a replica to take over, it restarts.
    let mut c = Case::new("n0", Some(cluster(Some("n0"), vec![])), crashed);
    c.dynamic.primary_start_timeout = 0;
    c.outcomes.push(Outcome::LeaderRefreshed);
    assert_eq!(c.decide().actions, vec![Action::Start(LongAction::StartPrimary)]);
}

#[test]
fn a_primary_starting_too_long_gives_the_lock_up() {
    let view = cluster(
        Some("n0"),
        vec![member("n0", "primary", 1000), member("n1", "replica", 1000)],
    );
    let mut c = Case::new(
        "n0",
        Some(view),
        PgState::Starting {
            sysid: "7000000000000000001".into(),
        },
    );
    c.action = ActionStatus::Running(LongAction::StartPrimary);
    c.dynamic.primary_start_timeout = 30;
    c.memory.primary_start_at = Some(100_000 - 29_000);
    assert_eq!(
        c.decide().actions,
        vec![Action::RefreshLeader],
        "still within the timeout"
    );
    c.memory.primary_start_at = Some(100_000 - 31_000);
    let d = c.decide();
    assert_eq!(
        d.actions,
        vec![
            Action::AbortLongAction,
            Action::ReleaseLeader,
            Action::Start(LongAction::Stop {
                mode: StopMode::Immediate
            })
        ]
    );
}

#[test]
fn rewind_waits_until_the_new_leader_is_a_primary() {
    let mut promoting = member("n1", "promoted", 1000);
    promoting.data.role = "promoted".into();
    let mut c = Case::new("n0", Some(cluster(Some("n1"), vec![promoting])), stopped(false));
    c.dynamic.use_pg_rewind = true;
    assert!(c.decide().actions.is_empty());
}

#[test]
fn switchover_and_leaderless_starts_of_former_primaries_are_rewound_later() {
    let view = cluster(None, vec![member("n1", "replica", 1000)]);
    let mut c = Case::new("n0", Some(view), stopped(false));
    let _ = c.decide();
    assert!(c.memory.rewind_pending, "former primary started without a leader");
    let view = with_failover(
        cluster(Some("n0"), vec![member("n1", "replica", 1000)]),
        Some("n0"),
        Some("n1"),
        None,
    );
    let mut c = Case::new("n0", Some(view), stopped(false));
    c.memory.switchover_demote = true;
    let _ = c.decide();
    assert!(c.memory.rewind_pending, "old leader of a switchover");
}

#[test]
fn nobody_defers_to_a_candidate_that_cannot_lead() {
    let mut lagging = member("n1", "replica", 10);
    lagging.data.xlog_location = Some(10);
    let view = with_failover(cluster(None, vec![lagging]), None, Some("n1"), None);
    let mut c = Case::new("n2", Some(view), running(PgRole::Replica, 1000));
    c.dynamic.maximum_lag_on_failover = 100;
    assert_eq!(c.decide().actions, vec![Action::AskPeers]);
}

#[test]
fn unchanged_slots_are_not_synchronised_every_cycle() {
    let view = cluster(
        Some("n0"),
        vec![member("n0", "primary", 1000), member("n1", "replica", 900)],
    );
    let mut c = Case::new("n0", Some(view.clone()), running(PgRole::Primary, 1000));
    c.outcomes.push(Outcome::LeaderRefreshed);
    let has_sync = |d: &Decision| d.actions.iter().any(|a| matches!(a, Action::SyncSlots(_)));
    assert!(has_sync(&c.decide()));
    assert!(!has_sync(&c.decide()), "same set, synchronised a moment ago");
    c.cluster = Some(cluster(
        Some("n0"),
        vec![member("n0", "primary", 1000), member("n2", "replica", 900)],
    ));
    assert!(has_sync(&c.decide()), "the set changed");
}

/// A daemon restarted after a blind demotion starts with `rewind_pending` from its marker on disk:
/// its data directory looks like a replica's (standby.signal) and may be unclean, so it starts as a
/// standby (pg_rewind needs a clean stop), then rejoins through pg_rewind. Once the data directory
/// is gone, nothing is owed: a new image follows without pg_rewind.
#[test]
fn rewind_pending_from_a_previous_daemon_rejoins_and_a_new_image_owes_none() {
    let view = cluster(Some("n1"), vec![member("n1", "primary", 1000)]);
    let mut c = Case::new("n0", Some(view.clone()), stopped(true));
    c.dynamic.use_pg_rewind = true;
    c.memory.rewind_pending = true;
    assert!(matches!(
        c.decide().actions[..],
        [Action::Start(LongAction::StartReplica { .. })]
    ));
    c.pg = running(PgRole::Replica, 1000);
    assert!(matches!(
        c.decide().actions[..],
        [Action::Start(LongAction::Rejoin { .. })]
    ));
    let mut c = Case::new("n0", Some(view), PgState::NoData);
    c.dynamic.use_pg_rewind = true;
    c.memory.rewind_pending = true;
    c.decide();
    assert!(!c.memory.rewind_pending);
}
