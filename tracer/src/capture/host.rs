//! What a trace header records about the host at start: clocks, names, crontabs,
//! users. Read once, so a replay elsewhere sees the recording host.
use std::{collections::BTreeMap, path::Path};

use crate::{
    capture::snapshot::ProcInfo,
    model::users::UserNames,
    schedules::{self, Daemon, ScheduleView},
    secrets,
};

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

/// The crontabs as each running cron-family daemon sees them (through its own root
/// when it is in another mount namespace), with its time zone; when none runs and
/// `fallback`, the host's files as the installed daemon would read them. Secret-looking
/// values are redacted when `redact` is given (it tallies them).
pub fn schedule_views(
    procs: &[ProcInfo],
    mut redact: Option<&mut secrets::Counts>,
    fallback: bool,
) -> Vec<ScheduleView> {
    let own_ns = mount_ns("self");
    let mut views: Vec<(Option<String>, ScheduleView)> = Vec::new();
    for p in procs {
        let Some((daemon, busybox_dir)) = schedules::classify(&p.comm, &p.cmdline) else {
            continue;
        };
        let ns = mount_ns(&p.pid.to_string());
        let same_ns = ns.is_none() || ns == own_ns;
        if let Some((_, v)) = views
            .iter_mut()
            .find(|(n, v)| *n == ns && v.daemon == daemon && v.busybox_dir == busybox_dir)
        {
            v.pids.push(p.pid);
            continue;
        }
        let root = if same_ns {
            "/".to_string()
        } else {
            format!("/proc/{}/root", p.pid)
        };
        let mut view = read_view(daemon, &root, busybox_dir, redact.as_deref_mut());
        view.pids.push(p.pid);
        view.mnt_ns = ns.clone();
        if let Some(tz) = process_tz(p.pid) {
            view.context.tz = tz;
        }
        views.push((ns, view));
    }
    if views.is_empty() && fallback {
        let daemon = installed_daemon();
        let mut view = read_view(daemon, "/", None, redact);
        view.mnt_ns = own_ns.clone();
        if view
            .sources
            .iter()
            .any(|s| s.text.as_deref().is_some_and(|t| !t.trim().is_empty()))
        {
            views.push((own_ns, view));
        }
    }
    views.into_iter().map(|(_, v)| v).collect()
}

/// The files `daemon` reads under `root`, as plain data.
pub fn read_view(
    daemon: Daemon,
    root: &str,
    busybox_dir: Option<String>,
    redact: Option<&mut secrets::Counts>,
) -> ScheduleView {
    let mut sources = schedules::read_sources(
        Path::new(root),
        daemon,
        busybox_dir.as_deref().map(Path::new),
    );
    if let Some(counts) = redact {
        for s in &mut sources {
            if let Some(t) = s.text.as_mut() {
                *t = secrets::redact_crontab(t, counts);
            }
        }
    }
    ScheduleView {
        daemon,
        pids: Vec::new(),
        mnt_ns: None,
        root: root.to_string(),
        busybox_dir,
        sources,
        context: schedules::read_context(Path::new(root)),
    }
}

/// The daemon whose binary is installed, for a host where none is running.
fn installed_daemon() -> Daemon {
    if Path::new("/usr/sbin/cron").exists() {
        Daemon::DebianCron
    } else if Path::new("/usr/sbin/crond").exists() {
        Daemon::Cronie
    } else {
        Daemon::DebianCron
    }
}

fn mount_ns(pid: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
        .ok()
        .map(|p| p.display().to_string())
}

/// A daemon started with `TZ` set evaluates its crontabs in that zone.
fn process_tz(pid: u32) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(b"TZ="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .filter(|v| !v.is_empty())
}

pub fn users_map() -> BTreeMap<u32, String> {
    std::fs::read_to_string("/etc/passwd")
        .map(|s| UserNames::parse(&s).into_map())
        .unwrap_or_default()
}
