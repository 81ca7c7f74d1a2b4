//! The live event loop: drain the ring buffer into the pipeline, flush the trace file,
//! rescan `/proc` for roots the kernel cannot spot, and stop on Ctrl-C, SIGTERM or the
//! deadline.
use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use tokio::io::{unix::AsyncFd, Interest};

use crate::{
    capture::{
        host::monotonic_ns,
        loader::{self, SetupError},
        snapshot::{self, ProcInfo, RootSpec},
    },
    diagnosis::schedule::Target,
    pipeline::Pipeline,
    secrets,
    tracefile::{LostEvents, Synthetic},
};

pub struct LoopOptions<'a> {
    pub spec: &'a RootSpec,
    pub self_pid: u32,
    pub redact: bool,
    pub duration: Option<Duration>,
    /// `record --entry`: stop once each of these entries has run (or was missed).
    pub targets: &'a [Target],
    /// `trigger`: stop once this child (the stand-in daemon) has exited.
    pub until_exit: Option<u32>,
    /// `--follow --log FILE`: set on SIGHUP, so the lines go to a new FILE.
    pub reopen: Option<Arc<AtomicBool>>,
}

/// The signals that stop the loop (and SIGHUP with `--follow --log`), caught from now
/// on: made before the tracer says it is attached, so a Ctrl-C right after that waits
/// here for the loop instead of killing the tracer without its report.
pub fn catch_signals(reopen: bool) -> Option<signal_hook::iterator::Signals> {
    let mut wanted = vec![libc::SIGINT, libc::SIGTERM];
    if reopen {
        wanted.push(libc::SIGHUP);
    }
    match signal_hook::iterator::Signals::new(&wanted) {
        Ok(s) => Some(s),
        Err(e) => {
            log::warn!("cannot watch for Ctrl-C ({e}): stop with SIGKILL");
            None
        }
    }
}

/// A process as it goes into the trace: its argv redacted unless secrets are kept
/// (`redact` tallies what was redacted).
pub fn process_for_trace(p: &ProcInfo, redact: Option<&mut secrets::Counts>) -> ProcInfo {
    let mut p = p.clone();
    if let Some(counts) = redact {
        secrets::redact_argv(&mut p.cmdline, counts);
    }
    p
}

/// Views and processes found while running go into the trace with their redactions
/// tallied in the pipeline's stats.
fn tally(redact: bool) -> Option<secrets::Counts> {
    redact.then(secrets::Counts::new)
}

/// Put a process found in `/proc` into the kernel's tracked map, and say so at -v.
pub fn follow_found(loaded: &mut loader::Loaded, p: &ProcInfo, root: bool, how: &str) {
    if let Err(e) = loaded.track(p.pid, p.ppid, root) {
        log::warn!("cannot follow pid {} ({}): {e}", p.pid, p.comm);
    }
    // A log line is output too: its argv is redacted whatever --capture-secrets says.
    let shown = process_for_trace(p, Some(&mut secrets::Counts::new()));
    log::info!(
        "following {} pid {} ({}) {:?}, found by {how}",
        if root { "root" } else { "descendant" },
        p.pid,
        p.comm,
        shown.cmdline
    );
}

