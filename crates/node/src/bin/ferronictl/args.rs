//! The command line, spelled like patronictl's so existing scripts and habits carry over: global
//! options before the command (`-c`, `-d`, `-k`), then the command with its own flags.
//!
//! Global options are deliberately not `global = true`: patronictl's `query` reuses `-c` and `-d`
//! for other meanings, and click only accepts the group options in front of the command anyway.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "ferronictl",
    version,
    about = "Control a ferroni (Patroni-compatible) PostgreSQL cluster",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Configuration file (ferroni/Patroni YAML); scope, namespace and etcd3 hosts are read from it.
    /// Default: ~/.config/patroni/patronictl.yaml when it exists.
    #[arg(
        short = 'c',
        long = "config-file",
        env = "PATRONICTL_CONFIG_FILE",
        value_name = "FILE"
    )]
    pub config_file: Option<PathBuf>,

    /// Where the DCS is: etcd3://HOST:PORT[/NAMESPACE] (etcd:// is accepted and also spoken to with the
    /// v3 API). Overrides the configuration file; default etcd3://127.0.0.1:2379.
    #[arg(
        short = 'd',
        long = "dcs-url",
        visible_alias = "dcs",
        env = "DCS_URL",
        value_name = "URL"
    )]
    pub dcs_url: Option<String>,

    /// Do not check the certificates of HTTPS REST APIs (as `ctl.insecure: true`).
    #[arg(short = 'k', long)]
    pub insecure: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the members of a cluster.
    List(ListArgs),
    /// Print the members as a tree along the replication chain (tag replicatefrom).
    Topology(TopologyArgs),
    /// Show the dynamic configuration stored in the DCS.
    ShowConfig(ClusterArg),
    /// Change the dynamic configuration stored in the DCS.
    EditConfig(EditConfigArgs),
    /// Show the history of failovers and switchovers.
    History(HistoryArgs),
    /// Print a libpq connection string for the leader or a chosen member.
    Dsn(DsnArgs),
    /// Remove every key of a cluster from the DCS.
    Remove(RemoveArgs),
    /// Print the version of ferronictl, and with CLUSTER_NAME that of the members.
    Version(VersionArgs),
    /// Hand the leader role to a healthy replica, now or at a scheduled time.
    Switchover(SwitchoverArgs),
    /// Promote a chosen member, also when the cluster has no leader.
    Failover(FailoverArgs),
    /// Restart PostgreSQL on members.
    Restart(RestartArgs),
    /// Rebuild replicas from scratch (wipe the data directory and clone again).
    Reinit(ReinitArgs),
    /// Make members re-read their configuration (like SIGHUP).
    Reload(ReloadArgs),
    /// Discard a scheduled switchover or scheduled restarts.
    #[command(override_usage = "ferronictl flush [OPTIONS] <CLUSTER_NAME> [MEMBER_NAME]... <restart|switchover>")]
    Flush(FlushArgs),
    /// Put the cluster into maintenance mode: no automatic failover, PostgreSQL left alone.
    Pause(PauseArgs),
    /// Leave maintenance mode.
    Resume(PauseArgs),
    /// Turn the cluster into a standby cluster replicating from another one.
    DemoteCluster(DemoteClusterArgs),
    /// Turn a standby cluster into a standalone cluster with a primary.
    PromoteCluster(PromoteClusterArgs),
}

/// `pretty` is the bordered table; the others are for scripts.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pretty,
    Tsv,
    Json,
    #[value(alias = "yml")]
    Yaml,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Refresh the output every 2 seconds.
    #[arg(short = 'W')]
    pub every_two_seconds: bool,
    /// Refresh the output every SECONDS seconds.
    #[arg(short = 'w', long = "watch", value_name = "SECONDS")]
    pub watch: Option<f64>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Clusters to list; default: scope from the configuration file.
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster_names: Vec<String>,
    /// Also show pending restart, scheduled restart and tags.
    #[arg(short = 'e', long)]
    pub extended: bool,
    /// Print a timestamp before each table.
    #[arg(short = 't', long = "timestamp")]
    pub timestamp: bool,
    #[arg(short = 'f', long = "format", value_enum, default_value = "pretty")]
    pub format: Format,
    #[command(flatten)]
    pub watch: WatchArgs,
}

#[derive(Args, Debug)]
pub struct TopologyArgs {
    /// Clusters to show; default: scope from the configuration file.
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster_names: Vec<String>,
    #[command(flatten)]
    pub watch: WatchArgs,
}

#[derive(Args, Debug)]
pub struct ClusterArg {
    /// Default: scope from the configuration file.
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster_name: Option<String>,
}

