//! The coordination state machine: the znode tree and its stats, ACL checks,
//! the session table, the watch registry, the `Txn` type with its
//! deterministic `apply`, the prep step that turns a request into a `Txn`, and
//! the `Storage` seam that durability backends implement. No sockets, threads
//! or clocks: time comes in as arguments and is carried inside txns.

pub mod acl;
pub mod apply;
pub mod native;
pub mod path;
pub mod persist;
pub mod prep;
pub mod quota;
pub mod read;
pub mod request;
pub mod restore;
#[cfg(feature = "rocksdb")]
pub mod rocks;
pub mod session;
pub mod storage;
pub mod tree;
pub mod txn;
pub mod types;
pub mod watch;

pub use storage::{Checkpoint, Checkpointer};
