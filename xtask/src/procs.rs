//! What the benches share about the processes they start and watch.
use std::{fs, process::Child};

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
        .any(|st| {
            // pid (comm) state ...: the comm may hold spaces and parentheses.
            let (Some(open), Some(close)) = (st.find('('), st.rfind(')')) else {
                return false;
            };
            &st[open + 1..close] == comm && !st[close + 1..].trim_start().starts_with('Z')
        })
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
