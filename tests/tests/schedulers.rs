//! The schedulers beside cron, real ones, in one trace: a systemd (PID 1 of its own pid
//! and mount namespace) whose timers start a healthy service, one whose command is not
//! in systemd's PATH, one whose ExecStart binary does not exist (203/EXEC), one whose
//! WorkingDirectory does not exist (200/CHDIR), and one stopped before its fire time;
//! an at job running a missing command; anacron (daemonizing, as `anacron -s` does)
//! running two anacrontab lines. Each job is named by what started it and gets the
//! right finding; the healthy ones none. The wait is for the at job's minute.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;
use tracer_tests::{replay_json, require_root, HostLock, Tracer};

/// A systemd booted as PID 1 of a new pid+mount namespace with private /run and /tmp
/// (TOOLCHAIN.md: never without them), running only our target. Killed when dropped.
struct NamespacedSystemd {
    child: Child,
    dir: PathBuf,
}

impl NamespacedSystemd {
    fn boot(dir: &Path, units: &[(&str, String)]) -> NamespacedSystemd {
        std::fs::create_dir_all(dir).unwrap();
        let mut script = String::from(
            "#!/bin/sh\nset -e\nmount --make-rprivate /\nmount -t tmpfs tmpfs /run\n\
             mount -t tmpfs tmpfs /tmp\nmount -t proc proc /proc\nmkdir -p /run/systemd/system\n",
        );
        for (name, text) in units {
            script.push_str(&format!(
                "cat > /run/systemd/system/{name} <<'JT_UNIT'\n{text}JT_UNIT\n"
            ));
        }
        script.push_str("exec /lib/systemd/systemd --system --unit=jt.target\n");
        let boot = dir.join("boot.sh");
        std::fs::write(&boot, script).unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(
            &mut std::fs::metadata(&boot).unwrap().permissions(),
            0o755,
        );
        let child = Command::new("unshare")
            .args(["--pid", "--fork", "--mount", "/bin/sh"])
            .arg(&boot)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unshare (util-linux)");
        NamespacedSystemd {
            child,
            dir: dir.to_path_buf(),
        }
    }

    /// The host pid of the namespace's PID 1, once it runs systemd.
    fn pid(&self) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let children =
                std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.child.id()))
                    .unwrap_or_default();
            if let Some(pid) = children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .find(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/comm"))
                        .is_ok_and(|c| c.trim() == "systemd")
                })
            {
                return pid;
            }
            assert!(Instant::now() < deadline, "our systemd did not start");
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn systemctl(&self, args: &[&str]) -> String {
        let pid = self.pid().to_string();
        let out = Command::new("nsenter")
            .args(["-t", &pid, "-m", "-p", "systemctl"])
            .args(args)
            .output()
            .expect("nsenter");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for NamespacedSystemd {
    fn drop(&mut self) {
        if let Ok(children) =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.child.id()))
        {
            for p in children
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                // SAFETY: SIGKILL to our namespace's PID 1 ends it and every service.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn timer(calendar: &str) -> String {
    format!("[Unit]\nDefaultDependencies=no\n[Timer]\nOnCalendar={calendar}\nAccuracySec=1s\n")
}

fn service(body: &str) -> String {
    format!("[Unit]\nDefaultDependencies=no\n[Service]\nType=oneshot\n{body}\n")
}

/// The test's files, removed when it ends, passed or failed.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An at job we queued, removed if it is still there when the test ends.
struct AtJob(String);

impl Drop for AtJob {
    fn drop(&mut self) {
        let _ = Command::new("atrm").arg(&self.0).status();
    }
}

/// Our own atd when none runs, stopped by pid when dropped.
struct OwnAtd(Option<Child>);

impl Drop for OwnAtd {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn jobs(report: &Value) -> Vec<&Value> {
    report["jobs"].as_array().unwrap().iter().collect()
}

fn kinds(job: &Value) -> Vec<&str> {
    job["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect()
}

fn of_unit<'a>(report: &'a Value, service: &str) -> Vec<&'a Value> {
    jobs(report)
        .into_iter()
        .filter(|j| j["unit"]["service"] == service)
        .collect()
}

fn finding<'a>(job: &'a Value, kind: &str) -> &'a Value {
    job["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {job:#}"))
}

