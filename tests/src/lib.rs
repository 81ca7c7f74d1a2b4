//! Helpers for the integration tests: run the real `tracer` binary as root, share the
//! host's kernel and cron daemon one test at a time, and leave the host as it was.
pub mod scenarios;
use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// The tracer binary under test (`cargo xtask test` sets TRACER_BIN).
pub fn tracer_bin() -> PathBuf {
    let p = std::env::var_os("TRACER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/tracer"));
    assert!(
        p.exists(),
        "tracer binary {} not found: run the tests with `cargo xtask test`",
        p.display()
    );
    p
}

/// `tracer replay TRACE --format json --timelines`: its exit code and its report.
pub fn replay_json(trace: &std::path::Path) -> (Option<i32>, Value) {
    let out = Command::new(tracer_bin())
        .args([
            "replay",
            &trace.display().to_string(),
            "--format",
            "json",
            "--timelines",
        ])
        .output()
        .expect("run tracer replay");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "replay of {} is not JSON ({e}): {}",
            trace.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

/// These tests load eBPF programs and drive cron: they need root and say so.
pub fn require_root() {
    let uid = unsafe { libc::geteuid() };
    assert_eq!(
        uid, 0,
        "this test loads eBPF programs into the kernel and must run as root (sudo -E cargo xtask test)"
    );
}

/// Serialises tests that share the kernel's probes, root's crontab and the cron daemon,
/// across test binaries (an flock on a file under /run, held while the File lives).
pub struct HostLock(#[allow(dead_code)] File);

impl HostLock {
    pub fn acquire() -> Self {
        let f = File::create("/run/tracer-tests.lock").expect("create /run/tracer-tests.lock");
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock /run/tracer-tests.lock");
        HostLock(f)
    }
}

/// A running `tracer record`; stdout is collected, stderr lines are watched.
pub struct Tracer {
    child: Option<Child>,
    stderr_lines: mpsc::Receiver<String>,
    pub stderr: Vec<String>,
    stdout: thread::JoinHandle<String>,
}

pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: Vec<String>,
}

impl Finished {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "tracer stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout,
                self.stderr.join("\n")
            )
        })
    }
}

impl Tracer {
    /// Start `tracer record ARGS` and wait until it says its probes are attached.
    pub fn start(args: &[&str]) -> Tracer {
        Self::start_with_env(args, &[])
    }

    /// `start`, with these variables set for the tracer alone.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Tracer {
        let mut child = Command::new(tracer_bin())
            .envs(env.iter().copied())
            .arg("record")
            // The tests read the events of healthy jobs too.
            .arg("--timelines")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tracer");
        let mut out = child.stdout.take().unwrap();
        let stdout = thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut t = Tracer {
            child: Some(child),
            stderr_lines: rx,
            stderr: Vec::new(),
            stdout,
        };
        t.wait_for_stderr("tracer: attached", Duration::from_secs(90));
        t
    }

    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.stderr.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => {
                    let code = self
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten());
                    panic!(
                        "tracer did not print {needle:?} within {timeout:?} (exit: {code:?}); stderr so far:\n{}",
                        self.stderr.join("\n")
                    );
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Send `sig` and collect what it printed.
    pub fn stop_with(self, sig: i32) -> Finished {
        let pid = self.pid() as i32;
        unsafe { libc::kill(pid, sig) };
        self.wait()
    }

    /// Wait for it to end by itself (e.g. --duration).
    pub fn wait(mut self) -> Finished {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait tracer") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("tracer did not exit within 120 s");
            }
            thread::sleep(Duration::from_millis(50));
        };
        let stdout = std::mem::replace(&mut self.stdout, thread::spawn(String::new))
            .join()
            .unwrap();
        while let Ok(l) = self.stderr_lines.recv_timeout(Duration::from_millis(200)) {
            self.stderr.push(l);
        }
        Finished {
            code: status.code(),
            stdout,
            stderr: std::mem::take(&mut self.stderr),
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// All events of all jobs in a report, with the job id added.
pub fn all_events(report: &Value) -> Vec<Value> {
    let mut v = Vec::new();
    for job in report["jobs"].as_array().expect("jobs array") {
        for e in job["timeline"].as_array().expect("timeline array") {
            let mut e = e.clone();
            e["job"] = job["id"].clone();
            v.push(e);
        }
    }
    v
}

/// The first event matching `pred`, or a panic that shows what was captured.
pub fn expect_event<'a>(
    events: &'a [Value],
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> &'a Value {
    events.iter().find(|e| pred(e)).unwrap_or_else(|| {
        let dump: Vec<String> = events.iter().map(|e| e.to_string()).collect();
        panic!(
            "no event: {what}\ncaptured {} events:\n{}",
            events.len(),
            dump.join("\n")
        )
    })
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("tracer-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback TCP port nobody listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

/// A user's crontab replaced for the test and put back as it was on drop.
pub struct CrontabGuard {
    user: String,
    previous: Option<String>,
}

impl CrontabGuard {
    /// Root's crontab.
    pub fn install(content: &str) -> CrontabGuard {
        Self::install_for("root", content)
    }

    pub fn install_for(user: &str, content: &str) -> CrontabGuard {
        let prev = Command::new("crontab")
            .args(["-l", "-u", user])
            .output()
            .expect("crontab -l");
        let previous = prev
            .status
            .success()
            .then(|| String::from_utf8_lossy(&prev.stdout).into_owned());
        let g = CrontabGuard {
            user: user.to_string(),
            previous,
        };
        pipe_crontab(user, content);
        g
    }
}

fn pipe_crontab(user: &str, content: &str) {
    use std::io::Write;
    let mut c = Command::new("crontab")
        .args(["-u", user, "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("crontab -");
    c.stdin
        .take()
        .unwrap()
        .write_all(content.as_bytes())
        .unwrap();
    assert!(c.wait().unwrap().success(), "crontab - failed");
}

impl Drop for CrontabGuard {
    fn drop(&mut self) {
        match &self.previous {
            Some(p) => pipe_crontab(&self.user, p),
            None => {
                let _ = Command::new("crontab")
                    .args(["-r", "-u", &self.user])
                    .status();
            }
        }
    }
}

/// Seconds until the next wall-clock minute starts.
pub fn secs_to_next_minute() -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    60.0 - (now.as_secs_f64() % 60.0)
}