/// Runs until stopped; every record the kernel wrote before the stop is drained.
pub fn run(
    loaded: &mut loader::Loaded,
    ring: aya::maps::RingBuf<aya::maps::MapData>,
    pipe: &mut Pipeline,
    o: &LoopOptions,
    known: &mut HashSet<u32>,
    signals: Option<signal_hook::iterator::Signals>,
) -> Result<(), SetupError> {
    let (spec, self_pid, redact) = (o.spec, o.self_pid, o.redact);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SetupError {
            what: format!("cannot start the event loop: {e}"),
            fix: "retry".into(),
        })?;
    // SAFETY: the RingBuf owns its map fd and keeps it open until it is dropped,
    // which happens only after the AsyncFd is gone.
    let registered =
        rt.block_on(async { unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) } });
    let mut ring = registered.map_err(|e| SetupError {
        what: format!("cannot poll the ring buffer: {e}"),
        fix: "retry".into(),
    })?;
    let stopping = Arc::new(AtomicBool::new(false));
    let mut stop_rx = watch_signals(
        signals,
        loaded.links.clone(),
        stopping.clone(),
        o.reopen.clone(),
    );
    rt.block_on(async {
        let deadline = o.duration.map(|d| tokio::time::Instant::now() + d);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        // The kernel wakes this loop only once a sixteenth of the ring is waiting (a
        // wakeup per record costs the host an interrupt per record): what less is
        // waiting is drained on this timer.
        let mut drain_tick =
            tokio::time::interval_at(tokio::time::Instant::now() + DRAIN_EVERY, DRAIN_EVERY);
        drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // That timer runs only while records come: a host where nothing followed runs
        // is not woken ten times a second (each wakeup cost this VM about 130 us; the
        // drain timer was half of what an idle tracer cost). After a quiet spell, the
        // first records wait for the half-second tick, the kernel's wakeup mark, or
        // (a new scheduler) the kernel's immediate wakeup; the timer then starts a full
        // period later (a timer left unpolled would fire at once, find the ring just
        // drained, and stop again).
        let mut flowing = true;
        let mut last_scan = Instant::now();
        let mut seen: HashMap<String, Fingerprint> = HashMap::new();
        let mut losses = LossPoll::new(loaded);
        let stop_said = |why: &str| {
            eprintln!("tracer: {why}: finishing the report (Ctrl-C again to exit at once)");
        };
        loop {
            tokio::select! {
                guard = ring.readable_mut() => {
                    let Ok(mut guard) = guard else { break };
                    // A batch per turn: under a storm the ring is never empty, and the
                    // signals, the deadline and the timer must still get their turn.
                    let d = drain(guard.get_inner_mut(), pipe, redact, DRAIN_BATCH);
                    if d.emptied {
                        guard.clear_ready();
                    }
                    records_came(d.records, &mut flowing, &mut drain_tick);
                }
                _ = drain_tick.tick(), if flowing => {
                    flowing = drain(ring.get_mut(), pipe, redact, DRAIN_BATCH).records > 0;
                }
                sig = stop_rx.recv() => {
                    stop_said(if sig == Some(libc::SIGTERM) { "SIGTERM" } else { "interrupted" });
                    break
                }
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break,
                _ = tick.tick() => {
                    if let Some(w) = pipe.writer.as_mut() {
                        w.tick();
                    }
                    loaded.flush_kernel_log();
                    let now = monotonic_ns();
                    // Decide on what the kernel has written by now, not on a backlog.
                    let d = drain(ring.get_mut(), pipe, redact, DRAIN_BATCH);
                    records_came(d.records, &mut flowing, &mut drain_tick);
                    losses.poll(loaded, pipe, now, true);
                    pipe.tick(now);
                    if let Some(pid) = o.until_exit {
                        let mut status = 0;
                        // SAFETY: plain waitpid on our own child, no pointers kept.
                        let r = unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
                        if r != 0 {
                            log::info!("the triggered job's stand-in (pid {pid}) ended: stopping");
                            break;
                        }
                    }
                    if !o.targets.is_empty()
                        && o.targets.iter().all(|t| pipe.schedules().target_done(&pipe.tracker, t, now))
                    {
                        log::info!("every followed entry has run or was missed: stopping");
                        break;
                    }
                    if last_scan.elapsed() >= Duration::from_secs(2) {
                        last_scan = Instant::now();
                        let swept = loaded.sweep_tracked();
                        if swept > 0 {
                            log::debug!("{swept} followed processes were gone: their entries removed");
                        }
                        rescan(loaded, spec, self_pid, known, pipe, redact);
                        reread_crontabs(pipe, redact, &mut seen);
                    }
                }
            }
        }
        stopping.store(true, Ordering::SeqCst);
        // What the kernel wrote before we stopped listening, and not what a storm goes
        // on writing while we finish (the probes stay attached until the report is out).
        let stop = Instant::now();
        drain_to(ring.get_mut(), pipe, monotonic_ns());
        log::debug!("drained what came before the stop in {:?}", stop.elapsed());
        loaded.flush_kernel_log();
        losses.poll(loaded, pipe, monotonic_ns(), false);
    });
    drop(ring);
    Ok(())
}