#[derive(Args, Debug)]
pub struct EditConfigArgs {
    /// Default: scope from the configuration file.
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Do not show the changes.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Set a value, e.g. ttl=30 or postgresql.parameters.work_mem=8MB (value read as YAML; empty
    /// or null deletes the key). Repeatable.
    #[arg(short = 's', long = "set", value_name = "KEY.PATH=VALUE")]
    pub set: Vec<String>,
    /// Set a PostgreSQL parameter: shorthand for -s postgresql.parameters.NAME=VALUE. Repeatable.
    #[arg(short = 'p', long = "pg", value_name = "NAME=VALUE")]
    pub pg: Vec<String>,
    /// Merge the YAML in FILE (- for standard input) into the configuration.
    #[arg(long = "apply", value_name = "FILE")]
    pub apply: Option<String>,
    /// Replace the whole configuration with the YAML in FILE (- for standard input).
    #[arg(long = "replace", value_name = "FILE")]
    pub replace: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Default: scope from the configuration file.
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    #[arg(short = 'f', long = "format", value_enum, default_value = "pretty")]
    pub format: Format,
}

/// Member roles as patronictl names them on its command line.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleArg {
    /// The leader-key holder, primary or standby leader.
    Leader,
    /// The leader of a cluster that is not a standby cluster.
    #[value(alias = "master")]
    Primary,
    /// The leader of a standby cluster.
    StandbyLeader,
    /// Any member that does not hold the leader key.
    #[value(alias = "standby")]
    Replica,
    Any,
}

#[derive(Args, Debug)]
pub struct DsnArgs {
    /// Default: scope from the configuration file.
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Give the DSN of a member with this role (default: leader).
    #[arg(short = 'r', long = "role", value_enum, conflicts_with = "member")]
    pub role: Option<RoleArg>,
    /// Give the DSN of this member.
    #[arg(short = 'm', long = "member", value_name = "NAME")]
    pub member: Option<String>,
}

#[derive(Args, Debug)]
pub struct RemoveArgs {
    /// The cluster to remove (never defaulted, so it is always typed on purpose).
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster_name: String,
    /// Format of the member table shown before the questions.
    #[arg(short = 'f', long = "format", value_enum, default_value = "pretty")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Also ask the members of this cluster for their versions (REST API).
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Only these members.
    #[arg(value_name = "MEMBER_NAME")]
    pub member_names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct SwitchoverArgs {
    /// Default: scope from the configuration file.
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// The current leader (default: asked, or with --force the current leader).
    #[arg(long = "leader", visible_alias = "primary", alias = "master", value_name = "NAME")]
    pub leader: Option<String>,
    /// The member to become leader (default: asked, or with --force the best replica).
    #[arg(long, value_name = "NAME")]
    pub candidate: Option<String>,
    /// When: `now`, or a timestamp such as 2026-11-22T12:00 (local time unless it has an offset).
    #[arg(long, value_name = "TIMESTAMP")]
    pub scheduled: Option<String>,
    /// Do not ask for confirmation at any point.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct FailoverArgs {
    /// Default: scope from the configuration file.
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// The member to promote.
    #[arg(long, value_name = "NAME")]
    pub candidate: Option<String>,
    /// Do not ask for confirmation at any point.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct RestartArgs {
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster_name: String,
    /// Members to restart (default: all members with --role).
    #[arg(value_name = "MEMBER_NAME")]
    pub member_names: Vec<String>,
    /// Restart only members with this role.
    #[arg(short = 'r', long = "role", value_enum, default_value = "any")]
    pub role: RoleArg,
    /// Restart a single member only, picked at random among the selected ones.
    #[arg(long = "any")]
    pub any: bool,
    /// Scheduled restarts are not supported by ferroni; only `now` is accepted.
    #[arg(long, value_name = "TIMESTAMP")]
    pub scheduled: Option<String>,
    /// Restart only if the running PostgreSQL version is older than this (e.g. 16.4).
    #[arg(long = "pg-version", value_name = "VERSION")]
    pub pg_version: Option<String>,
    /// Restart only members with a pending restart.
    #[arg(long)]
    pub pending: bool,
    /// Give up (and let a failover happen if needed) when the restart takes longer, e.g. 60 or 2min.
    #[arg(long, value_name = "TIMEOUT")]
    pub timeout: Option<String>,
    /// Do not ask for confirmation at any point.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct ReinitArgs {
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster_name: String,
    /// Replicas to rebuild.
    #[arg(value_name = "MEMBER_NAME")]
    pub member_names: Vec<String>,
    /// Do not ask for confirmation, and cancel a task already running on the member.
    #[arg(long)]
    pub force: bool,
    /// Take the base backup from the leader (not from a `clonefrom` member).
    #[arg(long = "from-leader")]
    pub from_leader: bool,
    /// Wait until the rebuild has finished.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Args, Debug)]
pub struct ReloadArgs {
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster_name: String,
    /// Members to reload (default: all members with --role).
    #[arg(value_name = "MEMBER_NAME")]
    pub member_names: Vec<String>,
    /// Reload only members with this role.
    #[arg(short = 'r', long = "role", value_enum, default_value = "any")]
    pub role: RoleArg,
    /// Do not ask for confirmation at any point.
    #[arg(long)]
    pub force: bool,
}

/// What `flush` discards.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushTarget {
    Restart,
    Switchover,
}

#[derive(Args, Debug)]
pub struct FlushArgs {
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster_name: String,
    /// Members whose scheduled restart is discarded (for restart; default: all with --role), then
    /// what to discard: `restart` or `switchover`.
    #[arg(value_name = "MEMBER_NAME|TARGET", required = true, num_args = 1..)]
    pub members_and_target: Vec<String>,
    /// Only members with this role.
    #[arg(short = 'r', long = "role", value_enum, default_value = "any")]
    pub role: RoleArg,
    /// Do not ask for confirmation at any point.
    #[arg(long)]
    pub force: bool,
}

impl FlushArgs {
    /// patronictl's `flush CLUSTER [MEMBER...] restart|switchover`: the last word is the target.
    /// (clap cannot put an optional list in front of a required positional, so it is split here.)
    pub fn target(&self) -> Result<(&[String], FlushTarget), String> {
        let (last, members) = self
            .members_and_target
            .split_last()
            .ok_or("give what to flush: restart or switchover")?;
        let target = FlushTarget::from_str(last, true).map_err(|_| {
            format!("invalid target {last:?} for flush: the last argument must be restart or switchover")
        })?;
        Ok((members, target))
    }
}

#[derive(Args, Debug)]
pub struct PauseArgs {
    /// Default: scope from the configuration file.
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Wait until every member has taken the change.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Args, Debug)]
pub struct DemoteClusterArgs {
    /// Default: scope from the configuration file.
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Address of the remote node to replicate from.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Port of the remote node.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Command that restores WAL from the remote cluster's archive.
    #[arg(long = "restore-command", value_name = "COMMAND")]
    pub restore_command: Option<String>,
    /// Replication slot on the remote node.
    #[arg(long = "primary-slot-name", value_name = "NAME")]
    pub primary_slot_name: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct PromoteClusterArgs {
    /// Default: scope from the configuration file.
    #[arg(value_name = "CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub force: bool,
}

impl RoleArg {
    /// The name patronictl prints in messages such as "No replica among provided members".
    pub fn name(self) -> &'static str {
        match self {
            RoleArg::Leader => "leader",
            RoleArg::Primary => "primary",
            RoleArg::StandbyLeader => "standby-leader",
            RoleArg::Replica => "replica",
            RoleArg::Any => "any",
        }
    }
}

