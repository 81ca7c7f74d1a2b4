//! Job invocations: the subtree under one fork of a root (a scheduler daemon, a
//! `--comm`/`--pid` root). Events are routed to their job. A job is finished when its
//! leader (the daemon's child, which waits for the command and mails its output) has
//! exited, or every process in it has: what it left behind (`nohup x &`, a delivery
//! still going) is listed, not waited for.
use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
};

// The pid maps are on every event's path: foldhash instead of SipHash. Its seed is
// random per process, so a crafted trace cannot make pids collide on purpose.
use foldhash::{HashMap as PidMap, HashMapExt, HashSet as PidSet, HashSetExt};

use crate::{
    model::event::{Body, Event, ExitStatus},
    model::jobs::Jobs,
    model::process::resolve,
    model::process::{ProcessTable, Words},
    model::scheduler::Schedulers,
    schedules::{
        systemd::service_of_cgroup_path,
        tables::{parse_at_name, AT_SPOOL_DIR},
    },
};

#[derive(Clone, Debug)]
pub struct Job {
    /// 1, 2, ... in order of the forks that started them (stable for a given stream).
    pub id: u64,
    /// The root's comm (`cron`, `crond`, a `--comm` name...).
    pub scheduler: String,
    pub scheduler_pid: u32,
    pub leader_pid: u32,
    pub start_ns: u64,
    pub end_ns: Option<u64>,
    /// Already running when the trace started (seen in the `/proc` snapshot).
    pub started_before_trace: bool,
    /// Every pid that belonged to the job, in order of appearance.
    pub members: Vec<u32>,
    live: PidSet<u32>,
    pub timeline: Vec<Event>,
    /// Frozen when the job finishes.
    pub final_summary: Option<JobSummary>,
    /// Per pid: the timeline index of its exec attempt still waiting for its result.
    exec_pending: PidMap<u32, usize>,
    /// Events not kept in `timeline` (see `Tracker::retire` and `TIMELINE_SOFT_CAP`).
    pub dropped_events: u64,
    /// Of those, the ones a long-running job's cap let go, per event kind.
    pub capped: BTreeMap<&'static str, u64>,
    /// The systemd service the job runs as, from the cgroup systemd put its first
    /// process in (`NAME.service`); `None` for other schedulers.
    pub unit: Option<String>,
    /// The at job it runs: the spool file atd's child opened (`.../atjobs/a0000201c8bcf2`).
    pub at_file: Option<String>,
    retired: bool,
}

/// A daemon's parent exits this soon after the fork that carries the daemon on.
const DAEMONIZE_NS: u64 = 2_000_000_000;

/// Past this many events in one job's timeline, routine successes (opens, stats,
/// sockets, connects that worked) are counted, not kept; what the rules and a person
/// need (the tree, execs, ids, limits, exits, every failure) still is.
pub const TIMELINE_SOFT_CAP: usize = 20_000;
/// Past this many, only failures and ends are kept; past twice this, nothing.
pub const TIMELINE_HARD_CAP: usize = 200_000;

/// Whether a job whose timeline holds `len` events keeps `ev`.
fn keeps(len: usize, ev: &Event) -> bool {
    if len < TIMELINE_SOFT_CAP {
        return true;
    }
    if len >= 2 * TIMELINE_HARD_CAP {
        return false;
    }
    let failed = ev.body.result().is_some_and(|r| !r.ok());
    let ended_badly = matches!(&ev.body, Body::Exit { status: Some(s) } if !s.is_success());
    if len >= TIMELINE_HARD_CAP {
        return failed || ended_badly;
    }
    let routine_success = matches!(
        ev.body,
        Body::Open { .. }
            | Body::Stat { .. }
            | Body::Socket { .. }
            | Body::Connect { .. }
            | Body::Getsockopt { .. }
            | Body::Wait { .. }
    ) && !failed;
    !routine_success
}

impl Job {
    pub fn finished(&self) -> bool {
        self.end_ns.is_some()
    }

    /// A process of the job is still running (before its end, or left behind).
    pub fn has_live_processes(&self) -> bool {
        !self.live.is_empty()
    }

    /// Add an event to the timeline. An exec's result is the one event that is not
    /// added: the kernel reports the attempt (at entry, with argv and env) and its
    /// result (at exit) apart, and this is the one place they are joined, so every
    /// rule and every output reads one `exec_attempt` that carries its result. A
    /// result whose attempt came before the trace stays an `exec_result`.
    fn append(&mut self, mut ev: Event) {
        if self.retired {
            // Counted as a kept timeline counts: a result joins its attempt.
            match ev.body {
                Body::ExecAttempt { .. } => {
                    self.exec_pending.insert(ev.pid, 0);
                }
                Body::ExecResult { .. } if self.exec_pending.remove(&ev.pid).is_some() => return,
                _ => {}
            }
            self.dropped_events += 1;
            return;
        }
        // An exec result joins its attempt whatever the cap (it adds no event).
        let joins =
            matches!(ev.body, Body::ExecResult { .. }) && self.exec_pending.contains_key(&ev.pid);
        if !joins && !keeps(self.timeline.len(), &ev) {
            self.dropped_events += 1;
            *self.capped.entry(ev.body.name()).or_default() += 1;
            return;
        }
        match &mut ev.body {
            Body::ExecAttempt { .. } => {
                self.exec_pending.insert(ev.pid, self.timeline.len());
            }
            Body::ExecResult { result } => {
                if let Some(i) = self.exec_pending.remove(&ev.pid) {
                    let attempt = &mut self.timeline[i];
                    if let Body::ExecAttempt { result: joined, .. } = &mut attempt.body {
                        *joined = Some(*result);
                        attempt.dur_ns = Some(ev.ts_ns.saturating_sub(attempt.ts_ns));
                        return;
                    }
                }
            }
            _ => {}
        }
        self.timeline.push(ev);
    }
}

