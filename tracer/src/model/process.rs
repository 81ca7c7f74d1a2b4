//! The process table: what we know of each followed process, updated event by event.
//! Pure: no kernel, no `/proc`; a snapshot arrives as `Snapshot` events.
// foldhash: pids on every event's path (see `model::job`).
use std::sync::Arc;

use foldhash::HashMap as PidMap;

use crate::model::event::{Body, Event, ExitStatus};

/// An argv or an environment, shared rather than copied: a fork's child, an exec's
/// first argv and a job's summary hold the same one (a root's forks each copied its
/// argv and environment, a tenth of a following tracer's CPU).
pub type Words = Arc<[String]>;

#[derive(Clone, Debug, Default)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    /// When we first saw it (fork, or the snapshot).
    pub start_ns: u64,
    pub comm: crate::model::event::Comm,
    pub uid: u32,
    pub cwd: Option<String>,
    pub argv: Words,
    pub env: Words,
    /// RLIMIT_NOFILE (soft, hard) when set during the trace.
    pub nofile: Option<(u64, u64)>,
    /// From the parent's wait status when seen, else from the kernel's exit record.
    pub exit: Option<ExitStatus>,
    pub exit_ns: Option<u64>,
    pub execed: bool,
    /// argv of the first program this process ran (a shell that later execs its
    /// command in place keeps its `sh -c ...` here).
    pub first_argv: Words,
    pending_exec: Option<(Words, Words)>,
}

impl Process {
    pub fn exited(&self) -> bool {
        self.exit_ns.is_some()
    }
}

#[derive(Default, Debug)]
pub struct ProcessTable {
    /// Boxed: a process is about 300 bytes, and each growth of a table of thousands
    /// moved them all into fresh pages (a fork is an insert).
    procs: PidMap<u32, Box<Process>>,
}

/// `path` as seen from `cwd` (no symlink resolution: the trace cannot see the filesystem).
pub fn resolve(cwd: Option<&str>, path: &str) -> Option<String> {
    if path.starts_with('/') {
        return Some(normalize(path));
    }
    cwd.map(|c| normalize(&format!("{c}/{path}")))
}

