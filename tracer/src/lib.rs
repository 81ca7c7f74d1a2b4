//! The tracer's user space as a library: everything but the CLI entry point, so tests
//! and benchmarks drive the same pipeline the binary does.
//!
//! Folders follow the data flow, and nothing imports from a stage above it:
//! `capture` (kernel and `/proc`, the only part that needs root) and `tracefile`
//! produce records; `model` turns them into processes and jobs; `diagnosis` names what
//! broke; `output` prints it; `commands` wire the stages for each subcommand.
pub mod capture;
pub mod commands;
pub mod diagnosis;
pub mod facts;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod schedules;
pub mod secrets;
#[cfg(test)]
mod testutil;
pub mod tracefile;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable, coloured on a terminal.
    Text,
    /// One JSON document: {"version", "jobs", "findings", "stats"}.
    Json,
}
