//! The real kernel programs, loaded into this machine's kernel, watching a process tree
//! started under a `--comm` root. Each test fails when the probes see nothing.
use std::{process::Command, thread, time::Duration};

use serde_json::Value;
use tracer_tests::{
    all_events, closed_port, expect_event, require_root, HostLock, TempDir, Tracer,
};

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// A copy of bash under a unique name: its comm makes it a root for `--comm`.
fn root_shell(dir: &TempDir) -> (std::path::PathBuf, String) {
    let name = format!("jtroot{}", std::process::id() % 100_000);
    let path = dir.0.join(&name);
    std::fs::copy("/bin/bash", &path).expect("copy /bin/bash");
    // A child another test thread forked while the copy was open for writing holds
    // that descriptor until it execs, and running the copy meanwhile fails with
    // ETXTBSY ("Text file busy"): wait that out here, before any tracer is started.
    for _ in 0..200 {
        match Command::new(&path).args(["-c", "true"]).status() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                thread::sleep(Duration::from_millis(10))
            }
            Ok(st) => {
                assert!(st.success(), "{} -c true: {st:?}", path.display());
                return (path, name);
            }
            Err(e) => panic!("run {}: {e}", path.display()),
        }
    }
    panic!("{} stayed busy for 2 s", path.display());
}

