//! `tracer record`: the live event loop. Kernel records are decoded, redacted and fed
//! to the job tracker; jobs are printed as they finish; the report closes the run.
use std::{
    collections::HashSet,
    io::Write,
    time::{Duration, Instant},
};

use tokio::{
    io::{unix::AsyncFd, Interest},
    signal::unix::SignalKind,
};

use crate::{
    decode::decode,
    event::Event,
    job::Tracker,
    loader::{self, LoadOptions, SetupError},
    report::{self, Stats},
    secrets,
    snapshot::{self, RootSpec},
    users::UserNames,
    Format,
};

pub struct RecordOptions {
    pub duration: Option<Duration>,
    pub all: bool,
    pub pids: Vec<u32>,
    pub comms: Vec<String>,
    pub format: Format,
    pub capture_secrets: bool,
}

/// CLOCK_MONOTONIC, the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Everything after the source: redaction, the model, live printing.
struct Pipeline {
    tracker: Tracker,
    users: UserNames,
    format: Format,
    capture_secrets: bool,
    printed: HashSet<usize>,
    decode_errors: u64,
    start_ns: u64,
}

impl Pipeline {
    fn feed(&mut self, mut ev: Event) {
        if !self.capture_secrets {
            secrets::redact(&mut ev);
        }
        let finished = self.tracker.push(ev);
        if self.format == Format::Text {
            for idx in finished {
                self.print_job(idx);
            }
        }
    }

    fn print_job(&mut self, idx: usize) {
        if !self.printed.insert(idx) {
            return;
        }
        let job = &self.tracker.jobs()[idx];
        let jr = report::job_report(&self.tracker, job, &self.users);
        let mut out = anstream::stdout().lock();
        let _ = report::write_job_text(&mut out, &jr, self.start_ns);
        let _ = out.flush();
    }
}

/// Followed roots, for the start-up line.
fn describe_roots(procs: &[snapshot::ProcInfo], tracked: &[(u32, bool)]) -> String {
    let roots: Vec<String> = tracked
        .iter()
        .filter(|(_, r)| *r)
        .filter_map(|(pid, _)| procs.iter().find(|p| p.pid == *pid))
        .map(|p| format!("{}[{}]", p.comm, p.pid))
        .take(12)
        .collect();
    if roots.is_empty() {
        "none running yet (waiting for one to start)".into()
    } else {
        roots.join(", ")
    }
}

pub fn run(opts: RecordOptions) -> Result<report::Report, SetupError> {
    loader::check_privileges()?;
    let (tracefs, mounted) = loader::ensure_tracefs()?;
    if mounted {
        eprintln!(
            "tracer: mounted tracefs at {} (unmounted again at exit)",
            tracefs.display()
        );
    }
    let result = run_attached(&opts, &tracefs);
    if mounted {
        loader::unmount_tracefs(&tracefs);
    }
    result
}