/// What a report says about a job, derived from the process table.
#[derive(Clone, Debug)]
pub struct JobSummary {
    pub command: String,
    pub uid: u32,
    pub exit: Option<ExitStatus>,
    /// The command's environment when it started (for comparing runs).
    pub env: Words,
    /// Processes of the job still alive when it ended.
    pub left_running: Vec<u32>,
}

#[derive(Clone, Debug, Default)]
pub struct Counters {
    pub events: u64,
    /// Events of roots themselves (the daemon's own work, not a job's).
    pub root_events: u64,
    /// Events of processes never linked to a root (dropped at the end).
    pub unattributed_events: u64,
    /// The latest timestamp seen: where the trace ends.
    pub last_ts: u64,
}

/// Commands whose latest good run is kept aside for `env_mismatch`: at most this many.
const LAST_GOOD_LIMIT: usize = 4096;

/// Held-back events of pids not yet known: at most this many in total.
const ORPHAN_LIMIT: usize = 10_000;

#[derive(Default)]
pub struct Tracker {
    pub procs: ProcessTable,
    /// Scheduler daemons: when each was alive and how it ended.
    pub schedulers: Schedulers,
    roots: PidMap<u32, crate::model::event::Comm>,
    jobs: Jobs,
    pid_job: PidMap<u32, usize>,
    orphans: PidMap<u32, Vec<Event>>,
    orphan_count: usize,
    /// (command, uid) -> the latest retired run of it that succeeded: its job id and
    /// environment, what `env_mismatch` compares a later failure with. Kept aside so
    /// that the job itself can be let go.
    last_good: HashMap<(String, u32), (u64, Words)>,
    /// See `take_daemonized`.
    daemonized: Vec<(u32, u32)>,
    pub counters: Counters,
}

impl Tracker {
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// Feed one event; returns the indices of jobs this event finished.
    pub fn push(&mut self, ev: Event) -> Vec<usize> {
        self.counters.events += 1;
        self.counters.last_ts = self.counters.last_ts.max(ev.ts_ns);
        let mut finished = Vec::new();
        // An event can release events held for its pid, and those can release more (a
        // chain of forks whose events arrived before the forks): a stack of pending
        // events, not recursion, so no input can overflow ours. Released events go on
        // top in their order, so each is routed, with all it releases, before the next:
        // the order recursion would give. Most events release nothing and need no stack.
        let Some(released) = self.route(ev, &mut finished) else {
            return finished;
        };
        let mut pending: Vec<Event> = released.into_iter().rev().collect();
        while let Some(ev) = pending.pop() {
            if let Some(released) = self.route(ev, &mut finished) {
                pending.extend(released.into_iter().rev());
            }
        }
        finished
    }

    fn new_job(&mut self, root_pid: u32, leader: u32, ts: u64, before: bool) -> usize {
        let scheduler = self
            .roots
            .get(&root_pid)
            .map(|c| c.to_string())
            .unwrap_or_default();
        let idx = self.jobs.push(Job {
            id: self.jobs.next_index() as u64 + 1,
            scheduler,
            scheduler_pid: root_pid,
            leader_pid: leader,
            start_ns: ts,
            end_ns: None,
            started_before_trace: before,
            members: vec![leader],
            live: {
                let mut s = PidSet::new();
                s.insert(leader);
                s
            },
            timeline: Vec::new(),
            final_summary: None,
            exec_pending: PidMap::new(),
            dropped_events: 0,
            capped: BTreeMap::new(),
            unit: None,
            at_file: None,
            retired: false,
        });
        self.pid_job.insert(leader, idx);
        idx
    }

    fn add_member(&mut self, idx: usize, pid: u32) {
        if let Some(job) = self.jobs.get_mut(idx) {
            job.members.push(pid);
            job.live.insert(pid);
            self.pid_job.insert(pid, idx);
        }
    }

    fn append(&mut self, idx: usize, ev: Event) {
        if let Some(job) = self.jobs.get_mut(idx) {
            job.append(ev);
        }
    }

    /// The held job `pid` belongs to (a let-go job's pids are forgotten with it).
    fn job_of(&self, pid: u32) -> Option<usize> {
        self.pid_job
            .get(&pid)
            .copied()
            .filter(|&i| self.jobs.get(i).is_some())
    }

