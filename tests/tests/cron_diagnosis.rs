//! Real Debian cron runs real crontab entries that fail in the ways on-call engineers
//! meet; the tracer must name each with the right kind and a message that names the
//! culprit. All scenarios fire at one minute boundary. The recorded trace is then
//! replayed and must give the same jobs and findings; with TRACER_UPDATE_FIXTURES=1 it
//! becomes the checked-in fixture that the no-root replay tests use.
use std::{thread, time::Duration};

use serde_json::Value;
use tracer_tests::{
    all_events, expect_event, require_root,
    scenarios::{self, check_scenarios},
    secs_to_next_minute, tracer_bin, CrontabGuard, HostLock, TempDir, Tracer,
};

#[test]
fn every_failure_scenario_is_named_against_real_cron_and_replays_identically() {
    require_root();
    let _lock = HostLock::acquire();
    let _files = scenarios::ScenarioFiles::create();
    let _run_files = scenarios::RunFilesGuard::new();
    let cron = scenarios::NamespacedCron::start();
    let no_mta = scenarios::NamespacedCron::start_without_mta();
    let busybox = scenarios::BusyboxCrond::start();
    let dir = TempDir::new("diagnosis");
    let trace = dir.0.join("cron-scenarios.jtrace");

    let tracer = Tracer::start(&["--format", "json", "--output", trace.to_str().unwrap()]);
    if secs_to_next_minute() < 3.0 {
        thread::sleep(Duration::from_secs_f64(secs_to_next_minute() + 0.5));
    }
    let _crontab = CrontabGuard::install(&scenarios::crontab());
    // Past the boundary, long enough for every job but the long one to finish.
    thread::sleep(Duration::from_secs_f64(secs_to_next_minute() + 8.0));
    let done = tracer.stop_with(libc::SIGINT);
    let live = done.json();
    scenarios::stop_running_jobs(&live, cron.pid);
    scenarios::stop_running_jobs(&live, no_mta.pid);
    assert_eq!(
        done.code,
        Some(1),
        "findings must make the exit code 1; stderr: {:?}",
        done.stderr
    );

    // Kept for a person to read when an assertion fails.
    let keep = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cron-diagnosis-live.json");
    std::fs::write(&keep, serde_json::to_string_pretty(&live).unwrap()).unwrap();
    eprintln!("live report: {}", keep.display());
    check_scenarios(&live, Some(cron.pid));
    check_trigger_path(&live, cron.pid, "true jt-clean");
    scenarios::check_no_mta(&live, no_mta.pid);
    scenarios::check_busybox(&live, busybox.pid);
    assert_eq!(
        scenarios::cron_pids(&live),
        (Some(cron.pid), Some(no_mta.pid))
    );

    // The same file, replayed offline, gives the same jobs and findings.
    let out = std::process::Command::new(tracer_bin())
        .args(["replay", trace.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        replayed["jobs"], live["jobs"],
        "replayed jobs differ from the live run"
    );
    assert_eq!(replayed["findings"], live["findings"]);

    if std::env::var_os("TRACER_UPDATE_FIXTURES").is_some() {
        let dest =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cron-scenarios.jtrace");
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&trace, &dest).unwrap();
        eprintln!("updated {}", dest.display());
    }
}

/// The whole trigger path of one healthy job: cron's fork, the child's setgid/setuid
/// and chdir($HOME), `/bin/sh -c COMMAND` with cron's environment, the exit.
fn check_trigger_path(report: &Value, cron_pid: u32, command: &str) {
    let jobs = report["jobs"].as_array().unwrap();
    let job = jobs
        .iter()
        .find(|j| j["command"] == command && j["scheduler_pid"] == cron_pid)
        .unwrap_or_else(|| panic!("no job running {command:?}"));
    assert_eq!(job["scheduler"], "cron");
    assert_eq!(job["user"], "root");
    assert_eq!(job["exit"]["code"], 0);
    assert_eq!(job["state"], "finished");
    let id = job["id"].clone();
    let ev: Vec<Value> = all_events(report)
        .into_iter()
        .filter(|e| e["job"] == id)
        .collect();

    let fork = expect_event(&ev, "cron forks the job", |e| {
        e["event"] == "fork" && e["pid"] == cron_pid
    });
    assert_eq!(fork["child_pid"], job["leader_pid"]);
    expect_event(&ev, "setgid", |e| {
        e["event"] == "set_id" && e["syscall"] == "setgid" && e["ret"] == 0
    });
    expect_event(&ev, "setuid(0) for root's crontab", |e| {
        e["event"] == "set_id" && e["syscall"] == "setuid" && e["ids"][0] == 0 && e["ret"] == 0
    });
    expect_event(&ev, "chdir($HOME)", |e| {
        e["event"] == "chdir" && e["path"] == "/root" && e["ret"] == 0
    });
    let exec = expect_event(&ev, "/bin/sh -c COMMAND", |e| {
        e["event"] == "exec_attempt" && e["filename"] == "/bin/sh"
    });
    assert_eq!(exec["argv"], serde_json::json!(["/bin/sh", "-c", command]));
    let env: Vec<&str> = exec["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        env.contains(&"PATH=/usr/bin:/bin"),
        "cron's PATH missing from {env:?}"
    );
    assert!(env.contains(&"HOME=/root"), "{env:?}");
    assert!(env.contains(&"SHELL=/bin/sh"), "{env:?}");
    let sh = exec["pid"].clone();
    expect_event(&ev, "the exec succeeded", |e| {
        e["event"] == "exec_result" && e["pid"] == sh && e["ret"] == 0
    });
    let exit = expect_event(&ev, "the shell exits 0", |e| {
        e["event"] == "exit" && e["pid"] == sh
    });
    assert_eq!(exit["status"]["code"], 0);
}
