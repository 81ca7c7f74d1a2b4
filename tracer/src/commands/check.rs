//! `tracer check`: the runbook's preflight. One line per check, with the fix.
use std::path::Path;

use crate::{capture::loader, capture::snapshot};

pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// Fails the run (exit 2) when not ok; otherwise a warning.
    pub required: bool,
    pub detail: String,
    pub fix: String,
}

pub fn run_checks() -> Vec<Check> {
    let mut v = Vec::new();
    let priv_ok = loader::check_privileges();
    v.push(Check {
        name: "privileges",
        ok: priv_ok.is_ok(),
        required: true,
        detail: match &priv_ok {
            Ok(()) => format!("euid {}, can load eBPF", unsafe { libc::geteuid() }),
            Err(e) => e.what.clone(),
        },
        fix: priv_ok.err().map(|e| e.fix).unwrap_or_default(),
    });
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    v.push(Check {
        name: "btf",
        ok: btf,
        required: false,
        detail: if btf { "/sys/kernel/btf/vmlinux present".into() } else { "no /sys/kernel/btf/vmlinux".into() },
        fix: "not needed by the tracepoint probes; a kernel with CONFIG_DEBUG_INFO_BTF helps other tools".into(),
    });
    let bpf_on = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok()
        || Path::new("/sys/fs/bpf").exists();
    v.push(Check {
        name: "bpf",
        ok: bpf_on,
        required: true,
        detail: if bpf_on {
            "BPF syscall available".into()
        } else {
            "no sign of BPF support (/sys/fs/bpf, /proc/sys/kernel/bpf_stats_enabled)".into()
        },
        fix: "use a kernel with CONFIG_BPF_SYSCALL=y".into(),
    });
    let tracefs = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .find(|p| Path::new(p).join("events").is_dir());
    v.push(Check {
        name: "tracefs",
        ok: tracefs.is_some(),
        required: false,
        detail: match tracefs {
            Some(p) => format!("mounted at {p}"),
            None => "not mounted (tracer record mounts it itself when run as root)".into(),
        },
        fix: "sudo mount -t tracefs nodev /sys/kernel/tracing".into(),
    });
    if let Some(tf) = tracefs {
        let missing: Vec<String> = loader::attachments()
            .iter()
            .filter(|a| a.required && !loader::tracepoint_exists(Path::new(tf), a.category, a.name))
            .map(|a| format!("{}/{}", a.category, a.name))
            .collect();
        v.push(Check {
            name: "tracepoints",
            ok: missing.is_empty(),
            required: true,
            detail: if missing.is_empty() {
                "all required tracepoints present".into()
            } else {
                format!("missing: {}", missing.join(", "))
            },
            fix: "use a kernel with CONFIG_FTRACE_SYSCALLS and scheduler tracepoints".into(),
        });
    }
    v.push(Check {
        name: "kernel programs",
        ok: loader::object_embedded(),
        required: true,
        detail: if loader::object_embedded() {
            "embedded in this binary".into()
        } else {
            "this binary was built without them".into()
        },
        fix: "build with `cargo xtask build`".into(),
    });
    let procs = snapshot::read_all();
    let spec = snapshot::RootSpec::with_defaults(vec![], vec![], false);
    let daemons: Vec<String> = procs
        .iter()
        .filter(|p| spec.is_root(p))
        .map(|p| format!("{}[{}]", p.comm, p.pid))
        .collect();
    v.push(Check {
        name: "schedulers",
        ok: !daemons.is_empty(),
        required: false,
        detail: if daemons.is_empty() {
            "no cron/crond/anacron/atd running: scheduled jobs cannot fire".into()
        } else {
            format!("running: {}", daemons.join(", "))
        },
        fix: "start the scheduler (e.g. `systemctl start cron` or `/usr/sbin/cron`)".into(),
    });
    v
}

/// Print one line per check (and its fix); exit 2 when a required check failed.
pub fn print_and_exit_code(checks: &[Check]) -> std::process::ExitCode {
    let mut failed = false;
    for c in checks {
        let (tag, fix) = match (c.ok, c.required) {
            (true, _) => ("ok  ", false),
            (false, true) => {
                failed = true;
                ("FAIL", true)
            }
            (false, false) => ("warn", true),
        };
        println!("{tag} {:<16} {}", c.name, c.detail);
        if fix && !c.fix.is_empty() {
            println!("     {:<16} fix: {}", "", c.fix);
        }
    }
    std::process::ExitCode::from(if failed {
        super::EXIT_ERROR
    } else {
        super::EXIT_CLEAN
    })
}
