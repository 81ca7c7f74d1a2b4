//! The only part that needs root: find tracefs, load the kernel programs, attach them
//! to their tracepoints, and give the rest of the tracer the maps it needs.
use std::{
    ffi::CString,
    fmt,
    path::{Path, PathBuf},
};

use super::followed;
use aya::{
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf},
    programs::{trace_point::TracePointLink, TracePoint},
    Ebpf, EbpfLoader,
};
use tracer_common::{
    Tracked, COMM_LEN, LOST_PENDING_FULL, LOST_SLOTS, LOST_TRACK_FULL, TRACKED_ROOT,
};

/// The kernel object, embedded at build time (empty when built without `cargo xtask build`).
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer.bpf.o"));

/// An error that stops the tracer before it could trace, with what to do about it.
#[derive(Debug)]
pub struct SetupError {
    pub what: String,
    pub fix: String,
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n  fix: {}", self.what, self.fix)
    }
}

impl std::error::Error for SetupError {}

fn err(what: impl Into<String>, fix: impl Into<String>) -> SetupError {
    SetupError {
        what: what.into(),
        fix: fix.into(),
    }
}

/// One tracepoint a program attaches to. `required` ones must exist; the others are
/// syscalls some kernels or architectures lack (their absence is reported, not fatal).
pub struct Attach {
    pub program: &'static str,
    pub category: &'static str,
    pub name: &'static str,
    pub required: bool,
}

const fn tp(
    program: &'static str,
    category: &'static str,
    name: &'static str,
    required: bool,
) -> Attach {
    Attach {
        program,
        category,
        name,
        required,
    }
}

/// Syscalls with an enter probe of their own name and the shared exit probe.
const SYSCALLS: [(&str, bool); 24] = [
    ("execve", true),
    ("execveat", false),
    ("open", false),
    ("openat", true),
    ("openat2", false),
    ("creat", false),
    ("socket", true),
    ("connect", true),
    ("getsockopt", true),
    ("chdir", true),
    ("fchdir", true),
    ("setuid", true),
    ("setgid", true),
    ("setreuid", true),
    ("setregid", true),
    ("setresuid", true),
    ("setresgid", true),
    ("setrlimit", true),
    ("prlimit64", true),
    ("wait4", true),
    ("clone", true),
    ("clone3", false),
    ("newfstatat", false),
    ("statx", false),
];

pub fn attachments() -> Vec<Attach> {
    let mut v = vec![
        tp("sched_process_fork", "sched", "sched_process_fork", true),
        tp("sched_process_exec", "sched", "sched_process_exec", true),
        tp("sched_process_exit", "sched", "sched_process_exit", true),
        tp("signal_generate", "signal", "signal_generate", true),
        tp(
            "sys_enter_exit_group",
            "syscalls",
            "sys_enter_exit_group",
            true,
        ),
    ];
    for (name, required) in SYSCALLS {
        v.push(Attach {
            program: leak(format!("sys_enter_{name}")),
            category: "syscalls",
            name: leak(format!("sys_enter_{name}")),
            required,
        });
        v.push(Attach {
            program: "sys_exit",
            category: "syscalls",
            name: leak(format!("sys_exit_{name}")),
            required,
        });
    }
    // Optional: a kernel without one of these calls cannot fail it.
    for (_, name) in tracer_common::FD_SYSCALLS {
        v.push(Attach {
            program: "sys_exit_fd",
            category: "syscalls",
            name: leak(format!("sys_exit_{name}")),
            required: false,
        });
    }
    v
}

fn leak(s: String) -> &'static str {
    // A fixed table built once per run.
    Box::leak(s.into_boxed_str())
}

/// Effective capabilities, from /proc/self/status.
pub fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

const CAP_SYS_ADMIN: u64 = 21;
const CAP_PERFMON: u64 = 38;
const CAP_BPF: u64 = 39;

pub fn check_privileges() -> Result<(), SetupError> {
    let caps = effective_caps();
    let has = |c: u64| caps & (1 << c) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    Err(err(
        format!(
            "not enough privilege to load eBPF programs (euid {}, missing CAP_BPF and CAP_PERFMON)",
            unsafe { libc::geteuid() }
        ),
        "run as root: sudo tracer ..., or grant the capabilities: sudo setcap cap_bpf,cap_perfmon,cap_sys_admin+ep $(command -v tracer)",
    ))
}