    /// Route one event to its job; returns the events held for a pid it made known.
    fn route(&mut self, ev: Event, finished: &mut Vec<usize>) -> Option<Vec<Event>> {
        self.procs.apply(&ev);
        let cwd = self.procs.get(ev.pid).and_then(|p| p.cwd.as_deref());
        self.schedulers.observe(&ev, cwd);
        let was_root = self.roots.contains_key(&ev.pid);
        match &ev.body {
            Body::Snapshot { root, .. } => {
                if *root {
                    self.roots.insert(ev.pid, ev.comm.clone());
                } else if self.roots.contains_key(&ev.ppid) {
                    let idx = self.new_job(ev.ppid, ev.pid, ev.ts_ns, true);
                    self.append(idx, ev);
                } else if let Some(idx) = self.job_of(ev.ppid) {
                    self.add_member(idx, ev.pid);
                    self.append(idx, ev);
                }
                return None;
            }
            Body::Fork { child_pid, .. } => {
                let child = *child_pid;
                let parent_job = self
                    .job_of(ev.pid)
                    .filter(|&i| self.jobs[i].live.contains(&ev.pid));
                let idx = match parent_job {
                    Some(idx) if !was_root => {
                        self.add_member(idx, child);
                        idx
                    }
                    _ => {
                        // A root's fork starts a job. A parent followed by the kernel but
                        // unknown here (--all, or a root the start-up scan missed) acts
                        // as a root.
                        self.roots.entry(ev.pid).or_insert_with(|| ev.comm.clone());
                        self.new_job(ev.pid, child, ev.ts_ns, false)
                    }
                };
                self.append(idx, ev);
                let held = self.orphans.remove(&child)?;
                self.orphan_count -= held.len();
                return Some(held);
            }
            Body::Exec { new_root: true, .. } => {
                self.roots.insert(ev.pid, ev.comm.clone());
            }
            Body::Exit { .. } => {
                // A scheduler that ends stops being a root; its jobs keep its name.
                if let Some(comm) = self.roots.remove(&ev.pid) {
                    self.daemonized(ev.pid, comm.into(), ev.ts_ns);
                }
            }
            _ => {}
        }

        let idx = match &ev.body {
            Body::Signal { target_pid, .. } => {
                self.job_of(*target_pid).or_else(|| self.job_of(ev.pid))
            }
            Body::Wait { result, .. } if !self.pid_job.contains_key(&ev.pid) && result.ret > 0 => {
                // A root reaping a job's leader: part of that job's story (and the
                // last of a retired job's).
                let reaped = result.ret as u32;
                let idx = self.job_of(reaped);
                if idx.is_some_and(|i| self.jobs[i].retired) {
                    self.pid_job.remove(&reaped);
                }
                idx
            }
            _ => self.job_of(ev.pid),
        };
        let Some(idx) = idx else {
            let to_root = matches!(&ev.body, Body::Signal { target_pid, .. } if self.roots.contains_key(target_pid));
            if was_root || to_root {
                self.counters.root_events += 1;
            } else {
                self.hold(ev);
            }
            return None;
        };
        let is_exit = matches!(ev.body, Body::Exit { .. });
        let (pid, ts) = (ev.pid, ev.ts_ns);
        let job = self.jobs.get_mut(idx)?;
        if let Body::Open { path, result, .. } = &ev.body {
            if result.ok() {
                name_from_open(job, &self.procs, ev.pid, path);
            }
        }
        job.append(ev);
        if is_exit {
            let was_live = job.live.remove(&pid);
            let over = job.live.is_empty() || pid == job.leader_pid;
            if was_live && over && job.end_ns.is_none() {
                job.end_ns = Some(ts);
                finished.push(idx);
            }
        }
        if finished.contains(&idx) && job.final_summary.is_none() {
            let s = self.summary_now(&self.jobs[idx]);
            if let Some(job) = self.jobs.get_mut(idx) {
                job.final_summary = Some(s);
            }
        }
        None
    }

    /// A daemon that forks and lets its parent exit (cron from an init script,
    /// `anacron -s`, atd) goes on in the child: that fork was not a job, and the child
    /// is the scheduler whose forks are the jobs. Told by the child: alive, not
    /// exec'd, alone (a job's child forks its command at once), forked just before.
    fn daemonized(&mut self, parent: u32, comm: String, ts: u64) {
        let took_over: Vec<usize> = self
            .jobs
            .indexed()
            .rev()
            .take_while(|(_, j)| ts.saturating_sub(j.start_ns) <= DAEMONIZE_NS)
            .filter(|(_, j)| {
                j.scheduler_pid == parent
                    && j.start_ns <= ts
                    && !j.started_before_trace
                    && j.members.len() == 1
                    && j.live.contains(&j.leader_pid)
                    && !self.procs.get(j.leader_pid).is_some_and(|p| p.execed)
            })
            .map(|(i, _)| i)
            .collect();
        for idx in took_over {
            let Some(job) = self.jobs.withdraw(idx) else {
                continue;
            };
            self.pid_job.remove(&job.leader_pid);
            self.counters.root_events += job.timeline.len() as u64;
            self.roots.insert(job.leader_pid, comm.as_str().into());
            self.schedulers.continued(parent, job.leader_pid, ts);
            self.daemonized.push((parent, job.leader_pid));
        }
    }

