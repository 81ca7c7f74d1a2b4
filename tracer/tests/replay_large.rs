//! A trace larger than the memory the replay may use: `tracer replay` reads it in a
//! stream (two passes, one block at a time) and lets reported jobs go, so it completes
//! under an address-space limit (`ulimit -v`) smaller than the file.
use std::{path::Path, process::Command};

use tracer::tracefile::{self, TraceHeader, TraceWriter, Trailer};
use tracer_common::{ExecSuccessRecord, ExitRecord, ForkRecord, Header, RecordKind, EXIT_HAS_CODE};

const SEC: u64 = 1_000_000_000;

fn bytes_of<T>(r: &T) -> Vec<u8> {
    // SAFETY: reading the bytes of a plain #[repr(C)] value of integers and arrays.
    unsafe { std::slice::from_raw_parts((r as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
        .to_vec()
}

fn header(kind: RecordKind, ts_ns: u64, pid: u32) -> Header {
    let mut comm = [0u8; 16];
    comm[..7].copy_from_slice(b"jt-root");
    Header {
        kind: kind as u32,
        flags: 0,
        ts_ns,
        pid,
        tid: pid,
        ppid: 0,
        uid: 0,
        gid: 0,
        _pad: 0,
        comm,
    }
}

/// `jobs` jobs of one root (pid 100), one every millisecond: a fork, the child's exec
/// of `/bin/true` and its exit. Returns the file's size.
fn write_trace(path: &Path, jobs: u64) -> u64 {
    let th = TraceHeader {
        format_major: tracefile::FORMAT_MAJOR,
        format_minor: tracefile::FORMAT_MINOR,
        tool_version: "test".into(),
        hostname: "big".into(),
        start_ns: SEC,
        ..Default::default()
    };
    let f = tracefile::create_file(path, true).expect("create the trace");
    let mut w = TraceWriter::new(path, f, &th);
    for i in 0..jobs {
        let ts = SEC + i * 1_000_000;
        let child = 1000 + (i % 4_000_000) as u32;
        w.kernel_record(&bytes_of(&ForkRecord {
            hdr: header(RecordKind::Fork, ts, 100),
            child_pid: child,
            _pad: 0,
            clone_flags: 0,
        }));
        let mut filename = [0u8; 256];
        filename[..9].copy_from_slice(b"/bin/true");
        w.kernel_record(&bytes_of(&ExecSuccessRecord {
            hdr: header(RecordKind::ExecSuccess, ts + 100_000, child),
            old_tid: child,
            filename_len: 10,
            filename,
        }));
        w.kernel_record(&bytes_of(&ExitRecord {
            hdr: header(RecordKind::Exit, ts + 500_000, child),
            status_flags: EXIT_HAS_CODE,
            code: 0,
            signal: 0,
            _pad: 0,
        }));
        if i % 10_000 == 0 {
            w.flush();
        }
    }
    let end_ns = SEC + jobs * 1_000_000;
    assert!(w
        .finish(&Trailer {
            end_ns,
            kernel_records: 3 * jobs,
            ..Default::default()
        })
        .is_none());
    std::fs::metadata(path).expect("trace written").len()
}

#[test]
fn a_trace_larger_than_the_memory_allowed_replays() {
    let dir = std::env::temp_dir().join(format!("jt-large-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.jtrace");
    let jobs = std::env::var("JT_LARGE_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    let size = write_trace(&path, jobs);
    // The replay may map 192 MiB of address space in all (its code and libraries
    // included): less than the records the file holds (its blocks are compressed),
    // and far less than its jobs held whole.
    let limit_kib = 192 * 1024;
    let records = jobs
        * (std::mem::size_of::<ForkRecord>()
            + std::mem::size_of::<ExecSuccessRecord>()
            + std::mem::size_of::<ExitRecord>()) as u64;
    if std::env::var_os("JT_LARGE_JOBS").is_none() {
        assert!(
            records > limit_kib * 1024,
            "the trace ({records} bytes of records) must be larger"
        );
    }
    eprintln!("{records} bytes of records in a file of {size} bytes");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {limit_kib} && exec \"$0\" replay --format json \"$1\""
        ))
        .arg(env!("CARGO_BIN_EXE_tracer"))
        .arg(&path)
        .output()
        .expect("run tracer replay");
    if std::env::var_os("JT_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    let stats = &rep["stats"];
    assert_eq!(stats["events"], 3 * jobs, "{stats}");
    assert_eq!(stats["jobs"], jobs, "{stats}");
    let listed = rep["jobs"].as_array().expect("jobs").len() as u64;
    let counted: u64 = rep["earlier_jobs"]
        .as_array()
        .expect("earlier jobs counted")
        .iter()
        .map(|e| e["runs"].as_u64().unwrap())
        .sum();
    assert_eq!(listed + counted, jobs);
    assert!(listed < 20_000, "{listed} jobs listed");
    // The latest job is among those listed.
    assert!(rep["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|j| j["id"] == jobs));
}
