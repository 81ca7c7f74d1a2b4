//! systemd services and timers: which unit a job ran as, systemd's own failures named
//! in its words (`status=203/EXEC`), and timer fires that started nothing.
use foldhash::HashMap;

use jiff::{tz::TimeZone, Timestamp};
use serde::Serialize;

use super::{schedule::rfc3339, Finding, Kind};
use crate::{
    facts::HostFacts,
    model::{
        event::Body,
        job::{command_of, Job, Tracker},
    },
    schedules::{
        resolve_tz,
        systemd::{calendar::CalendarSpec, status::setup_failure, ManagerView, Service, Timer},
    },
};

/// systemd's default `TimeoutStartSec=` (DefaultTimeoutStartSec=).
const DEFAULT_TIMEOUT_SECS: f64 = 90.0;
/// A run this long before its fire time counts for it (clocks, rounding).
const EARLY_NS: i64 = 2_000_000_000;
/// ... and this long after its fire time plus the timer's accuracy and random delay.
const LATE_NS: i64 = 5_000_000_000;
/// Fires listed per timer in a finding's `times`.
const TIMES_LISTED: usize = 20;
/// Fires looked at per timer and calendar line: a window of days of a per-second
/// timer is what it is long before this.
const MAX_FIRES: usize = 100_000;

/// The unit a job ran as (JSON `unit`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct UnitRef {
    pub service: String,
    /// The timer that starts it, when one was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timer: Option<String>,
    /// `OnCalendar=daily, OnBootSec=5min` (the timer's triggers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The unit files and drop-ins read, timer's first.
    pub files: Vec<String>,
    /// `ExecStartPre=` and `ExecStart=` lines.
    pub exec: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<String>,
    /// The first `ExecStart=` as a command (what a job that never ran one was to run).
    #[serde(skip)]
    pub start_command: Option<String>,
}

struct ManagerState {
    view: ManagerView,
    /// The view's timers, parsed once.
    timers: Vec<Timer>,
    from_ns: u64,
    tz: TimeZone,
}

/// The systemd managers of the trace and the runs of their services.
#[derive(Default)]
pub struct Managers {
    states: Vec<ManagerState>,
    /// Service -> starts (monotonic ns) of its runs, for the missed-fire check.
    runs: HashMap<String, Vec<u64>>,
}

impl Managers {
    pub fn add(&mut self, view: ManagerView, from_ns: u64) {
        let tz = resolve_tz(&view.tz).unwrap_or(TimeZone::UTC);
        let timers = view.timers();
        self.states.push(ManagerState {
            view,
            timers,
            from_ns,
            tz,
        });
    }

    pub fn continued(&mut self, parent: u32, child: u32) {
        for s in self
            .states
            .iter_mut()
            .filter(|s| s.view.pids.contains(&parent))
        {
            s.view.pids.push(child);
        }
    }

    /// The latest view of the manager that forked this job.
    fn state_of(&self, job: &Job) -> Option<&ManagerState> {
        self.states
            .iter()
            .rev()
            .find(|s| s.view.pids.contains(&job.scheduler_pid) && s.from_ns <= job.start_ns)
            .or_else(|| {
                self.states
                    .iter()
                    .rev()
                    .find(|s| s.view.pids.contains(&job.scheduler_pid))
            })
    }

    /// The service a job ran as and the timer that started it, from the unit files;
    /// `None` for other jobs and services whose files were not read.
    pub fn service_of(&self, t: &Tracker, job: &Job) -> Option<(Service, Option<Timer>)> {
        let unit = job.unit.as_deref()?;
        let st = self.state_of(job)?;
        // systemd names the timer that started a service in its environment
        // (TRIGGER_UNIT=, v251+); a manual start has none. A service that never ran its
        // command shows no environment: then the timer that starts it, if any.
        let env = t.procs.get(t.main_pid(job)).map(|p| &p.env[..]);
        let trigger = env.and_then(|e| {
            e.iter()
                .find_map(|kv| kv.strip_prefix("TRIGGER_UNIT="))
                .map(String::from)
        });
        let has_env = env.is_some_and(|e| !e.is_empty());
        let timer = match trigger {
            Some(name) => st.timers.iter().find(|t| t.name == name),
            None if has_env => None,
            None => st.timers.iter().find(|t| t.unit == unit),
        };
        st.view.service(unit).map(|s| (s, timer.cloned()))
    }

