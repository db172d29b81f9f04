//! The commands besides `run` and `service`.

pub mod export;
pub mod extract;
pub mod judge;
pub mod schema;
pub mod serve;
pub mod status;
pub mod topics;
