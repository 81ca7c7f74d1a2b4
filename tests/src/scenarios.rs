//! The failing-job scenarios run by the real cron daemon, all in one crontab so they
//! fire at the same minute. Files are created under fixed paths (the host lock makes
//! that safe) so recorded fixtures can be checked by name on any machine.
use serde_json::Value;
use std::{
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::Duration,
};

pub const DIR: &str = "/opt/jt-scenarios";
/// A tool that exists on the host, but not in cron's PATH (/usr/bin:/bin).
pub const TOOL: &str = "/usr/local/bin/jt-offpath-tool";
/// A port nobody listens on during the test.
pub const CLOSED_PORT: u16 = 9;
/// Marker in the long-running job's command line.
pub const LONG_MARKER: &str = "jt-still-running";

/// One crontab entry and what the tracer must say about it.
pub struct Scenario {
    pub name: &'static str,
    pub command: String,
    /// Exactly the finding kinds expected, in order (empty: clean). A job that writes
    /// an error message on this cron (sendmail is /bin/false) also loses it:
    /// `output_lost` is part of what it must say.
    pub kinds: &'static [&'static str],
    /// Text each of the leading finding's message must contain.
    pub message_has: Vec<String>,
}

pub fn scenarios() -> Vec<Scenario> {
    let d = DIR;
    let port = CLOSED_PORT;
    vec![
        Scenario {
            name: "clean",
            command: "true jt-clean".into(),
            kinds: &[],
            message_has: vec![],
        },
        Scenario {
            name: "command not in cron's PATH",
            command: "jt-offpath-tool --run".into(),
            kinds: &["command_not_found", "output_lost"],
            message_has: vec![
                "\"jt-offpath-tool\" not found in PATH=/usr/bin:/bin".into(),
                format!("found at {TOOL}"),
            ],
        },
        Scenario {
            name: "script without its exec bit",
            command: format!("{d}/noexec.sh"),
            kinds: &["not_executable", "output_lost"],
            message_has: vec![
                "lacks the exec bit (mode 0644)".into(),
                format!("chmod +x {d}/noexec.sh"),
            ],
        },
        Scenario {
            name: "./relative.sh from the wrong directory",
            command: "./relative.sh".into(),
            kinds: &["relative_path", "output_lost"],
            message_has: vec!["exec \"./relative.sh\" ENOENT with cwd=/root".into()],
        },
        Scenario {
            name: "script reading config.ini by relative path",
            command: format!("{d}/readconf.sh"),
            kinds: &["relative_path", "nonzero_exit", "output_lost"],
            message_has: vec!["(\"config.ini\") ENOENT with cwd=/root".into()],
        },
        Scenario {
            name: "EMFILE under ulimit -n 16",
            command: format!("{d}/emfile.sh"),
            kinds: &["fd_exhausted", "nonzero_exit", "output_lost"],
            message_has: vec![
                "failed EMFILE after 13 successful opens".into(),
                "NOFILE limit 16 (set by prlimit64".into(),
            ],
        },
        Scenario {
            name: "connect to a closed port, exit 1",
            command: format!("{d}/connect.sh"),
            kinds: &["connect_failed", "nonzero_exit", "output_lost"],
            message_has: vec![format!("connect to 127.0.0.1:{port} failed ECONNREFUSED")],
        },
        Scenario {
            name: "non-blocking connect (curl) to a closed port",
            command: format!("curl -sS http://127.0.0.1:{port}/jt-curl"),
            kinds: &["connect_failed", "nonzero_exit", "output_lost"],
            message_has: vec![
                format!("connect to 127.0.0.1:{port} failed ECONNREFUSED"),
                "SO_ERROR".into(),
            ],
        },
        Scenario {
            name: "#! interpreter missing",
            command: format!("{d}/badinterp.sh"),
            kinds: &["bad_interpreter", "output_lost"],
            message_has: vec![
                "#!/usr/bin/jt-no-such-interpreter".into(),
                "does not exist".into(),
            ],
        },
        Scenario {
            name: "CRLF #! line",
            command: format!("{d}/crlf.sh"),
            kinds: &["bad_interpreter", "output_lost"],
            message_has: vec!["CRLF".into(), format!("dos2unix {d}/crlf.sh")],
        },
        Scenario {
            name: "kills itself with SIGKILL",
            command: "kill -9 $$ # jt-sigkill".into(),
            kinds: &["killed_by_signal"],
            message_has: vec!["killed by SIGKILL".into(), "sent by the job itself".into()],
        },
        Scenario {
            name: "output while mailing fails",
            command: "echo jt-output-for-mail".into(),
            kinds: &["output_lost"],
            message_has: vec!["/usr/sbin/sendmail exit 1".into(), "output is lost".into()],
        },
        Scenario {
            name: "runs past the end of the trace",
            command: format!("sleep 300 # {LONG_MARKER}"),
            kinds: &["still_running"],
            message_has: vec!["had not exited when the trace ended".into()],
        },
        Scenario {
            name: "leaves a process behind (nohup ... &)",
            command: format!("nohup sleep 20 >/dev/null 2>&1 & true # {LEFT_MARKER}"),
            kinds: &[],
            message_has: vec![],
        },
        Scenario {
            name: "a refused address, then the same service answers",
            command: format!(
                "bash -c 'exec 3<>/dev/tcp/::1/{OPEN_PORT}' 2>/dev/null; bash -c 'exec 3<>/dev/tcp/127.0.0.1/{OPEN_PORT}' && exit 3 # jt-recovered"
            ),
            kinds: &["nonzero_exit"],
            message_has: vec!["exited 3".into()],
        },
        Scenario {
            name: "env looks a command up on cron's PATH",
            command: "/usr/bin/env jt-offpath-tool --run".into(),
            kinds: &["command_not_found", "output_lost"],
            message_has: vec![
                "\"jt-offpath-tool\" not found in PATH=/usr/bin:/bin".into(),
                format!("found at {TOOL}"),
            ],
        },
        Scenario {
            name: "the real command is killed under its shell",
            // The echo makes its output certain (dash reports the killed job only
            // sometimes), so cron's mail of it, and output_lost, always happen.
            command: "sleep 30 & p=$!; sleep 1; kill $p; wait $p; r=$?; echo killed; exit $r # jt-killed-child".into(),
            kinds: &["killed_by_signal", "nonzero_exit", "output_lost"],
            message_has: vec![
                "`sleep 30`, run by the job,".into(),
                "SIGTERM".into(),
                "exited 143".into(),
            ],
        },
        Scenario {
            name: "a bash script calls a tool outside cron's PATH, then exits 0",
            command: format!("{d}/offpath-bash.sh 2>/dev/null"),
            kinds: &["command_not_found"],
            message_has: vec![
                "\"jt-offpath-tool\" not found in PATH=/usr/bin:/bin".into(),
                format!("found at {TOOL}"),
                format!("looked up by {d}/offpath-bash.sh"),
                "exited 127 without exec".into(),
                "went on and exited 0".into(),
            ],
        },
        Scenario {
            name: "a sh (dash) script calls a tool outside cron's PATH",
            command: format!("{d}/offpath-dash.sh 2>/dev/null"),
            kinds: &["command_not_found", "nonzero_exit"],
            message_has: vec![
                "\"jt-offpath-tool\" not found in PATH=/usr/bin:/bin".into(),
                format!("found at {TOOL}"),
                format!("looked up by {d}/offpath-dash.sh"),
            ],
        },
        // Healthy jobs of kinds seen on real hosts: no finding at all.
        Scenario {
            name: "a script probing for an optional tool (command -v)",
            command: format!("{d}/probe.sh"),
            kinds: &[],
            message_has: vec![],
        },
        Scenario {
            name: "an interpreter probing its optional files",
            command: "python3 -c 'import json, os, email; print(json.dumps({}))' > /dev/null".into(),
            kinds: &[],
            message_has: vec![],
        },
        Scenario {
            name: "an archive backup",
            command: format!("tar czf {d}/backup.tgz -C /etc hostname passwd"),
            kinds: &[],
            message_has: vec![],
        },
        Scenario {
            name: "run-parts of a directory of scripts",
            command: format!("run-parts {d}/parts"),
            kinds: &[],
            message_has: vec![],
        },
        Scenario {
            name: "a tree walk",
            command: format!("find {d} /etc/cron.d -name '*.sh' > /dev/null"),
            kinds: &[],
            message_has: vec![],
        },
    ]
}

