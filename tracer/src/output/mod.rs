//! What a person or another tool reads: the report (text, JSON) and exports.
pub mod export;
pub mod follow;
pub mod report;
