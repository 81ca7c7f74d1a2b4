//! The crontabs as one daemon sees them. A daemon in another mount namespace (a
//! container, a test's private `/etc/cron.d`) reads other files than the host's, so
//! the files are read through its `/proc/PID/root` and analysed by its own rules.
use serde::{Deserialize, Serialize};

use super::{analyse, CrontabSet, CrontabSource, Daemon, HostContext};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleView {
    pub daemon: Daemon,
    /// The daemons reading these files when they were read (empty: none was running,
    /// the files are what one would read once started).
    pub pids: Vec<u32>,
    /// Where the files were read from: `/`, or `/proc/PID/root` for a daemon in another
    /// mount namespace. Paths in `sources` are as the daemon names them.
    pub root: String,
    /// The daemon's mount namespace (`mnt:[4026531841]`): daemons in one namespace
    /// with the same kind read the same files.
    #[serde(default)]
    pub mnt_ns: Option<String>,
    /// busybox crond's `-c DIR`.
    #[serde(default)]
    pub busybox_dir: Option<String>,
    pub sources: Vec<CrontabSource>,
    pub context: HostContext,
}

impl ScheduleView {
    pub fn analyse(&self) -> CrontabSet {
        analyse(&self.sources, &self.context, self.daemon)
    }

    /// Daemons of one kind in one namespace (with one `-c DIR`) share their files:
    /// a job run by any of them counts for all.
    pub fn same_group(&self, other: &ScheduleView) -> bool {
        self.daemon == other.daemon
            && self.mnt_ns == other.mnt_ns
            && self.busybox_dir == other.busybox_dir
    }

    /// Whether this view is the host's own files rather than another namespace's.
    pub fn is_host(&self) -> bool {
        self.root == "/"
    }

    /// "cron (pid 812)" or "Debian cron (not running)", for messages.
    pub fn who(&self) -> String {
        let name = match self.daemon {
            Daemon::DebianCron => "cron",
            Daemon::Cronie => "crond",
            Daemon::BusyboxCrond => "busybox crond",
        };
        let ns = if self.is_host() {
            String::new()
        } else {
            " in its own mount namespace".to_string()
        };
        match self.pids.as_slice() {
            [] => format!("{} (not running){ns}", self.daemon.label()),
            [p] => format!("{name} (pid {p}){ns}"),
            ps => format!(
                "{name} (pids {}){ns}",
                ps.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// The daemon a process is, from its comm and argv; `None` for schedulers without
/// crontabs (anacron, atd) and other roots. busybox crond's `-c DIR` comes with it.
pub fn classify(comm: &str, cmdline: &[String]) -> Option<(Daemon, Option<String>)> {
    let base = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    let argv0 = cmdline.first().map(|a| base(a)).unwrap_or_default();
    if argv0 == "busybox"
        && (cmdline.get(1).map(String::as_str) == Some("crond") || comm == "crond")
    {
        let mut dir = None;
        let mut it = cmdline.iter().skip(2);
        while let Some(a) = it.next() {
            if a == "-c" {
                dir = it.next().cloned();
            } else if let Some(d) = a.strip_prefix("-c") {
                dir = Some(d.to_string());
            } else if a.starts_with('-') && !a.starts_with("--") && a.len() > 2 && a.ends_with('c')
            {
                // Flags bundled with -c last (`-fc DIR`).
                dir = it.next().cloned();
            }
        }
        return Some((Daemon::BusyboxCrond, dir));
    }
    match comm {
        "cron" => Some((Daemon::DebianCron, None)),
        "crond" => Some((Daemon::Cronie, None)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn daemons_are_told_apart_by_comm_and_argv() {
        assert_eq!(
            classify("cron", &v(&["/usr/sbin/cron", "-f"])),
            Some((Daemon::DebianCron, None))
        );
        assert_eq!(
            classify("crond", &v(&["/usr/sbin/crond", "-n"])),
            Some((Daemon::Cronie, None))
        );
        assert_eq!(
            classify("busybox", &v(&["busybox", "crond", "-f", "-c", "/x/tabs"])),
            Some((Daemon::BusyboxCrond, Some("/x/tabs".into())))
        );
        assert_eq!(
            classify("busybox", &v(&["/bin/busybox", "crond", "-c/y"])),
            Some((Daemon::BusyboxCrond, Some("/y".into())))
        );
        assert_eq!(
            classify("busybox", &v(&["busybox", "crond"])),
            Some((Daemon::BusyboxCrond, None))
        );
        assert_eq!(classify("anacron", &v(&["anacron", "-s"])), None);
        assert_eq!(classify("busybox", &v(&["busybox", "sh"])), None);
    }
}