/// Marker in the command of the job that leaves `sleep` behind.
pub const LEFT_MARKER: &str = "jt-left-behind";
/// A port the test listens on (IPv4 only) while the scenarios run.
pub const OPEN_PORT: u16 = 47211;

pub fn crontab() -> String {
    let mut s = String::from("# tracer diagnosis scenarios\nSHELL=/bin/sh\n");
    for sc in scenarios() {
        s.push_str(&format!("* * * * * {}\n", sc.command));
    }
    // Last: the env lines apply to the entries after them only.
    s.push_str(&secret_crontab_lines());
    s
}

/// Every secret the scenarios carry contains this; none may be seen anywhere.
pub const SECRET_MARK: &str = "jtSECRET";

/// Jobs that carry secrets in each shape a command line or environment has them.
pub fn secret_crontab_lines() -> String {
    let p = CLOSED_PORT;
    [
        "DATABASE_URL=postgres://jtdbuser:jtSECRET1@db.invalid/x".to_string(),
        "API_TOKEN=jtSECRET2".to_string(),
        "* * * * * true jt-secret-env".to_string(),
        "* * * * * true https://jturluser:jtSECRET3@example.invalid/x".to_string(),
        "* * * * * true --password jtSECRET4 jt-secret-option".to_string(),
        "* * * * * mysql() { :; }; mysql -pjtSECRET5 jt-secret-mysql".to_string(),
        format!("* * * * * curl -s -u jtcurluser:jtSECRET6 http://127.0.0.1:{p}/ || true"),
        format!(
            "* * * * * curl -s -H 'Authorization: Bearer jtSECRET7' http://127.0.0.1:{p}/jt-header || true"
        ),
        "* * * * * env PGPASSWORD=jtSECRET8 true jt-secret-pgpassword".to_string(),
        "* * * * * true 'https://example.invalid/ping?to=jt-query-kept&api_key=jtSECRET9'"
            .to_string(),
        "* * * * * true https://hooks.slack.com/services/jtSECRETa jt-secret-webhook".to_string(),
    ]
    .iter()
    .map(|l| format!("{l}\n"))
    .collect()
}

