//! What a trace header records about the host at start: clocks, names, crontabs,
//! users. Read once, so a replay elsewhere sees the recording host.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use crate::{model::users::UserNames, secrets};

/// CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn realtime_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Crontab files as they are now (cron's system files and the user spools).
pub fn read_crontabs() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut add = |p: &Path| {
        if let Ok(t) = std::fs::read_to_string(p) {
            out.insert(p.display().to_string(), secrets::redact_crontab(&t));
        }
    };
    for f in ["/etc/crontab", "/etc/anacrontab"] {
        add(Path::new(f));
    }
    for dir in ["/etc/cron.d", "/var/spool/cron/crontabs", "/var/spool/cron"] {
        if let Ok(rd) = std::fs::read_dir(dir) {
            let mut files: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            for f in files {
                add(&f);
            }
        }
    }
    out
}

pub fn users_map() -> BTreeMap<u32, String> {
    std::fs::read_to_string("/etc/passwd")
        .map(|s| UserNames::parse(&s).into_map())
        .unwrap_or_default()
}
