//! Real-process harness for integration tests: free ports, temporary directories the `postgres`
//! user can use, a throwaway etcd, and waits that poll a condition and say what they waited for.
//! Every process started here is stopped when its guard drops.

pub mod etcd;
pub mod netns;
pub mod node;
pub mod ports;
pub mod wait;
pub mod writable;