#[test]
fn job_tree_under_a_comm_root_is_captured_with_pids_argv_and_results() {
    require_root();
    let _lock = HostLock::acquire();
    let dir = TempDir::new("probes");
    let (shell, comm) = root_shell(&dir);
    let workdir = dir.0.join("work");
    std::fs::create_dir(&workdir).unwrap();
    let port = closed_port();

    let tracer = Tracer::start(&["--comm", &comm, "--format", "json"]);
    let tracer_pid = tracer.pid();

    // An unrelated process running at the same time must not show up.
    let mut bystander = Command::new("/bin/sh")
        .args([
            "-c",
            "cat /etc/hostname >/dev/null; sleep 0.5; cat /etc/hostname >/dev/null",
        ])
        .spawn()
        .unwrap();
    let bystander_pid = bystander.id();

    let script = format!(
        "( cd {wd} && /nonexistent/jt-missing-cmd; \
           cat /etc/hostname >/dev/null; \
           (ulimit -n 6; exec 3</etc/hostname 4</etc/hostname 5</etc/hostname; exec 6</etc/hostname; \
            echo | cat); \
           true 3<>/dev/tcp/127.0.0.1/{port}; \
           exit 3 ); true",
        wd = workdir.display()
    );
    // Marks in the environment every exec passes on: the kernel packs each attempt's
    // name, argv and env back to back, and the tracer must find each where it is.
    let out = Command::new(&shell)
        .args(["-c", &script])
        .env("JT_PACKED", "after-the-argv")
        .env("API_TOKEN", "s3cr3t-live")
        .output()
        .unwrap();
    assert!(out.status.success(), "root shell failed: {out:?}");
    bystander.wait().unwrap();
    thread::sleep(Duration::from_millis(300));

    let done = tracer.stop_with(libc::SIGINT);
    // The job exits 3: a finding, so exit code 1.
    assert_eq!(done.code, Some(1), "stderr: {:?}", done.stderr);
    let report = done.json();
    assert_eq!(report["version"], 1);
    let events = all_events(&report);

    // The job: the subshell the root forked.
    let jobs = report["jobs"].as_array().unwrap();
    let job = jobs
        .iter()
        .find(|j| s(&j["scheduler"]) == comm && j["exit"]["code"] == 3)
        .unwrap_or_else(|| panic!("no job of {comm} exiting 3 in {jobs:#?}"));
    let leader = job["leader_pid"].as_u64().unwrap();
    let root_pid = job["scheduler_pid"].as_u64().unwrap();
    assert_eq!(job["state"], "finished");

    let fork = expect_event(&events, "root forks the job", |e| {
        e["event"] == "fork" && e["child_pid"] == leader && e["pid"] == root_pid
    });
    assert_eq!(fork["comm"], comm.as_str());

    let chdir = expect_event(&events, "chdir into the work dir", |e| {
        e["event"] == "chdir" && s(&e["path"]) == workdir.to_str().unwrap()
    });
    assert_eq!(chdir["pid"], leader);
    assert_eq!(chdir["ret"], 0);

    let missing = expect_event(&events, "exec attempt of the missing path", |e| {
        e["event"] == "exec_attempt" && e["filename"] == "/nonexistent/jt-missing-cmd"
    });
    assert_eq!(
        missing["argv"],
        serde_json::json!(["/nonexistent/jt-missing-cmd"])
    );
    assert_eq!(
        missing["ppid"], leader,
        "the failed exec runs in a child of the job leader"
    );
    // The attempt carries its result: the model joins the two kernel records.
    assert_eq!(missing["error"], "ENOENT");
    assert_eq!(missing["ret"], -2);

    let cat = expect_event(&events, "exec of cat", |e| {
        e["event"] == "exec_attempt" && e["argv"] == serde_json::json!(["cat", "/etc/hostname"])
    });
    let cat_pid = cat["pid"].clone();
    assert!(s(&cat["filename"]).ends_with("/cat"), "{}", cat["filename"]);
    let env: Vec<&str> = cat["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(env.contains(&"JT_PACKED=after-the-argv"), "{env:?}");
    assert!(env.contains(&"API_TOKEN=<redacted>"), "{env:?}");
    assert!(
        !report.to_string().contains("s3cr3t-live"),
        "the secret reached the report"
    );
    let open = expect_event(&events, "cat opens /etc/hostname", |e| {
        e["event"] == "open" && e["pid"] == cat_pid && e["path"] == "/etc/hostname"
    });
    assert!(open["ret"].as_i64().unwrap() >= 0, "{open}");

    let limit = expect_event(&events, "ulimit -n 6", |e| {
        e["event"] == "rlimit" && e["resource"] == "NOFILE" && e["soft"] == 6
    });
    // What says nothing is not sent: bash's query of the limit before `ulimit -n`
    // sets it, and the wait that reaps nothing after each child the shells reap.
    let queries: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "rlimit" && e["soft"].is_null())
        .collect();
    assert!(queries.is_empty(), "limit queries were sent: {queries:#?}");
    let empty_waits: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "wait" && (e["error"] == "ECHILD" || e["ret"] == 0))
        .collect();
    assert!(
        empty_waits.is_empty(),
        "waits that reaped nothing were sent: {empty_waits:#?}"
    );
    expect_event(&events, "a wait that reaped a child", |e| {
        e["event"] == "wait" && e["ret"].as_i64().is_some_and(|r| r > 0)
    });
    let emfile = expect_event(&events, "open fails EMFILE", |e| {
        e["event"] == "open" && e["path"] == "/etc/hostname" && e["error"] == "EMFILE"
    });
    assert_eq!(
        emfile["pid"], limit["pid"],
        "EMFILE in the process that lowered the limit"
    );
    assert_eq!(emfile["ret"], -24);
    // A pipe has no probe of its own: the EMFILE probe on the descriptor-making
    // syscalls' exits reports it.
    let pipe = expect_event(&events, "pipe fails EMFILE", |e| {
        e["event"] == "fd_exhausted" && e["error"] == "EMFILE"
    });
    assert!(
        pipe["syscall"] == "pipe" || pipe["syscall"] == "pipe2",
        "{pipe}"
    );
    assert_eq!(pipe["pid"], limit["pid"]);

    let connect = expect_event(&events, "connect to the closed port", |e| {
        e["event"] == "connect" && s(&e["address"]) == format!("127.0.0.1:{port}")
    });
    assert_eq!(connect["error"], "ECONNREFUSED");
    expect_event(&events, "socket(AF_INET)", |e| {
        e["event"] == "socket" && e["family_name"] == "AF_INET" && e["pid"] == connect["pid"]
    });

    let exit = expect_event(&events, "the job leader exits 3", |e| {
        e["event"] == "exit" && e["pid"] == leader
    });
    assert_eq!(exit["status"]["code"], 3);
    expect_event(&events, "exit_group(3)", |e| {
        e["event"] == "exit_group" && e["pid"] == leader && e["code"] == 3
    });
    // Every event of the job carries a monotonic timestamp and the job's pids.
    for e in job["timeline"].as_array().unwrap() {
        assert!(e["ts_ns"].as_u64().unwrap() > 0);
    }

    // Nothing of the bystander, nothing of the tracer itself.
    for e in &events {
        for field in ["pid", "child_pid", "ppid"] {
            assert_ne!(
                e[field], bystander_pid,
                "untracked process leaked into the trace: {e}"
            );
            assert_ne!(e[field], tracer_pid, "the tracer traced itself: {e}");
        }
    }
    assert_eq!(report["stats"]["lost_events"], 0);
}

