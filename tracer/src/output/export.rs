//! `tracer export FILE --to jsonl|perfetto OUT`: the recorded events for other tools.
//!
//! - jsonl: one JSON object per event in stream order, with `job` when it belongs to one.
//! - perfetto: Chrome trace-event JSON (ui.perfetto.dev, chrome://tracing): each job is
//!   a process named after it, each real process a thread track in it with a slice for
//!   its lifetime, syscalls as slices, failures and findings as instant markers.
use std::{
    collections::HashMap,
    io::{self, Write},
};

use serde_json::{json, Value};

use crate::{
    commands::replay,
    model::decode::{decode, decode_snapshot},
    model::event::{Body, Event},
    output::report::Report,
    tracefile::{Entry, TraceContents},
    Format,
};

/// Every event of the trace in stream order.
pub fn events(c: &TraceContents) -> Vec<Event> {
    let mut v: Vec<Event> = c
        .header
        .snapshot
        .iter()
        .map(|s| decode_snapshot(&s.process, s.root, s.ts_ns))
        .collect();
    for e in &c.entries {
        match e {
            Entry::Kernel(raw) => {
                if let Ok(ev) = decode(raw) {
                    v.push(ev);
                }
            }
            Entry::Synthetic(s) => v.push(decode_snapshot(&s.process, s.root, s.ts_ns)),
            Entry::Fact(_) | Entry::Schedules(_) | Entry::Lost(_) | Entry::SchedulerFiles(_) => {}
        }
    }
    v
}

/// (ts, tid, kind) -> job id, from the report's timelines.
fn job_index(rep: &Report) -> HashMap<(u64, u32, &'static str), u64> {
    let mut m = HashMap::new();
    for j in &rep.jobs {
        for e in &j.timeline {
            m.insert((e.ts_ns, e.tid, e.body.name()), j.id);
        }
    }
    m
}

pub fn jsonl(c: &TraceContents, out: &mut impl Write) -> io::Result<u64> {
    let rep = replay::analyse(c, Format::Json, true);
    let jobs = job_index(&rep);
    let mut n = 0;
    for e in events(c) {
        let mut v = serde_json::to_value(&e).map_err(io::Error::other)?;
        if let Some(id) = jobs.get(&(e.ts_ns, e.tid, e.body.name())) {
            v["job"] = json!(id);
        }
        serde_json::to_writer(&mut *out, &v).map_err(io::Error::other)?;
        out.write_all(b"\n")?;
        n += 1;
    }
    Ok(n)
}

fn us(ts_ns: u64, start_ns: u64) -> f64 {
    ts_ns.saturating_sub(start_ns) as f64 / 1000.0
}

pub fn perfetto(c: &TraceContents, out: &mut impl Write) -> io::Result<u64> {
    let rep = replay::analyse(c, Format::Json, true);
    let start = c.header.start_ns;
    let end = c.trailer.as_ref().map(|t| t.end_ns).unwrap_or_else(|| {
        rep.jobs
            .iter()
            .flat_map(|j| j.timeline.last())
            .map(|e| e.ts_ns)
            .max()
            .unwrap_or(start)
    });
    let mut ev: Vec<Value> = Vec::new();
    for j in &rep.jobs {
        let pid = j.id;
        let mark = j
            .findings
            .first()
            .map(|f| format!(" [{}]", f.kind))
            .unwrap_or_default();
        ev.push(
            json!({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
            "args": {"name": format!("job {}: {} ({}){mark}", j.id, j.command, j.scheduler)}}),
        );
        ev.push(
            json!({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
            "args": {"sort_index": j.id}}),
        );
        // Each real process: a named track and a slice for its life in this job.
        let mut first: HashMap<u32, (u64, String)> = HashMap::new();
        let mut last: HashMap<u32, u64> = HashMap::new();
        let mut exit: HashMap<u32, String> = HashMap::new();
        for e in &j.timeline {
            first.entry(e.pid).or_insert((e.ts_ns, e.comm.to_string()));
            last.insert(e.pid, e.ts_ns);
            if let Body::Fork { child_pid, .. } = &e.body {
                first
                    .entry(*child_pid)
                    .or_insert((e.ts_ns, e.comm.to_string()));
            }
            if let Body::Exit { status } = &e.body {
                exit.insert(
                    e.pid,
                    status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "exited".into()),
                );
            }
        }
        let mut pids: Vec<_> = first.iter().collect();
        pids.sort_by_key(|(p, (t, _))| (*t, **p));
        for (&tid, (t0, comm)) in pids {
            ev.push(
                json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                "args": {"name": format!("{tid} {comm}")}}),
            );
            let t1 = if exit.contains_key(&tid) {
                last[&tid]
            } else {
                end.max(last.get(&tid).copied().unwrap_or(*t0))
            };
            ev.push(json!({"ph": "X", "name": format!("pid {tid}"), "cat": "process", "pid": pid, "tid": tid,
                "ts": us(*t0, start), "dur": us(t1, *t0).max(0.0),
                "args": {"exit": exit.get(&tid).cloned().unwrap_or_else(|| "running at end of trace".into())}}));
        }
        for e in &j.timeline {
            let name = crate::output::report::describe(e);
            match (e.dur_ns, e.body.result()) {
                (Some(d), _) => ev.push(json!({"ph": "X", "name": e.body.name(), "cat": "syscall", "pid": pid, "tid": e.pid,
                    "ts": us(e.ts_ns - d, start), "dur": d as f64 / 1000.0, "args": {"what": name}})),
                _ if !matches!(e.body, Body::Snapshot { .. }) => ev.push(json!({"ph": "i", "s": "t", "name": e.body.name(),
                    "cat": "event", "pid": pid, "tid": e.pid, "ts": us(e.ts_ns, start), "args": {"what": name}})),
                _ => {}
            }
            if e.body.result().is_some_and(|r| !r.ok()) {
                ev.push(
                    json!({"ph": "i", "s": "t", "name": format!("failed: {name}"), "cat": "failure",
                    "pid": pid, "tid": e.pid, "ts": us(e.ts_ns, start)}),
                );
            }
        }
        for f in &j.findings {
            let at = f
                .evidence
                .first()
                .and_then(|&i| j.timeline.get(i))
                .map(|e| e.ts_ns)
                .unwrap_or(j.start_ns);
            ev.push(json!({"ph": "i", "s": "p", "name": format!("{}: {}", f.kind, f.message), "cat": "finding",
                "pid": pid, "tid": f.pid, "ts": us(at, start)}));
        }
    }
    let n = ev.len() as u64;
    let doc = json!({
        "traceEvents": ev,
        "displayTimeUnit": "ms",
        "metadata": {
            "tool": "tracer",
            "hostname": c.header.hostname,
            "kernel": c.header.kernel,
            "wall_clock_start_ns": c.header.start_ns as i64 + c.header.mono_to_wall_ns,
        }
    });
    serde_json::to_writer(&mut *out, &doc).map_err(io::Error::other)?;
    out.write_all(b"\n")?;
    Ok(n)
}