    /// The unit a job ran as, with what its files say (`service_of`); `None` for
    /// other jobs.
    pub fn unit_of(job: &Job, found: Option<(Service, Option<Timer>)>) -> Option<UnitRef> {
        let unit = job.unit.clone()?;
        let (service, timer) = match found {
            Some((s, t)) => (Some(s), t),
            None => (None, None),
        };
        let mut files: Vec<String> = timer.iter().flat_map(|t| t.files.clone()).collect();
        files.extend(service.iter().flat_map(|s| s.files.clone()));
        Some(UnitRef {
            service: unit,
            timer: timer.as_ref().map(|t| t.name.clone()),
            schedule: timer.as_ref().map(Timer::schedule_text),
            files,
            exec: service
                .iter()
                .flat_map(|s| s.exec_start_pre.iter().chain(&s.exec_start))
                .map(|e| e.text.clone())
                .collect(),
            start_command: service
                .as_ref()
                .and_then(|s| s.exec_start.first())
                .map(|e| command_of(&e.argv)),
            user: service.as_ref().and_then(|s| s.user.clone()),
            working_directory: service.as_ref().and_then(|s| s.working_directory.clone()),
            environment: service.map(|s| s.environment).unwrap_or_default(),
        })
    }

    /// A job of a service ran: its timer's fire is accounted for.
    pub fn ran(&mut self, job: &Job) {
        if let Some(u) = &job.unit {
            self.runs.entry(u.clone()).or_default().push(job.start_ns);
        }
    }

    /// Findings of a service job in systemd's words: its set-up failures
    /// (`status=203/EXEC`) replace the generic ones they cause, and a kill by the
    /// manager names the timeout.
    pub fn service_findings(
        t: &Tracker,
        job: &Job,
        service: Option<&Service>,
        facts: &mut dyn HostFacts,
        findings: &mut Vec<Finding>,
    ) {
        let Some(unit) = job.unit.as_deref() else {
            return;
        };
        if let Some(f) = setup_finding(t, job, unit, service, facts) {
            findings.retain(|x| {
                !matches!(
                    x.kind.as_str(),
                    "no_exec" | "nonzero_exit" | "chdir_failed" | "exec_failed"
                )
            });
            findings.insert(0, f);
        }
        for f in findings.iter_mut() {
            match f.kind.as_str() {
                "killed_by_signal" if f.message.contains(&format!(" {}", job.scheduler_pid)) => {
                    let limit = service
                        .and_then(|s| s.timeout_start_secs)
                        .map(|s| format!("TimeoutStartSec={s}s"))
                        .unwrap_or_else(|| {
                            format!("TimeoutStartSec= (default {DEFAULT_TIMEOUT_SECS}s)")
                        });
                    f.message.push_str(&format!(
                        ": systemd kills a unit's processes when its {limit} runs out or the unit is stopped (`systemctl status {unit}`)"
                    ));
                }
                "command_not_found" => f
                    .message
                    .push_str(&format!(" (the PATH systemd gives {unit}, not a login shell's: set Environment=PATH=... or use an absolute path in ExecStart=)")),
                _ => {}
            }
        }
    }