#[test]
fn duration_ends_the_run_cleanly_and_text_output_names_the_job() {
    require_root();
    let _lock = HostLock::acquire();
    let dir = TempDir::new("duration");
    let (shell, comm) = root_shell(&dir);
    let tracer = Tracer::start(&["--comm", &comm, "--duration", "3"]);
    let out = Command::new(&shell)
        .args(["-c", "/bin/true jt-duration-marker; true"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let done = tracer.wait();
    assert_eq!(done.code, Some(0), "stderr: {:?}", done.stderr);
    assert!(
        done.stdout.contains("/bin/true jt-duration-marker"),
        "text report lacks the job's command:\n{}",
        done.stdout
    );
    assert!(done.stdout.contains("summary"), "{}", done.stdout);
    // Not a terminal: no colour codes.
    assert!(
        !done.stdout.contains('\x1b'),
        "colour codes in piped output"
    );
}

#[test]
fn sigterm_ends_the_run_and_every_probe_is_detached() {
    require_root();
    let _lock = HostLock::acquire();
    let tracer = Tracer::start(&["--comm", "jt-nothing-here", "--format", "json"]);
    let attached = tracer_prog_count();
    assert!(attached > 0, "no tracer programs loaded while it runs");
    let done = tracer.stop_with(libc::SIGTERM);
    assert_eq!(done.code, Some(0), "stderr: {:?}", done.stderr);
    let report = done.json();
    assert_eq!(report["jobs"], serde_json::json!([]));
    // The probes are let go by a child just after the tracer exits (the kernel takes
    // seconds for them): gone within a few seconds, left behind never.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while tracer_prog_count() > 0 && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        tracer_prog_count(),
        0,
        "programs still loaded 15 s after the tracer exited"
    );
}

/// Tracepoint programs of ours the kernel has loaded (bpftool lists them by name).
fn tracer_prog_count() -> usize {
    let out = Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .expect("bpftool (apt-get install bpftool; .ci/run does this)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("tracepoint") && l.contains("name sched_process_f"))
        .count()
}

#[test]
fn without_privilege_record_exits_2_and_names_the_missing_capability() {
    require_root();
    let bin = tracer_tests::tracer_bin();
    // The binary must be reachable by nobody: copy it somewhere world-readable.
    let dir = TempDir::new("nopriv");
    let copy = dir.0.join("tracer");
    std::fs::copy(&bin, &copy).unwrap();
    Command::new("chmod")
        .args(["-R", "a+rx"])
        .arg(&dir.0)
        .status()
        .unwrap();
    let out = Command::new("runuser")
        .args(["-u", "nobody", "--"])
        .arg(&copy)
        .args(["record", "--duration", "1"])
        .output()
        .expect("runuser");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CAP_BPF") && err.contains("fix:"), "{err}");
}

#[test]
fn bad_arguments_are_usage_errors() {
    let bin = tracer_tests::tracer_bin();
    let out = Command::new(&bin)
        .args(["record", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(&bin).args(["--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Exit codes") && help.contains("record"),
        "{help}"
    );
    // Odd values: exit 2 before anything is loaded, naming the flag and the fix; never
    // a panic (Duration::from_secs_f64 panics past 2^64 s, the deadline past the clock).
    for (args, says) in [
        (&["record", "--duration", "-1"][..], "366 days"),
        (&["record", "--duration", "0"], "366 days"),
        (&["record", "--duration", "1e30"], "366 days"),
        (&["record", "--duration", "1e18"], "366 days"),
        (&["record", "--duration", "NaN"], "366 days"),
        (&["record", "--duration", "inf"], "366 days"),
        (&["record", "--pid", "0"], "idle task"),
        (
            &["record", "--pid", "4194305"],
            "no process has pid 4194305",
        ),
        (
            &["record", "--comm", "a-name-longer-than-15"],
            "--comm \"a-name-longer-t\"",
        ),
        (&["crontab", "--count", "0"], "1 to 1000"),
        (&["crontab", "--count", "100000"], "1 to 1000"),
    ] {
        let out = Command::new(&bin).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let flag = args[1];
        assert!(
            err.contains(flag) && err.contains(says),
            "{args:?} must name {flag} and say {says:?}: {err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("attached"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_recording_killed_with_sigkill_keeps_what_it_flushed() {
    require_root();
    let _lock = HostLock::acquire();
    let dir = TempDir::new("kill9");
    let (shell, comm) = root_shell(&dir);
    let trace = dir.0.join("killed.jtrace");
    let tracer = Tracer::start(&["--comm", &comm, "--output", trace.to_str().unwrap()]);
    let out = Command::new(&shell)
        .args(["-c", "/bin/true jt-kill9-marker; true"])
        .output()
        .unwrap();
    assert!(out.status.success());
    // Blocks are flushed at least every second.
    thread::sleep(Duration::from_millis(2500));
    let done = tracer.stop_with(libc::SIGKILL);
    assert_eq!(done.code, None, "killed by a signal");

    let out = Command::new(tracer_tests::tracer_bin())
        .arg("replay")
        .arg(&trace)
        .args(["--format", "json", "--timelines"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("no trailer"), "{err}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["command"] == "/bin/true jt-kill9-marker" && j["exit"]["code"] == 0),
        "the job before the kill is in the file: {report:#}"
    );
}

#[test]
fn record_never_overwrites_or_follows_a_symlink_and_says_why() {
    require_root();
    let dir = TempDir::new("outfile");
    let existing = dir.0.join("existing.jtrace");
    std::fs::write(&existing, b"keep me").unwrap();
    let link = dir.0.join("link.jtrace");
    std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
    let bin = tracer_tests::tracer_bin();
    for (path, says) in [(&existing, "--force"), (&link, "symlink")] {
        let out = Command::new(&bin)
            .args(["record", "--duration", "1", "--output"])
            .arg(path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(says) && err.contains(path.to_str().unwrap()),
            "{err}"
        );
        assert!(
            !err.contains("attached"),
            "it must fail before loading anything: {err}"
        );
    }
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    // Even with --force, a symlink is not followed.
    let out = Command::new(&bin)
        .args(["record", "--duration", "1", "--force", "--output"])
        .arg(&link)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .contains("root:"));
}

#[test]
fn a_signal_aimed_at_a_worker_thread_is_attributed_to_its_process() {
    require_root();
    let _lock = HostLock::acquire();
    let dir = TempDir::new("threads");
    let (shell, comm) = root_shell(&dir);
    let helper = env!("CARGO_BIN_EXE_jt-threads");
    let tracer = Tracer::start(&["--comm", &comm, "--format", "json"]);
    let out = Command::new(&shell)
        .args(["-c", &format!("{helper}; true")])
        .output()
        .unwrap();
    assert!(out.status.success());
    thread::sleep(Duration::from_millis(300));
    let done = tracer.stop_with(libc::SIGINT);
    assert_eq!(done.code, Some(1), "stderr: {:?}", done.stderr);
    let report = done.json();
    let job = report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["command"] == helper)
        .unwrap_or_else(|| panic!("no job ran {helper}: {report:#}"));
    assert_eq!(job["exit"]["signal"], 6, "{job:#}");
    let events = all_events(&report);
    let sig = expect_event(&events, "SIGABRT to the worker thread", |e| {
        e["event"] == "signal" && e["signal"] == 6
    });
    assert_eq!(
        sig["target_pid"], job["leader_pid"],
        "the thread's process, not the thread"
    );
    let f = &job["findings"][0];
    assert_eq!(f["kind"], "killed_by_signal");
    assert!(f["message"].as_str().unwrap().contains("SIGABRT"), "{f}");
}

/// An exec from a thread that is not the leader: the kernel gives the thread the
/// leader's tid while the exec is under way, and the attempt's result, left under the
/// old tid, must still join it.
#[test]
fn an_exec_from_a_worker_thread_keeps_its_result() {
    require_root();
    let _lock = HostLock::acquire();
    let dir = TempDir::new("execthread");
    let (shell, comm) = root_shell(&dir);
    let helper = env!("CARGO_BIN_EXE_jt-exec-thread");
    let tracer = Tracer::start(&["--comm", &comm, "--format", "json"]);
    // Twice, in two processes: both results must join their attempts.
    let script = format!("{helper} /bin/cat /etc/hostname; {helper} /bin/cat /etc/hostname; true");
    let out = Command::new(&shell).args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "root shell failed: {out:?}");
    thread::sleep(Duration::from_millis(300));
    let done = tracer.stop_with(libc::SIGINT);
    let report = done.json();
    let events = all_events(&report);
    let attempts: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "exec_attempt" && e["filename"] == "/bin/cat")
        .collect();
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    for a in attempts {
        let said = format!("pid {} tid {} ret {}", a["pid"], a["tid"], a["ret"]);
        assert_ne!(a["tid"], a["pid"], "made by the worker thread: {said}");
        assert_eq!(a["ret"], 0, "the result joined the attempt: {said}");
        let pid = a["pid"].clone();
        expect_event(&events, "cat opens /etc/hostname", |e| {
            e["event"] == "open" && e["pid"] == pid && e["path"] == "/etc/hostname"
        });
    }
}

/// The kernel programs' rare anomalies reach the user through aya-log with -v, and
/// stay silent (and off in the kernel) without it.
#[test]
fn a_truncated_argv_is_logged_by_the_kernel_program_only_when_asked() {
    require_root();
    let _lock = HostLock::acquire();
    let dir = TempDir::new("ayalog");
    let (shell, comm) = root_shell(&dir);
    // More arguments than a record holds (tracer-common's MAX_ARGS is 32).
    let many: Vec<String> = (0..48).map(|i| format!("jt-arg-{i}")).collect();
    let run_job = || {
        let script = format!("( /bin/true {} ); true", many.join(" "));
        let out = Command::new(&shell).args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "root shell failed: {out:?}");
        thread::sleep(Duration::from_millis(1200));
    };

    let tracer = Tracer::start(&["-v", "--comm", &comm, "--format", "json"]);
    run_job();
    let done = tracer.stop_with(libc::SIGINT);
    let kernel_lines: Vec<&String> = done
        .stderr
        .iter()
        .filter(|l| l.contains("(kernel)"))
        .collect();
    assert!(
        kernel_lines
            .iter()
            .any(|l| l.contains("execve filename/argv/env truncated for pid")),
        "no aya-log line about the truncated argv; stderr:\n{}",
        done.stderr.join("\n")
    );
    // The record itself says so too.
    let events = all_events(&done.json());
    expect_event(&events, "the truncated exec attempt", |e| {
        e["event"] == "exec_attempt" && e["argv_truncated"] == true
    });

    let quiet = Tracer::start(&["--comm", &comm, "--format", "json"]);
    run_job();
    let done = quiet.stop_with(libc::SIGINT);
    assert!(
        !done.stderr.iter().any(|l| l.contains("(kernel)")),
        "kernel log lines without -v: {:?}",
        done.stderr
    );
}

/// A process already running when the trace starts is recorded from `/proc`: its argv
/// goes into the header and the report redacted like an exec's.
#[test]
fn processes_alive_at_start_keep_no_secret_in_the_trace() {
    require_root();
    let _lock = HostLock::acquire();
    let dir = TempDir::new("snapsecret");
    let (shell, comm) = root_shell(&dir);
    let trace = dir.0.join("t.jtrace");
    let mut root = Command::new(&shell)
        .args([
            "-c",
            "/bin/bash -c 'sleep 6; true' jt --password=jtSECRETa https://jtsnapuser:jtSECRETb@h.invalid/x & wait",
        ])
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(300));
    let tracer = Tracer::start(&[
        "--comm",
        &comm,
        "--format",
        "json",
        "--output",
        trace.to_str().unwrap(),
    ]);
    thread::sleep(Duration::from_millis(500));
    let done = tracer.stop_with(libc::SIGINT);
    let _ = root.kill();
    let _ = root.wait();
    let report = done.json();
    // The sleep was seen in /proc (a job already running), with its user and host.
    assert!(
        done.stdout.contains("jtsnapuser") && done.stdout.contains("h.invalid"),
        "{report:#}"
    );
    for (what, bytes) in [
        ("stdout", done.stdout.as_bytes().to_vec()),
        ("trace file", std::fs::read(&trace).unwrap()),
    ] {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("jtSECRET"), "{what} holds a secret");
    }
    assert!(
        report["stats"]["redactions"]["url_userinfo"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
}

/// A small tmpfs, to fill up; unmounted on drop (lazily if something still holds it).
struct SmallFs(std::path::PathBuf);

impl SmallFs {
    fn mount(at: std::path::PathBuf, size: &str) -> SmallFs {
        std::fs::create_dir_all(&at).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&at)
            .status()
            .expect("mount");
        assert!(st.success(), "mount -t tmpfs on {}", at.display());
        SmallFs(at)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

#[test]
fn a_disk_that_fills_while_recording_is_said_once_and_the_file_replays_to_the_cut() {
    require_root();
    let _lock = HostLock::acquire();
    let dir = TempDir::new("diskfull");
    let (shell, comm) = root_shell(&dir);
    let small = SmallFs::mount(dir.0.join("small"), "256k");
    let trace = small.0.join("full.jtrace");
    let run = |script: &str| {
        let out = Command::new(&shell).args(["-c", script]).output().unwrap();
        assert!(out.status.success(), "root shell failed: {out:?}");
    };
    let tracer = Tracer::start(&[
        "--comm",
        &comm,
        "--format",
        "json",
        "--output",
        trace.to_str().unwrap(),
    ]);
    // One job, flushed (every second) while there is room...
    run("/bin/true jt-diskfull-before; true");
    thread::sleep(Duration::from_millis(2500));
    // ... then ~6.5 KB exec records by the hundred: far more than 256 KiB.
    run("for i in $(seq 1 300); do /bin/true jt-diskfull-$i; done; true");
    thread::sleep(Duration::from_millis(2500));
    run("/bin/true jt-diskfull-after; true");
    thread::sleep(Duration::from_millis(1500));
    let done = tracer.stop_with(libc::SIGINT);
    assert_eq!(done.code, Some(0), "stderr: {:?}", done.stderr);
    let full: Vec<&String> = done
        .stderr
        .iter()
        .filter(|l| l.contains("No space left on device"))
        .collect();
    assert_eq!(
        full.len(),
        1,
        "one warning, not one per event: {:#?}",
        done.stderr
    );
    assert!(
        full[0].contains(trace.to_str().unwrap()) && full[0].contains("live analysis goes on"),
        "{}",
        full[0]
    );
    // The live analysis went on past the full disk.
    let live = done.json();
    let ran = |report: &Value, cmd: &str| {
        report["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["command"] == cmd)
    };
    assert!(ran(&live, "/bin/true jt-diskfull-before"));
    assert!(ran(&live, "/bin/true jt-diskfull-after"), "{live:#}");

    let out = Command::new(tracer_tests::tracer_bin())
        .arg("replay")
        .arg(&trace)
        .args(["--format", "json", "--timelines"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("no trailer"), "{err}");
    let replayed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        ran(&replayed, "/bin/true jt-diskfull-before"),
        "what was written before the disk filled replays: {replayed:#}"
    );
    assert!(!ran(&replayed, "/bin/true jt-diskfull-after"));
}

/// `record --follow --log FILE`: a JSON line per job as it ends; SIGHUP reopens FILE
/// after it was moved away (log rotation); the summary is the last line. The shipped
/// systemd unit runs exactly this.
#[test]
fn follow_writes_a_line_per_job_and_sighup_reopens_the_log() {
    require_root();
    let _lock = HostLock::acquire();
    let dir = TempDir::new("follow");
    let log = dir.0.join("jobs.jsonl");
    let rotated = dir.0.join("jobs.jsonl.1");
    let root = dir.0.join("jt-follow");
    std::fs::write(
        &root,
        "#!/bin/sh\nfor w in \"$@\"; do /bin/sh -c \"$w\"; done\n",
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&root)
        .status()
        .unwrap();
    let tracer = Tracer::start(&[
        "--comm",
        "jt-follow",
        "--follow",
        "--log",
        log.to_str().unwrap(),
    ]);
    let lines = |p: &std::path::Path| -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    };
    let jobs_in = |p: &std::path::Path, want: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let n = lines(p).iter().filter(|l| l["type"] == "job").count();
            if n >= want || std::time::Instant::now() > deadline {
                return n;
            }
            thread::sleep(Duration::from_millis(100));
        }
    };
    let ok = Command::new(&root)
        .args(["true jt-f-1", "true jt-f-2", "true jt-f-3"])
        .status()
        .unwrap();
    assert!(ok.success());
    assert_eq!(jobs_in(&log, 3), 3, "{:#?}", lines(&log));
    // logrotate moves the file away, then reloads the unit.
    std::fs::rename(&log, &rotated).unwrap();
    unsafe { libc::kill(tracer.pid() as i32, libc::SIGHUP) };
    thread::sleep(Duration::from_millis(300));
    let _ = Command::new(&root)
        .args(["true jt-g-1", "exit 3 # jt-g-2"])
        .status()
        .unwrap();
    assert_eq!(jobs_in(&log, 2), 2, "the reopened file: {:#?}", lines(&log));
    let done = tracer.stop_with(libc::SIGINT);
    assert_eq!(done.code, Some(1), "a job failed: {:?}", done.stderr);
    assert!(
        done.stdout.is_empty(),
        "lines go to the file: {}",
        done.stdout
    );
    let old = lines(&rotated);
    assert_eq!(old.len(), 3, "{old:#?}");
    assert!(old.iter().all(|l| l["findings"] == serde_json::json!([])));
    let new = lines(&log);
    let failed = new
        .iter()
        .find(|l| l["command"] == "exit 3 # jt-g-2")
        .unwrap_or_else(|| panic!("{new:#?}"));
    assert_eq!(failed["findings"][0]["kind"], "nonzero_exit");
    assert!(failed["timeline"].as_array().is_some_and(|t| !t.is_empty()));
    let last = new.last().unwrap();
    assert_eq!(last["type"], "summary", "{new:#?}");
    assert_eq!(last["jobs"], 5, "{last}");
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/tracer-follow.service"),
    )
    .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/tracer record --follow --log "));
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
}