const TRACEFS_PATHS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Where tracefs is mounted, mounting it at /sys/kernel/tracing if it is not.
/// Returns (path, whether we mounted it).
pub fn ensure_tracefs() -> Result<(PathBuf, bool), SetupError> {
    for p in TRACEFS_PATHS {
        if Path::new(p).join("events").is_dir() {
            return Ok((PathBuf::from(p), false));
        }
    }
    let target = TRACEFS_PATHS[0];
    let c = |s: &str| CString::new(s).unwrap();
    let rc = unsafe {
        libc::mount(
            c("nodev").as_ptr(),
            c(target).as_ptr(),
            c("tracefs").as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(err(
            format!("tracefs is not mounted and mounting it at {target} failed: {e}"),
            format!("mount it by hand: sudo mount -t tracefs nodev {target} (the kernel needs CONFIG_TRACING)"),
        ));
    }
    if !Path::new(target).join("events").is_dir() {
        return Err(err(
            format!("tracefs mounted at {target} has no events/ directory"),
            "this kernel was built without tracepoint support (CONFIG_TRACEPOINTS / CONFIG_FTRACE_SYSCALLS)",
        ));
    }
    Ok((PathBuf::from(target), true))
}

pub fn unmount_tracefs(path: &Path) {
    if let Ok(c) = CString::new(path.as_os_str().to_string_lossy().as_bytes()) {
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Offset of `field` in a tracepoint's record, from its format file
/// (`field:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;`).
pub fn field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|l| {
        let l = l.trim();
        let decl = l.strip_prefix("field:")?.split(';').next()?;
        let name = decl.rsplit([' ', '*']).next()?.split('[').next()?;
        if name != field {
            return None;
        }
        l.split(';')
            .find_map(|p| p.trim().strip_prefix("offset:"))
            .and_then(|o| o.trim().parse().ok())
    })
}

fn read_format(tracefs: &Path, category: &str, name: &str) -> String {
    std::fs::read_to_string(
        tracefs
            .join("events")
            .join(category)
            .join(name)
            .join("format"),
    )
    .unwrap_or_default()
}

pub fn tracepoint_exists(tracefs: &Path, category: &str, name: &str) -> bool {
    tracefs.join("events").join(category).join(name).is_dir()
}

/// Slots of the kernel's per-thread table of syscalls waiting for their exit (the
/// kernel's default unless `TRACER_PENDING_SLOTS` says otherwise).
const PENDING_SLOTS: u32 = 8192;

/// `TRACER_PENDING_SLOTS=N` (a power of two, 1 to 65536) sizes the table of syscalls
/// waiting for their exit. A thread forked under a followed process gets the slot of
/// its tid modulo N when no live thread holds it; a thread without one keeps its calls
/// in a spill map. `TRACER_PENDING_SLOTS=1` sends the calls of all threads but one
/// there, which is how the tests reach that path.
fn pending_slots() -> Result<u32, SetupError> {
    let Ok(v) = std::env::var("TRACER_PENDING_SLOTS") else {
        return Ok(PENDING_SLOTS);
    };
    match v.trim().parse::<u32>() {
        Ok(n) if n.is_power_of_two() && n <= 65536 => Ok(n),
        _ => Err(err(
            format!("TRACER_PENDING_SLOTS={v:?} is not a power of two from 1 to 65536"),
            format!("unset it (the default is {PENDING_SLOTS}) or give a power of two"),
        )),
    }
}

/// Settings that go into the kernel programs.
pub struct LoadOptions {
    pub trace_all: bool,
    pub self_tgid: u32,
    /// aya-log level for the kernel programs (0 off: they then skip every log call).
    pub kernel_log_level: u8,
    /// The event ring buffer's size (a power of two of pages).
    pub ring_bytes: u32,
}

pub struct Loaded {
    /// The attachments, owned apart from the programs so that they can be let go in
    /// parallel (see `detach_all`); shared with the signal watcher for the same reason.
    pub links: Links,
    pub ebpf: Ebpf,
    /// Which tgids the kernel may skip without a `TRACKED` lookup (see `followed`).
    followed: followed::Followed,
    /// The kernel programs' log lines, when asked for (-v or RUST_LOG).
    kernel_log: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    /// Tracepoints attached, and the optional ones absent on this kernel.
    pub attached: usize,
    pub missing_optional: Vec<String>,
}

/// RLIMIT_MEMLOCK (soft, hard) before the loader raised it.
pub static ORIGINAL_MEMLOCK: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();

pub fn object_embedded() -> bool {
    !EBPF_OBJECT.is_empty()
}

pub fn load_and_attach(tracefs: &Path, opts: &LoadOptions) -> Result<Loaded, SetupError> {
    if !object_embedded() {
        return Err(err(
            "this tracer binary was built without its kernel programs",
            "build it with `cargo xtask build` (it builds the eBPF object and embeds it)",
        ));
    }
    // Older kernels charge BPF maps to RLIMIT_MEMLOCK; harmless where memcg accounting is used.
    // The limit we had is kept for the jobs `trigger` starts (they must get cron's).
    let mut before = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut before) } == 0 {
        let _ = ORIGINAL_MEMLOCK.set((before.rlim_cur, before.rlim_max));
    }
    let rl = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rl) };

    let all = attachments();
    for a in all.iter().filter(|a| a.required) {
        if !tracepoint_exists(tracefs, a.category, a.name) {
            return Err(err(
                format!(
                    "this kernel has no tracepoint {}/{} ({}/events/{}/{} is missing)",
                    a.category,
                    a.name,
                    tracefs.display(),
                    a.category,
                    a.name
                ),
                "use a kernel built with CONFIG_FTRACE_SYSCALLS and scheduler tracepoints (any distribution kernel since 4.x has them)",
            ));
        }
    }

    // Record layouts changed across kernels (comm arrays became __data_loc): take the
    // offsets from this kernel's own format files.
    let fork_fmt = read_format(tracefs, "sched", "sched_process_fork");
    let child_off = field_offset(&fork_fmt, "child_pid").ok_or_else(|| {
        err(
            "cannot find child_pid in sched/sched_process_fork's format file",
            "this kernel's scheduler tracepoints are not in a layout the tracer knows; report `uname -r` and that format file",
        )
    })?;
    let exit_fmt = read_format(tracefs, "sched", "sched_process_exit");
    let group_dead_off = field_offset(&exit_fmt, "group_dead").unwrap_or(0);
    let trace_all: u32 = opts.trace_all.into();
    let slots = pending_slots()?;
    let followed_entries = followed::entries();
    let mut ebpf = EbpfLoader::new()
        .map_max_entries("FOLLOWED", followed_entries)
        .override_global("PENDING_MASK", &(slots - 1), true)
        .map_max_entries("PENDING", slots)
        .override_global("SELF_TGID", &opts.self_tgid, true)
        .override_global("TRACE_ALL", &trace_all, true)
        .override_global("FORK_CHILD_PID_OFF", &child_off, true)
        .override_global("EXIT_GROUP_DEAD_OFF", &group_dead_off, true)
        .override_global(aya_log::LEVEL, &opts.kernel_log_level, true)
        .map_max_entries("EVENTS", opts.ring_bytes)
        .override_global("WAKE_AT_BYTES", &(opts.ring_bytes as u64 / 16), true)
        .load(EBPF_OBJECT)
        .map_err(|e| {
            err(
                format!("the kernel refused the eBPF programs: {e}"),
                "needs root (or CAP_BPF+CAP_PERFMON), BPF enabled (CONFIG_BPF_SYSCALL) and ring buffer maps (kernel 5.8+); check `tracer check`",
            )
        })?;

    let followed = match ebpf.map("FOLLOWED") {
        Some(aya::maps::Map::Array(data)) => followed::Followed::map(data, followed_entries),
        _ => Err("FOLLOWED is missing from the eBPF object or not an array".to_string()),
    }
    .map_err(|e| {
        err(
            e,
            "needs a kernel with mmap-able BPF arrays (5.5+); rebuild with `cargo xtask build` if the object is old",
        )
    })?;

    let mut loaded_programs = std::collections::HashSet::new();
    let mut links = Vec::new();
    let mut attached = 0;
    let mut missing_optional = Vec::new();
    for a in &all {
        if !tracepoint_exists(tracefs, a.category, a.name) {
            missing_optional.push(format!("{}/{}", a.category, a.name));
            continue;
        }
        let prog: &mut TracePoint = ebpf
            .program_mut(a.program)
            .ok_or_else(|| {
                err(
                    format!("program {} missing from the eBPF object", a.program),
                    "rebuild with `cargo xtask build`",
                )
            })?
            .try_into()
            .map_err(|e| {
                err(
                    format!("program {} is not a tracepoint: {e}", a.program),
                    "rebuild with `cargo xtask build`",
                )
            })?;
        if loaded_programs.insert(a.program) {
            prog.load().map_err(|e| {
                let detail = match &e {
                    aya::programs::ProgramError::LoadError {
                        io_error,
                        verifier_log,
                    } => {
                        format!("{io_error}\nverifier log:\n{verifier_log}")
                    }
                    other => other.to_string(),
                };
                err(
                    format!(
                        "the kernel verifier rejected program {}: {detail}",
                        a.program
                    ),
                    "report this with the output of `uname -r`; try `tracer check`",
                )
            })?;
        }
        let attach_err = |e: aya::programs::ProgramError| {
            err(
                format!(
                    "attaching {} to tracepoint {}/{} failed: {e}",
                    a.program, a.category, a.name
                ),
                "needs CAP_PERFMON (or root) and an accessible tracefs",
            )
        };
        let id = prog.attach(a.category, a.name).map_err(attach_err)?;
        links.push(prog.take_link(id).map_err(attach_err)?);
        attached += 1;
        log::debug!("attached {} to {}/{}", a.program, a.category, a.name);
    }
    let kernel_log = if opts.kernel_log_level > 0 {
        match aya_log::EbpfLogger::init(&mut ebpf) {
            Ok(l) => Some(l),
            Err(e) => {
                log::warn!("the kernel programs' log cannot be read ({e}); their anomalies are still counted");
                None
            }
        }
    } else {
        None
    };
    Ok(Loaded {
        links: std::sync::Arc::new(std::sync::Mutex::new(links)),
        ebpf,
        followed,
        kernel_log,
        attached,
        missing_optional,
    })
}

