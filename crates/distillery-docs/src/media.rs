//! Media type detection lives in the contracts (`distillery_core::media`): ingest detects, extract parses.

pub use distillery_core::media::MediaType;