/// A job's failed `stat(path)` calls reach the trace (a shell's PATH search), its
/// successful ones and its `lstat`s do not, and a program that keeps missing is cut
/// off at its budget (128) instead of paying a record for every miss.
#[test]
fn failed_stats_are_kept_up_to_a_budget_and_successes_never() {
    require_root();
    let _lock = HostLock::acquire();
    let dir = TempDir::new("stats");
    let (shell, name) = root_shell(&dir);
    let tracer = Tracer::start(&["--comm", &name, "--format", "json"]);
    let script = "import os\nfor i in range(500):\n    os.path.exists('/nonexistent/jt-stat-%d' % i)\n    os.stat('/etc/hostname')\n    os.lstat('/nonexistent/jt-lstat')\n";
    let st = Command::new(&shell)
        .args([
            "-c",
            &format!("/usr/bin/python3 -c \"{script}\"; (jt-not-a-command-anywhere); true"),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    thread::sleep(Duration::from_millis(1500));
    let r = tracer.stop_with(libc::SIGINT).json();
    let ev = all_events(&r);
    let stats: Vec<&Value> = ev.iter().filter(|e| e["event"] == "stat").collect();
    // python's own start-up misses count against the same budget as the loop's.
    let py = ev
        .iter()
        .find(|e| e["event"] == "exec" && s(&e["filename"]).contains("python3"))
        .expect("python3 ran")["pid"]
        .clone();
    let misses = stats.iter().filter(|e| e["pid"] == py).count();
    assert!(
        (100..=128).contains(&misses),
        "the budget (128), not every one of 500+ misses: {misses}"
    );
    assert!(
        !stats
            .iter()
            .any(|e| e["path"] == "/etc/hostname" || s(&e["path"]).contains("jt-lstat")),
        "successes and lstats are never sent"
    );
    // Nor fstat(fd), which has no path (the shell and its subshell, comm a root's, make
    // one: sent before, when every stat of a root-comm process was).
    assert!(
        !stats.iter().any(|e| s(&e["path"]).is_empty()),
        "{stats:#?}"
    );
    // bash's own search for the missing command is kept (another program's budget).
    assert!(
        stats
            .iter()
            .any(|e| s(&e["path"]).ends_with("/jt-not-a-command-anywhere")),
        "{stats:#?}"
    );
}

/// A followed thread gets the pending-call slot of its tid modulo the slot count at its
/// fork, unless a live thread holds it; a thread without one keeps its calls in the
/// spill map. With one slot, the job's shell (the first fork) holds it and waits in
/// wait4 while its child's opens are spilled, and all of them still reach the report.
#[test]
fn calls_that_share_a_pending_slot_are_all_reported() {
    require_root();
    let _lock = HostLock::acquire();
    let dir = TempDir::new("spill");
    let (shell, name) = root_shell(&dir);
    let bad = Command::new(tracer_tests::tracer_bin())
        .args(["record", "--comm", &name, "--duration", "1"])
        .env("TRACER_PENDING_SLOTS", "3")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("TRACER_PENDING_SLOTS=\"3\" is not a power of two"),
        "{bad:?}"
    );
    let tracer = Tracer::start_with_env(
        &["--comm", &name, "--format", "json"],
        &[("TRACER_PENDING_SLOTS", "1")],
    );
    // The child ends by exec'ing its last cat, so the pid the shell's wait4 returns is
    // the pid of the second open.
    let child = "cat /nonexistent/jt-spill-a; sleep 0.2; exec cat /nonexistent/jt-spill-b";
    let script = format!("/bin/sh -c '/bin/sh -c \"{child}\" 2>/dev/null & wait'; true");
    let st = Command::new(&shell).args(["-c", &script]).status().unwrap();
    assert!(st.success());
    thread::sleep(Duration::from_millis(300));
    let r = tracer.stop_with(libc::SIGINT).json();
    let ev = all_events(&r);
    let mut opens = Vec::new();
    for path in ["jt-spill-a", "jt-spill-b"] {
        let open = expect_event(&ev, path, |e| {
            e["event"] == "open" && s(&e["path"]).ends_with(path)
        });
        assert_eq!(open["error"], "ENOENT", "{open}");
        opens.push(open["pid"].clone());
    }
    let wait = expect_event(&ev, "the job shell's wait4 for its child", |e| {
        e["event"] == "wait" && e["ret"] == opens[1]
    });
    assert_ne!(wait["pid"], opens[1], "{wait}");
    assert_eq!(r["stats"]["lost_events"], 0, "{:#}", r["stats"]);
}

/// `kernel.pid_max` put back when the test ends, passed or not.
struct PidMaxRestore(String);

impl Drop for PidMaxRestore {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/pid_max", &self.0);
    }
}

