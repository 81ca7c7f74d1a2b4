//! The tracer's user space as a library: everything but the CLI entry point, so tests
//! and benchmarks drive the same pipeline the binary does.
pub mod check;
pub mod decode;
pub mod diagnosis;
pub mod event;
pub mod export;
pub mod facts;
pub mod job;
pub mod loader;
pub mod names;
pub mod pipeline;
pub mod process;
pub mod record;
pub mod replay;
pub mod report;
pub mod secrets;
pub mod snapshot;
#[cfg(test)]
mod testutil;
pub mod tracefile;
pub mod users;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable, coloured on a terminal.
    Text,
    /// One JSON document: {"version", "jobs", "findings", "stats"}.
    Json,
}