    /// Daemons that went on in a child since the last call: (parent, child).
    pub fn take_daemonized(&mut self) -> Vec<(u32, u32)> {
        std::mem::take(&mut self.daemonized)
    }

    /// A finished job's timeline is let go (its summary and counts stay): what a long
    /// attach keeps of a job with nothing to report. Its later events are only counted.
    pub fn retire(&mut self, idx: usize) {
        let Some(job) = self.jobs.get_mut(idx).filter(|j| !j.retired) else {
            return;
        };
        job.dropped_events += job.timeline.len() as u64;
        job.timeline = Vec::new();
        // Only which pids wait for an exec result is kept (their index went with the
        // timeline): the result still joins, and is not counted apart.
        job.retired = true;
        job.live.shrink_to_fit();
        // Its environment goes aside if it is the latest good run of its command and
        // user: what `env_mismatch` compares a later failure with.
        let id = job.id;
        let good = job.final_summary.as_mut().and_then(|s| {
            let env = std::mem::take(&mut s.env);
            (s.exit.is_some_and(|x| x.is_success()) && !env.is_empty())
                .then(|| ((s.command.clone(), s.uid), env))
        });
        // Its exited processes go too; one still running (left behind) stays known.
        // The leader stays routable until the root reaps it: that wait is the job's.
        let leader = job.leader_pid;
        for pid in job.members.clone() {
            if self.procs.forget(pid) && pid != leader && self.pid_job.get(&pid) == Some(&idx) {
                self.pid_job.remove(&pid);
            }
        }
        if let Some((key, env)) = good {
            // Commands without end (an argument that changes every run) must not grow
            // this: past the limit one other command's good run is forgotten.
            if self.last_good.len() >= LAST_GOOD_LIMIT && !self.last_good.contains_key(&key) {
                if let Some(k) = self.last_good.keys().next().cloned() {
                    self.last_good.remove(&k);
                }
            }
            self.last_good.insert(key, (id, env));
        }
    }

    /// The latest retired run of `command` by `uid` that succeeded: its job id and
    /// environment.
    pub fn last_good(&self, command: &str, uid: u32) -> Option<(u64, &[String])> {
        self.last_good
            .get(&(command.to_string(), uid))
            .map(|(id, env)| (*id, &env[..]))
    }

    /// Let a finished, retired job go for good, with what routes events to it; its
    /// index then finds nothing. A job with a process still running stays (its events
    /// still come). Returns the job, for the caller to count.
    pub fn evict(&mut self, idx: usize) -> Option<Job> {
        let job = self.jobs.get(idx)?;
        if !job.retired || !job.finished() || !job.live.is_empty() {
            return None;
        }
        let job = self.jobs.remove(idx)?;
        for pid in job.members.iter().chain([&job.leader_pid]) {
            if self.pid_job.get(pid) == Some(&idx) {
                self.pid_job.remove(pid);
            }
        }
        Some(job)
    }

    /// A retired job whose report is out for good (`--follow` printed it): only what
    /// later runs are compared with stays (its summary); its pid list goes too.
    pub fn husk(&mut self, idx: usize) {
        self.retire(idx);
        if let Some(job) = self.jobs.get_mut(idx) {
            let live: Vec<u32> = job.live.iter().copied().collect();
            job.members = live;
            job.members.shrink_to_fit();
            job.capped = BTreeMap::new();
        }
    }

    /// Keep an event of a pid we have not met yet; its fork may still be on its way.
    fn hold(&mut self, ev: Event) {
        if self.orphan_count >= ORPHAN_LIMIT {
            self.counters.unattributed_events += 1;
            return;
        }
        self.orphan_count += 1;
        self.orphans.entry(ev.pid).or_default().push(ev);
    }

    /// End of the stream: held-back events that never found their process are counted.
    pub fn close(&mut self) {
        self.counters.unattributed_events += self.orphan_count as u64;
        self.orphans.clear();
        self.orphan_count = 0;
    }

    /// The process that stands for the job's command: the leader when it exec'd (crond,
    /// anacron, a shell root's subshell), else the leader's child that exec'd a
    /// `sh -c` (Debian cron's child waits for a grandchild that runs the command).
    pub fn main_pid(&self, job: &Job) -> u32 {
        let leader = job.leader_pid;
        // atd's child runs the script in its own child's shell, then may exec sendmail
        // in its own pid: the shell is the job.
        if job.at_file.is_some() {
            if let Some(sh) = job.members.iter().copied().find(|&pid| {
                self.procs.get(pid).is_some_and(|p| {
                    p.ppid == leader
                        && p.execed
                        && p.first_argv.first().is_some_and(|a| {
                            a.rsplit('/').next().is_some_and(|b| b.ends_with("sh"))
                        })
                })
            }) {
                return sh;
            }
        }
        if self.procs.get(leader).is_some_and(|p| p.execed) {
            return leader;
        }
        job.members
            .iter()
            .copied()
            .find(|&pid| {
                self.procs.get(pid).is_some_and(|p| {
                    p.ppid == leader
                        && p.execed
                        && p.first_argv.get(1).map(String::as_str) == Some("-c")
                })
            })
            .unwrap_or(leader)
    }

