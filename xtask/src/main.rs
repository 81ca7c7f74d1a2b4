//! Build orchestration: `cargo xtask build | run -- ARGS | test | lint`.
//!
//! `build` makes a fresh machine ready by itself: the nightly's rust-src, a bpf-linker
//! linked against the nightly toolchain's own libLLVM (kept under ~/.cache and reused),
//! then the eBPF object, then the release `tracer` with the object embedded.
use std::{
    env,
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

mod cost;
mod procs;
mod soak;

const BPF_LINKER_VERSION: &str = "0.13.0";
const USAGE: &str = "usage: cargo xtask <command>

commands:
  build            install what is missing (rust-src, bpf-linker), build the eBPF
                   object and the release tracer with it embedded
  run -- ARGS      build, then run `tracer ARGS` as root
  test [ARGS]      install the Debian packages the tests drive when missing, build,
                   then run every test (unit, kernel, real cron); ARGS go to cargo
                   test, e.g. `cargo xtask test --test cron_diagnosis`
  test-unit [ARGS] the tests that need no root, no kernel and no cron (fast)
  lint             cargo fmt --check and cargo clippy -D warnings, for both workspaces
  bench [PART] [N]  PART replay, soak or cost (default: all three), N runs:
                   replay: throughput (events/s) against read/decode baselines;
                   soak (root): the tracer follows a root forking short jobs back
                   to back for SOAK_SECS (default 90) per mode, its RSS sampled
                   each second (peak, final, second-half slope);
                   cost (root): one workload, in the environment cron gives a
                   job, with nothing attached, the tracer following another
                   root, following it, --all, strace -f, bpftrace, and
                   empty programs on the tracer's tracepoints (the floor),
                   interleaved, N rounds (default 5): wall, CPU, ratios,
                   events/s, losses, RSS, attach and stop times, and the kernel
                   time per tracer program (from one more, untimed --all run,
                   and mode 2's total from one more mode 2 run), ns per syscall
                   (getppid, stat, open) with nothing attached, mode 2 and
                   --all, and mode 2's cost on the workload from them;
                   COST_MODES=2,4 runs only those modes besides mode 1; then an
                   event-heavy variant back to back for COST_SUSTAINED_SECS
                   (default 20, 0 skips) under modes 3 and 4: events/s kept up
                   with, lost; then replays of its recording";

fn main() {
    if let Err(e) = real_main() {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let mut args = env::args().skip(1);
    let cmd = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match cmd.as_str() {
        "build" => build().map(|_| ()),
        "run" => {
            let bin = build()?;
            let rest: Vec<String> = rest.into_iter().skip_while(|a| a == "--").collect();
            run_as_root(&bin, &rest)
        }
        "test" => {
            if !is_root() {
                bail!("the kernel and cron tests load eBPF programs and drive the cron daemon: run as root (sudo -E cargo xtask test), or `cargo xtask test-unit` for the tests that need neither");
            }
            ensure_packages(&TEST_PACKAGES)?;
            let bin = build()?;
            test(&bin, &rest)
        }
        "test-unit" => run(clean("cargo")
            .args(["test", "--locked", "-p", "tracer"])
            .args(&rest)
            .current_dir(root_dir())),
        "lint" => lint(),
        "bench" => {
            let runs: Vec<&String> = rest.iter().filter(|a| a.parse::<usize>().is_ok()).collect();
            let parts: Vec<&str> = rest
                .iter()
                .filter(|a| a.parse::<usize>().is_err())
                .map(String::as_str)
                .collect();
            if let Some(p) = parts
                .iter()
                .find(|p| !["replay", "soak", "cost"].contains(p))
            {
                bail!("unknown bench {p:?}: replay, soak or cost (default: all three)\n\n{USAGE}");
            }
            let wants = |p: &str| parts.is_empty() || parts.contains(&p);
            if wants("replay") {
                run(clean("cargo")
                    .args([
                        "bench", "--locked", "-p", "tracer", "--bench", "replay", "--",
                    ])
                    .args(&runs)
                    .current_dir(root_dir())
                    // The value `build` gives it: the tracer's build script reruns
                    // when it changes, and the soak and cost parts would rebuild the
                    // tracer after this (half a minute each way).
                    .env("TRACER_EBPF_OBJECT", ebpf_object()))?;
            }
            if wants("soak") {
                soak_bench()?;
            }
            if wants("cost") {
                let n = runs.first().and_then(|r| r.parse().ok()).unwrap_or(5);
                cost_bench(n)?;
            }
            Ok(())
        }
        // The cost bench's per-call loop, run as a child (not for users).
        "__syscall-loop" => cost::syscall_loop(rest.first().map_or("", String::as_str)),
        "" | "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

/// The cost on the host: the tracer's modes, strace and bpftrace on one workload.
fn cost_bench(runs: usize) -> Result<()> {
    if !is_root() {
        println!("\ncost: skipped (needs root: sudo -E cargo xtask bench)");
        return Ok(());
    }
    ensure_packages(BENCH_PACKAGES)?;
    let bin = build()?;
    let dir = env::temp_dir().join(format!("jt-cost-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let r = cost::run(&bin, &dir, runs.max(1));
    let _ = fs::remove_dir_all(&dir);
    r
}

/// What the cost bench compares the tracer with.
const BENCH_PACKAGES: &[(&str, &str, &str)] = &[
    (
        "strace",
        "/usr/bin/strace",
        "the cost bench's strace -f mode",
    ),
    (
        "bpftrace",
        "/usr/bin/bpftrace",
        "the cost bench's bpftrace mode",
    ),
    (
        "bpftool",
        "/usr/sbin/bpftool",
        "the cost bench's per-program kernel time",
    ),
];

/// The soak, in the modes a long attach runs in: the default report (jobs kept as
/// summaries) and `--follow` (jobs let go once printed).
fn soak_bench() -> Result<()> {
    if !is_root() {
        println!("\nsoak: skipped (needs root: sudo -E cargo xtask bench)");
        return Ok(());
    }
    let secs: u64 = env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90);
    let bin = build()?;
    let dir = env::temp_dir().join(format!("jt-soak-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    // Both modes at once, each following a root of its own: what is measured is each
    // tracer's memory over time, and one after the other they took three of the
    // bench's ten minutes.
    let (json, follow) = std::thread::scope(|s| {
        let json = s.spawn(|| soak::run(&bin, &dir, "json", &["--format", "json"], secs));
        let follow = s.spawn(|| soak::run(&bin, &dir, "follow", &[], secs));
        (json.join(), follow.join())
    });
    let joined = |r: std::thread::Result<Result<soak::Soak>>| {
        r.unwrap_or_else(|_| Err(anyhow::anyhow!("a soak thread panicked")))
    };
    let rows = vec![joined(json)?, joined(follow)?];
    let _ = fs::remove_dir_all(&dir);
    soak::print(&rows);
    Ok(())
}

fn root_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A command with the toolchain variables of the outer `cargo xtask` removed, so the
/// inner cargo picks its toolchain from its own arguments.
fn clean(program: &str) -> Command {
    let mut c = Command::new(program);
    for v in [
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        c.env_remove(v);
    }
    c
}

fn run(c: &mut Command) -> Result<()> {
    let status = c.status().with_context(|| format!("cannot start {c:?}"))?;
    if !status.success() {
        bail!("{c:?} failed ({status})");
    }
    Ok(())
}

fn output(c: &mut Command) -> Result<String> {
    let out = c.output().with_context(|| format!("cannot start {c:?}"))?;
    if !out.status.success() {
        bail!(
            "{c:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn nightly_sysroot() -> Result<PathBuf> {
    let s = output(clean("rustc").args(["+nightly", "--print", "sysroot"])).context(
        "the nightly toolchain is needed to build the eBPF object (rustup toolchain install nightly)",
    )?;
    Ok(PathBuf::from(s))
}

fn ensure_rust_src() -> Result<()> {
    let installed = output(clean("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))?;
    if !installed.lines().any(|l| l.starts_with("rust-src")) {
        eprintln!("xtask: installing rust-src for the nightly toolchain");
        run(clean("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
    }
    Ok(())
}

/// bpf-linker must link the same LLVM major as the nightly rustc; Debian's LLVM is too
/// old, so it is built against the libLLVM the nightly toolchain ships.
fn ensure_bpf_linker() -> Result<PathBuf> {
    if let Some(p) = env::var_os("BPF_LINKER") {
        return Ok(PathBuf::from(p));
    }
    let sysroot = nightly_sysroot()?;
    let lib_dir = sysroot.join("lib");
    let llvm = fs::read_dir(&lib_dir)
        .with_context(|| format!("reading {}", lib_dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libLLVM.so.")
                    || (n.starts_with("libLLVM-")
                        && n.ends_with(".so")
                        && fs::metadata(p)
                            .map(|m| m.len() > 1_000_000)
                            .unwrap_or(false))
            })
        })
        .with_context(|| format!("no libLLVM shared library in {}", lib_dir.display()))?;
    let soname = llvm.file_name().unwrap().to_string_lossy().to_string();
    // "libLLVM.so.22.1-rust-..." -> 22
    let major: String = soname
        .trim_start_matches("libLLVM.so.")
        .trim_start_matches("libLLVM-")
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    if major.is_empty() {
        bail!("cannot tell the LLVM version of {soname}");
    }
    let home = env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    let prefix = home
        .join(".cache/jobtrace")
        .join(format!("bpf-linker-{BPF_LINKER_VERSION}-{soname}"));
    let bin = prefix.join("bin/bpf-linker");
    if bin.exists() {
        return Ok(bin);
    }
    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER_VERSION} against {} (about a minute, once)",
        llvm.display()
    );
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib)?;
    for name in ["libLLVM.so".to_string(), soname.clone()] {
        let link = lib.join(&name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&llvm, &link)?;
    }
    run(clean("cargo")
        .args([
            "install",
            "bpf-linker",
            "--locked",
            "--version",
            BPF_LINKER_VERSION,
            "--root",
        ])
        .arg(&prefix)
        .args(["--no-default-features", "--features"])
        .arg(format!("llvm-{major}"))
        .env("LLVM_PREFIX", &prefix))?;
    Ok(bin)
}

fn build_ebpf() -> Result<PathBuf> {
    ensure_rust_src()?;
    let linker = ensure_bpf_linker()?;
    let dir = root_dir().join("tracer-ebpf");
    let mut path = OsString::from(linker.parent().unwrap());
    path.push(":");
    path.push(env::var_os("PATH").unwrap_or_default());
    run(clean("cargo")
        .args(["+nightly", "build", "--release", "--locked"])
        .current_dir(&dir)
        .env("PATH", path))?;
    let obj = ebpf_object();
    if !obj.exists() {
        bail!("the eBPF build left no object at {}", obj.display());
    }
    Ok(obj)
}

fn build() -> Result<PathBuf> {
    let obj = build_ebpf()?;
    let root = root_dir();
    run(clean("cargo")
        .args(["build", "--release", "--locked", "-p", "tracer"])
        .current_dir(&root)
        .env("TRACER_EBPF_OBJECT", &obj))?;
    Ok(root.join("target/release/tracer"))
}

/// Where `build_ebpf` leaves the kernel object (whether or not it has been built).
fn ebpf_object() -> PathBuf {
    root_dir().join("tracer-ebpf/target/bpfel-unknown-none/release/tracer-ebpf")
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u"))
        .map(|s| s == "0")
        .unwrap_or(false)
}

fn run_as_root(bin: &Path, args: &[String]) -> Result<()> {
    let mut c = if is_root() {
        Command::new(bin)
    } else {
        let mut c = Command::new("sudo");
        c.arg("--preserve-env").arg(bin);
        c
    };
    let status = c.args(args).status().context("starting tracer")?;
    std::process::exit(status.code().unwrap_or(2));
}

/// Debian packages the tests drive, the program each provides, and why.
const TEST_PACKAGES: [(&str, &str, &str); 9] = [
    (
        "systemd",
        "/lib/systemd/systemd",
        "a real systemd (PID 1 of a test namespace) whose timers start services",
    ),
    ("at", "/usr/sbin/atd", "atd, which runs at jobs"),
    (
        "anacron",
        "/usr/sbin/anacron",
        "anacron, which runs anacrontab jobs",
    ),
    (
        "cron",
        "/usr/sbin/cron",
        "the real Debian cron daemon the diagnosis is proven against",
    ),
    (
        "busybox-static",
        "/bin/busybox",
        "busybox crond, a second scheduler",
    ),
    (
        "exim4-daemon-light",
        "/usr/sbin/exim4",
        "an MTA, so cron mails job output (a test makes mailing fail)",
    ),
    (
        "curl",
        "/usr/bin/curl",
        "a non-blocking connect to a closed port",
    ),
    (
        "bpftool",
        "/usr/sbin/bpftool",
        "to check that every probe is detached after a run",
    ),
    (
        "util-linux",
        "/usr/bin/unshare",
        "unshare: a test cron in its own mount namespace",
    ),
];

fn dpkg_installed(pkg: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_ok_and(|s| s == "install ok installed")
}

/// The tests use real daemons and tools: install the missing ones (Debian, as root),
/// or say exactly what to install elsewhere.
fn ensure_packages(wanted: &[(&str, &str, &str)]) -> Result<()> {
    let missing: Vec<&(&str, &str, &str)> = wanted
        .iter()
        .filter(|(pkg, prog, _)| !Path::new(prog).exists() || !dpkg_installed(pkg))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|(p, _, _)| *p).collect();
    if !Path::new("/etc/debian_version").exists() || which("apt-get").is_none() {
        let list: Vec<String> = missing
            .iter()
            .map(|(p, prog, why)| format!("  {p} ({prog}): {why}"))
            .collect();
        bail!(
            "the tests need programs this host lacks, and it is not Debian (no apt-get): install these, or their equivalents, then rerun:\n{}",
            list.join("\n")
        );
    }
    for (p, _, why) in &missing {
        eprintln!("xtask: installing {p}: {why}");
    }
    run(Command::new("apt-get")
        .args(["update", "-q"])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&names)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    Ok(())
}

fn which(prog: &str) -> Option<PathBuf> {
    env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(prog))
        .find(|p| p.exists())
}

fn test(bin: &Path, extra: &[String]) -> Result<()> {
    let root = root_dir();
    run(clean("cargo")
        .args(["test", "--release", "--locked", "--workspace"])
        .args(extra)
        .current_dir(&root)
        .env("TRACER_EBPF_OBJECT", ebpf_object())
        .env("TRACER_BIN", bin))
}

fn lint() -> Result<()> {
    let root = root_dir();
    run(clean("cargo")
        .args(["fmt", "--all", "--check"])
        .current_dir(&root))?;
    // The eBPF crate is its own workspace; rustfmt follows its modules from main.rs.
    run(clean("rustfmt")
        .args(["--check", "--edition", "2021"])
        .arg(root.join("tracer-ebpf/src/main.rs")))?;
    run(clean("cargo")
        .args([
            "clippy",
            "--locked",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .current_dir(&root))?;
    Ok(())
}