/// No secret byte anywhere in `bytes`; the non-secret parts of the same lines are there.
pub fn check_no_secrets(what: &str, bytes: &[u8], expect_kept: bool) {
    let text = String::from_utf8_lossy(bytes);
    if let Some(i) = text.find(SECRET_MARK) {
        let from = i.saturating_sub(120);
        panic!(
            "{what} holds a secret: ...{}...",
            &text[from..(i + 40).min(text.len())]
        );
    }
    if !expect_kept {
        return;
    }
    for kept in [
        "jtdbuser",
        "jturluser",
        "example.invalid",
        "jtcurluser",
        "jt-secret-mysql",
        "jt-header",
    ] {
        assert!(text.contains(kept), "{what} lost the non-secret {kept:?}");
    }
}

fn write(path: &str, body: &[u8], mode: u32) {
    std::fs::write(path, body).unwrap_or_else(|e| panic!("write {path}: {e}"));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The scripts and tools the scenarios use; removed on drop.
pub struct ScenarioFiles;

impl ScenarioFiles {
    pub fn create() -> ScenarioFiles {
        let _ = std::fs::remove_dir_all(DIR);
        std::fs::create_dir_all(DIR).unwrap();
        let d = DIR;
        write(TOOL, b"#!/bin/sh\nexit 0\n", 0o755);
        write(
            &format!("{d}/noexec.sh"),
            b"#!/bin/sh\necho never runs\n",
            0o644,
        );
        write(&format!("{d}/relative.sh"), b"#!/bin/sh\nexit 0\n", 0o755);
        write(&format!("{d}/config.ini"), b"[main]\nkey=value\n", 0o644);
        write(
            &format!("{d}/readconf.sh"),
            b"#!/bin/sh\ncat config.ini > /dev/null || exit 2\n",
            0o755,
        );
        write(
            &format!("{d}/emfile.sh"),
            b"#!/bin/bash\nulimit -n 16\nfor i in $(seq 3 40); do eval \"exec $i</etc/hostname\" || exit 1; done\n",
            0o755,
        );
        write(
            &format!("{d}/connect.sh"),
            format!("#!/bin/bash\nexec 3<>/dev/tcp/127.0.0.1/{CLOSED_PORT} || exit 1\n").as_bytes(),
            0o755,
        );
        write(
            &format!("{d}/badinterp.sh"),
            b"#!/usr/bin/jt-no-such-interpreter\necho hi\n",
            0o755,
        );
        write(&format!("{d}/crlf.sh"), b"#!/bin/sh\r\necho hi\r\n", 0o755);
        write(
            &format!("{d}/offpath-bash.sh"),
            b"#!/bin/bash\njt-offpath-tool --run\nls / > /dev/null\nexit 0\n",
            0o755,
        );
        write(
            &format!("{d}/offpath-dash.sh"),
            b"#!/bin/sh\njt-offpath-tool --run || exit 5\n",
            0o755,
        );
        write(
            &format!("{d}/probe.sh"),
            b"#!/bin/sh\nif command -v jt-absent-tool > /dev/null; then jt-absent-tool; fi\nexit 0\n",
            0o755,
        );
        std::fs::create_dir_all(format!("{d}/parts")).unwrap();
        write(
            &format!("{d}/parts/10-first"),
            b"#!/bin/sh\nexit 0\n",
            0o755,
        );
        write(&format!("{d}/parts/20-second"), b"#!/bin/sh\ntrue\n", 0o755);
        ScenarioFiles
    }
}

impl Drop for ScenarioFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(DIR);
        let _ = std::fs::remove_file(TOOL);
    }
}

/// A cron daemon of our own, in a private mount namespace where /usr/sbin/sendmail is
/// /bin/false (so mailing output fails) and with its own pid-file lock (so it runs
/// beside a host cron). Stopped by pid on drop.
pub struct NamespacedCron {
    child: Child,
    pub pid: u32,
    scratch: Option<std::path::PathBuf>,
}

