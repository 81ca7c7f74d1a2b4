//! The processes alive when tracing starts, read from `/proc` and turned into
//! `Snapshot` events that enter the same pipeline as kernel events.
use std::collections::{HashMap, HashSet};

/// Scheduler daemons followed by default (matched on comm).
/// systemd is one too: its forks are services (a timer's among them), told apart by
/// the cgroup each is put in.
pub const SCHEDULER_COMMS: [&str; 5] = ["cron", "crond", "anacron", "atd", "systemd"];

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub cmdline: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    pub cwd: Option<String>,
    pub exe: Option<String>,
    /// RLIMIT_NOFILE (soft, hard).
    #[serde(default)]
    pub nofile: Option<(u64, u64)>,
}

/// Every process in `/proc`, briefly: pid, ppid, comm and argv, enough to pick roots
/// and their descendants (the tracer rescans every two seconds; reading everything
/// of every process each time would be wasted). `read_one` reads a chosen process
/// whole. Processes that vanish mid-read are skipped: there is nothing to follow.
pub fn read_all() -> Vec<ProcInfo> {
    read_all_with(|_| true)
}

/// [`read_all`] for the live loop's rescans, which only pick roots (by pid, comm, or
/// busybox's argv) and read the new ones whole: the argv of a process whose comm is
/// not busybox is not read. It was a third of a rescan's reads, and the rescans most
/// of what the tracer costs a host while nothing it follows runs.
pub fn read_for_rescan() -> Vec<ProcInfo> {
    read_all_with(|comm| comm == "busybox")
}

fn read_all_with(wants_cmdline: impl Fn(&str) -> bool) -> Vec<ProcInfo> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.flatten()
        .filter_map(|p| {
            let stat = p.stat().ok()?;
            // A zombie has exited: its exit was seen (or it never ran under us), and its
            // empty argv would only overwrite what the events said of it.
            if stat.state == 'Z' {
                return None;
            }
            Some(ProcInfo {
                pid: stat.pid as u32,
                ppid: stat.ppid as u32,
                cmdline: if wants_cmdline(&stat.comm) {
                    p.cmdline().unwrap_or_default()
                } else {
                    Vec::new()
                },
                comm: stat.comm,
                uid: u32::MAX,
                gid: u32::MAX,
                cwd: None,
                exe: None,
                nofile: None,
            })
        })
        .collect()
}

/// One process, if it is still there.
pub fn read_one(pid: u32) -> Option<ProcInfo> {
    procfs::process::Process::new(pid as i32)
        .ok()
        .and_then(|p| info(&p))
}

fn info(p: &procfs::process::Process) -> Option<ProcInfo> {
    {
        let stat = p.stat().ok()?;
        if stat.state == 'Z' {
            return None;
        }
        let (uid, gid) = p
            .status()
            .map(|s| (s.euid, s.egid))
            .unwrap_or((u32::MAX, u32::MAX));
        Some(ProcInfo {
            pid: stat.pid as u32,
            ppid: stat.ppid as u32,
            comm: stat.comm.clone(),
            cmdline: p.cmdline().unwrap_or_default(),
            uid,
            gid,
            cwd: p.cwd().ok().map(|c| c.display().to_string()),
            exe: p.exe().ok().map(|c| c.display().to_string()),
            nofile: p.limits().ok().map(|l| {
                let v = |x: procfs::process::LimitValue| match x {
                    procfs::process::LimitValue::Value(n) => n,
                    procfs::process::LimitValue::Unlimited => u64::MAX,
                };
                (
                    v(l.max_open_files.soft_limit),
                    v(l.max_open_files.hard_limit),
                )
            }),
        })
    }
}

/// What makes a process a root.
#[derive(Clone, Debug, Default)]
pub struct RootSpec {
    pub comms: Vec<String>,
    pub pids: Vec<u32>,
    pub all: bool,
}

impl RootSpec {
    pub fn with_defaults(mut comms: Vec<String>, pids: Vec<u32>, all: bool) -> Self {
        for c in SCHEDULER_COMMS {
            if !comms.iter().any(|x| x == c) {
                comms.push(c.to_string());
            }
        }
        Self { comms, pids, all }
    }

    pub fn is_root(&self, p: &ProcInfo) -> bool {
        self.pids.contains(&p.pid)
            || self.comms.iter().any(|c| comm_matches(c, &p.comm))
            || is_busybox_crond(&p.cmdline)
    }
}

/// The kernel keeps 15 bytes of comm; a longer `--comm` matches its prefix.
pub fn comm_matches(wanted: &str, comm: &str) -> bool {
    let w = wanted.as_bytes();
    let w = &w[..w.len().min(15)];
    w == comm.as_bytes()
}

/// `busybox crond ...` runs with comm "busybox": recognise it by its argv.
pub fn is_busybox_crond(cmdline: &[String]) -> bool {
    cmdline.len() >= 2 && cmdline[0].rsplit('/').next() == Some("busybox") && cmdline[1] == "crond"
}

/// Roots among `procs`, and their descendants (parents before children), excluding
/// `self_pid`. Returns (pid, is_root) in that order.
pub fn roots_and_descendants(
    procs: &[ProcInfo],
    spec: &RootSpec,
    self_pid: u32,
) -> Vec<(u32, bool)> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<(u32, bool)> = procs
        .iter()
        .filter(|p| p.pid != self_pid && (spec.all || spec.is_root(p)))
        .map(|p| (p.pid, true))
        .collect();
    stack.sort();
    stack.reverse();
    while let Some((pid, root)) = stack.pop() {
        if pid == self_pid || !seen.insert(pid) {
            continue;
        }
        out.push((pid, root));
        if let Some(kids) = children.get(&pid) {
            for &k in kids.iter().rev() {
                stack.push((k, false));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, ppid: u32, comm: &str, cmd: &[&str]) -> ProcInfo {
        ProcInfo {
            pid,
            ppid,
            comm: comm.into(),
            cmdline: cmd.iter().map(|s| s.to_string()).collect(),
            uid: 0,
            gid: 0,
            cwd: None,
            exe: None,
            nofile: None,
        }
    }

    #[test]
    fn finds_schedulers_and_their_running_jobs_parents_first() {
        let procs = vec![
            p(1, 0, "init", &["init"]),
            p(500, 1, "cron", &["/usr/sbin/cron", "-f"]),
            p(600, 500, "cron", &["/usr/sbin/cron", "-f"]),
            p(601, 600, "sh", &["/bin/sh", "-c", "sleep 100"]),
            p(700, 1, "busybox", &["busybox", "crond", "-f"]),
            p(800, 1, "bash", &["bash"]),
        ];
        let spec = RootSpec::with_defaults(vec![], vec![], false);
        let got = roots_and_descendants(&procs, &spec, 999);
        assert_eq!(
            got,
            vec![(500, true), (600, false), (601, false), (700, true)]
        );
    }

    #[test]
    fn pid_and_comm_roots_and_self_exclusion() {
        let procs = vec![p(10, 1, "worker", &["w"]), p(11, 10, "tracer", &["tracer"])];
        let spec = RootSpec::with_defaults(vec!["worker".into()], vec![], false);
        assert_eq!(roots_and_descendants(&procs, &spec, 11), vec![(10, true)]);
        let spec = RootSpec::with_defaults(vec![], vec![11], false);
        assert!(roots_and_descendants(&procs, &spec, 11).is_empty());
        assert!(comm_matches("a-very-long-command-name", "a-very-long-com"));
    }
}
