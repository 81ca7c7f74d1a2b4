//! `tracer export FILE --to jsonl|perfetto OUT`: a trace converted for other tools.
use std::{io::Write, path::Path, process::ExitCode};

use super::{replay, EXIT_CLEAN, EXIT_DAMAGED, EXIT_ERROR};
use crate::{output::export, tracefile};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportTo {
    /// One JSON object per event, for jq.
    Jsonl,
    /// Chrome trace-event JSON for ui.perfetto.dev or chrome://tracing.
    Perfetto,
}

pub fn run(file: &Path, to: ExportTo, out: &Path, force: bool) -> ExitCode {
    let c = match replay::load(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tracer: error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let damage = replay::damage_summary(file, &c);
    let mut sink: Box<dyn Write> = if out.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        match tracefile::create_file(out, force) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => {
                eprintln!("tracer: error: {e}");
                return ExitCode::from(EXIT_ERROR);
            }
        }
    };
    let written = match to {
        ExportTo::Jsonl => export::jsonl(&c, &mut sink),
        ExportTo::Perfetto => export::perfetto(&c, &mut sink),
    }
    .and_then(|n| sink.flush().map(|_| n));
    match written {
        Ok(n) => {
            if out.as_os_str() != "-" {
                eprintln!("tracer: wrote {n} records to {}", out.display());
            }
            if damage.is_some() {
                ExitCode::from(EXIT_DAMAGED)
            } else {
                ExitCode::from(EXIT_CLEAN)
            }
        }
        // `| head` closing the pipe is the reader's choice, not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(EXIT_CLEAN),
        Err(e) => {
            eprintln!("tracer: error: writing {}: {e}", out.display());
            ExitCode::from(EXIT_ERROR)
        }
    }
}
