//! What a healthy job does that is never a cause: library, locale and terminfo
//! probes, optional dotfiles, PAM and NSS lookups. The rules skip these, and the
//! text timeline counts them instead of showing them; one list serves both.
use crate::model::event::{Body, Event};

/// Paths a healthy program probes and may not find: never a cause.
/// Not every file under /usr/lib: a script's data there is a real need; the loader's
/// libraries and the interpreters' module searches are the probes.
pub fn is_noise_path(path: &str) -> bool {
    const PREFIXES: [&str; 16] = [
        "/usr/lib/locale",
        "/usr/share/locale",
        "/usr/lib/x86_64-linux-gnu/gconv",
        "/etc/ld.so",
        "/proc/",
        "/sys/",
        "/dev/",
        "/usr/share/terminfo",
        "/etc/terminfo",
        "/run/nscd",
        "/usr/share/zoneinfo",
        // Module searches of interpreters: a miss in one directory of many.
        "/usr/lib/python",
        "/usr/local/lib/python",
        "/usr/lib/x86_64-linux-gnu/perl",
        "/usr/share/perl",
        "/usr/lib/ruby",
    ];
    let base = path.rsplit('/').next().unwrap_or(path);
    PREFIXES.iter().any(|p| path.starts_with(p))
        || path.ends_with(".so")
        || path.contains(".so.")
        || path.contains("/glibc-hwcaps/")
        || path.contains("/.terminfo")
        || path.contains("/__pycache__/")
        || path.ends_with(".pyc")
        || path.ends_with(".pth")
        || base == "pyvenv.cfg"
        || path == "/etc/nsswitch.conf"
        || path == "/etc/localtime"
}

/// A missing dotfile (`~/.curlrc`, `.inputrc`) is an optional per-user setting that
/// programs probe for, not something a job needs.
pub fn is_optional_probe(path: &str, err: &str) -> bool {
    err == "ENOENT"
        && path
            .split('/')
            .any(|c| c.len() > 1 && c.starts_with('.') && c != "..")
}

/// Events a person reading a timeline does not need: library, locale and PAM lookups,
/// optional dotfiles, limits other than NOFILE. JSON keeps them all.
pub fn is_routine(ev: &Event) -> bool {
    match &ev.body {
        Body::Open { path, result, .. } => {
            is_noise_path(path)
                || is_optional_probe(path, result.error.unwrap_or(""))
                || ["/var/run/utmp", "/run/utmp"].contains(&path.as_str())
                || [
                    "/etc/pam.d/",
                    "/etc/security/",
                    "/etc/passwd",
                    "/etc/group",
                    "/etc/shadow",
                    "/etc/login.defs",
                    "/etc/environment",
                    "/etc/default/locale",
                    "/etc/host.conf",
                    "/etc/hosts",
                    "/etc/resolv.conf",
                    "/etc/gai.conf",
                ]
                .iter()
                .any(|p| path.starts_with(p))
                    && result.ok()
        }
        // The scheduler's stats are traced to see it look for its mailer, a job's
        // failed ones to see its shell search PATH; what matters is a finding's
        // evidence and shown as such, the rest (PAM's config walk, a search that went
        // on to find the command in a later directory) says nothing.
        Body::Stat { .. } => true,
        // Queries (no new limit) and limits other than NOFILE.
        Body::Rlimit { resource, soft, .. } => *resource != "NOFILE" || soft.is_none(),
        Body::Getsockopt { value, .. } => value.unwrap_or(0) == 0,
        // nscd and syslog probes every libc program makes.
        Body::Connect { address, .. } => {
            address.contains("nscd/socket") || address == "unix:/dev/log"
        }
        // Local sockets matter through their connect line, which names the address.
        Body::Socket { family_name, .. } => matches!(*family_name, "AF_NETLINK" | "AF_UNIX"),
        Body::Wait { .. } => reaped_nothing(ev),
        _ => false,
    }
}

/// A wait that reaped nothing: WNOHANG with no child done, or no child left (a shell
/// makes one after each child it reaps). The kernel side no longer sends these; older
/// recordings hold them, and a replay must read them as a live run now would.
pub fn reaped_nothing(ev: &Event) -> bool {
    matches!(&ev.body, Body::Wait { result, .. } if result.ret == 0 || result.error == Some("ECHILD"))
}
