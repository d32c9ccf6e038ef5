//! What happened, one line per event: the ring buffer of the last lines goes into every failure
//! report; a replay keeps every line.

use crate::clock::Millis;
use std::collections::VecDeque;

/// How many lines a failure report shows.
pub const RECENT: usize = 30;

#[derive(Debug, Default)]
pub struct EventLog {
    recent: VecDeque<String>,
    full: Option<Vec<String>>,
}

impl EventLog {
    pub fn new(keep_all: bool) -> EventLog {
        EventLog {
            recent: VecDeque::with_capacity(RECENT + 1),
            full: keep_all.then(Vec::new),
        }
    }

    pub fn push(&mut self, at: Millis, who: &str, what: impl Into<String>) {
        let line = format!("{:>6}.{:03}s {who:<5} {}", at / 1000, at % 1000, what.into());
        if let Some(full) = &mut self.full {
            full.push(line.clone());
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(line);
    }

    pub fn recent(&self) -> impl Iterator<Item = &String> {
        self.recent.iter()
    }

    /// Every line, when the log was created with `keep_all`.
    pub fn all(&self) -> Option<&[String]> {
        self.full.as_deref()
    }
}
