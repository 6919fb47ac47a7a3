
pub mod jute;
pub mod fourlw;
pub mod stats;
pub mod proto;
pub mod mailbox;
pub mod reactor;
pub mod shared;