/// The FOLLOWED table is sized from `pid_max` at the attach. A host that raises it
/// later makes processes past the table's end: the probes must look those up in
/// TRACKED instead of taking a missing byte for "not followed" (or writing past it).
#[test]
fn a_job_whose_pids_are_past_the_followed_table_is_still_followed() {
    require_root();
    let _lock = HostLock::acquire();
    let dir = TempDir::new("bigpid");
    let (shell, name) = root_shell(&dir);
    let was = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap();
    let table_end = was.trim().parse::<u32>().unwrap().div_ceil(64) * 64;
    let tracer = Tracer::start(&["--comm", &name, "--format", "json"]);
    let _restore = PidMaxRestore(was);
    let first = table_end + 20_000;
    std::fs::write("/proc/sys/kernel/pid_max", (first + 50_000).to_string()).unwrap();
    std::fs::write("/proc/sys/kernel/ns_last_pid", first.to_string()).unwrap();
    let st = Command::new(&shell)
        .args(["-c", "cat /nonexistent/jt-bigpid; true"])
        .status()
        .unwrap();
    assert!(st.success());
    thread::sleep(Duration::from_millis(300));
    let r = tracer.stop_with(libc::SIGINT).json();
    let ev = all_events(&r);
    let open = expect_event(&ev, "the cat's failed open", |e| {
        e["event"] == "open" && s(&e["path"]).ends_with("jt-bigpid")
    });
    assert_eq!(open["error"], "ENOENT", "{open}");
    let pid = open["pid"].as_u64().unwrap();
    assert!(pid > u64::from(first), "pid {pid}: not past {first}");
    expect_event(&ev, "the cat's exit", |e| {
        e["event"] == "exit" && e["pid"].as_u64() == Some(pid)
    });
    assert_eq!(r["stats"]["lost_events"], 0, "{:#}", r["stats"]);
}

