//! Virtual time in milliseconds and the queue of timed events. Events at the same instant run in
//! the order they were scheduled, so a seed replays exactly; nothing here reads a real clock.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Milliseconds since the start of the run.
pub type Millis = u64;

struct Scheduled<E> {
    at: Millis,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Scheduled<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<E> Eq for Scheduled<E> {}

impl<E> PartialOrd for Scheduled<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Scheduled<E> {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

pub struct Clock<E> {
    now: Millis,
    seq: u64,
    queue: BinaryHeap<Scheduled<E>>,
}

impl<E> Default for Clock<E> {
    fn default() -> Self {
        Clock {
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
        }
    }
}

impl<E> Clock<E> {
    pub fn now(&self) -> Millis {
        self.now
    }

    /// Schedules `event` at `at`; an instant in the past means "now" (time never runs backwards).
    pub fn schedule(&mut self, at: Millis, event: E) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at: at.max(self.now),
            seq: self.seq,
            event,
        });
    }

    pub fn next_at(&self) -> Option<Millis> {
        self.queue.peek().map(|s| s.at)
    }

    /// Moves time forward to `at` without running an event (lease expiry happens between events).
    pub fn advance_to(&mut self, at: Millis) {
        self.now = self.now.max(at);
    }

    pub fn pop(&mut self) -> Option<E> {
        let s = self.queue.pop()?;
        self.now = self.now.max(s.at);
        Some(s.event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_then_insertion_order() {
        let mut c = Clock::default();
        c.schedule(20, "b");
        c.schedule(10, "a");
        c.schedule(20, "c");
        assert_eq!(c.pop(), Some("a"));
        assert_eq!(c.now(), 10);
        assert_eq!((c.pop(), c.pop()), (Some("b"), Some("c")));
        c.schedule(5, "late");
        assert_eq!(c.next_at(), Some(20), "the past is clamped to now");
    }
}