/// The tracepoint attachments of one run.
pub type Links = std::sync::Arc<std::sync::Mutex<Vec<TracePointLink>>>;

/// Let go of every attachment, several at a time: the kernel waits for an RCU grace
/// period as each tracepoint loses its last probe, and one after the other that is
/// seconds for the fifty of a run; side by side the waits overlap.
pub fn detach_all(links: &Links) {
    let all = match links.try_lock() {
        Ok(mut l) => std::mem::take(&mut *l),
        // Being let go by the other side already.
        Err(_) => return,
    };
    const THREADS: usize = 16;
    let per = all.len().div_ceil(THREADS).max(1);
    let mut all = all;
    let mut chunks = Vec::new();
    while !all.is_empty() {
        let rest = all.split_off(per.min(all.len()));
        chunks.push(std::mem::replace(&mut all, rest));
    }
    std::thread::scope(|s| {
        for c in chunks {
            s.spawn(move || drop(c));
        }
    });
}

/// The kernel lets go of a tracepoint probe only after an RCU grace period, under a
/// lock shared by all of them: seconds for a run's fifty, which a runbook would wait
/// for. A child that holds the descriptors takes that wait instead: the tracer exits
/// at once and the probes go a moment later (what they still write goes to a ring
/// buffer nobody reads). Returns false if no child could be made.
///
/// The child must outlast every thread of the tracer, not only its main one: the
/// thread that closes the descriptors is whichever leaves last, and the main thread
/// may go first. Watching `getppid()` alone let the child go as soon as the main
/// thread had, and then the signal thread's exit released each probe in turn (6.3 s
/// to stop, about one run in six here). A pidfd of the tracer, opened before the fork,
/// becomes readable only once its whole thread group is gone.
pub fn release_in_background() -> bool {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: a plain syscall with no pointers; -1 (kernels before 5.3) falls back to
    // watching the parent pid.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, parent, 0) } as i32;
    // SAFETY: the child only polls, closes descriptors, sleeps and exits
    // (async-signal-safe calls, all a child of a threaded process may make).
    let forked = unsafe { libc::fork() };
    match forked {
        0 => unsafe {
            // Not the terminal's or a pipe reader's to wait for.
            libc::close(0);
            libc::close(1);
            libc::close(2);
            // Hold the descriptors until the tracer is gone, so that its copies are
            // never the last ones; then this exit is the one that waits. Bounded, in
            // case the tracer outlives its report (it never should).
            if pidfd >= 0 {
                let mut p = libc::pollfd {
                    fd: pidfd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                libc::poll(&mut p, 1, 60_000);
            } else {
                let nap = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 10_000_000,
                };
                for _ in 0..6000 {
                    if libc::getppid() != parent {
                        break;
                    }
                    libc::nanosleep(&nap, std::ptr::null_mut());
                }
            }
            libc::_exit(0)
        },
        -1 => {
            if pidfd >= 0 {
                // SAFETY: our own descriptor, closed once.
                unsafe { libc::close(pidfd) };
            }
            false
        }
        _ => true,
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        if !release_in_background() {
            detach_all(&self.links);
        }
    }
}