fn normalize(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

impl ProcessTable {
    pub fn get(&self, pid: u32) -> Option<&Process> {
        self.procs.get(&pid).map(|p| &**p)
    }

    /// Forget an exited process (its job is reported and frozen).
    pub fn forget(&mut self, pid: u32) -> bool {
        if self.procs.get(&pid).is_some_and(|p| p.exited()) {
            self.procs.remove(&pid);
            return true;
        }
        false
    }

    pub fn apply(&mut self, ev: &Event) {
        match &ev.body {
            Body::Snapshot {
                cmdline,
                cwd,
                nofile,
                ..
            } => {
                self.procs.insert(
                    ev.pid,
                    Box::new(Process {
                        pid: ev.pid,
                        ppid: ev.ppid,
                        start_ns: ev.ts_ns,
                        comm: ev.comm.clone(),
                        uid: ev.uid,
                        cwd: cwd.clone(),
                        argv: cmdline.as_slice().into(),
                        nofile: *nofile,
                        ..Default::default()
                    }),
                );
            }
            Body::Fork { child_pid, .. } => {
                // What the child inherits, and only that: the parent's first argv and
                // pending exec are not copied for every fork.
                let (cwd, argv, env, nofile) = match self.procs.get(&ev.pid) {
                    Some(p) => (p.cwd.clone(), p.argv.clone(), p.env.clone(), p.nofile),
                    None => Default::default(),
                };
                // A fork of a pid we knew means the old process is gone: pid reuse.
                self.procs.insert(
                    *child_pid,
                    Box::new(Process {
                        pid: *child_pid,
                        ppid: ev.pid,
                        start_ns: ev.ts_ns,
                        comm: ev.comm.clone(),
                        uid: ev.uid,
                        cwd,
                        argv,
                        env,
                        nofile,
                        ..Default::default()
                    }),
                );
            }
            _ => {}
        }
        let Some(p) = self.procs.get_mut(&ev.pid) else {
            if let Body::Wait {
                status: Some(st),
                result,
                ..
            } = &ev.body
            {
                self.record_wait(result.ret, *st);
            }
            return;
        };
        match &ev.body {
            Body::ExecAttempt { argv, env, .. } => {
                p.pending_exec = Some((argv.as_slice().into(), env.as_slice().into()));
            }
            Body::Exec { .. } => {
                if let Some((argv, env)) = p.pending_exec.take() {
                    if !p.execed {
                        p.first_argv = argv.clone();
                    }
                    p.argv = argv;
                    p.env = env;
                }
                p.execed = true;
                p.comm = ev.comm.clone();
                p.uid = ev.uid;
            }
            Body::ExecResult { result } if !result.ok() => {
                p.pending_exec = None;
            }
            Body::Chdir { path, result } if result.ok() => {
                p.cwd = resolve(p.cwd.as_deref(), path);
            }
            Body::Fchdir { result, .. } if result.ok() => {
                // The directory behind an fd is not in the event.
                p.cwd = None;
            }
            Body::SetId {
                syscall,
                ids,
                result,
            } if result.ok() => {
                let euid = match *syscall {
                    "setuid" => ids.first(),
                    "setreuid" | "setresuid" => ids.get(1),
                    _ => None,
                };
                if let Some(&u) = euid {
                    if u >= 0 {
                        p.uid = u as u32;
                    }
                }
            }
            Body::Rlimit {
                target_pid,
                resource: "NOFILE",
                soft: Some(s),
                hard: Some(h),
                result,
                ..
            } if result.ok() && (*target_pid == 0 || *target_pid as u32 == ev.pid) => {
                p.nofile = Some((*s, *h));
            }
            Body::Exit { status } => {
                p.exit_ns = Some(ev.ts_ns);
                if p.exit.is_none() {
                    p.exit = *status;
                }
            }
            Body::Wait {
                status: Some(st),
                result,
                ..
            } => {
                let (ret, st) = (result.ret, *st);
                self.record_wait(ret, st);
            }
            _ => {}
        }
    }

    fn record_wait(&mut self, reaped: i64, st: ExitStatus) {
        if reaped > 0 {
            if let Some(c) = self.procs.get_mut(&(reaped as u32)) {
                // The parent's view is the truth: it includes signals and codes the
                // kernel-side exit record can miss.
                c.exit = Some(st);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::SysResult;
    use crate::testutil::ev;

    #[test]
    fn cwd_follows_chdir_and_is_inherited() {
        let mut t = ProcessTable::default();
        t.apply(&ev(
            1,
            0,
            Body::Snapshot {
                root: true,
                cmdline: vec![],
                cwd: Some("/".into()),
                exe: None,
                nofile: None,
            },
        ));
        t.apply(&ev(
            1,
            1,
            Body::Fork {
                child_pid: 2,
                clone_flags: 0,
            },
        ));
        t.apply(&ev(
            2,
            2,
            Body::Chdir {
                path: "/root".into(),
                result: SysResult::new(0),
            },
        ));
        t.apply(&ev(
            2,
            3,
            Body::Chdir {
                path: "../tmp/./x".into(),
                result: SysResult::new(0),
            },
        ));
        t.apply(&ev(
            2,
            4,
            Body::Chdir {
                path: "/nope".into(),
                result: SysResult::new(-2),
            },
        ));
        assert_eq!(t.get(2).unwrap().cwd.as_deref(), Some("/tmp/x"));
        t.apply(&ev(
            2,
            5,
            Body::Fork {
                child_pid: 3,
                clone_flags: 0,
            },
        ));
        assert_eq!(t.get(3).unwrap().cwd.as_deref(), Some("/tmp/x"));
        assert_eq!(t.get(3).unwrap().ppid, 2);
    }

    #[test]
    fn wait_status_overrides_exit_record() {
        let mut t = ProcessTable::default();
        t.apply(&ev(
            1,
            1,
            Body::Fork {
                child_pid: 2,
                clone_flags: 0,
            },
        ));
        t.apply(&ev(2, 2, Body::Exit { status: None }));
        assert!(t.get(2).unwrap().exited());
        assert_eq!(t.get(2).unwrap().exit, None);
        t.apply(&ev(
            1,
            3,
            Body::Wait {
                waited_for: -1,
                status: Some(ExitStatus::signal(9, false)),
                result: SysResult::new(2),
            },
        ));
        assert_eq!(t.get(2).unwrap().exit, Some(ExitStatus::signal(9, false)));
    }

    #[test]
    fn exec_commits_argv_and_nofile_is_tracked() {
        let mut t = ProcessTable::default();
        t.apply(&ev(
            1,
            1,
            Body::Fork {
                child_pid: 2,
                clone_flags: 0,
            },
        ));
        t.apply(&ev(
            2,
            2,
            Body::ExecAttempt {
                filename: "/bin/sh".into(),
                argv: vec!["/bin/sh".into(), "-c".into(), "x".into()],
                env: vec!["PATH=/usr/bin:/bin".into()],
                result: None,
                argv_truncated: false,
                env_truncated: false,
                execveat: false,
            },
        ));
        t.apply(&ev(
            2,
            3,
            Body::Exec {
                filename: "/bin/sh".into(),
                old_tid: 2,
                new_root: false,
            },
        ));
        t.apply(&ev(
            2,
            4,
            Body::Rlimit {
                syscall: "prlimit64",
                target_pid: 0,
                resource: "NOFILE",
                soft: Some(16),
                hard: Some(16),
                result: SysResult::new(0),
            },
        ));
        let p = t.get(2).unwrap();
        assert!(p.execed);
        assert_eq!(p.argv.to_vec(), vec!["/bin/sh", "-c", "x"]);
        assert_eq!(p.env.to_vec(), vec!["PATH=/usr/bin:/bin"]);
        assert_eq!(p.nofile, Some((16, 16)));
        // Its fork inherits argv, environment and limit, not what it ran first.
        let mut f = ev(
            2,
            5,
            Body::Fork {
                child_pid: 3,
                clone_flags: 0,
            },
        );
        f.comm = "sh".into();
        t.apply(&f);
        let c = t.get(3).unwrap();
        assert_eq!(c.argv.to_vec(), vec!["/bin/sh", "-c", "x"]);
        assert_eq!(c.env.to_vec(), vec!["PATH=/usr/bin:/bin"]);
        assert_eq!(c.nofile, Some((16, 16)));
        assert_eq!((c.ppid, c.comm.as_str(), c.execed), (2, "sh", false));
        assert!(c.first_argv.is_empty());
    }

    fn set(pid: u32, body: Body) -> Event {
        ev(pid, 5, body)
    }

    /// What the table keeps of a process, event by event: every field a rule reads.
    #[test]
    fn each_event_updates_what_it_says_and_nothing_else() {
        let mut t = ProcessTable::default();
        let mut snap = ev(
            1,
            1,
            Body::Snapshot {
                root: false,
                cmdline: vec!["cron".into(), "-f".into()],
                cwd: Some("/".into()),
                exe: None,
                nofile: Some((1024, 4096)),
            },
        );
        snap.ppid = 9;
        snap.uid = 7;
        snap.comm = "cron".into();
        t.apply(&snap);
        let p = t.get(1).unwrap().clone();
        assert_eq!(
            (p.pid, p.ppid, p.start_ns, p.comm.as_str(), p.uid),
            (1, 9, 1, "cron", 7)
        );
        assert_eq!(
            (p.cwd.as_deref(), p.nofile),
            (Some("/"), Some((1024, 4096)))
        );
        assert_eq!(p.argv.to_vec(), vec!["cron", "-f"]);
        assert!(!p.exited());

        // A fork inherits the parent's view (argv, env, cwd, limit, uid).
        let mut fork = ev(
            1,
            2,
            Body::Fork {
                child_pid: 2,
                clone_flags: 0,
            },
        );
        fork.uid = 7;
        t.apply(&fork);
        let c = t.get(2).unwrap().clone();
        assert_eq!((c.pid, c.ppid, c.start_ns, c.uid), (2, 1, 2, 7));
        assert_eq!(
            (c.cwd.as_deref(), c.nofile, c.argv.len()),
            (Some("/"), Some((1024, 4096)), 2)
        );

        // A failed exec changes nothing; the next successful one takes its own argv.
        for e in crate::testutil::exec_events(2, 3, &["/nope"], &["A=1"], -2) {
            t.apply(&e);
        }
        assert_eq!(t.get(2).unwrap().argv.to_vec(), vec!["cron", "-f"]);
        assert!(!t.get(2).unwrap().execed);
        for e in crate::testutil::exec_events(2, 4, &["/bin/sh", "-c", "x"], &["B=2"], 0) {
            t.apply(&e);
        }
        let c = t.get(2).unwrap().clone();
        assert!(c.execed);
        assert_eq!(
            (c.argv[0].as_str(), c.env.to_vec()),
            ("/bin/sh", vec!["B=2".to_string()])
        );

        // chdir: relative to the old cwd, and only when it worked; fchdir forgets.
        t.apply(&set(
            2,
            Body::Chdir {
                path: "srv".into(),
                result: SysResult::new(0),
            },
        ));
        t.apply(&set(
            2,
            Body::Chdir {
                path: "/nope".into(),
                result: SysResult::new(-2),
            },
        ));
        assert_eq!(t.get(2).unwrap().cwd.as_deref(), Some("/srv"));
        t.apply(&set(
            2,
            Body::Fchdir {
                fd: 3,
                result: SysResult::new(-9),
            },
        ));
        assert_eq!(t.get(2).unwrap().cwd.as_deref(), Some("/srv"));
        t.apply(&set(
            2,
            Body::Fchdir {
                fd: 3,
                result: SysResult::new(0),
            },
        ));
        assert_eq!(t.get(2).unwrap().cwd, None);

        // uid: setuid's id, setreuid/setresuid's effective one, only when it worked.
        let setid = |syscall, ids: Vec<i64>, ret| {
            set(
                2,
                Body::SetId {
                    syscall,
                    ids,
                    result: SysResult::new(ret),
                },
            )
        };
        t.apply(&setid("setuid", vec![33], -1));
        assert_eq!(t.get(2).unwrap().uid, 0, "as the exec left it");
        t.apply(&setid("setuid", vec![33], 0));
        assert_eq!(t.get(2).unwrap().uid, 33);
        t.apply(&setid("setreuid", vec![-1, 44], 0));
        assert_eq!(t.get(2).unwrap().uid, 44);
        t.apply(&setid("setresuid", vec![1, 55, 1], 0));
        assert_eq!(t.get(2).unwrap().uid, 55);
        t.apply(&setid("setresuid", vec![1, -1, 1], 0));
        assert_eq!(t.get(2).unwrap().uid, 55, "-1 keeps it");
        t.apply(&setid("setgid", vec![66], 0));
        assert_eq!(t.get(2).unwrap().uid, 55);

        // NOFILE: its own (target 0 or itself), when it worked; not another process's.
        let lim = |target_pid, soft, ret| {
            set(
                2,
                Body::Rlimit {
                    syscall: "prlimit64",
                    target_pid,
                    resource: "NOFILE",
                    soft: Some(soft),
                    hard: Some(soft),
                    result: SysResult::new(ret),
                },
            )
        };
        t.apply(&lim(0, 16, -1));
        t.apply(&lim(99, 17, 0));
        assert_eq!(t.get(2).unwrap().nofile, Some((1024, 4096)));
        t.apply(&lim(2, 18, 0));
        assert_eq!(t.get(2).unwrap().nofile, Some((18, 18)));
        t.apply(&lim(0, 19, 0));
        assert_eq!(t.get(2).unwrap().nofile, Some((19, 19)));

        // The parent's wait names the status; a wait that reaped nothing does not.
        t.apply(&set(
            2,
            Body::Exit {
                status: Some(ExitStatus::code(0)),
            },
        ));
        assert!(t.get(2).unwrap().exited());
        let wait = |ret| {
            set(
                1,
                Body::Wait {
                    waited_for: -1,
                    status: Some(ExitStatus::code(3)),
                    result: SysResult::new(ret),
                },
            )
        };
        t.apply(&wait(0));
        assert_eq!(t.get(2).unwrap().exit, Some(ExitStatus::code(0)));
        t.apply(&wait(2));
        assert_eq!(t.get(2).unwrap().exit, Some(ExitStatus::code(3)));
        // Forgetting: only the exited.
        assert!(!t.forget(1));
        assert!(t.forget(2));
        assert!(t.get(2).is_none());
    }
}
