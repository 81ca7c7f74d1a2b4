//! Replay throughput, in events per second, against baselines measured in the same run:
//! reading and checking the frames alone, then decoding, then the whole analysis (model,
//! diagnosis, report) that `tracer replay` runs. Run with `cargo xtask bench`.
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracer::{commands::replay, model::decode::decode, tracefile, Format};

// The format 1.1 recording of the cron scenarios (uncompressed blocks, 16,685 events):
// the trace BENCHMARKS.md's replay figures were measured on, kept comparable.
static FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/cron-scenarios-1.1.jtrace");

/// Median seconds per run of `f` over `runs` runs.
fn median(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<Duration> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    t[runs / 2].as_secs_f64()
}

fn kernel_records(c: &tracefile::TraceContents) -> usize {
    c.entries
        .iter()
        .filter(|e| matches!(e, tracefile::Entry::Kernel(_)))
        .count()
}

fn main() {
    let runs = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(41usize);
    let c = tracefile::read(Bytes::from_static(FIXTURE)).expect("fixture reads");
    let events = replay::analyse(&c, Format::Json, true).stats.events as f64;

    let read = median(runs, || {
        let c = tracefile::read(Bytes::from_static(FIXTURE)).unwrap();
        std::hint::black_box(c.entries.len());
    });
    let decoded = median(runs, || {
        let c = tracefile::read(Bytes::from_static(FIXTURE)).unwrap();
        let mut n = 0;
        for e in &c.entries {
            if let tracefile::Entry::Kernel(raw) = e {
                n += decode(raw).is_ok() as usize;
            }
        }
        std::hint::black_box(n);
    });
    // What the live path adds per record: scanning argv/env for secrets (most records
    // hold none; this fixture's secrets were redacted when it was recorded).
    let redacted = median(runs, || {
        let c = tracefile::read(Bytes::from_static(FIXTURE)).unwrap();
        let mut counts = tracer::secrets::Counts::new();
        let mut n = 0;
        for e in &c.entries {
            if let tracefile::Entry::Kernel(raw) = e {
                let r = tracer::secrets::redact_record(raw, &mut counts);
                n += decode(r.as_deref().unwrap_or(raw)).is_ok() as usize;
            }
        }
        std::hint::black_box((n, counts.len()));
    });
    let full = median(runs, || {
        let c = tracefile::read(Bytes::from_static(FIXTURE)).unwrap();
        std::hint::black_box(replay::analyse(&c, Format::Json, true).jobs.len());
    });
    let json = median(runs, || {
        let c = tracefile::read(Bytes::from_static(FIXTURE)).unwrap();
        let rep = replay::analyse(&c, Format::Json, true);
        let mut sink = Vec::with_capacity(8 << 20);
        tracer::output::report::write_json(&mut sink, &rep, false).unwrap();
        std::hint::black_box(sink.len());
    });
    println!(
        "replay benchmark: {} events, {} bytes, median of {runs} runs",
        events,
        FIXTURE.len()
    );
    let row = |name: &str, secs: f64| {
        println!(
            "  {name:<34} {:>12.0} events/s  {:>8.2} ms/run  {:>6.2}x the read baseline's time",
            events / secs,
            secs * 1e3,
            secs / read
        );
    };
    row("read + checksum (baseline)", read);
    row("read + decode", decoded);
    row("read + redact + decode (live path)", redacted);
    println!(
        // Against read + decode as a whole: decoding alone is within the noise of
        // reading, so a ratio to its share alone is meaningless.
        "  redaction makes read + decode {:+.0}% slower ({:.0} ns per record)",
        (redacted / decoded - 1.0) * 100.0,
        (redacted - decoded).max(0.0) * 1e9 / kernel_records(&c) as f64
    );
    row("read + decode + model + diagnosis", full);
    row("... + JSON report (tracer replay)", json);
}
