//! What one system call costs while the tracer is attached, in nanoseconds: a workload's
//! ratio moves by several percent from run to run on a shared machine, which hides a
//! cost of 1%, while a loop of one call, timed on its quietest stretch, does not.
//!
//! Three calls: `getppid`, which no tracer program watches (it pays only for syscall
//! tracepoints being on at all); `stat` of a file that exists, watched at entry and
//! exit but never sent (a job's successful stats are not kept); and `open`+`close`,
//! whose open is a record when the caller is followed.
use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use super::{interrupt, wait_for_programs, Bench, Mode};

/// Calls per timed stretch, and stretches per loop: the quietest stretch is the figure.
const CALLS: u32 = 4_000;
const STRETCHES: u32 = 75;

pub const LOOPS: [&str; 3] = ["getppid", "stat", "open+close"];

/// The hidden `xtask __syscall-loop CALL`: prints the nanoseconds per call of the
/// quietest stretch.
pub fn syscall_loop(call: &str) -> Result<()> {
    let one: fn() -> bool = match call {
        "getppid" => || {
            // SAFETY: no arguments, cannot fail.
            unsafe { libc::getppid() };
            true
        },
        // SAFETY: a NUL-terminated path and a stat buffer of our own.
        "stat" => || unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            libc::stat(c"/etc/hostname".as_ptr(), &mut st) == 0
        },
        // SAFETY: a NUL-terminated path; the descriptor is ours to close.
        "open+close" => || unsafe {
            let fd = libc::open(c"/etc/hostname".as_ptr(), libc::O_RDONLY);
            fd >= 0 && libc::close(fd) == 0
        },
        other => bail!("unknown call {other:?}: {}", LOOPS.join(", ")),
    };
    let stretch = || -> Result<Duration> {
        let t = Instant::now();
        for _ in 0..CALLS {
            if !one() {
                bail!("{call} of /etc/hostname failed");
            }
        }
        Ok(t.elapsed())
    };
    stretch()?;
    let mut best = Duration::MAX;
    for _ in 0..STRETCHES {
        best = best.min(stretch()?);
    }
    println!("{:.1}", best.as_nanos() as f64 / CALLS as f64);
    Ok(())
}

fn time_loop(call: &str) -> Result<f64> {
    let exe = std::env::current_exe().context("find the xtask binary")?;
    let out = Command::new(exe)
        .args(["__syscall-loop", call])
        .output()
        .context("run the syscall loop")?;
    if !out.status.success() {
        bail!(
            "the {call} loop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .with_context(|| format!("the {call} loop's output"))
}

/// The modes a per-call figure is taken under: nothing, the tracer following another
/// root (what every process on the host pays), and `--all` (a followed caller).
pub const MODES: [Mode; 3] = [Mode::Nothing, Mode::Unrelated, Mode::All];

impl Bench<'_> {
    /// Nanoseconds per call of each of `LOOPS` under `mode`.
    pub(super) fn per_call(&self, mode: Mode) -> Result<Vec<f64>> {
        let (out, err) = (self.dir.join("percall-out"), self.dir.join("percall-err"));
        let tool = match mode.tracer_args() {
            Some(args) => Some(self.start_tracer(args, None, &out, &err)?),
            None => None,
        };
        let ns = LOOPS
            .iter()
            .map(|c| time_loop(c))
            .collect::<Result<Vec<_>>>();
        if let Some(mut t) = tool {
            interrupt(&mut t);
        }
        wait_for_programs(self.programs_before);
        ns
    }
}

/// `ns[mode][round][call]`, the quietest round of each. With the number of watched
/// calls one workload run makes (`watched`) and its CPU seconds with nothing attached,
/// what mode 2 costs that workload follows from the per-call figures, free of the
/// run-to-run noise of its wall time.
///
/// The quietest round, not the median: noise only adds time, and a whole loop here
/// sometimes runs half again as slow as the loop before it (a stat of 410 ns, then 610,
/// with nothing attached). A median of three bare loops caught two slow ones in a full
/// run, and the tracer's modes came out cheaper than nothing.
/// Prints the per-call table and mode 2's share; returns the perf path's ms a workload
/// run (its watched calls at mode 2's price each), when both modes were measured.
pub fn print(
    ns: &[Vec<Vec<f64>>],
    rounds: usize,
    watched: Option<u64>,
    work_cpu: f64,
) -> Option<f64> {
    let best = |m: usize, c: usize| ns[m].iter().map(|r| r[c]).fold(f64::INFINITY, f64::min);
    if ns.first().is_none_or(|b| b.is_empty()) {
        return None;
    }
    println!(
        "\nper call: ns per system call, the quietest of {STRETCHES} stretches of {CALLS} calls, in the quietest of {rounds} rounds"
    );
    print!("{:<12}", "call");
    for m in MODES {
        print!(" {:>30}", m.name());
    }
    println!();
    for (c, call) in LOOPS.iter().enumerate() {
        let base = best(0, c);
        print!("{call:<12}");
        for (m, _) in MODES.iter().enumerate() {
            if ns[m].is_empty() {
                print!(" {:>30}", "-");
                continue;
            }
            let v = best(m, c);
            if m == 0 {
                print!(" {v:>30.1}");
            } else {
                print!(" {:>30}", format!("{v:.1} ({:+.1})", v - base));
            }
        }
        println!();
    }
    if ns[1].is_empty() {
        return None;
    }
    let Some(watched) = watched else {
        println!("(mode 2's share from these needs the --all run's count of watched calls: run mode 4 too)");
        return None;
    };
    // A watched call made by a process nobody follows: stat and open, averaged.
    let added = (best(1, 1) - best(0, 1) + best(1, 2) - best(0, 2)) / 2.0;
    let secs = watched as f64 * added / 1e9;
    println!(
        "mode 2's watched calls: {watched} per workload run (sys_exit's runs on the host during the --all run) x {added:.0} ns = {:.1} ms, x{:.4} of the workload's {work_cpu:.2} CPU s (the rest of mode 2: the scheduler probes' runs, and the getppid line's cost for every other call)",
        secs * 1e3,
        1.0 + secs / work_cpu.max(1e-9)
    );
    Some(secs * 1e3)
}