    /// Timer fires in the trace window that started no run of their service.
    pub fn missed_fires(
        &self,
        t: &Tracker,
        start_ns: u64,
        end_ns: u64,
        mono_to_wall_ns: i64,
    ) -> Vec<Finding> {
        let wall = |mono: u64| {
            Timestamp::from_nanosecond(mono as i128 + mono_to_wall_ns as i128)
                .unwrap_or(Timestamp::UNIX_EPOCH)
        };
        let mut out = Vec::new();
        for (i, st) in self.states.iter().enumerate() {
            // A later view of the same manager takes over from its start.
            let until = self.states[i + 1..]
                .iter()
                .filter(|o| o.view.pids.iter().any(|p| st.view.pids.contains(p)))
                .map(|o| o.from_ns)
                .min()
                .unwrap_or(end_ns);
            let from = st.from_ns.max(start_ns);
            for timer in &st.timers {
                let runs = self.runs.get(&timer.unit).map(Vec::as_slice).unwrap_or(&[]);
                if !st.view.is_wanted(&timer.name) && runs.is_empty() {
                    continue;
                }
                let slack = ((timer.accuracy_secs + timer.randomized_delay_secs) * 1e9) as i64;
                let mut missed: Vec<(Timestamp, u64)> = Vec::new();
                let mut problems = Vec::new();
                for line in &timer.calendar {
                    let spec = match CalendarSpec::parse(&line.value) {
                        Ok(s) => s,
                        Err(e) => {
                            problems.push(format!("{}:{}: {e}", line.file, line.line));
                            continue;
                        }
                    };
                    let mut at = wall(from);
                    for _ in 0..MAX_FIRES {
                        let Some(fire) = spec.next_after(at, &st.tz) else {
                            break;
                        };
                        at = fire;
                        let fire_mono = (fire.as_nanosecond() - mono_to_wall_ns as i128) as i64;
                        // Undecided yet: the window ends before the timer's latest start.
                        if fire_mono + slack + LATE_NS > until.min(end_ns) as i64 {
                            break;
                        }
                        let ran = runs.iter().any(|&r| {
                            let r = r as i64;
                            r >= fire_mono - EARLY_NS && r <= fire_mono + slack + LATE_NS
                        });
                        if !ran {
                            missed.push((fire, fire_mono.max(0) as u64));
                        }
                    }
                }
                let mut ignored = timer.problems.clone();
                ignored.extend(
                    st.view
                        .service(&timer.unit)
                        .into_iter()
                        .flat_map(|s| s.problems),
                );
                if !ignored.is_empty() {
                    out.push(Finding {
                        kind: Kind::CrontabSyntax.as_str().into(),
                        message: format!(
                            "{} / {}: systemd ignores these lines: {}",
                            timer.name,
                            timer.unit,
                            ignored.join("; ")
                        ),
                        file: timer.files.first().cloned(),
                        ..Default::default()
                    });
                }
                if !problems.is_empty() {
                    out.push(Finding {
                        kind: Kind::CrontabSyntax.as_str().into(),
                        message: format!(
                            "{}: systemd cannot parse its calendar: {}",
                            timer.name,
                            problems.join("; ")
                        ),
                        file: timer.files.first().cloned(),
                        ..Default::default()
                    });
                }
                if missed.is_empty() {
                    continue;
                }
                missed.sort();
                let first_mono = missed[0].1;
                let alive = |mono: u64| {
                    t.schedulers
                        .lives
                        .iter()
                        .any(|l| st.view.pids.contains(&l.pid) && l.alive_at(mono))
                };
                let why = if alive(first_mono) {
                    format!(
                        "{} was running: the timer was stopped or disabled, or its schedule changed (`systemctl status {}`, `systemctl list-timers`)",
                        st.view.who(),
                        timer.name
                    )
                } else {
                    format!("{} was not running then", st.view.who())
                };
                let times: Vec<String> = missed
                    .iter()
                    .take(TIMES_LISTED)
                    .map(|(f, _)| rfc3339(&f.to_zoned_datetime(st.tz.clone())))
                    .collect();
                let count = if missed.len() == 1 {
                    "once".to_string()
                } else {
                    format!("{} times", missed.len())
                };
                out.push(Finding {
                    kind: Kind::MissedSchedule.as_str().into(),
                    message: format!(
                        "{} ({}) should have started {} at {} and it did not ({count} in the trace): {why}",
                        timer.name,
                        timer.schedule_text(),
                        timer.unit,
                        times[0],
                    ),
                    file: timer.files.first().cloned(),
                    times,
                    ..Default::default()
                });
            }
        }
        out
    }
}