impl NamespacedCron {
    /// The cron whose sendmail is /bin/false: mailing output fails. Its /etc/cron.d
    /// is `cron_d` (the rule files), seen only in its mount namespace.
    pub fn start(cron_d: &Path) -> NamespacedCron {
        assert!(
            Path::new("/usr/sbin/sendmail").exists(),
            "no /usr/sbin/sendmail to replace: install an MTA (cargo xtask test installs exim4-daemon-light)"
        );
        Self::spawn(
            &format!(
                "mount --bind /bin/false /usr/sbin/sendmail; mount --bind {} /etc/cron.d",
                cron_d.display()
            ),
            "mta-false",
        )
    }

    /// A cron with a working MTA: exim delivers the jobs' output into a private
    /// /var/mail (its spool and logs are private too, nothing of the host's mail is
    /// touched), and the cron reads only `dir`'s crontabs (see `MailingCronFiles`).
    pub fn start_with_mta(dir: &Path) -> NamespacedCron {
        assert!(
            Path::new("/usr/sbin/exim4").exists(),
            "exim is not installed: apt-get install exim4-daemon-light (cargo xtask test does this)"
        );
        let d = dir.display();
        Self::spawn(
            &format!(
                "for m in /var/spool/exim4 /var/log/exim4 /var/mail; do mount -t tmpfs jt-mail $m; done; \
                 chown Debian-exim:Debian-exim /var/spool/exim4 /var/log/exim4; chmod 750 /var/spool/exim4; \
                 chown root:mail /var/mail; chmod 2775 /var/mail; \
                 mount --bind {d}/crontab /etc/crontab; mount --bind {d}/cron.d /etc/cron.d; \
                 mount --bind {d}/spool /var/spool/cron/crontabs"
            ),
            "mta-ok",
        )
    }

    /// A cron that reads only `dir`'s crontab, cron.d and spool (its own mount
    /// namespace): the test kills it before its entry is due.
    pub fn start_private(dir: &Path) -> NamespacedCron {
        let d = dir.display();
        Self::spawn(
            &format!(
                "mount --bind {d}/crontab /etc/crontab; mount --bind {d}/cron.d /etc/cron.d; \
                 mount --bind {d}/spool /var/spool/cron/crontabs"
            ),
            "private",
        )
    }