impl WatchArgs {
    /// The refresh interval, or `None` for a single run. `-w` wins over `-W` as in patronictl.
    pub fn interval(&self) -> Option<std::time::Duration> {
        match self.watch {
            // Zero, negative or absurd values mean "no watching", as a zero does in patronictl.
            Some(s) if s > 0.0 => std::time::Duration::try_from_secs_f64(s).ok(),
            Some(_) => None,
            None if self.every_two_seconds => Some(std::time::Duration::from_secs(2)),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flush_takes_the_target_last() {
        let cli =
            Cli::try_parse_from(["ferronictl", "flush", "batman", "pg1", "pg2", "restart", "--force"]).expect("valid");
        let Command::Flush(a) = cli.command else {
            panic!("not flush")
        };
        let (members, target) = a.target().expect("valid");
        assert_eq!(
            (members, target),
            (&["pg1".to_string(), "pg2".to_string()][..], FlushTarget::Restart)
        );
        let cli = Cli::try_parse_from(["ferronictl", "flush", "batman", "switchover"]).expect("valid");
        let Command::Flush(a) = cli.command else {
            panic!("not flush")
        };
        assert_eq!(a.target().expect("valid").1, FlushTarget::Switchover);
        let cli = Cli::try_parse_from(["ferronictl", "flush", "batman", "pg1"]).expect("parses");
        let Command::Flush(a) = cli.command else {
            panic!("not flush")
        };
        assert!(a.target().is_err());
        assert!(Cli::try_parse_from(["ferronictl", "flush", "batman"]).is_err());
    }

    #[test]
    fn patronictl_spellings() {
        for args in [
            vec![
                "ferronictl",
                "switchover",
                "--primary",
                "a",
                "--candidate",
                "b",
                "--scheduled",
                "now",
                "--force",
            ],
            vec!["ferronictl", "switchover", "--master", "a"],
            vec![
                "ferronictl",
                "restart",
                "c",
                "-r",
                "master",
                "--any",
                "--pending",
                "--pg-version",
                "16.4",
                "--timeout",
                "30",
            ],
            vec!["ferronictl", "reinit", "c", "m", "--from-leader", "--wait", "--force"],
            vec!["ferronictl", "reload", "c", "--role", "standby"],
            vec!["ferronictl", "pause", "--wait"],
            vec!["ferronictl", "resume", "c"],
            vec![
                "ferronictl",
                "demote-cluster",
                "--host",
                "h",
                "--port",
                "5432",
                "--restore-command",
                "cp",
                "--primary-slot-name",
                "s",
            ],
            vec!["ferronictl", "promote-cluster", "c", "--force"],
        ] {
            assert!(Cli::try_parse_from(&args).is_ok(), "{args:?}");
        }
    }
}