/// Records drained per turn of the event loop.
const DRAIN_BATCH: usize = 4096;

/// While records come, those below the kernel's wakeup mark wait at most this long
/// (after a quiet spell, the first ones up to the half-second tick). Every 20 ms before:
/// five times the wakeups for the same records, and a followed workload's records
/// cost the tracer a third more CPU (48-50 -> 34-36 ms a run of the cost bench's
/// workload, mode 3, three alternating pairs). The kernel still wakes the loop once a
/// sixteenth of the ring is waiting, so a burst is not held back by this.
const DRAIN_EVERY: Duration = Duration::from_millis(100);

/// The kernel's lost-record counters, read at every tick: a loss is said when it
/// happens and goes into the pipeline (and the trace) with the time it happened in.
struct LossPoll {
    seen: std::collections::BTreeMap<String, u64>,
    since_ns: u64,
}

impl LossPoll {
    fn new(loaded: &loader::Loaded) -> Self {
        LossPoll {
            seen: loaded.lost().into_iter().collect(),
            since_ns: monotonic_ns(),
        }
    }

    fn poll(&mut self, loaded: &loader::Loaded, pipe: &mut Pipeline, now: u64, live: bool) {
        let mut by_kind = std::collections::BTreeMap::new();
        for (k, total) in loaded.lost() {
            let before = self.seen.insert(k.clone(), total).unwrap_or(0);
            if total > before {
                by_kind.insert(k, total - before);
            }
        }
        let l = LostEvents {
            since_ns: self.since_ns,
            ts_ns: now,
            by_kind,
        };
        self.since_ns = now;
        if l.total() == 0 {
            return;
        }
        if live {
            eprintln!(
                "tracer: warning: the kernel dropped {} records in the last {:.1} s ({}): the jobs running now may be incomplete (raise --ring-mb, or follow fewer processes)",
                l.total(),
                (l.ts_ns - l.since_ns) as f64 / 1e9,
                l.by_kind
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        pipe.lost(l);
    }
}

/// Ctrl-C and SIGTERM, watched by a thread of their own: the first one stops the
/// event loop (sent on the returned channel) and the report is written; a second one,
/// or a first one once the run is stopping anyway, exits at once, whatever the main
/// thread is doing (draining, diagnosing, detaching). The probes are let go by a child
/// (see `release_in_background`); the trace file is readable up to its last whole
/// frame.
fn watch_signals(
    signals: Option<signal_hook::iterator::Signals>,
    links: loader::Links,
    stopping: Arc<AtomicBool>,
    reopen: Option<Arc<AtomicBool>>,
) -> tokio::sync::mpsc::UnboundedReceiver<i32> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    // Signals that came since catch_signals are pending in it: the first is read below.
    let Some(mut signals) = signals else {
        return rx;
    };
    std::thread::spawn(move || {
        let mut seen = 0;
        for sig in signals.forever() {
            if sig == libc::SIGHUP {
                if let Some(r) = &reopen {
                    r.store(true, Ordering::SeqCst);
                }
                continue;
            }
            seen += 1;
            if seen == 1 && !stopping.load(Ordering::SeqCst) {
                let _ = tx.send(sig);
                continue;
            }
            eprintln!("tracer: exiting now (a trace file is readable up to its last flush)");
            if !loader::release_in_background() {
                loader::detach_all(&links);
            }
            // SAFETY: _exit ends the process without running anything of ours.
            unsafe { libc::_exit(128 + sig) };
        }
    });
    rx
}

/// Daemons the kernel cannot spot by comm (busybox crond), or started between the
/// start-up scan and the attach.
fn rescan(
    loaded: &mut loader::Loaded,
    spec: &RootSpec,
    self_pid: u32,
    known: &mut HashSet<u32>,
    pipe: &mut Pipeline,
    redact: bool,
) {
    let now = monotonic_ns();
    let found = snapshot::roots_and_descendants(&snapshot::read_for_rescan(), spec, self_pid);
    // Only the pids alive now stay known: a day-long attach does not grow this, and a
    // pid reused later is a new process to look at.
    let alive: HashSet<u32> = found.iter().map(|(pid, _)| *pid).collect();
    known.retain(|pid| alive.contains(pid));
    for (pid, root) in found {
        if !known.insert(pid) || loaded.is_tracked(pid) {
            continue;
        }
        if let Some(p) = snapshot::read_one(pid) {
            follow_found(loaded, &p, root, "a rescan");
            let mut counts = tally(redact);
            if root {
                for v in crate::capture::host::schedule_views(
                    std::slice::from_ref(&p),
                    counts.as_mut(),
                    false,
                ) {
                    if !v.pids.is_empty() {
                        pipe.schedule_view(v, now);
                    }
                }
                pipe.scheduler_files(crate::capture::host::scheduler_files(
                    &p,
                    now,
                    counts.as_mut(),
                ));
            }
            let process = process_for_trace(&p, counts.as_mut());
            pipe.note_redactions(counts.as_ref());
            pipe.synthetic(&Synthetic {
                ts_ns: now,
                root,
                process,
            });
        }
    }
}

/// What changes when a crontab, its directory or the users change: status-change time
/// (which an mtime-preserving copy still moves), size and inode of each, by lstat.
type Fingerprint = Vec<Option<(i64, i64, u64, u64)>>;

fn fingerprint(v: &crate::schedules::ScheduleView) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    let mut paths: Vec<String> = [
        "/etc/crontab",
        "/etc/cron.d",
        "/var/spool/cron",
        "/var/spool/cron/crontabs",
        "/etc/passwd",
        "/etc/cron.allow",
        "/etc/cron.deny",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    paths.extend(v.busybox_dir.clone());
    paths.extend(v.sources.iter().map(|s| s.path.clone()));
    let root = v.root.trim_end_matches('/');
    paths
        .iter()
        .map(|p| {
            std::fs::symlink_metadata(format!("{root}{p}"))
                .ok()
                .map(|m| (m.ctime(), m.ctime_nsec(), m.size(), m.ino()))
        })
        .collect()
}

/// Crontabs edited while we trace: the new text is what the daemon runs from its next
/// reread, and the trace keeps both.
fn reread_crontabs(pipe: &mut Pipeline, redact: bool, seen: &mut HashMap<String, Fingerprint>) {
    let mut redactions = Vec::new();
    let changed: Vec<crate::schedules::ScheduleView> = pipe
        .schedules()
        .latest_views()
        .into_iter()
        .filter(|v| {
            v.is_host()
                || v.pids
                    .iter()
                    .any(|p| Path::new(&format!("/proc/{p}")).exists())
        })
        .filter(|v| {
            // Only a view whose files were touched is read again (a stat per file).
            let key = format!("{:?} {} {:?}", v.daemon, v.root, v.busybox_dir);
            let now = fingerprint(v);
            let changed = seen.get(&key).is_none_or(|before| *before != now);
            seen.insert(key, now);
            changed
        })
        .filter_map(|v| {
            let mut counts = tally(redact);
            let fresh = crate::capture::host::read_view(
                v.daemon,
                &v.root,
                v.busybox_dir.clone(),
                counts.as_mut(),
            );
            let users_changed = fresh.context.users != v.context.users
                || fresh.context.cron_allow != v.context.cron_allow
                || fresh.context.cron_deny != v.context.cron_deny;
            (fresh.sources != v.sources || users_changed).then(|| {
                redactions.push(counts);
                let mut n = v.clone();
                n.sources = fresh.sources;
                n.context.users = fresh.context.users;
                n.context.cron_allow = fresh.context.cron_allow;
                n.context.cron_deny = fresh.context.cron_deny;
                n
            })
        })
        .collect();
    for c in &redactions {
        pipe.note_redactions(c.as_ref());
    }
    let now = monotonic_ns();
    for v in changed {
        log::info!("crontabs of {} changed: reread", v.who());
        pipe.schedule_view(v, now);
    }
}

/// Longest the drain at the stop may take, whatever the kernel goes on writing.
const FINAL_DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// The records written up to `stop_ns` (their header time): the ring holds at most its
/// size of them, so this ends; a record written after the stop ends it at once.
fn drain_to(ring: &mut aya::maps::RingBuf<aya::maps::MapData>, pipe: &mut Pipeline, stop_ns: u64) {
    let began = Instant::now();
    let mut after = 0u64;
    while began.elapsed() < FINAL_DRAIN_LIMIT {
        let Some(item) = ring.next() else { return };
        // Header: kind u32, flags u32, ts_ns u64.
        let ts = item
            .get(8..16)
            .map(|b| u64::from_ne_bytes(b.try_into().unwrap_or_default()))
            .unwrap_or(0);
        if ts > stop_ns {
            // Later than the stop: not part of this recording. Records of different
            // CPUs interleave, so a few more are looked at before giving up.
            after += 1;
            if after > 64 {
                return;
            }
            continue;
        }
        let _ = pipe.kernel_record(&item);
    }
    log::warn!("stopped draining after {FINAL_DRAIN_LIMIT:?}: the rest of the ring buffer is not in the report");
}

/// Records came (from the ring's readiness or the half-second tick): after a quiet
/// spell the drain timer runs again, its first tick a full period from now.
fn records_came(records: usize, flowing: &mut bool, drain_tick: &mut tokio::time::Interval) {
    if records > 0 && !*flowing {
        *flowing = true;
        drain_tick.reset();
    }
}

/// What one [`drain`] did: whether the ring is empty now, and how many records it took.
struct Drained {
    emptied: bool,
    records: usize,
}

/// Up to `max` records.
fn drain(
    ring: &mut aya::maps::RingBuf<aya::maps::MapData>,
    pipe: &mut Pipeline,
    redact: bool,
    max: usize,
) -> Drained {
    for records in 0..max {
        let Some(item) = ring.next() else {
            return Drained {
                emptied: true,
                records,
            };
        };
        let new_root = pipe.kernel_record(&item);
        drop(item);
        for pid in pipe.take_new_daemons() {
            if let Some(p) = snapshot::read_one(pid) {
                let mut counts = tally(redact);
                let files =
                    crate::capture::host::scheduler_files(&p, monotonic_ns(), counts.as_mut());
                pipe.note_redactions(counts.as_ref());
                pipe.scheduler_files(files);
            }
        }
        // A scheduler that started while we trace: its argv and cwd come from /proc
        // (its exec attempt was not followed), so its jobs inherit them.
        if let Some(pid) = new_root {
            log::info!("a scheduler started: pid {pid} is now a root");
            if let Some(p) = snapshot::read_one(pid) {
                let mut counts = tally(redact);
                for v in crate::capture::host::schedule_views(
                    std::slice::from_ref(&p),
                    counts.as_mut(),
                    false,
                ) {
                    if !v.pids.is_empty() {
                        pipe.schedule_view(v, monotonic_ns());
                    }
                }
                pipe.scheduler_files(crate::capture::host::scheduler_files(
                    &p,
                    monotonic_ns(),
                    counts.as_mut(),
                ));
                let process = process_for_trace(&p, counts.as_mut());
                pipe.note_redactions(counts.as_ref());
                pipe.synthetic(&Synthetic {
                    ts_ns: monotonic_ns(),
                    root: true,
                    process,
                });
            }
        }
    }
    Drained {
        emptied: false,
        records: max,
    }
}