/// A scheduler already running when the trace starts is found in `/proc`, and user
/// space follows it: what it forks afterwards is a job with all its calls. The probes
/// skip a process whose byte in the kernel's FOLLOWED table is clear, so this fails if
/// user space puts a root in TRACKED without setting its byte.
#[test]
fn a_root_running_before_the_attach_has_its_later_jobs_followed() {
    require_root();
    let _lock = HostLock::acquire();
    let dir = TempDir::new("preroot");
    let (shell, comm) = root_shell(&dir);
    let fifo = dir.0.join("go");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let script = format!(
        "read go < {f}; ( cat /etc/hostname >/dev/null; exit 4 ); true",
        f = fifo.display()
    );
    let mut root = Command::new(&shell).args(["-c", &script]).spawn().unwrap();
    let root_pid = root.id() as u64;
    thread::sleep(Duration::from_millis(200));

    let tracer = Tracer::start(&["--comm", &comm, "--format", "json"]);
    std::fs::write(&fifo, "go\n").unwrap();
    assert!(root.wait().unwrap().success());
    thread::sleep(Duration::from_millis(300));
    let done = tracer.stop_with(libc::SIGINT);
    let report = done.json();
    let jobs = report["jobs"].as_array().unwrap();
    let job = jobs
        .iter()
        .find(|j| j["scheduler_pid"] == root_pid && j["exit"]["code"] == 4)
        .unwrap_or_else(|| panic!("no job of the running root {root_pid} exiting 4 in {jobs:#?}"));
    let events = all_events(&report);
    let cat = expect_event(&events, "the job's cat", |e| {
        e["event"] == "exec_attempt" && e["argv"] == serde_json::json!(["cat", "/etc/hostname"])
    });
    assert_eq!(cat["job"], job["id"]);
    expect_event(&events, "cat opens /etc/hostname", |e| {
        e["event"] == "open" && e["pid"] == cat["pid"] && e["path"] == "/etc/hostname"
    });
    assert_eq!(report["stats"]["lost_events"], 0);
}