    /// The job as it is now, or as it was when it finished (a pid reused later in a
    /// long trace must not rename an old job).
    /// Borrowed once the job has finished: the rules ask for it several times a job.
    pub fn summary<'a>(&'a self, job: &'a Job) -> Cow<'a, JobSummary> {
        match &job.final_summary {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(self.summary_now(job)),
        }
    }

    fn summary_now(&self, job: &Job) -> JobSummary {
        let p = self.procs.get(self.main_pid(job));
        // The command as first run: `sh -c CMD` even when the shell exec'd CMD in place.
        let command = p
            .map(|p| {
                command_of(if p.first_argv.is_empty() {
                    &p.argv
                } else {
                    &p.first_argv
                })
            })
            .unwrap_or_default();
        let uid = p.map(|p| p.uid).unwrap_or(0);
        let exit = p.and_then(|p| p.exit);
        let mut left_running: Vec<u32> = job.live.iter().copied().collect();
        left_running.sort_unstable();
        JobSummary {
            env: p.map(|p| p.env.clone()).unwrap_or_default(),
            left_running,
            command: if command.is_empty() {
                "(no command executed)".into()
            } else {
                command
            },
            uid,
            exit,
        }
    }
}

/// What an open by a job's process tells of the job: the systemd service whose cgroup
/// systemd's child writes itself into before anything of the service runs, or the
/// spool file atd's child opens (relative to atd's spool) before the shell reads it on
/// stdin.
fn name_from_open(job: &mut Job, procs: &ProcessTable, pid: u32, path: &str) {
    if job.unit.is_none() && path.ends_with("/cgroup.procs") {
        job.unit = service_of_cgroup_path(path).map(String::from);
    } else if job.at_file.is_none() && job.scheduler == "atd" && parse_at_name(path).is_some() {
        // atd works from its spool; a cwd not known (or `/` from a late look) is that.
        let cwd = procs
            .get(pid)
            .and_then(|p| p.cwd.as_deref())
            .filter(|c| *c != "/")
            .unwrap_or(AT_SPOOL_DIR);
        job.at_file = resolve(Some(cwd), path);
    }
}

