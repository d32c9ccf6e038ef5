//! User callbacks (`postgresql.callbacks`): `on_start`, `on_stop`, `on_restart`, `on_reload`,
//! `on_role_change`, each run as `CMD ACTION ROLE SCOPE` in the background, as Patroni does. A newer
//! call supersedes an older one that still runs (it is killed), so a slow script never delays the
//! HA loop or sees stale roles. Output is logged line by line; a failing script is only logged.

use ferroni_model::{Config, Role};
use std::collections::BTreeMap;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tracing::{info, warn};

pub struct Callbacks {
    commands: BTreeMap<String, Vec<String>>,
    scope: String,
    running: Option<Child>,
}

impl Callbacks {
    pub fn new(cfg: &Config) -> Callbacks {
        let mut commands = BTreeMap::new();
        for (name, cmd) in &cfg.postgresql.callbacks {
            match ferroni_config::split_command(cmd) {
                Ok(words) if !words.is_empty() => {
                    commands.insert(name.clone(), words);
                }
                _ => warn!("callback {name}: cannot split command {cmd:?}; it will not run"),
            }
        }
        Callbacks {
            commands,
            scope: cfg.scope.clone(),
            running: None,
        }
    }

    /// Runs the callback for `event` (`on_start`, ...) with the role the node now has.
    pub fn fire(&mut self, event: &str, role: Role) {
        let Some(words) = self.commands.get(event) else { return };
        if let Some(mut old) = self.running.take()
            && matches!(old.try_wait(), Ok(None))
        {
            info!("callback superseded by {event}: killing the previous one");
            let _ = old.start_kill();
        }
        let role = match role {
            Role::Primary | Role::Promoted => "primary",
            Role::StandbyLeader => "standby_leader",
            _ => "replica",
        };
        let mut cmd = Command::new(&words[0]);
        cmd.args(&words[1..])
            .args([event, role, self.scope.as_str()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        match cmd.spawn() {
            Ok(mut child) => {
                info!("running callback {event} {role} {}", self.scope);
                log_lines(event, child.stdout.take());
                log_lines(event, child.stderr.take());
                self.running = Some(child);
            }
            Err(e) => warn!("callback {event} could not start ({}): {e}", words[0]),
        }
    }
}

fn log_lines(event: &str, pipe: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>) {
    let Some(pipe) = pipe else { return };
    let event = event.to_string();
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            info!(callback = %event, "{line}");
        }
    });
}