/// `--all` follows processes that have no entry in the kernel's table, which takes
/// other paths through the programs; the verifier checks those apart (an exit program
/// that loaded for `--comm` was once refused with `--all`). Every program must load,
/// and a process started after the attach must be seen through to its exit.
#[test]
fn with_all_every_program_loads_and_a_new_process_is_followed_to_its_exit() {
    require_root();
    let _lock = HostLock::acquire();
    let dir = TempDir::new("all");
    let marker = dir.0.join("jt-all-marker");
    let tracer = Tracer::start(&["--all", "--format", "json"]);
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("cat {} 2>/dev/null; exit 3", marker.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let done = tracer.stop_with(libc::SIGINT);
    let report = done.json();
    let events = all_events(&report);
    let open = expect_event(&events, "cat's open of the missing marker", |e| {
        e["event"] == "open" && s(&e["path"]) == marker.display().to_string()
    });
    assert_eq!(open["error"], "ENOENT");
    let shell = expect_event(&events, "the shell's exit_group(3)", |e| {
        e["event"] == "exit_group" && e["code"] == 3
    });
    let exit = expect_event(&events, "the shell's exit", |e| {
        e["event"] == "exit" && e["pid"] == shell["pid"]
    });
    assert_eq!(exit["status"]["code"], 3);
    // Its entry was made at its fork, with this test as its parent.
    assert_eq!(exit["ppid"], std::process::id(), "{exit}");
}

/// busybox's crond runs with comm "busybox": no exec makes it a root, and only the
/// two-second `/proc` rescan can find it, by its argv (which the rescan reads for that
/// comm alone).
#[test]
fn a_busybox_crond_started_while_tracing_is_found_by_the_rescan() {
    require_root();
    let _lock = HostLock::acquire();
    let mut tracer = Tracer::start(&["-v", "--format", "json"]);
    let busybox = tracer_tests::scenarios::BusyboxCrond::start();
    tracer.wait_for_stderr(
        &format!("following root pid {} (busybox)", busybox.pid),
        Duration::from_secs(10),
    );
    assert!(
        tracer.stderr.last().unwrap().contains("found by a rescan"),
        "{:?}",
        tracer.stderr.last()
    );
    // 1 when the host's schedules have findings (a cron that is not running): no error.
    let done = tracer.stop_with(libc::SIGINT);
    assert!(
        matches!(done.code, Some(0 | 1)),
        "exit {:?}, stderr: {:?}",
        done.code,
        done.stderr
    );
}

/// A runbook waits for the tracer's exit: it must not wait for the kernel to let go of
/// the probes, and a Ctrl-C right after "attached" must still end with the report. The
/// child that takes the probes' release once let go as soon as the tracer's main
/// thread had, and about one idle stop in six then took 6 s (the last thread out
/// released each probe in turn: this test fails so with that child); a signal before
/// the loop's watcher ran killed the tracer (exit by signal, no report).
#[test]
fn a_stop_never_waits_for_the_probes_to_be_released() {
    require_root();
    let _lock = HostLock::acquire();
    for i in 0..12 {
        let tracer = Tracer::start(&["--comm", "jt-nothing-here", "--format", "json"]);
        // Half of them at once (the loop's watcher may not be running yet), half once
        // it idles.
        if i % 2 == 1 {
            thread::sleep(Duration::from_millis(700));
        }
        let asked = std::time::Instant::now();
        let done = tracer.stop_with(libc::SIGINT);
        let took = asked.elapsed();
        assert_eq!(done.code, Some(0), "stderr: {:?}", done.stderr);
        assert!(
            took < Duration::from_millis(1500),
            "stop {i} took {took:?}: {:?}",
            done.stderr
        );
    }
}
