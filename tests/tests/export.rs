//! `tracer export` on the recorded cron fixture: JSON lines for jq, and a Perfetto /
//! Chrome trace checked against a JSON schema of the trace-event format. No root.
use std::{path::Path, process::Command};

use serde_json::Value;
use tracer_tests::{tracer_bin, TempDir};

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cron-scenarios.jtrace")
}

fn export(to: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(tracer_bin())
        .arg("export")
        .arg(fixture())
        .args(["--to", to])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn perfetto_export_matches_the_trace_event_schema_and_names_jobs() {
    let dir = TempDir::new("perfetto");
    let out = dir.0.join("trace.json");
    let r = export("perfetto", &out, &[]);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let schema: Value =
        serde_json::from_str(include_str!("../schemas/chrome-trace-event.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .take(10)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "schema violations:\n{}",
        errors.join("\n")
    );
    // The schema has teeth: a slice without a duration is rejected.
    let bad =
        serde_json::json!({"traceEvents": [{"ph": "X", "name": "x", "pid": 1, "tid": 1, "ts": 0}]});
    assert!(!validator.is_valid(&bad));

    let events = doc["traceEvents"].as_array().unwrap();
    let names: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "process_name")
        .filter_map(|e| e["args"]["name"].as_str())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.contains("emfile.sh") && n.contains("[fd_exhausted]")),
        "job names as process names: {names:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["ph"] == "X" && e["cat"] == "process"),
        "process lifetimes"
    );
    assert!(
        events
            .iter()
            .any(|e| e["ph"] == "X" && e["cat"] == "syscall"),
        "syscall slices"
    );
    assert!(
        events
            .iter()
            .any(|e| e["ph"] == "i" && e["cat"] == "failure"),
        "failure markers"
    );
    assert!(
        events
            .iter()
            .any(|e| e["ph"] == "i" && e["cat"] == "finding"),
        "finding markers"
    );
    // 0600: the export holds argv and env.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Not over an existing file without --force.
    assert_eq!(export("perfetto", &out, &[]).status.code(), Some(2));
    assert_eq!(
        export("perfetto", &out, &["--force"]).status.code(),
        Some(0)
    );
}

#[test]
fn jsonl_export_is_one_event_per_line_with_job_ids() {
    let r = Command::new(tracer_bin())
        .arg("export")
        .arg(fixture())
        .args(["--to", "jsonl", "-"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0));
    let lines: Vec<Value> = String::from_utf8_lossy(&r.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let rep: Value = serde_json::from_slice(
        &Command::new(tracer_bin())
            .arg("replay")
            .arg(fixture())
            .args(["--format", "json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        lines.len() as u64,
        rep["stats"]["events"].as_u64().unwrap(),
        "every event, once"
    );
    assert!(lines
        .iter()
        .all(|e| e["event"].is_string() && e["ts_ns"].is_u64()));
    let emfile = lines
        .iter()
        .find(|e| e["error"] == "EMFILE")
        .expect("the EMFILE open is in the export");
    assert!(emfile["job"].is_u64(), "{emfile}");
}
