//! ferroni-postgres: everything ferroni does to and learns from the local PostgreSQL.
//!
//! The crate owns effects and observations, never decisions: the daemon asks it to run `initdb`, start,
//! stop, promote, clone or bootstrap (see [`control::PgControl`]), to write the managed configuration files
//! ([`conf`]), and to look at the server ([`probe::Prober`]). Every child process goes through
//! [`runner::Cmd`], which logs its output line by line and never sees a password: passwords travel
//! through pgpass files, temporary pwfiles or escaped SQL literals only.
//!
//! Layout decisions the rest of ferroni relies on:
//! - `unix_socket_directories` defaults to the data directory's parent ([`conf::socket_dir`]); a local
//!   `postgresql.parameters.unix_socket_directories` overrides it. Local connections find the socket
//!   through `postmaster.pid`, so they work whatever the server was started with.
//! - The server is started with `pg_ctl start` (which puts the postmaster in its own session) and its
//!   stdout/stderr go to `<data_dir>/postmaster.log` ([`control::PgControl::log_file`]).
//! - Managed files live in `config_dir`: `postgresql.conf` (ours), `postgresql.base.conf` (initdb's
//!   original), `pg_hba.conf`.

pub mod conf;
pub mod conninfo;
pub mod control;
pub mod controldata;
pub mod error;
pub mod pidfile;
pub mod probe;
pub mod rewind;
pub mod runner;
pub mod slots;

mod client;
mod fsutil;

pub use conf::{ConfInput, ConfRole, PgpassEntry, RenderedConf, SignalFile, StandbyParams};
pub use control::{BasebackupProgress, CloneOptions, PgControl, RetryHook, StopMode, StopOutcome};
pub use controldata::ControlData;
pub use error::{CloneError, PgError};
pub use probe::{Probe, Prober, ReplicationRow, WalReceiver, probe};
pub use rewind::{CrashRecovery, RewindOptions, RewindOutcome, RewindReport, RewindSupport};
pub use runner::{Cmd, Output, RunAs, Stream};