    /// The cron of a host with no MTA at all: /usr/sbin is shown without sendmail
    /// (symlinks to the real entries, bind-mounted in the namespace only).
    pub fn start_without_mta() -> NamespacedCron {
        let base = std::env::temp_dir().join(format!("jt-nomta-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (orig, shadow) = (base.join("orig"), base.join("shadow"));
        std::fs::create_dir_all(&orig).unwrap();
        std::fs::create_dir_all(&shadow).unwrap();
        let setup = format!(
            "mount --bind /usr/sbin {o}; \
             for f in {o}/*; do n=${{f##*/}}; [ \"$n\" = sendmail ] || ln -s \"$f\" {s}/\"$n\"; done; \
             mount --bind {s} /usr/sbin",
            o = orig.display(),
            s = shadow.display()
        );
        let mut c = Self::spawn(&setup, "no-mta");
        c.scratch = Some(base);
        c
    }

    fn spawn(setup: &str, tag: &str) -> NamespacedCron {
        assert!(
            Path::new("/usr/sbin/cron").exists(),
            "Debian's cron is not installed: apt-get install cron (cargo xtask test does this)"
        );
        // Its own pid-file lock, so it runs beside a host cron or another test cron.
        let lock = std::env::temp_dir().join(format!("jt-crond-{tag}-{}.pid", std::process::id()));
        std::fs::write(&lock, b"").unwrap();
        let script = format!(
            "set -e; {setup}; \
             if [ -e /run/crond.pid ]; then mount --bind {lock} /run/crond.pid; fi; \
             exec /usr/sbin/cron -f -L 15",
            lock = lock.display()
        );
        // A daemon starts with init's clean environment, not the test runner's.
        let child = Command::new("unshare")
            .current_dir("/")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .args([
                "--mount",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                &script,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unshare (util-linux)");
        let pid = child.id();
        // The namespace set-up runs first (the no-MTA one links every /usr/sbin entry).
        let comm_of = || std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        for _ in 0..100 {
            if comm_of().trim() == "cron" {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        thread::sleep(Duration::from_millis(200));
        let comm = comm_of();
        if comm.trim() != "cron" {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            panic!("our {tag} cron (pid {pid}) did not start (comm {comm:?})");
        }
        let _ = std::fs::remove_file(&lock);
        NamespacedCron {
            child,
            pid,
            scratch: None,
        }
    }
}

impl NamespacedCron {
    /// SIGKILL it now (the test is the sender the tracer must name).
    pub fn kill(&mut self) {
        unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for NamespacedCron {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = &self.scratch {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Stop the processes of jobs the report says were still running (dash may have
/// exec'd `sleep` over the shell, so the command line no longer names the job).
pub fn stop_running_jobs(report: &serde_json::Value, scheduler_pid: u32) {
    for job in report["jobs"].as_array().into_iter().flatten() {
        if job["scheduler_pid"] != scheduler_pid {
            continue;
        }
        // What a finished job left behind (`nohup sleep 20 &`) goes too.
        for pid in job["left_running"].as_array().into_iter().flatten() {
            if let Some(pid) = pid.as_i64() {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
        if job["state"] != "running" {
            continue;
        }
        for pid in job["pids"].as_array().into_iter().flatten() {
            if let Some(pid) = pid.as_i64() {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}

/// Assert every scenario's job and findings in a report (live or replayed); jobs of
/// other schedulers are ignored when `scheduler_pid` is given.
pub fn check_scenarios(report: &Value, scheduler_pid: Option<u32>) {
    let jobs: Vec<&Value> = report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| scheduler_pid.is_none_or(|p| j["scheduler_pid"] == p))
        .collect();
    let mut failures = Vec::new();
    for sc in scenarios() {
        let Some(job) = jobs.iter().find(|j| j["command"] == sc.command.as_str()) else {
            failures.push(format!("{}: no job ran `{}`", sc.name, sc.command));
            continue;
        };
        let findings = job["findings"].as_array().unwrap();
        let kinds: Vec<&str> = findings.iter().filter_map(|f| f["kind"].as_str()).collect();
        if sc.kinds.is_empty() {
            if !kinds.is_empty() || job["exit"]["code"] != 0 {
                failures.push(format!(
                    "{}: expected a clean job, got {kinds:?} exit {}",
                    sc.name, job["exit"]
                ));
            }
            continue;
        }
        // Exactly these kinds: an extra finding on a failing job is a false alarm too.
        if kinds != sc.kinds {
            failures.push(format!(
                "{}: findings {kinds:?}, expected {:?}; all: {findings:#?}",
                sc.name, sc.kinds
            ));
            continue;
        }
        let msg = findings[0]["message"].as_str().unwrap_or("");
        for want in &sc.message_has {
            if !msg.contains(want.as_str()) {
                failures.push(format!("{}: message {msg:?} lacks {want:?}", sc.name));
            }
        }
        for f in findings {
            let n = job["timeline"].as_array().unwrap().len() as u64;
            let ev = f["evidence"].as_array().unwrap();
            if ev.is_empty() || ev.iter().any(|i| i.as_u64().unwrap() >= n) {
                failures.push(format!(
                    "{}: finding {} has bad evidence {ev:?}",
                    sc.name, f["kind"]
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} scenario problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The output scenario's finding from the cron with no MTA at all.
pub const NO_MTA_SAYS: &str = "/usr/sbin/sendmail does not exist (no MTA installed)";

/// In a report holding both test crons' runs: (the sendmail-is-false cron's pid, the
/// no-MTA cron's pid), told apart by what they did with the output job's output.
pub fn cron_pids(report: &Value) -> (Option<u32>, Option<u32>) {
    let mut failing_mta = None;
    let mut no_mta = None;
    for j in report["jobs"].as_array().into_iter().flatten() {
        if j["command"] != "echo jt-output-for-mail" {
            continue;
        }
        let pid = j["scheduler_pid"].as_u64().map(|p| p as u32);
        for f in j["findings"].as_array().into_iter().flatten() {
            let m = f["message"].as_str().unwrap_or("");
            if m.contains("/usr/sbin/sendmail exit 1") {
                failing_mta = pid;
            } else if m.contains(NO_MTA_SAYS) {
                no_mta = pid;
            }
        }
    }
    (failing_mta, no_mta)
}

/// The no-MTA cron's output job names the missing mailer.
pub fn check_no_mta(report: &Value, no_mta_pid: u32) {
    let job = report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["command"] == "echo jt-output-for-mail" && j["scheduler_pid"] == no_mta_pid)
        .expect("the output job of the no-MTA cron");
    let f = &job["findings"][0];
    assert_eq!(f["kind"], "output_lost", "{job:#}");
    assert!(f["message"].as_str().unwrap().contains(NO_MTA_SAYS), "{f}");
}

/// Our crons leave cron's pid file (and its @reboot marker) behind; remove what was
/// not there before the test.
pub struct RunFilesGuard(Vec<&'static str>);

impl RunFilesGuard {
    pub fn new() -> Self {
        RunFilesGuard(
            ["/run/crond.pid", "/run/crond.reboot"]
                .into_iter()
                .filter(|p| !Path::new(p).exists())
                .collect(),
        )
    }
}

impl Default for RunFilesGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RunFilesGuard {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// busybox's crond, with its own crontab directory; stopped by pid on drop.
pub struct BusyboxCrond {
    child: Child,
    pub pid: u32,
    dir: std::path::PathBuf,
}

pub const BUSYBOX_COMMAND: &str = "echo jt-busybox-marker > /dev/null";

impl BusyboxCrond {
    pub fn start() -> BusyboxCrond {
        assert!(
            Path::new("/bin/busybox").exists(),
            "busybox is not installed: apt-get install busybox-static (cargo xtask test does this)"
        );
        let dir = std::env::temp_dir().join(format!("jt-busybox-cron-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        write(
            dir.join("root").to_str().unwrap(),
            format!("* * * * * {BUSYBOX_COMMAND}\n").as_bytes(),
            0o600,
        );
        let child = Command::new("/bin/busybox")
            .current_dir("/")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .args(["crond", "-f", "-l", "8", "-c"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start busybox crond");
        let pid = child.id();
        BusyboxCrond { child, pid, dir }
    }
}

impl Drop for BusyboxCrond {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// busybox crond, found by its argv (its comm is "busybox"), ran its job cleanly.
pub fn check_busybox(report: &Value, pid: u32) {
    let job = report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["scheduler_pid"] == pid && j["command"] == BUSYBOX_COMMAND)
        .unwrap_or_else(|| panic!("no busybox crond job (pid {pid}) in {:#}", report["jobs"]));
    assert_eq!(job["scheduler"], "busybox");
    assert_eq!(job["exit"]["code"], 0, "{job:#}");
    assert_eq!(job["findings"], serde_json::json!([]), "{job:#}");
}

/// Where the rule files' jobs leave a mark when they run.
pub const MARKERS: &str = "/opt/jt-scenarios/markers";

/// (file name, contents, mode, finding kind expected, line of the finding).
pub type RuleFile = (&'static str, String, u32, Option<&'static str>, Option<u32>);

/// /etc/cron.d files that Debian's cron skips, each for another reason, and one it runs.
pub fn rule_files() -> Vec<RuleFile> {
    let m = MARKERS;
    vec![
        (
            "jt-good",
            format!("* * * * * root touch {m}/good\n"),
            0o644,
            None,
            None,
        ),
        (
            "jt-malformed",
            format!(
                "* * * * * root touch {m}/malformed-ok\n61 * * * * root touch {m}/malformed-bad\n"
            ),
            0o644,
            Some("crontab_syntax"),
            Some(2),
        ),
        (
            "jt-nonewline",
            format!("* * * * * root touch {m}/nonewline"),
            0o644,
            Some("crontab_ignored"),
            None,
        ),
        (
            "jt-groupw",
            format!("* * * * * root touch {m}/groupw\n"),
            0o664,
            Some("crontab_ignored"),
            None,
        ),
        (
            "jt.dotted",
            format!("* * * * * root touch {m}/dotted\n"),
            0o644,
            Some("crontab_ignored"),
            None,
        ),
    ]
}

/// A cron.d file with no entry yet, edited during the test in a way cron does not
/// notice (its old modification time put back, as `cp -p` or `rsync -t` do).
pub const STALE: &str = "jt-stale";

impl RuleFiles {
    /// Give the stale file an entry, keeping its mtime: the daemon will not reread it.
    pub fn edit_stale_keeping_mtime(&self) {
        let p = self.0.join(STALE);
        let old = std::fs::metadata(&p).unwrap().modified().unwrap();
        std::fs::write(&p, format!("* * * * * root touch {MARKERS}/stale\n")).unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_times(std::fs::FileTimes::new().set_modified(old))
            .unwrap();
    }
}

/// The stale edit: cron never reread the file (scheduler_down names it) and the new
/// entry's run is missed, with the reason.
pub fn check_stale(report: &Value) {
    let path = format!("/etc/cron.d/{STALE}");
    let down = findings_of(report, "scheduler_down")
        .into_iter()
        .find(|f| f["file"] == path.as_str())
        .unwrap_or_else(|| {
            panic!(
                "no scheduler_down for the unread {path}: {:#}",
                report["findings"]
            )
        });
    let msg = down["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("has not reread {path}, which changed at")),
        "{msg}"
    );
    assert!(msg.contains("modification time did not"), "{msg}");
    let missed = findings_of(report, "missed_schedule")
        .into_iter()
        .find(|f| f["file"] == path.as_str())
        .unwrap_or_else(|| panic!("no missed_schedule for {path}: {:#}", report["findings"]));
    let m = missed["message"].as_str().unwrap();
    assert!(m.contains("was running but did not start it"), "{m}");
    assert!(m.contains(&format!("the entry appeared in {path}")), "{m}");
}

/// A private /etc/cron.d holding `rule_files`, removed on drop.
pub struct RuleFiles(pub std::path::PathBuf);

impl RuleFiles {
    pub fn create() -> RuleFiles {
        let dir = std::env::temp_dir().join(format!("jt-cron.d-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(MARKERS).unwrap();
        for (name, body, mode, _, _) in rule_files() {
            write(dir.join(name).to_str().unwrap(), body.as_bytes(), mode);
        }
        write(
            dir.join(STALE).to_str().unwrap(),
            b"# filled in later\n",
            0o644,
        );
        RuleFiles(dir)
    }
}

impl Drop for RuleFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The private cron's files: one entry, in /etc/cron.d/jt-doomed.
pub struct PrivateCronFiles(pub std::path::PathBuf);

pub const DOOMED_COMMAND: &str = "touch /opt/jt-scenarios/markers/doomed";

impl PrivateCronFiles {
    pub fn create() -> PrivateCronFiles {
        let dir = std::env::temp_dir().join(format!("jt-private-cron-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["cron.d", "spool"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        write(
            dir.join("crontab").to_str().unwrap(),
            b"SHELL=/bin/sh\n",
            0o644,
        );
        write(
            dir.join("cron.d/jt-doomed").to_str().unwrap(),
            format!("* * * * * root {DOOMED_COMMAND}\n").as_bytes(),
            0o644,
        );
        PrivateCronFiles(dir)
    }
}

impl Drop for PrivateCronFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A job whose output is mailed by a working MTA: no finding.
pub const MAILED_COMMAND: &str = "echo jt-mailed-output";
/// The non-root user whose jobs the mailing cron runs (Debian's `daemon`, uid 1, home
/// /usr/sbin: no user is added to the host).
pub const JOB_USER: &str = "daemon";
/// A healthy job of that user.
pub const USER_OK_COMMAND: &str = "ls /usr/sbin > /dev/null # jt-user-ok";
/// A job of that user writing where only root may.
pub const USER_DENIED_COMMAND: &str = "echo x > /var/lib/jt-user-denied # jt-user-denied";

/// The mailing cron's files: root's crontab with the mailed job, and the crontab of
/// `JOB_USER` (owned by it, mode 0600, as `crontab -e` leaves it).
pub struct MailingCronFiles(pub std::path::PathBuf);

impl MailingCronFiles {
    pub fn create() -> MailingCronFiles {
        let dir = std::env::temp_dir().join(format!("jt-mailing-cron-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["cron.d", "spool"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        write(
            dir.join("crontab").to_str().unwrap(),
            b"SHELL=/bin/sh\n",
            0o644,
        );
        write(
            dir.join("spool/root").to_str().unwrap(),
            format!("* * * * * {MAILED_COMMAND}\n").as_bytes(),
            0o600,
        );
        let user = dir.join(format!("spool/{JOB_USER}"));
        write(
            user.to_str().unwrap(),
            format!("* * * * * {USER_OK_COMMAND}\n* * * * * {USER_DENIED_COMMAND}\n").as_bytes(),
            0o600,
        );
        let uid = user_id(JOB_USER).unwrap_or_else(|| panic!("no user {JOB_USER} on this host"));
        std::os::unix::fs::chown(&user, Some(uid), None).unwrap();
        MailingCronFiles(dir)
    }
}

impl Drop for MailingCronFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn user_id(name: &str) -> Option<u32> {
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name)).then(|| f.get(2)?.parse().ok())?
        })
}

/// The mailing cron's jobs: mailed output and the user's healthy job are clean, the
/// user's denied write is named; each ran as the right user.
pub fn check_mailing(report: &Value, pid: u32) {
    let jobs: Vec<&Value> = report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["scheduler_pid"] == pid)
        .collect();
    let job = |cmd: &str| {
        *jobs
            .iter()
            .find(|j| j["command"] == cmd)
            .unwrap_or_else(|| panic!("the mailing cron ran no `{cmd}`: {jobs:#?}"))
    };
    let mailed = job(MAILED_COMMAND);
    assert_eq!(mailed["findings"], serde_json::json!([]), "{mailed:#}");
    assert_eq!(mailed["exit"]["code"], 0, "{mailed:#}");
    // The output really went to the MTA: cron ran sendmail, and it succeeded.
    let sendmail = mailed["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "exec_attempt" && e["filename"] == "/usr/sbin/sendmail")
        .unwrap_or_else(|| panic!("no sendmail in the mailed job: {mailed:#}"));
    assert_eq!(sendmail["ret"], 0, "{sendmail:#}");

    let ok = job(USER_OK_COMMAND);
    assert_eq!(ok["user"], JOB_USER, "{ok:#}");
    assert_eq!(ok["findings"], serde_json::json!([]), "{ok:#}");
    assert_eq!(ok["exit"]["code"], 0, "{ok:#}");

    let denied = job(USER_DENIED_COMMAND);
    assert_eq!(denied["user"], JOB_USER);
    let kinds: Vec<&str> = denied["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["open_failed", "nonzero_exit"], "{denied:#}");
    let msg = denied["findings"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("/var/lib/jt-user-denied") && msg.contains("EACCES"),
        "{msg}"
    );
}

fn findings_of<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["kind"] == kind)
        .collect()
}

/// Every scenario job of `cron_pid` names its line of root's crontab.
pub fn check_entries(report: &Value, cron_pid: u32) {
    let mut last_line = 0;
    for sc in scenarios() {
        let job = report["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["command"] == sc.command.as_str() && j["scheduler_pid"] == cron_pid)
            .unwrap_or_else(|| panic!("{}: no job", sc.name));
        let e = &job["crontab_entry"];
        assert_eq!(
            e["file"], "/var/spool/cron/crontabs/root",
            "{}: {e}",
            sc.name
        );
        assert_eq!(e["command"], sc.command.as_str(), "{}", sc.name);
        assert_eq!(e["schedule"], "* * * * *");
        assert_eq!(e["user"], "root");
        let line = e["line"].as_u64().unwrap();
        assert!(
            line > last_line,
            "{}: line {line} after {last_line}",
            sc.name
        );
        last_line = line;
    }
}

/// The rule files: each skipped file is named with its kind, and its entry is a missed
/// run "never started" by the daemon; the good file's entry is not missed.
pub fn check_rule_files(report: &Value) {
    let mut failures = Vec::new();
    for (name, _, _, kind, line) in rule_files() {
        let path = format!("/etc/cron.d/{name}");
        let missed: Vec<&Value> = findings_of(report, "missed_schedule")
            .into_iter()
            .filter(|f| f["file"] == path.as_str())
            .collect();
        let Some(kind) = kind else {
            if !missed.is_empty() {
                failures.push(format!("{path} ran, but is reported missed: {missed:?}"));
            }
            continue;
        };
        let named = findings_of(report, kind)
            .into_iter()
            .any(|f| f["file"] == path.as_str() && line.is_none_or(|l| f["line"] == l));
        if !named {
            failures.push(format!("{path}: no {kind} finding (line {line:?})"));
        }
        if !missed.iter().any(|f| {
            f["message"]
                .as_str()
                .unwrap_or("")
                .contains("never starts it")
        }) {
            failures.push(format!(
                "{path}: no missed_schedule saying the daemon never starts it: {missed:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nhost findings: {:#}",
        failures.join("\n"),
        report["findings"]
    );
}

pub fn clear_markers() {
    let _ = std::fs::remove_dir_all(MARKERS);
    std::fs::create_dir_all(MARKERS).unwrap();
}

/// The real daemon agrees: only the good file's job left its mark.
pub fn check_rule_markers() {
    let ran: Vec<String> = std::fs::read_dir(MARKERS)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        ran.contains(&"good".to_string()),
        "the good cron.d file did not run: {ran:?}"
    );
    for bad in [
        "malformed-ok",
        "malformed-bad",
        "nonewline",
        "groupw",
        "dotted",
        "doomed",
    ] {
        assert!(
            !ran.contains(&bad.to_string()),
            "{bad} ran, but cron should have skipped it: {ran:?}"
        );
    }
}

/// The private cron killed before its minute: scheduler_down names the kill and its
/// sender, and its entry is a missed run because no daemon was running.
pub fn check_doomed(report: &Value, doomed_pid: Option<u32>, killer_pid: Option<u32>) -> u32 {
    let down = findings_of(report, "scheduler_down");
    let f = down
        .iter()
        .find(|f| doomed_pid.is_none_or(|p| f["pid"] == p) && f["pid"] != 0)
        .unwrap_or_else(|| {
            panic!(
                "no scheduler_down for the killed cron: {:#}",
                report["findings"]
            )
        });
    let pid = f["pid"].as_u64().unwrap() as u32;
    let msg = f["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("cron (pid {pid}) exited at")),
        "{msg}"
    );
    assert!(msg.contains("SIGKILL sent by pid"), "{msg}");
    if let Some(k) = killer_pid {
        assert!(msg.contains(&format!("SIGKILL sent by pid {k} ")), "{msg}");
    }
    assert!(msg.contains("none ran for the rest of the trace"), "{msg}");
    let missed = findings_of(report, "missed_schedule")
        .into_iter()
        .find(|f| f["file"] == "/etc/cron.d/jt-doomed")
        .unwrap_or_else(|| panic!("no missed_schedule for jt-doomed: {:#}", report["findings"]));
    let m = missed["message"].as_str().unwrap();
    assert!(m.contains(DOOMED_COMMAND), "{m}");
    assert!(
        m.contains(&format!(
            "no Debian cron daemon was running: cron (pid {pid}) exited"
        )),
        "{m}"
    );
    assert!(!missed["times"].as_array().unwrap().is_empty());
    pid
}

/// busybox crond's job names the line of its spool file.
pub fn check_busybox_entry(report: &Value, pid: u32) {
    let job = report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["scheduler_pid"] == pid && j["command"] == BUSYBOX_COMMAND)
        .expect("busybox job");
    let e = &job["crontab_entry"];
    assert!(e["file"].as_str().unwrap_or("").ends_with("/root"), "{e}");
    assert_eq!(e["line"], 1, "{e}");
}

/// The job that left `sleep` running ended with its leader and lists what it left.
pub fn check_left_behind(report: &Value, cron_pid: u32) {
    let job = report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| {
            j["scheduler_pid"] == cron_pid
                && j["command"].as_str().unwrap_or("").contains(LEFT_MARKER)
        })
        .expect("the nohup job");
    assert_eq!(job["state"], "finished", "{job:#}");
    assert!(
        !job["left_running"].as_array().is_none_or(|v| v.is_empty()),
        "{job:#}"
    );
}
