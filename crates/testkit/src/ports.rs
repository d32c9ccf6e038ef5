//! Free TCP ports on 127.0.0.1 for the servers tests start.
//!
//! A port is found by binding port 0 and reading back what the kernel chose; the listener is closed
//! before the port is handed out, so another process can still grab it before our server binds it.
//! Within one process the ports already handed out are remembered, so two calls never collide even
//! when the kernel hands the same ephemeral port back. Across processes (cargo-nextest runs every test
//! in its own process) the race remains; server harnesses such as [`crate::etcd::Etcd`] retry with new
//! ports when their server reports "address already in use".
//!
//! Failure: panics when no port can be bound at all, which means the test machine is broken.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, OnceLock};

/// Ports handed out by this process; never returned twice.
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A TCP port on 127.0.0.1 that was free a moment ago and that this process has not handed out before.
pub fn free_port() -> u16 {
    // The kernel may hand a just-released port back; a few hundred attempts make a false
    // "exhausted" practically impossible while still ending if something is really wrong.
    for _ in 0..500 {
        let port = match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()) {
            Ok(addr) => addr.port(),
            Err(e) => panic!("free_port: cannot bind 127.0.0.1:0: {e}"),
        };
        // A poisoned set is still a valid set: a panicking test must not break the others.
        let mut ports = handed_out().lock().unwrap_or_else(|p| p.into_inner());
        if ports.insert(port) {
            return port;
        }
    }
    panic!("free_port: the kernel kept returning ports this process already handed out")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_returns_the_same_port_twice() {
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
    }

    #[test]
    fn returned_port_can_be_bound() {
        let port = free_port();
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("a free port is bindable");
    }
}
