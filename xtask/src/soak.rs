//! The soak benchmark: `tracer record` follows a root that runs short jobs back to back
//! for a few minutes, and the tracer's resident memory is sampled every second. What
//! a long attach on a busy host costs in memory, and whether it keeps growing: peak,
//! final, and the slope over the second half (least squares). Needs root.
use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::procs::{job_env, status_kib, Group};

/// A bash root that forks one short job after another until killed: each is a job of
/// its own (a `sh -c`, a `cat` of two files, a `true`).
const ROOT: &str =
    "#!/bin/bash\nwhile :; do sh -c 'cat /etc/hostname /etc/passwd > /dev/null'; /bin/true; done\n";

/// Least-squares slope of (seconds, KiB) in KiB per minute.
fn slope_per_min(samples: &[(f64, u64)]) -> f64 {
    let n = samples.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (sx, sy) = samples
        .iter()
        .fold((0.0, 0.0), |(a, b), &(x, y)| (a + x, b + y as f64));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = samples.iter().fold((0.0, 0.0), |(a, b), &(x, y)| {
        (a + (x - mx) * (y as f64 - my), b + (x - mx) * (x - mx))
    });
    if den == 0.0 {
        0.0
    } else {
        num / den * 60.0
    }
}

pub struct Soak {
    pub mode: &'static str,
    pub secs: u64,
    pub jobs: u64,
    pub peak_kib: u64,
    pub final_kib: u64,
    pub slope_kib_min: f64,
}

/// One soak of `secs` seconds with `args` added to `tracer record`.
pub fn run(
    tracer: &Path,
    dir: &Path,
    mode: &'static str,
    args: &[&str],
    secs: u64,
) -> Result<Soak> {
    // A root of its own per mode (its comm is what `--comm` follows): the modes soak
    // at the same time without following each other's jobs.
    let name = format!("jt-soak-{mode}");
    let root = dir.join(&name);
    fs::write(&root, ROOT)?;
    Command::new("chmod").arg("755").arg(&root).status()?;
    let log = dir.join(format!("{mode}.jsonl"));
    let _ = fs::remove_file(&log);
    let mut t = Command::new(tracer);
    t.args(["record", "--comm", &name]).args(args);
    if mode == "follow" {
        t.args(["--follow", "--log"]).arg(&log);
    }
    let tracer = Group(
        t.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start tracer")?,
    );
    let pid = tracer.0.id();
    thread::sleep(Duration::from_secs(3));
    use std::os::unix::process::CommandExt;
    let load = Group(
        job_env(&mut Command::new(&root))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start the soak root")?,
    );
    let began = Instant::now();
    let mut samples = Vec::new();
    while began.elapsed() < Duration::from_secs(secs) {
        thread::sleep(Duration::from_secs(1));
        if let Some(k) = status_kib(pid, "VmRSS") {
            samples.push((began.elapsed().as_secs_f64(), k));
        }
    }
    drop(load);
    let mut tracer = tracer;
    // SAFETY: SIGINT to our child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let _ = tracer.0.wait();
    let jobs = fs::read_to_string(&log)
        .map(|s| s.lines().filter(|l| l.contains("\"type\":\"job\"")).count() as u64)
        .unwrap_or(0);
    let half: Vec<(f64, u64)> = samples
        .iter()
        .copied()
        .filter(|&(x, _)| x >= secs as f64 / 2.0)
        .collect();
    Ok(Soak {
        mode,
        secs,
        jobs,
        peak_kib: samples.iter().map(|s| s.1).max().unwrap_or(0),
        final_kib: samples.last().map_or(0, |s| s.1),
        slope_kib_min: slope_per_min(&half),
    })
}

pub fn print(rows: &[Soak]) {
    println!("\nsoak: a root forking short jobs back to back; the tracer's RSS each second");
    println!(
        "{:<8} {:>6} {:>8} {:>10} {:>10} {:>22}",
        "mode", "secs", "jobs", "peak MiB", "final MiB", "2nd-half slope KiB/min"
    );
    for r in rows {
        println!(
            "{:<8} {:>6} {:>8} {:>10.1} {:>10.1} {:>22.1}",
            r.mode,
            r.secs,
            if r.jobs > 0 {
                r.jobs.to_string()
            } else {
                "-".into()
            },
            r.peak_kib as f64 / 1024.0,
            r.final_kib as f64 / 1024.0,
            r.slope_kib_min
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn slope_is_per_minute() {
        let flat: Vec<(f64, u64)> = (0..10).map(|i| (i as f64, 100)).collect();
        assert_eq!(super::slope_per_min(&flat), 0.0);
        let rising: Vec<(f64, u64)> = (0..10).map(|i| (i as f64, 100 + i)).collect();
        assert!((super::slope_per_min(&rising) - 60.0).abs() < 1e-9);
    }
}