/// The job's own process ended with one of systemd's set-up statuses before running
/// anything: say which step failed, with the unit's line for it.
fn setup_finding(
    t: &Tracker,
    job: &Job,
    unit: &str,
    service: Option<&Service>,
    facts: &mut dyn HostFacts,
) -> Option<Finding> {
    let leader = t.procs.get(job.leader_pid)?;
    if leader.execed {
        return None;
    }
    let code = leader.exit?.code?;
    let (name, what) = setup_failure(code)?;
    let status = format!("status={code}/{name}");
    let failed_event = |pred: &dyn Fn(&Body) -> bool| {
        job.timeline
            .iter()
            .position(|e| e.pid == job.leader_pid && pred(&e.body))
    };
    let (kind, message, evidence) = match code {
        203 => {
            let exec = service.and_then(|s| s.exec_start.first());
            let path = exec.map(|e| e.path.clone());
            let why = match &path {
                Some(p) if p.starts_with('/') => {
                    let f = facts.file(p);
                    if !f.exists {
                        format!(": {p} does not exist")
                    } else if f.is_dir {
                        format!(": {p} is a directory")
                    } else if f.mode & 0o111 == 0 {
                        format!(": {p} is not executable (mode {:o})", f.mode & 0o7777)
                    } else if f.noexec_mount {
                        format!(": {p} is on a noexec mount")
                    } else {
                        String::new()
                    }
                }
                Some(p) => format!(
                    ": {p} is not an absolute path and was not found in systemd's search path"
                ),
                None => String::new(),
            };
            let line = exec
                .map(|e| format!("{} ({}:{})", e.text, e.file, e.line))
                .unwrap_or_else(|| "its ExecStart=".to_string());
            (
                Kind::ExecFailed,
                format!("systemd could not execute {line} of {unit} ({status}){why}"),
                failed_event(&|b| matches!(b, Body::ExecAttempt { .. })),
            )
        }
        200 => {
            let dir = service
                .and_then(|s| s.working_directory.clone())
                .unwrap_or_else(|| "the unit's WorkingDirectory=".into());
            let ev = failed_event(&|b| matches!(b, Body::Chdir { result, .. } if !result.ok()));
            let err = ev
                .and_then(|i| job.timeline[i].body.result())
                .and_then(|r| r.error)
                .map(|e| format!(": chdir {e}"))
                .unwrap_or_default();
            (
                Kind::ChdirFailed,
                format!("systemd could not enter WorkingDirectory={dir} of {unit} ({status}){err}"),
                ev,
            )
        }
        217 | 216 => {
            let (key, who) = if code == 217 {
                ("User", service.and_then(|s| s.user.clone()))
            } else {
                ("Group", service.and_then(|s| s.group.clone()))
            };
            let who = who.unwrap_or_default();
            (
                Kind::NoExec,
                format!("systemd could not resolve {key}={who} of {unit} ({status}): no such {} on this host, or NSS failed", key.to_lowercase()),
                None,
            )
        }
        _ => (
            Kind::NoExec,
            format!("systemd's set-up of {unit} failed before its command ran ({status}: {what})"),
            None,
        ),
    };
    let exit_idx = job
        .timeline
        .iter()
        .rposition(|e| e.pid == job.leader_pid && matches!(e.body, Body::Exit { .. }));
    Some(Finding {
        kind: kind.as_str().into(),
        message,
        pid: job.leader_pid,
        evidence: evidence.into_iter().chain(exit_idx).collect(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        diagnosis::diagnose,
        facts::RecordedFacts,
        model::event::ExitStatus,
        schedules::systemd::UnitSource,
        testutil::{ev, exec_events, exit, fork, open, snapshot_root},
    };

    const SEC: u64 = 1_000_000_000;

    fn view(units: &[(&str, &str)]) -> ManagerView {
        ManagerView {
            pids: vec![1],
            root: "/".into(),
            tz: "UTC".into(),
            units: units
                .iter()
                .map(|(u, t)| UnitSource {
                    unit: u.to_string(),
                    path: format!("/etc/systemd/system/{u}"),
                    text: t.to_string(),
                })
                .collect(),
            wanted: vec!["b.timer".into()],
            ..Default::default()
        }
    }

    /// systemd (pid 1) forks `child` into `service`; it exits `code` without exec.
    fn setup_failed_run(t: &mut Tracker, child: u32, ts: u64, service: &str, code: i32) {
        t.push(fork(1, ts, child));
        t.push(open(
            child,
            ts + 1,
            &format!("/sys/fs/cgroup/system.slice/{service}/cgroup.procs"),
            3,
        ));
        t.push(exit(child, ts + 2, code));
    }

    fn tracker() -> Tracker {
        let mut t = Tracker::default();
        let mut root = snapshot_root(1);
        root.comm = "systemd".into();
        t.push(root);
        t
    }

    #[test]
    fn a_set_up_failure_is_named_in_systemds_words_and_replaces_the_generic_findings() {
        let mut t = tracker();
        setup_failed_run(&mut t, 50, 10, "b.service", 203);
        setup_failed_run(&mut t, 51, 20, "w.service", 200);
        setup_failed_run(&mut t, 52, 30, "u.service", 217);
        let mut m = Managers::default();
        m.add(
            view(&[
                ("b.service", "[Service]\nExecStart=/opt/b/run --x\n"),
                (
                    "w.service",
                    "[Service]\nWorkingDirectory=/srv/w\nExecStart=/bin/true\n",
                ),
                (
                    "u.service",
                    "[Service]\nUser=nobody-here\nExecStart=/bin/true\n",
                ),
            ]),
            0,
        );
        let mut facts = RecordedFacts::default();
        let jobs: Vec<&Job> = t.jobs().iter().collect();
        assert_eq!(jobs[0].unit.as_deref(), Some("b.service"));
        let run = |j: &Job, facts: &mut RecordedFacts| {
            let mut f = diagnose(&t, j, facts, true);
            let found = m.service_of(&t, j);
            Managers::service_findings(&t, j, found.as_ref().map(|s| &s.0), facts, &mut f);
            f
        };
        let f = run(jobs[0], &mut facts);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].kind, "exec_failed");
        assert!(
            f[0].message
                .contains("ExecStart=/opt/b/run --x (/etc/systemd/system/b.service:2)")
                && f[0].message.contains("status=203/EXEC")
                && f[0].message.contains("does not exist"),
            "{}",
            f[0].message
        );
        let f = run(jobs[1], &mut facts);
        assert_eq!((f.len(), f[0].kind.as_str()), (1, "chdir_failed"), "{f:?}");
        assert!(
            f[0].message.contains("WorkingDirectory=/srv/w") && f[0].message.contains("200/CHDIR")
        );
        let f = run(jobs[2], &mut facts);
        assert_eq!(f[0].kind, "no_exec");
        assert!(f[0].message.contains("User=nobody-here") && f[0].message.contains("217/USER"));
        let u = Managers::unit_of(jobs[0], m.service_of(&t, jobs[0])).unwrap();
        assert_eq!(u.exec, vec!["ExecStart=/opt/b/run --x"]);
        assert_eq!(u.start_command.as_deref(), Some("/opt/b/run --x"));
    }

    #[test]
    fn a_job_of_systemd_that_ran_its_command_keeps_the_rules_findings() {
        let mut t = tracker();
        t.push(fork(1, 10, 60));
        t.push(open(
            60,
            11,
            "/sys/fs/cgroup/system.slice/b.service/cgroup.procs",
            3,
        ));
        for e in exec_events(
            60,
            12,
            &["/bin/sh", "-c", "exit 3"],
            &["TRIGGER_UNIT=b.timer"],
            0,
        ) {
            t.push(e);
        }
        t.push(exit(60, 13, 3));
        let mut m = Managers::default();
        m.add(
            view(&[
                ("b.timer", "[Timer]\nOnCalendar=*:*:0/10\n"),
                ("b.service", "[Service]\nExecStart=/bin/sh -c 'exit 3'\n"),
            ]),
            0,
        );
        let job = t.jobs().iter().next().unwrap();
        let mut facts = RecordedFacts::default();
        let mut f = diagnose(&t, job, &mut facts, true);
        let found = m.service_of(&t, job);
        Managers::service_findings(&t, job, found.as_ref().map(|s| &s.0), &mut facts, &mut f);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, "nonzero_exit");
        let u = Managers::unit_of(job, found).unwrap();
        assert_eq!(u.timer.as_deref(), Some("b.timer"));
        assert_eq!(u.schedule.as_deref(), Some("OnCalendar=*:*:0/10"));
    }

    #[test]
    fn a_wanted_timer_whose_fire_started_nothing_is_a_missed_schedule() {
        // The trace runs from wall 1000 s to 1060 s; the timer fires every 10 s (at
        // wall seconds divisible by 10), with 1 s accuracy.
        let mono_to_wall = 1000 * SEC as i64;
        let mut t = tracker();
        let mut m = Managers::default();
        m.add(
            view(&[
                ("b.timer", "[Timer]\nOnCalendar=*:*:0/10\nAccuracySec=1s\n"),
                ("b.service", "[Service]\nExecStart=/bin/true\n"),
                // Not wanted by anything and never run: not expected to fire.
                ("c.timer", "[Timer]\nOnCalendar=*:*:0/10\n"),
            ]),
            0,
        );
        // Runs at the fires of 1010 and 1030 s only.
        for (i, at) in [10u64, 30].into_iter().enumerate() {
            let child = 70 + i as u32;
            t.push(fork(1, at * SEC, child));
            t.push(open(
                child,
                at * SEC + 1,
                "/sys/fs/cgroup/system.slice/b.service/cgroup.procs",
                3,
            ));
            t.push(exit(child, at * SEC + 2, 0));
        }
        for j in t.jobs().iter() {
            m.ran(j);
        }
        let f = m.missed_fires(&t, 0, 60 * SEC, mono_to_wall);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].kind, "missed_schedule");
        // 1020, 1040 and 1050 s (decided: 1050 + 1 s accuracy + 5 s is within the
        // window); 1060 s is not decided yet.
        assert_eq!(
            f[0].times,
            vec![
                "1970-01-01T00:17:00+00:00",
                "1970-01-01T00:17:20+00:00",
                "1970-01-01T00:17:30+00:00"
            ]
        );
        assert!(f[0]
            .message
            .starts_with("b.timer (OnCalendar=*:*:0/10) should have started b.service"));
        assert!(
            f[0].message.contains("3 times") && f[0].message.contains("was running"),
            "{}",
            f[0].message
        );
        // The manager dead at the first miss: said so.
        t.push(ev(
            1,
            15 * SEC,
            Body::Exit {
                status: Some(ExitStatus::signal(9, false)),
            },
        ));
        let f = m.missed_fires(&t, 0, 60 * SEC, mono_to_wall);
        assert!(
            f[0].message.contains("was not running then"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn a_calendar_systemd_cannot_parse_is_named_with_its_file_and_line() {
        let mut m = Managers::default();
        m.add(view(&[("b.timer", "[Timer]\nOnCalendar=*-*-* 25:00\n")]), 0);
        let f = m.missed_fires(&tracker(), 0, 60 * SEC, 0);
        assert_eq!(f.len(), 1, "{f:?}");
        // Lines systemd ignores, in the timer and in its service, are named too.
        let mut m = Managers::default();
        m.add(
            view(&[
                ("b.timer", "[Timer]\nOnCalendar=hourly\nno equals\n"),
                ("b.service", "[Service]\nExecStart=/bin/b\n[Service\n"),
            ]),
            0,
        );
        let g = m.missed_fires(&tracker(), 0, 60 * SEC, 0);
        assert_eq!(g.len(), 1, "{g:?}");
        assert_eq!(g[0].kind, "crontab_syntax");
        assert!(
            g[0].message
                .contains("/etc/systemd/system/b.timer:3: not `Key=Value`")
                && g[0]
                    .message
                    .contains("/etc/systemd/system/b.service:3: a section header"),
            "{}",
            g[0].message
        );
        assert_eq!(f[0].kind, "crontab_syntax");
        assert!(
            f[0].message.contains("/etc/systemd/system/b.timer:2"),
            "{}",
            f[0].message
        );
    }
}