/// What a person would call the command: the `-c` string of a shell, else argv.
pub fn command_of(argv: &[String]) -> String {
    if argv.len() >= 3 && argv[1] == "-c" && argv[0].ends_with("sh") {
        return argv[2].clone();
    }
    // Written in place: once per job, and a copy of every argument added up.
    let mut out = String::with_capacity(argv.iter().map(|a| a.len() + 3).sum());
    for (i, a) in argv.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            out.push('\'');
            out.push_str(&a.replace('\'', r"'\''"));
            out.push('\'');
        } else {
            out.push_str(a);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::event::SysResult;
    use crate::testutil::{ev, exec_events, exit, fork, snapshot_root};

    /// cron 100 forks 200 (the job), which forks 201 (sh -c), which exits 3.
    fn cron_run(t: &mut Tracker) -> Vec<usize> {
        let mut fin = Vec::new();
        let mut evs = vec![snapshot_root(100), fork(100, 10, 200), fork(200, 20, 201)];
        evs.extend(exec_events(
            201,
            30,
            &["/bin/sh", "-c", "backup.sh --all"],
            &[],
            0,
        ));
        evs.extend([
            ev(201, 40, Body::ExitGroup { code: 3 }),
            exit(201, 41, 3),
            ev(
                200,
                42,
                Body::Wait {
                    waited_for: 201,
                    status: Some(ExitStatus::code(3)),
                    result: SysResult::new(201),
                },
            ),
            exit(200, 50, 0),
            ev(
                100,
                51,
                Body::Wait {
                    waited_for: -1,
                    status: Some(ExitStatus::code(0)),
                    result: SysResult::new(200),
                },
            ),
        ]);
        for e in evs {
            fin.extend(t.push(e));
        }
        fin
    }

    #[test]
    fn an_exec_attempt_carries_its_result_and_a_result_without_attempt_stays() {
        let mut t = Tracker::default();
        for e in [snapshot_root(100), fork(100, 10, 200)] {
            t.push(e);
        }
        // A failed attempt, then one that worked (a PATH search miss and its hit).
        for e in exec_events(200, 20, &["/usr/local/bin/x"], &[], -2)
            .into_iter()
            .chain(exec_events(200, 30, &["/usr/bin/x"], &[], 0))
        {
            t.push(e);
        }
        // A result whose attempt the trace never saw.
        t.push(ev(
            200,
            40,
            Body::ExecResult {
                result: SysResult::new(-13),
            },
        ));
        let tl = &t.jobs()[0].timeline;
        let shape: Vec<(&str, Option<i64>)> = tl
            .iter()
            .map(|e| (e.body.name(), e.body.result().map(|r| r.ret)))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("fork", None),
                ("exec_attempt", Some(-2)),
                ("exec_attempt", Some(0)),
                ("exec", None),
                ("exec_result", Some(-13)),
            ]
        );
        assert_eq!(
            tl[1].dur_ns,
            Some(2),
            "the attempt's duration reaches its result"
        );
    }

    #[test]
    fn a_retired_job_keeps_its_summary_and_counts_what_it_let_go() {
        let mut t = Tracker::default();
        cron_run(&mut t);
        let n = t.jobs()[0].timeline.len() as u64;
        let before = t.summary(&t.jobs()[0]).into_owned();
        t.retire(0);
        let job = &t.jobs()[0];
        assert!(job.timeline.is_empty());
        assert_eq!(job.dropped_events, n);
        // Its exited processes are forgotten; the root is not.
        assert!(t.procs.get(200).is_none() && t.procs.get(201).is_none());
        assert!(t.procs.get(100).is_some());
        let after = t.summary(job);
        assert_eq!(
            (&after.command, after.exit, &after.env),
            (&before.command, before.exit, &before.env)
        );
    }

    #[test]
    fn a_retired_job_counts_an_exec_and_its_result_as_one_event_as_a_kept_timeline_does() {
        // A process left running execs across the retirement, and after it.
        let run = |retire_at: Option<usize>| {
            let mut t = Tracker::default();
            t.push(snapshot_root(100));
            t.push(fork(100, 1, 200));
            t.push(fork(200, 2, 201));
            let mut evs = exec_events(201, 3, &["/bin/sleep", "20"], &[], 0);
            evs.extend(exec_events(201, 5, &["/bin/true"], &[], 0));
            evs.insert(0, exit(200, 2, 0)); // the leader ends: the job is finished
            for (i, e) in evs.into_iter().enumerate() {
                if retire_at == Some(i) {
                    t.retire(0);
                }
                t.push(e);
            }
            let j = &t.jobs()[0];
            j.timeline.len() as u64 + j.dropped_events
        };
        let kept = run(None);
        for at in 1..4 {
            assert_eq!(run(Some(at)), kept, "retired before event {at}");
        }
    }

    #[test]
    fn a_long_job_keeps_failures_and_its_tree_past_the_cap_and_counts_the_rest() {
        let mut t = Tracker::default();
        t.push(snapshot_root(100));
        t.push(fork(100, 1, 200));
        let open = |ts, ret| {
            ev(
                200,
                ts,
                Body::Open {
                    syscall: "openat",
                    dfd: -100,
                    path: "/var/lib/x".into(),
                    flags: 0,
                    mode: 0,
                    result: SysResult::new(ret),
                },
            )
        };
        let total = TIMELINE_SOFT_CAP as u64 + 10_000;
        for i in 0..total {
            // One failure in a thousand.
            t.push(open(10 + i, if i % 1000 == 999 { -13 } else { 3 }));
        }
        t.push(fork(200, total + 20, 201));
        let job = &t.jobs()[0];
        let kept_failures = job
            .timeline
            .iter()
            .filter(|e| e.body.result().is_some_and(|r| !r.ok()))
            .count() as u64;
        assert_eq!(kept_failures, total / 1000, "every failure is kept");
        assert!(matches!(
            job.timeline.last().unwrap().body,
            Body::Fork { child_pid: 201, .. }
        ));
        let dropped = job.capped.get("open").copied().unwrap_or(0);
        assert_eq!(dropped, 10_000 - 10, "successes past the cap are counted");
        assert_eq!(job.timeline.len() as u64 + job.dropped_events, total + 2);
    }

    #[test]
    fn a_reused_pid_is_a_new_process_of_the_new_job() {
        let mut t = Tracker::default();
        t.push(snapshot_root(100));
        // Job 1: 200 runs `sh -c a` as 201, which exits 3; job 1 is retired.
        t.push(fork(100, 1, 200));
        t.push(fork(200, 2, 201));
        for e in exec_events(201, 3, &["/bin/sh", "-c", "a"], &["X=1"], 0) {
            t.push(e);
        }
        t.push(exit(201, 10, 3));
        t.push(exit(200, 11, 0));
        t.retire(0);
        // Job 2 gets both pids again.
        t.push(fork(100, 20, 200));
        t.push(fork(200, 21, 201));
        for e in exec_events(201, 22, &["/bin/sh", "-c", "b"], &["X=2"], 0) {
            t.push(e);
        }
        t.push(exit(201, 30, 0));
        t.push(exit(200, 31, 0));
        let (a, b) = (t.summary(&t.jobs()[0]), t.summary(&t.jobs()[1]));
        assert_eq!(
            (a.command.as_str(), a.exit),
            ("a", Some(ExitStatus::code(3)))
        );
        assert_eq!(
            (b.command.as_str(), b.exit),
            ("b", Some(ExitStatus::code(0)))
        );
        assert_eq!(t.jobs()[1].timeline.len(), 6, "{:#?}", t.jobs()[1].timeline);
        assert!(
            t.jobs()[0].timeline.is_empty(),
            "nothing of job 2 went to job 1"
        );
        assert_eq!(
            t.procs.get(201).unwrap().env.to_vec(),
            vec!["X=2".to_string()]
        );
    }

    #[test]
    fn a_cron_fork_is_one_job_that_ends_with_its_last_process() {
        let mut t = Tracker::default();
        let fin = cron_run(&mut t);
        assert_eq!(fin, vec![0]);
        let job = &t.jobs()[0];
        assert_eq!(job.scheduler, "cron");
        assert_eq!(job.scheduler_pid, 100);
        assert_eq!(job.leader_pid, 200);
        assert_eq!(job.members, vec![200, 201]);
        assert_eq!(job.end_ns, Some(50));
        assert_eq!(t.main_pid(job), 201);
        // the root's reap of the leader is part of the job's story
        assert!(matches!(
            job.timeline.last().unwrap().body,
            Body::Wait { .. }
        ));
        let s = t.summary(job);
        assert_eq!(s.command, "backup.sh --all");
        assert_eq!(s.exit, Some(ExitStatus::code(3)));
    }

    #[test]
    fn a_subshell_job_that_never_execs_is_its_own_command() {
        let mut t = Tracker::default();
        t.push(snapshot_root(100));
        t.push(fork(100, 10, 200));
        t.push(fork(200, 11, 201));
        for e in exec_events(201, 12, &["cat", "/etc/hostname"], &[], 0) {
            t.push(e);
        }
        t.push(exit(201, 14, 0));
        t.push(exit(200, 15, 3));
        let job = &t.jobs()[0];
        assert_eq!(t.main_pid(job), 200);
        assert_eq!(t.summary(job).exit, Some(ExitStatus::code(3)));
    }

    #[test]
    fn a_job_still_running_is_not_finished() {
        // The command (201) ended but its leader (200, the daemon's child that waits
        // for it and mails its output) has not: the job is still running.
        let mut t = Tracker::default();
        t.push(snapshot_root(100));
        t.push(fork(100, 10, 200));
        t.push(fork(200, 11, 201));
        assert!(t.push(ev(201, 12, Body::Exit { status: None })).is_empty());
        assert!(!t.jobs()[0].finished());
    }

    #[test]
    fn a_job_ends_with_its_leader_and_lists_what_it_left_running() {
        // `nohup worker &`: the leader (200) exits, the worker (201) lives on.
        let mut t = Tracker::default();
        t.push(snapshot_root(100));
        t.push(fork(100, 10, 200));
        t.push(fork(200, 11, 201));
        assert_eq!(t.push(ev(200, 12, Body::Exit { status: None })), vec![0]);
        let job = &t.jobs()[0];
        assert_eq!(job.end_ns, Some(12));
        assert_eq!(t.summary(job).left_running, vec![201]);
        // What it left behind is still its story, but does not end it again.
        assert!(t.push(ev(201, 20, Body::Exit { status: None })).is_empty());
        assert_eq!(t.jobs()[0].end_ns, Some(12));
    }

    #[test]
    fn events_before_their_fork_are_held_then_attributed() {
        let mut t = Tracker::default();
        t.push(snapshot_root(100));
        t.push(ev(
            300,
            5,
            Body::Chdir {
                path: "/root".into(),
                result: SysResult::new(0),
            },
        ));
        assert!(t.jobs().is_empty());
        t.push(fork(100, 6, 300));
        assert_eq!(t.jobs()[0].timeline.len(), 2);
        t.push(ev(999, 7, Body::ExitGroup { code: 0 }));
        t.close();
        assert_eq!(t.counters.unattributed_events, 1);
    }

    #[test]
    fn a_chain_of_100k_processes_whose_events_came_first_is_released_in_order() {
        // Each of 100k processes forks the next; every one's chdir arrives before any
        // fork. A fork by an unknown parent starts a job rather than waiting, so only
        // the chdirs are held (up to ORPHAN_LIMIT) and a release never nests more than
        // one level today; the work stack keeps it so if forks are ever held too.
        const DEPTH: u32 = 100_000;
        let first = 1_000;
        let mut t = Tracker::default();
        t.push(snapshot_root(100));
        for i in 0..DEPTH {
            t.push(ev(
                first + i,
                i as u64,
                Body::Chdir {
                    path: "/".into(),
                    result: SysResult::new(0),
                },
            ));
        }
        assert!(t.jobs().is_empty());
        let mut parent = 100;
        for i in 0..DEPTH {
            t.push(fork(parent, DEPTH as u64 + i as u64, first + i));
            parent = first + i;
        }
        assert_eq!(t.jobs().len(), 1);
        let job = &t.jobs()[0];
        assert_eq!(job.members.len() as u32, DEPTH);
        let held = ORPHAN_LIMIT;
        assert_eq!(job.timeline.len(), DEPTH as usize + held);
        // Each process's fork, then the chdir it made before anyone saw the fork.
        assert!(matches!(job.timeline[0].body, Body::Fork { .. }));
        assert_eq!((job.timeline[1].pid, job.timeline[1].ts_ns), (first, 0));
        t.close();
        assert_eq!(
            t.counters.unattributed_events,
            (DEPTH as usize - held) as u64
        );
    }

    #[test]
    fn held_events_are_routed_right_after_their_fork_in_arrival_order() {
        let mut t = Tracker::default();
        t.push(snapshot_root(100));
        let chdir = |pid: u32, ts: u64| {
            ev(
                pid,
                ts,
                Body::Chdir {
                    path: format!("/{pid}"),
                    result: SysResult::new(0),
                },
            )
        };
        for e in [
            chdir(201, 1),
            chdir(202, 2),
            chdir(201, 3),
            fork(100, 4, 200),
            fork(200, 5, 201),
            fork(200, 6, 202),
            chdir(201, 7),
        ] {
            t.push(e);
        }
        let order: Vec<u64> = t.jobs()[0].timeline.iter().map(|e| e.ts_ns).collect();
        assert_eq!(order, vec![4, 5, 1, 3, 6, 2, 7]);
    }

    #[test]
    fn each_fork_of_a_root_is_its_own_job_and_root_work_is_not_a_job() {
        let mut t = Tracker::default();
        t.push(snapshot_root(100));
        t.push(ev(
            100,
            1,
            Body::Open {
                syscall: "openat",
                dfd: -100,
                path: "/etc/crontab".into(),
                flags: 0,
                mode: 0,
                result: SysResult::new(3),
            },
        ));
        t.push(fork(100, 2, 200));
        t.push(fork(100, 3, 201));
        assert_eq!(t.jobs().len(), 2);
        assert_eq!(t.counters.root_events, 1);
        assert_eq!(t.jobs()[1].id, 2);
    }

    #[test]
    fn command_of_prefers_the_shell_string() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(command_of(&v(&["/bin/sh", "-c", "echo hi"])), "echo hi");
        assert_eq!(
            command_of(&v(&["/usr/bin/env", "a b"])),
            "/usr/bin/env 'a b'"
        );
        // Only a shell's -c string stands for the command.
        assert_eq!(
            command_of(&v(&["/usr/bin/python3", "-c", "print(1)"])),
            "/usr/bin/python3 -c print(1)"
        );
        // A quote is quoted even without a space; an empty argument shows.
        assert_eq!(
            command_of(&v(&["echo", "it's", "say\"hi\"", ""])),
            r#"echo 'it'\''s' 'say"hi"' ''"#
        );
    }

    #[test]
    fn a_let_go_job_leaves_a_hole_and_the_others_keep_their_index() {
        let mut t = Tracker::default();
        t.push(snapshot_root(100));
        for i in 0..10u32 {
            t.push(fork(100, u64::from(i) * 10, 200 + i));
            t.push(exit(200 + i, u64::from(i) * 10 + 5, 0));
        }
        // Not retired: not let go.
        assert!(t.evict(3).is_none());
        for i in [0, 3, 4, 5] {
            t.retire(i);
            assert_eq!(t.evict(i).map(|j| j.id), Some(i as u64 + 1));
        }
        assert!(t.evict(3).is_none(), "once");
        assert_eq!((t.jobs().len(), t.jobs().started()), (6, 10));
        assert!(t.jobs().get(3).is_none());
        assert_eq!(t.jobs()[6].id, 7);
        let from = |ts: u64| -> Vec<usize> { t.jobs().starting_from(ts).map(|(i, _)| i).collect() };
        assert_eq!(from(0), [1, 2, 6, 7, 8, 9]);
        assert_eq!(from(11), [2, 6, 7, 8, 9]);
        assert_eq!(from(30), [6, 7, 8, 9]);
        assert_eq!(from(60), [6, 7, 8, 9]);
        assert_eq!(from(61), [7, 8, 9]);
        assert!(from(91).is_empty());
        // A let-go job's pids route nowhere: a late event of its leader is held back
        // as unknown, not added to another job.
        t.push(exit(203, 500, 0));
        assert_eq!(
            t.jobs().iter().map(|j| j.timeline.len()).sum::<usize>(),
            6 * 2
        );
        // A job whose process still runs is not let go.
        t.push(fork(100, 600, 300));
        t.push(fork(300, 601, 301));
        t.push(exit(300, 602, 0));
        let idx = t.jobs().started() - 1;
        t.retire(idx);
        assert!(t.evict(idx).is_none());
    }

    #[test]
    fn a_daemon_that_forks_and_lets_its_parent_exit_goes_on_in_the_child() {
        let mut t = Tracker::default();
        t.push(snapshot_root(100));
        t.push(fork(100, 10, 200)); // the daemonizing fork
        t.push(exit(100, 20, 0));
        assert!(t.jobs().is_empty(), "the daemon's own fork is not a job");
        assert_eq!(t.take_daemonized(), vec![(100, 200)]);
        assert!(t
            .schedulers
            .lives
            .iter()
            .any(|l| l.pid == 200 && l.alive_at(30)));
        t.push(fork(200, 1_000, 300));
        for e in exec_events(300, 1_001, &["/bin/sh", "-c", "x"], &[], 0) {
            t.push(e);
        }
        t.push(exit(300, 1_002, 0));
        let jobs: Vec<_> = t.jobs().iter().collect();
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            (jobs[0].id, jobs[0].scheduler_pid, jobs[0].leader_pid),
            (1, 200, 300)
        );
        assert!(jobs[0].finished());

        // A job's child that has forked its command is a job, even if the daemon dies.
        let mut t = Tracker::default();
        t.push(snapshot_root(100));
        t.push(fork(100, 10, 200));
        t.push(fork(200, 11, 201));
        t.push(exit(100, 20, 0));
        assert_eq!(t.jobs().len(), 1);
        assert!(t.take_daemonized().is_empty());
    }
}
