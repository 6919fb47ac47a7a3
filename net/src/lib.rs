pub mod fourlw;
pub mod jute;
pub mod mailbox;
pub mod proto;
pub mod reactor;
pub mod shared;
pub mod stats;