#[test]
fn systemd_timers_at_and_anacron_jobs_are_named_and_diagnosed() {
    require_root();
    let _lock = HostLock::acquire();
    for (prog, pkg) in [
        ("/lib/systemd/systemd", "systemd"),
        ("/usr/sbin/atd", "at"),
        ("/usr/sbin/anacron", "anacron"),
    ] {
        assert!(
            Path::new(prog).exists(),
            "{prog} missing: apt-get install {pkg} (cargo xtask test does this)"
        );
    }
    // Not under /tmp: the systemd namespace mounts its own /tmp over it.
    let work = WorkDir(PathBuf::from(format!(
        "/var/tmp/jt-schedulers-{}",
        std::process::id()
    )));
    let work = &work.0;
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).unwrap();

    // The at job, due at the next minute; queued before the trace, so its script is
    // read at start (atd unlinks it before running it).
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let due = (now / 60 + 1) * 60;
    let stamp = String::from_utf8(
        Command::new("date")
            .args(["-d", &format!("@{due}"), "+%Y%m%d%H%M"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let mut at = Command::new("at")
        // at copies its caller's environment into the job's script.
        .env("JT_AT_TOKEN", "at-s3cret-2")
        .args(["-M", "-t", stamp.trim()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("at");
    use std::io::Write;
    at.stdin
        .take()
        .unwrap()
        .write_all(b"jt-at-missing-cmd --nightly\n")
        .unwrap();
    let at_out = at.wait_with_output().unwrap();
    let at_err = String::from_utf8_lossy(&at_out.stderr);
    let at_number = at_err
        .split_whitespace()
        .skip_while(|w| *w != "job")
        .nth(1)
        .unwrap_or_else(|| panic!("at said: {at_err}"))
        .to_string();
    let _at_job = AtJob(at_number.clone());

    let trace = work.join("schedulers.jtrace");
    let tracer = Tracer::start(&["--format", "json", "--output", trace.to_str().unwrap()]);
    let own_atd = if Command::new("pgrep")
        .args(["-x", "atd"])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        OwnAtd(None)
    } else {
        OwnAtd(Some(
            Command::new("/usr/sbin/atd")
                .arg("-f")
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("atd"),
        ))
    };

    // A timer stopped before it fires: 30 s from now, wall clock, UTC.
    let stop_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 30;
    let stop_cal = String::from_utf8(
        Command::new("date")
            .args(["-u", "-d", &format!("@{stop_at}"), "+%Y-%m-%d %H:%M:%S"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let every = "*:*:0/5";
    let units = vec![
        (
            "jt.target",
            "[Unit]\nWants=jt-ok.timer jt-path.timer jt-exec.timer jt-wd.timer jt-stop.timer\n"
                .to_string(),
        ),
        ("jt-ok.timer", timer(every)),
        (
            "jt-ok.service",
            service(
                "Environment=JT_SD_PASSWORD=sd-s3cret-1 MODE=x\nExecStart=/bin/sh -c 'cat /etc/hostname'",
            ),
        ),
        ("jt-path.timer", timer(every)),
        (
            "jt-path.service",
            service("ExecStart=/bin/sh -c 'jt-sd-missing-tool --sync'"),
        ),
        ("jt-exec.timer", timer(every)),
        (
            "jt-exec.service",
            service("ExecStart=/opt/jt-sd/no-such-binary --flag"),
        ),
        ("jt-wd.timer", timer(every)),
        (
            "jt-wd.service",
            service("WorkingDirectory=/srv/jt-sd-missing-dir\nExecStart=/bin/true"),
        ),
        ("jt-stop.timer", timer(&format!("{} UTC", stop_cal.trim()))),
        ("jt-stop.service", service("ExecStart=/bin/true")),
    ];
    let sd = NamespacedSystemd::boot(&work.join("systemd"), &units);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sd
        .systemctl(&["list-timers", "--all", "--no-pager"])
        .contains("jt-stop.timer")
    {
        assert!(
            Instant::now() < deadline,
            "our systemd did not load jt-stop.timer"
        );
        thread::sleep(Duration::from_millis(200));
    }
    sd.systemctl(&["stop", "jt-stop.timer"]);

    // anacron without -d forks to the background and its parent exits, as `anacron
    // -s` from cron.d does: its jobs must still be its jobs, one each.
    let tab = work.join("anacrontab");
    std::fs::write(
        &tab,
        "SHELL=/bin/sh\nJT_ANA_TOKEN=ana-s3cret-3\nPATH=/usr/bin:/bin\n1 0 jt-ana.ok /bin/sh -c 'cat /etc/hostname'\n1 0 jt-ana.missing jt-anacron-missing-cmd\n",
    )
    .unwrap();
    let spool = work.join("anacron-spool");
    std::fs::create_dir_all(&spool).unwrap();
    let mut anacron = Command::new("/usr/sbin/anacron")
        .args(["-f", "-n", "-t"])
        .arg(&tab)
        .arg("-S")
        .arg(&spool)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .spawn()
        .expect("anacron");
    let anacron_parent = anacron.id();
    let status = anacron.wait().unwrap();
    assert!(status.success(), "anacron: {status}");

    // Until the stopped timer's time has passed, and the at job's minute has come.
    let until = (stop_at + 8).max(due + 6);
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        if now >= until {
            break;
        }
        thread::sleep(Duration::from_millis(500));
    }
    let done = tracer.stop_with(libc::SIGINT);
    drop(sd);
    drop(own_atd);
    let report = done.json();
    // The same file, replayed offline, names the same units, at job and anacrontab
    // lines, and finds the same (the units and tables read while recording are in it).
    // No secret of a unit file, an at script or an anacrontab reaches the report or
    // the trace file (its header and the scheduler files in its compressed blocks).
    let contents = tracer::tracefile::read(bytes::Bytes::from(std::fs::read(&trace).unwrap()))
        .expect("the trace reads");
    let mut recorded = serde_json::to_string(&contents.header).unwrap();
    let mut late = 0;
    for e in &contents.entries {
        if let tracer::tracefile::Entry::SchedulerFiles(l) = e {
            recorded.push_str(&serde_json::to_string(l).unwrap());
            late += 1;
        }
    }
    assert!(
        late >= 2,
        "the files of systemd and anacron, read while recording"
    );
    assert!(
        recorded.contains("JT_SD_PASSWORD='<redacted>'"),
        "the unit file is in the trace"
    );
    assert!(
        recorded.contains("JT_ANA_TOKEN=<redacted>"),
        "the anacrontab is in the trace"
    );
    assert!(
        recorded.contains("JT_AT_TOKEN=<redacted>"),
        "the at script is in the trace"
    );
    // at escapes the value it copies (`at\-s3cret\-2`): the common part is looked for.
    assert!(!done.stdout.contains("s3cret"), "a secret in the report");
    for s in ["sd-s3cret-1", "s3cret"] {
        assert!(!recorded.contains(s), "{s} in the trace file");
    }
    let (_, replayed) = replay_json(&trace);
    assert_eq!(
        replayed["jobs"], report["jobs"],
        "replayed jobs differ from the live run"
    );
    assert_eq!(replayed["findings"], report["findings"]);

    // systemd: every listed job of it is a service; its own helpers are not listed.
    for j in jobs(&report).iter().filter(|j| j["scheduler"] == "systemd") {
        assert!(
            j["unit"]["service"].is_string(),
            "a systemd job without a unit: {j:#}"
        );
    }
    let ok = of_unit(&report, "jt-ok.service");
    assert!(!ok.is_empty(), "no run of jt-ok.service: {report:#}");
    // The timer fires every 5 s: a run it started as the trace stopped is cut short
    // (still running at the stop), which says nothing about its health.
    let last_start = ok.iter().filter_map(|j| j["start_ns"].as_u64()).max();
    for j in &ok {
        let cut_at_stop = j["start_ns"].as_u64() == last_start && j["end_ns"].is_null();
        if cut_at_stop {
            assert_eq!(kinds(j), vec!["still_running"], "{j:#}");
        } else {
            assert!(kinds(j).is_empty(), "healthy service has findings: {j:#}");
        }
        assert_eq!(j["unit"]["timer"], "jt-ok.timer");
        assert_eq!(j["command"], "cat /etc/hostname");
        assert_eq!(
            j["unit"]["environment"],
            serde_json::json!(["JT_SD_PASSWORD=<redacted>", "MODE=x"])
        );
    }
    let path = of_unit(&report, "jt-path.service");
    assert!(!path.is_empty(), "no run of jt-path.service");
    let f = finding(path[0], "command_not_found");
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.contains("jt-sd-missing-tool") && msg.contains("jt-path.service"),
        "{msg}"
    );
    let exec = of_unit(&report, "jt-exec.service");
    assert!(!exec.is_empty(), "no run of jt-exec.service");
    assert_eq!(kinds(exec[0]), vec!["exec_failed"], "{:#}", exec[0]);
    let msg = finding(exec[0], "exec_failed")["message"].as_str().unwrap();
    assert!(
        msg.contains("status=203/EXEC") && msg.contains("/opt/jt-sd/no-such-binary does not exist"),
        "{msg}"
    );
    assert_eq!(exec[0]["command"], "/opt/jt-sd/no-such-binary --flag");
    let wd = of_unit(&report, "jt-wd.service");
    assert!(!wd.is_empty(), "no run of jt-wd.service");
    assert_eq!(kinds(wd[0]), vec!["chdir_failed"], "{:#}", wd[0]);
    let msg = finding(wd[0], "chdir_failed")["message"].as_str().unwrap();
    assert!(
        msg.contains("WorkingDirectory=/srv/jt-sd-missing-dir") && msg.contains("status=200/CHDIR"),
        "{msg}"
    );
    assert!(of_unit(&report, "jt-stop.service").is_empty());
    let host: Vec<&Value> = report["findings"].as_array().unwrap().iter().collect();
    let missed = host
        .iter()
        .find(|f| {
            f["kind"] == "missed_schedule"
                && f["message"].as_str().unwrap().contains("jt-stop.timer")
        })
        .unwrap_or_else(|| panic!("no missed_schedule for jt-stop.timer: {host:#?}"));
    let msg = missed["message"].as_str().unwrap();
    assert!(
        msg.contains("jt-stop.service") && msg.contains("was running"),
        "{msg}"
    );
    for t in [
        "jt-ok.timer",
        "jt-path.timer",
        "jt-exec.timer",
        "jt-wd.timer",
    ] {
        assert!(
            !host
                .iter()
                .any(|f| f["kind"] == "missed_schedule"
                    && f["message"].as_str().unwrap().starts_with(t)),
            "{t} fired every time, yet: {host:#?}"
        );
    }

    // at: named by its job and spool file, with its commands; the command is missing.
    let at_jobs: Vec<&Value> = jobs(&report)
        .into_iter()
        .filter(|j| j["at_job"].is_object())
        .collect();
    assert_eq!(at_jobs.len(), 1, "{report:#}");
    let a = at_jobs[0];
    assert_eq!(
        a["at_job"]["number"].as_u64().unwrap().to_string(),
        at_number
    );
    assert!(a["at_job"]["file"]
        .as_str()
        .unwrap()
        .starts_with("/var/spool/cron/atjobs/a"));
    assert_eq!(a["command"], "jt-at-missing-cmd --nightly");
    let msg = finding(a, "command_not_found")["message"].as_str().unwrap();
    assert!(msg.contains("jt-at-missing-cmd"), "{msg}");

    // anacron: each job matched to its line, under the daemon that went on in the
    // child; the daemon's own fork is not a job. Besides them, anacron mails each
    // job's output from a child of its own.
    let (ana, mail): (Vec<&Value>, Vec<&Value>) = jobs(&report)
        .into_iter()
        .filter(|j| j["scheduler"] == "anacron")
        .partition(|j| j["crontab_entry"].is_object());
    assert_eq!(ana.len(), 2, "{ana:#?}");
    for j in ana.iter().chain(&mail) {
        assert_ne!(
            j["scheduler_pid"], anacron_parent,
            "a job of the exited parent: {j:#}"
        );
        assert_eq!(j["scheduler_pid"], ana[0]["scheduler_pid"], "{j:#}");
        assert_ne!(
            j["leader_pid"], ana[0]["scheduler_pid"],
            "the daemon is a job: {j:#}"
        );
    }
    for m in &mail {
        let mails = m["timeline"].as_array().unwrap().iter().any(|e| {
            e["event"] == "exec"
                && e["filename"]
                    .as_str()
                    .is_some_and(|f| f.ends_with("/sendmail"))
        });
        assert!(
            mails,
            "an anacron job that is neither a line nor its mail: {m:#}"
        );
    }
    let tab_s = tab.display().to_string();
    let by_id = |id: &str| {
        *ana.iter()
            .find(|j| j["crontab_entry"]["job_id"] == id)
            .unwrap_or_else(|| panic!("no anacron job {id}: {ana:#?}"))
    };
    let okj = by_id("jt-ana.ok");
    assert_eq!(okj["crontab_entry"]["file"], tab_s.as_str());
    assert_eq!(okj["crontab_entry"]["line"], 4);
    assert!(kinds(okj).is_empty(), "{okj:#}");
    let bad = by_id("jt-ana.missing");
    assert_eq!(bad["crontab_entry"]["line"], 5);
    assert!(kinds(bad).contains(&"command_not_found"), "{bad:#}");
}
