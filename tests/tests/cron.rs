//! The real Debian cron daemon runs a real crontab entry; the tracer must show that
//! job's whole trigger path: cron's fork, setuid/chdir, `/bin/sh -c` with the full
//! command and env, and the exit.
use std::{thread, time::Duration};

use tracer_tests::{
    all_events, expect_event, require_root, secs_to_next_minute, CronDaemon, CrontabGuard,
    HostLock, Tracer,
};

#[test]
fn a_cron_job_trigger_path_is_traced_end_to_end() {
    require_root();
    let _lock = HostLock::acquire();
    let cron = CronDaemon::ensure();
    let marker = format!("jt-cron-{}", std::process::id());
    let command = format!("echo {marker} >/dev/null; exit 0");

    let tracer = Tracer::start(&["--format", "json"]);
    // The entry must be in place before cron's next minute wake-up; with under 3 s to
    // go, wait for the minute after.
    if secs_to_next_minute() < 3.0 {
        thread::sleep(Duration::from_secs_f64(secs_to_next_minute() + 0.5));
    }
    let _crontab = CrontabGuard::install(&format!(
        "# tracer test\nSHELL=/bin/sh\n* * * * * {command}\n"
    ));
    thread::sleep(Duration::from_secs_f64(secs_to_next_minute() + 6.0));
    let done = tracer.stop_with(libc::SIGINT);
    assert_eq!(done.code, Some(0), "stderr: {:?}", done.stderr);
    let report = done.json();
    let events = all_events(&report);

    let jobs = report["jobs"].as_array().unwrap();
    let job = jobs
        .iter()
        .find(|j| j["command"] == command.as_str())
        .unwrap_or_else(|| panic!("no job running {command:?}: {jobs:#?}"));
    assert_eq!(job["scheduler"], "cron");
    assert_eq!(job["scheduler_pid"], cron.pid);
    assert_eq!(job["user"], "root");
    assert_eq!(job["exit"]["code"], 0);
    assert_eq!(job["state"], "finished");
    let id = job["id"].clone();
    let ev: Vec<_> = events.iter().filter(|e| e["job"] == id).cloned().collect();

    let fork = expect_event(&ev, "cron forks the job", |e| {
        e["event"] == "fork" && e["pid"] == cron.pid
    });
    assert_eq!(fork["child_pid"], job["leader_pid"]);
    expect_event(&ev, "setuid(0) for root's crontab", |e| {
        e["event"] == "set_id" && e["syscall"] == "setuid" && e["ret"] == 0
    });
    expect_event(&ev, "setgid", |e| {
        e["event"] == "set_id" && e["syscall"] == "setgid" && e["ret"] == 0
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
    let sh_pid = exec["pid"].clone();
    expect_event(&ev, "the exec succeeded", |e| {
        e["event"] == "exec_result" && e["pid"] == sh_pid && e["ret"] == 0
    });
    let exit = expect_event(&ev, "the shell exits 0", |e| {
        e["event"] == "exit" && e["pid"] == sh_pid
    });
    assert_eq!(exit["status"]["code"], 0);
}