fn run_attached(
    opts: &RecordOptions,
    tracefs: &std::path::Path,
) -> Result<report::Report, SetupError> {
    let self_pid = std::process::id();
    let mut loaded = loader::load_and_attach(
        tracefs,
        &LoadOptions {
            trace_all: opts.all,
            self_tgid: self_pid,
        },
    )?;
    for m in &loaded.missing_optional {
        eprintln!("tracer: note: this kernel has no tracepoint {m}; those calls are not seen");
    }
    let spec = RootSpec::with_defaults(opts.comms.clone(), opts.pids.clone(), opts.all);
    for c in &spec.comms {
        loaded.add_root_comm(c).map_err(|e| SetupError {
            what: format!("could not register root comm {c}: {e}"),
            fix: "retry; if it persists, report it".into(),
        })?;
    }
    for pid in &opts.pids {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return Err(SetupError {
                what: format!("--pid {pid}: no such process"),
                fix: "check the pid with `pgrep -a cron` or `ps -ef`".into(),
            });
        }
    }
    let ring = loaded.take_ring()?;

    let start_ns = monotonic_ns();
    let mut pipe = Pipeline {
        tracker: Tracker::default(),
        users: UserNames::load(),
        format: opts.format,
        capture_secrets: opts.capture_secrets,
        printed: HashSet::new(),
        decode_errors: 0,
        start_ns,
    };

    // Seed after attaching: a fork between the scan and the attach would otherwise be lost.
    let procs = snapshot::read_all();
    let tracked = snapshot::roots_and_descendants(&procs, &spec, self_pid);
    let mut known: HashSet<u32> = HashSet::new();
    for &(pid, root) in &tracked {
        if let Some(p) = procs.iter().find(|p| p.pid == pid) {
            let _ = loaded.track(pid, p.ppid, root);
            known.insert(pid);
            pipe.feed(snapshot::to_event(p, root, start_ns));
        }
    }
    eprintln!(
        "tracer: attached {} tracepoints; following roots: {}; {}",
        loaded.attached,
        describe_roots(&procs, &tracked),
        match opts.duration {
            Some(d) => format!("stopping after {}s (Ctrl-C stops early)", d.as_secs_f64()),
            None => "Ctrl-C to stop".into(),
        }
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SetupError {
            what: format!("cannot start the event loop: {e}"),
            fix: "retry".into(),
        })?;
    let began = Instant::now();
    let lost;
    {
        // SAFETY: the RingBuf owns its map fd and keeps it open until it is dropped,
        // which happens only after the AsyncFd is gone.
        let registered = rt.block_on(async {
            unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        });
        let mut ring = registered.map_err(|e| SetupError {
            what: format!("cannot poll the ring buffer: {e}"),
            fix: "retry".into(),
        })?;
        rt.block_on(async {
            let mut term = tokio::signal::unix::signal(SignalKind::terminate()).ok();
            let mut int = tokio::signal::unix::signal(SignalKind::interrupt()).ok();
            let deadline = opts.duration.map(|d| tokio::time::Instant::now() + d);
            let mut rescan = tokio::time::interval(Duration::from_secs(2));
            rescan.tick().await;
            loop {
                tokio::select! {
                    guard = ring.readable_mut() => {
                        let Ok(mut guard) = guard else { break };
                        drain(guard.get_inner_mut(), &mut pipe);
                        guard.clear_ready();
                    }
                    _ = async { match &mut term { Some(s) => { s.recv().await; } None => std::future::pending().await } } => break,
                    _ = async { match &mut int { Some(s) => { s.recv().await; } None => std::future::pending().await } } => break,
                    _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break,
                    _ = rescan.tick() => {
                        // Daemons the kernel cannot spot by comm (busybox crond), or started
                        // between the scan and the attach.
                        let procs = snapshot::read_all();
                        let now = monotonic_ns();
                        for (pid, root) in snapshot::roots_and_descendants(&procs, &spec, self_pid) {
                            if known.contains(&pid) || (!root && loaded.is_tracked(pid)) {
                                known.insert(pid);
                                continue;
                            }
                            if let Some(p) = procs.iter().find(|p| p.pid == pid) {
                                if !loaded.is_tracked(pid) {
                                    let _ = loaded.track(pid, p.ppid, root);
                                    pipe.feed(snapshot::to_event(p, root, now));
                                }
                                known.insert(pid);
                            }
                        }
                    }
                }
            }
            // What the kernel wrote before we stopped listening.
            drain(ring.get_mut(), &mut pipe);
        });
        lost = loaded.lost();
        drop(ring);
    }
    pipe.tracker.close();
    let lost_events = lost.iter().map(|(_, v)| v).sum();
    let stats = Stats {
        events: pipe.tracker.counters.events,
        lost_events,
        lost_by_kind: lost.into_iter().collect(),
        jobs: 0,
        root_events: pipe.tracker.counters.root_events,
        unattributed_events: pipe.tracker.counters.unattributed_events,
        decode_errors: pipe.decode_errors,
        duration_ns: began.elapsed().as_nanos() as u64,
    };
    let rep = report::build(&pipe.tracker, &pipe.users, stats);
    match opts.format {
        Format::Json => {
            let mut out = std::io::stdout().lock();
            let _ = report::write_json(&mut out, &rep);
        }
        Format::Text => {
            let running: Vec<usize> = (0..pipe.tracker.jobs().len())
                .filter(|i| !pipe.printed.contains(i))
                .collect();
            for idx in running {
                pipe.print_job(idx);
            }
            let mut out = anstream::stdout().lock();
            let _ = report::write_summary_text(&mut out, &rep);
        }
    }
    // Detaching waits for an RCU grace period per probe (seconds in all): the report
    // is out first so the person at the terminal is not kept waiting for it.
    drop(loaded);
    Ok(rep)
}

fn drain(ring: &mut aya::maps::RingBuf<aya::maps::MapData>, pipe: &mut Pipeline) {
    let mut n = 0;
    while let Some(item) = ring.next() {
        n += 1;
        match decode(&item) {
            Ok(ev) => pipe.feed(ev),
            Err(e) => {
                pipe.decode_errors += 1;
                if pipe.decode_errors <= 5 {
                    eprintln!("tracer: skipped an undecodable kernel record: {e}");
                }
            }
        }
    }
    if std::env::var_os("TRACER_DEBUG").is_some() {
        eprintln!("drained {n}");
    }
}
