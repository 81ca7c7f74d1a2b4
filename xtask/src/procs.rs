//! What the benches share about the processes they start and watch.
use std::{
    fs,
    process::{Child, Command},
};

/// A child started in a process group of its own, killed with that group when dropped
/// (a bench that fails midway leaves nothing running).
pub struct Group(pub Child);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill of the process group we created.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `/proc/PID/stat` line split at its parenthesised comm, which may itself hold
/// spaces and parentheses: the comm, and the fields after it (the state first).
pub fn stat_parts(stat: &str) -> Option<(&str, Vec<&str>)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    Some((comm, stat[close + 1..].split_whitespace().collect()))
}

/// Whether a process with this comm is running (a zombie does not count: it holds no
/// descriptors).
pub fn running(comm: &str) -> bool {
    let Ok(dir) = fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| fs::read_to_string(e.path().join("stat")).ok())
        .any(|st| stat_parts(&st).is_some_and(|(c, f)| c == comm && f.first() != Some(&"Z")))
}

/// The workload runs in the environment cron gives a job, not in the bench's. Under
/// cargo, `LD_LIBRARY_PATH` names cargo's target and toolchain directories: every
/// program's loader then searched them first, and a `bash -c cat` made 438 watched
/// calls (opens and stats, most of them failing) instead of 130. That tripled what the
/// tracer is asked to watch, on no host it is run on.
pub fn job_env(c: &mut Command) -> &mut Command {
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("SHELL", "/bin/sh")
        .env(
            "HOME",
            std::env::var_os("HOME").unwrap_or_else(|| "/root".into()),
        )
        .env(
            "LOGNAME",
            std::env::var_os("LOGNAME").unwrap_or_else(|| "root".into()),
        )
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`...).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_stat_line_splits_at_its_last_parenthesis() {
        let (comm, f) = super::stat_parts("42 (a (b) c) S 1 42").unwrap();
        assert_eq!((comm, f), ("a (b) c", vec!["S", "1", "42"]));
        assert!(super::stat_parts("no comm here").is_none());
    }

    #[test]
    fn a_running_process_is_found_by_its_comm_and_a_reaped_one_is_not() {
        let mut c = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        assert!(super::running("sleep"));
        c.kill().unwrap();
        c.wait().unwrap();
        assert!(!super::running("jt-no-such-comm"));
    }
}
