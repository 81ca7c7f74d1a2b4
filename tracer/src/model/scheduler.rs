//! The scheduler daemons followed during the trace: when each was alive, how it ended
//! and who signalled it. A job that never started leaves no process; the daemon's own
//! life is then the evidence (`scheduler_down`).
use foldhash::HashMap;

use serde::Serialize;

use crate::model::{
    event::{Body, Event, ExitStatus},
    process::resolve,
};

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SignalSeen {
    pub ts_ns: u64,
    pub from_pid: u32,
    pub from_comm: String,
    pub signal: i32,
    pub signal_name: &'static str,
    /// > 0 when the kernel raised it (a fault, the OOM killer), not a process.
    pub code: i32,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SchedulerLife {
    pub pid: u32,
    pub comm: crate::model::event::Comm,
    pub cmdline: Vec<String>,
    /// When it was first seen: the trace's start for daemons already running.
    pub since_ns: u64,
    pub end_ns: Option<u64>,
    pub exit: Option<ExitStatus>,
    pub signals: Vec<SignalSeen>,
    /// Crontab files it opened (when, absolute path): how we know it reread a change.
    pub reads: Vec<(u64, String)>,
}

impl SchedulerLife {
    pub fn alive_at(&self, ts_ns: u64) -> bool {
        self.since_ns <= ts_ns && self.end_ns.is_none_or(|e| ts_ns < e)
    }

    /// Who ended it: the sender of the signal it died of, or else of the last
    /// INT/QUIT/TERM/KILL it got (a daemon may catch TERM and exit cleanly).
    pub fn killer(&self) -> Option<&SignalSeen> {
        let died_of = self.exit.and_then(|e| e.signal);
        self.signals.iter().rev().find(|s| match died_of {
            Some(sig) => s.signal == sig,
            None => matches!(s.signal, 2 | 3 | 9 | 15),
        })
    }
}

/// Crontab reads kept per daemon life (a daemon rereads only on change).
const MAX_READS: usize = 10_000;

/// Where the cron daemons keep their tables.
fn is_crontab_path(p: &str) -> bool {
    p == "/etc/crontab" || p.starts_with("/etc/cron.d/") || p.starts_with("/var/spool/cron/")
}

/// Every daemon life in order of appearance; a pid reused later is a new life.
#[derive(Default, Debug)]
pub struct Schedulers {
    pub lives: Vec<SchedulerLife>,
    live: HashMap<u32, usize>,
}

impl Schedulers {
    /// Update from one event of the stream; `cwd` is the process's directory, for
    /// relative paths (Debian cron opens user crontabs relative to its spool).
    pub fn observe(&mut self, ev: &Event, cwd: Option<&str>) {
        match &ev.body {
            Body::Open { path, result, .. } if result.ok() => {
                if let Some(&i) = self.live.get(&ev.pid) {
                    let reads = &mut self.lives[i].reads;
                    if let Some(p) = resolve(cwd, path).filter(|p| is_crontab_path(p)) {
                        // The latest reads are what tells a reread: drop the oldest half.
                        if reads.len() >= MAX_READS {
                            reads.drain(..MAX_READS / 2);
                        }
                        reads.push((ev.ts_ns, p));
                    }
                }
            }
            Body::Snapshot {
                root: true,
                cmdline,
                ..
            } => match self.live.get(&ev.pid) {
                Some(&i) => self.lives[i].cmdline = cmdline.clone(),
                None => self.start(ev, cmdline.clone()),
            },
            Body::Exec {
                new_root: true,
                filename,
                ..
            } if !self.live.contains_key(&ev.pid) => self.start(ev, vec![filename.clone()]),
            Body::Exit { status } => {
                if let Some(i) = self.live.remove(&ev.pid) {
                    self.lives[i].end_ns = Some(ev.ts_ns);
                    self.lives[i].exit = *status;
                }
            }
            Body::Signal {
                target_pid,
                signal,
                signal_name,
                code,
                ..
            } => {
                if let Some(&i) = self.live.get(target_pid) {
                    self.lives[i].signals.push(SignalSeen {
                        ts_ns: ev.ts_ns,
                        from_pid: ev.pid,
                        from_comm: ev.comm.to_string(),
                        signal: *signal,
                        signal_name,
                        code: *code,
                    });
                }
            }
            _ => {}
        }
    }

    /// The daemon `parent` went on in its child `child` (it daemonized) at `ts`: the
    /// child's life starts where the parent's ends, with its name and argv.
    pub fn continued(&mut self, parent: u32, child: u32, ts: u64) {
        let Some(p) = self.lives.iter().rev().find(|l| l.pid == parent) else {
            return;
        };
        let life = SchedulerLife {
            pid: child,
            comm: p.comm.clone(),
            cmdline: p.cmdline.clone(),
            since_ns: ts.min(p.end_ns.unwrap_or(ts)),
            end_ns: None,
            exit: None,
            signals: Vec::new(),
            reads: Vec::new(),
        };
        self.live.insert(child, self.lives.len());
        self.lives.push(life);
    }

    fn start(&mut self, ev: &Event, cmdline: Vec<String>) {
        self.live.insert(ev.pid, self.lives.len());
        self.lives.push(SchedulerLife {
            pid: ev.pid,
            comm: ev.comm.clone(),
            cmdline,
            since_ns: ev.ts_ns,
            end_ns: None,
            exit: None,
            signals: Vec::new(),
            reads: Vec::new(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{ev, snapshot_root};

    fn signal(from: u32, ts: u64, to: u32, sig: i32) -> Event {
        let mut e = ev(
            from,
            ts,
            Body::Signal {
                target_pid: to,
                signal: sig,
                signal_name: crate::model::names::signal_name(sig),
                code: 0,
                result: 0,
            },
        );
        e.comm = "kill".into();
        e
    }

    #[test]
    fn a_daemon_killed_during_the_trace_has_an_end_and_a_killer() {
        let mut s = Schedulers::default();
        s.observe(&snapshot_root(100), None);
        s.observe(&signal(900, 5, 100, 1), None); // SIGHUP: a reload, not the end
        s.observe(&signal(900, 10, 555, 9), None); // another process
        s.observe(&signal(901, 20, 100, 9), None);
        s.observe(
            &ev(
                100,
                21,
                Body::Exit {
                    status: Some(ExitStatus::signal(9, false)),
                },
            ),
            None,
        );
        let life = &s.lives[0];
        assert_eq!(life.end_ns, Some(21));
        assert!(life.alive_at(20) && !life.alive_at(21));
        assert_eq!(life.signals.len(), 2);
        let k = life.killer().unwrap();
        assert_eq!(
            (k.from_pid, k.signal, k.from_comm.as_str()),
            (901, 9, "kill")
        );
    }

    #[test]
    fn a_reused_pid_is_a_new_life_and_a_clean_exit_after_term_names_the_sender() {
        let mut s = Schedulers::default();
        s.observe(&snapshot_root(100), None);
        s.observe(&signal(7, 3, 100, 15), None);
        s.observe(&ev(100, 4, Body::Exit { status: None }), None);
        s.observe(
            &ev(
                100,
                50,
                Body::Exec {
                    filename: "/usr/sbin/cron".into(),
                    old_tid: 100,
                    new_root: true,
                },
            ),
            None,
        );
        assert_eq!(s.lives.len(), 2);
        assert_eq!(s.lives[0].killer().map(|k| k.from_pid), Some(7));
        assert_eq!(s.lives[1].since_ns, 50);
        assert!(s.lives[1].end_ns.is_none() && s.lives[1].killer().is_none());
    }
}