impl Loaded {
    /// Print what the kernel programs logged since the last call.
    pub fn flush_kernel_log(&mut self) {
        if let Some(l) = self.kernel_log.as_mut() {
            l.flush();
        }
    }

    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>, SetupError> {
        let map = self.ebpf.take_map("EVENTS").ok_or_else(|| {
            err(
                "EVENTS map missing from the eBPF object",
                "rebuild with `cargo xtask build`",
            )
        })?;
        RingBuf::try_from(map)
            .map_err(|e| err(format!("EVENTS is not a ring buffer: {e}"), "rebuild"))
    }

    /// Follow `pid` (as a root, or as a descendant of one).
    pub fn track(&mut self, pid: u32, ppid: u32, root: bool) -> Result<(), String> {
        let map = self.ebpf.map_mut("TRACKED").ok_or("TRACKED map missing")?;
        let mut m: BpfHashMap<&mut MapData, u32, Tracked> =
            BpfHashMap::try_from(map).map_err(|e| e.to_string())?;
        let t = Tracked {
            ppid,
            flags: if root { TRACKED_ROOT } else { 0 },
            exit_code: 0,
            last_signal: 0,
            stat_misses: 0,
        };
        // Before the entry: the probes skip a tgid whose byte is clear.
        self.followed.mark(pid);
        m.insert(pid, t, 0).map_err(|e| e.to_string())?;
        // Found in /proc, gone before the entry went in: the exit probe will never
        // remove it, and a new process given the pid would be followed by mistake.
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = m.remove(&pid);
        }
        Ok(())
    }

    /// Entries of processes that no longer exist (one found in `/proc` that exited
    /// between the scan and its insertion, an exit record the kernel could not write):
    /// removed, so the map never fills with the dead and a reused pid is not followed.
    /// Returns how many.
    pub fn sweep_tracked(&mut self) -> usize {
        let Some(map) = self.ebpf.map_mut("TRACKED") else {
            return 0;
        };
        let Ok(mut m) = BpfHashMap::<&mut MapData, u32, Tracked>::try_from(map) else {
            return 0;
        };
        let dead: Vec<u32> = m
            .keys()
            .filter_map(Result::ok)
            .filter(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
            .collect();
        dead.iter().filter(|pid| m.remove(pid).is_ok()).count()
    }

    pub fn is_tracked(&self, pid: u32) -> bool {
        let Some(map) = self.ebpf.map("TRACKED") else {
            return false;
        };
        let Ok(m) = BpfHashMap::<&MapData, u32, Tracked>::try_from(map) else {
            return false;
        };
        m.get(&pid, 0).is_ok()
    }

    /// Processes that exec with this comm become roots.
    pub fn add_root_comm(&mut self, comm: &str) -> Result<(), String> {
        let map = self
            .ebpf
            .map_mut("ROOT_COMMS")
            .ok_or("ROOT_COMMS map missing")?;
        let mut m: BpfHashMap<&mut MapData, [u8; COMM_LEN], u8> =
            BpfHashMap::try_from(map).map_err(|e| e.to_string())?;
        let mut key = [0u8; COMM_LEN];
        let b = comm.as_bytes();
        let n = b.len().min(COMM_LEN - 1);
        key[..n].copy_from_slice(&b[..n]);
        m.insert(key, 1, 0).map_err(|e| e.to_string())
    }

    /// Records the kernel dropped, per kind.
    pub fn lost(&self) -> Vec<(String, u64)> {
        let Some(map) = self.ebpf.map("LOST") else {
            return Vec::new();
        };
        let Ok(arr) = PerCpuArray::<&MapData, u64>::try_from(map) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for slot in 0..LOST_SLOTS {
            let total: u64 = arr.get(&slot, 0).map(|v| v.iter().sum()).unwrap_or(0);
            let name = match slot {
                LOST_TRACK_FULL => "tracked_map_full".to_string(),
                LOST_PENDING_FULL => "pending_map_full".to_string(),
                k => tracer_common::RecordKind::try_from(k)
                    .map(|k| format!("{k:?}").to_lowercase())
                    .unwrap_or_else(|_| format!("slot_{k}")),
            };
            out.push((name, total));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::field_offset;

    #[test]
    fn offsets_come_from_the_format_file_for_old_and_new_layouts() {
        let new = "name: sched_process_fork\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;\n\tfield:__data_loc char[] child_comm;\toffset:16;\tsize:4;\tsigned:0;\n\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n";
        let old = "\tfield:char parent_comm[16];\toffset:8;\tsize:16;\tsigned:1;\n\tfield:pid_t parent_pid;\toffset:24;\tsize:4;\tsigned:1;\n\tfield:char child_comm[16];\toffset:28;\tsize:16;\tsigned:1;\n\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;\n";
        assert_eq!(field_offset(new, "child_pid"), Some(20));
        assert_eq!(field_offset(old, "child_pid"), Some(44));
        assert_eq!(field_offset(old, "child_comm"), Some(28));
        assert_eq!(field_offset(old, "group_dead"), None);
    }
}
