//! The one place that reads the real host for the schedules stage: the crontab files a
//! daemon would read and the host facts it consults, under a root prefix so tests use
//! a temporary directory. Bad input never panics or hangs: an unreadable file, a
//! dangling symlink, a FIFO, binary data, a file growing while read all become data
//! (`read_error`, `truncated`, `lossy_utf8`) that `analyse` reports.
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::source::{CrontabSource, HostContext, Origin, UserInfo};
use super::Daemon;

/// Bytes read from one crontab at most; a crontab is a few KiB, anything near this is
/// garbage or a file being appended to without end.
pub const MAX_CRONTAB_BYTES: u64 = 1 << 20;
/// /etc/passwd can be long on hosts with many local users, but not this long.
const MAX_PASSWD_BYTES: u64 = 16 << 20;
/// Files listed per directory at most.
const MAX_DIR_ENTRIES: usize = 10_000;

/// The crontab files `daemon` reads on the host under `root` (`/` for the live host).
/// `busybox_dir` is busybox crond's `-c DIR` (default `/var/spool/cron/crontabs`).
/// /etc/crontab and /etc/cron.d are listed for busybox too, so the report can say
/// that it never reads them.
pub fn read_sources(root: &Path, daemon: Daemon, busybox_dir: Option<&Path>) -> Vec<CrontabSource> {
    let mut out = Vec::new();
    if let Some(src) = read_one(root, "/etc/crontab", Origin::SystemCrontab) {
        out.push(src);
    }
    // Both Vixie daemons skip dot files in cron.d (Debian ships .placeholder there).
    for name in list_dir(root, "/etc/cron.d", |n, _| !n.starts_with('.')) {
        out.extend(read_one(
            root,
            &format!("/etc/cron.d/{name}"),
            Origin::CronD,
        ));
    }
    match daemon {
        Daemon::DebianCron => {
            for name in list_dir(root, "/var/spool/cron/crontabs", |n, _| !n.starts_with('.')) {
                let origin = Origin::UserSpool { user: name.clone() };
                out.extend(read_one(
                    root,
                    &format!("/var/spool/cron/crontabs/{name}"),
                    origin,
                ));
            }
        }
        Daemon::Cronie => {
            // /var/spool/cron also holds directories (Debian's crontabs/, at's spool).
            let files = |n: &str, m: &Metadata| !n.starts_with('.') && !m.is_dir();
            for name in list_dir(root, "/var/spool/cron", files) {
                let origin = Origin::UserSpool { user: name.clone() };
                out.extend(read_one(root, &format!("/var/spool/cron/{name}"), origin));
            }
        }
        Daemon::BusyboxCrond => {
            let dir = busybox_dir.map_or_else(
                || "/var/spool/cron/crontabs".to_string(),
                |d| d.to_string_lossy().into_owned(),
            );
            let dir = format!("/{}", dir.trim_start_matches('/').trim_end_matches('/'));
            for name in list_dir(root, &dir, |n, _| {
                n != "." && n != ".." && n != "cron.update"
            }) {
                let origin = Origin::BusyboxSpool { user: name.clone() };
                out.extend(read_one(root, &format!("{dir}/{name}"), origin));
            }
        }
    }
    out
}

/// Users, cron.allow/cron.deny and the daemon's time zone, from files under `root`.
/// Users only from /etc/passwd: NSS sources (LDAP, sssd) are not consulted. The zone
/// is the one a daemon started without `TZ` uses; a daemon's own `TZ` wins over it.
pub fn read_context(root: &Path) -> HostContext {
    let passwd = read_text(&under(root, "/etc/passwd"), MAX_PASSWD_BYTES).unwrap_or_default();
    let users = passwd.lines().filter_map(parse_passwd_line).collect();
    let names = |path: &str| -> Option<Vec<String>> {
        let p = under(root, path);
        fs::symlink_metadata(&p).ok()?;
        let text = read_text(&p, MAX_CRONTAB_BYTES).unwrap_or_default();
        Some(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect(),
        )
    };
    HostContext {
        users,
        cron_allow: names("/etc/cron.allow"),
        cron_deny: names("/etc/cron.deny"),
        tz: host_tz(root),
    }
}

/// `/etc/localtime`'s symlink target names the zone (…/zoneinfo/Europe/Berlin); else
/// `/etc/timezone` (Debian's init script exports it as TZ); else UTC.
fn host_tz(root: &Path) -> String {
    if let Ok(target) = fs::read_link(under(root, "/etc/localtime")) {
        let target = target.to_string_lossy().into_owned();
        if let Some((_, name)) = target.split_once("zoneinfo/") {
            let name = name
                .trim_start_matches("posix/")
                .trim_start_matches("right/");
            if !name.is_empty() {
                return name.to_string();
            }
        }
    }
    if let Some(text) = read_text(&under(root, "/etc/timezone"), 4096) {
        if let Some(line) = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
        {
            return line.to_string();
        }
    }
    "UTC".to_string()
}

fn parse_passwd_line(line: &str) -> Option<UserInfo> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 7 || f[0].is_empty() || f[0].starts_with(['#', '+', '-']) {
        return None;
    }
    Some(UserInfo {
        name: f[0].to_string(),
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
        home: f[5].to_string(),
        shell: f[6].to_string(),
    })
}

fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// File names in a directory, sorted (readdir order is arbitrary), filtered on name
/// and on `lstat` metadata.
fn list_dir(root: &Path, dir: &str, keep: impl Fn(&str, &Metadata) -> bool) -> Vec<String> {
    let Ok(entries) = fs::read_dir(under(root, dir)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .take(MAX_DIR_ENTRIES)
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = e.metadata().ok()?;
            keep(&name, &meta).then_some(name)
        })
        .collect();
    names.sort();
    names
}

/// One file as the daemons see it: the symlink itself (`lstat`), what `open` reaches
/// (`fstat`), and its text. `None` only when nothing exists at the path.
fn read_one(root: &Path, path: &str, origin: Origin) -> Option<CrontabSource> {
    let on_host = under(root, path);
    let link = fs::symlink_metadata(&on_host).ok()?;
    let mut src = CrontabSource {
        path: path.to_string(),
        origin,
        uid: link.uid(),
        gid: link.gid(),
        mode: link.mode(),
        nlink: link.nlink(),
        symlink_target: None,
        link_uid: None,
        text: None,
        read_error: None,
        truncated: false,
        lossy_utf8: false,
        mtime_unix_ns: mtime_ns(&link),
    };
    if link.file_type().is_symlink() {
        src.symlink_target = fs::read_link(&on_host)
            .ok()
            .map(|t| t.to_string_lossy().into_owned());
        src.link_uid = Some(link.uid());
    }
    // O_NONBLOCK: a FIFO planted in cron.d must not hang the tracer.
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&on_host)
    {
        Ok(f) => f,
        Err(e) => {
            src.read_error = Some(
                if src.symlink_target.is_some() && e.kind() == std::io::ErrorKind::NotFound {
                    format!(
                        "dangling symlink to {}",
                        src.symlink_target.as_deref().unwrap_or("?")
                    )
                } else {
                    e.to_string()
                },
            );
            return Some(src);
        }
    };
    if let Ok(meta) = file.metadata() {
        src.uid = meta.uid();
        src.gid = meta.gid();
        src.mode = meta.mode();
        src.nlink = meta.nlink();
        src.mtime_unix_ns = mtime_ns(&meta);
        if !meta.is_file() {
            src.read_error = Some("not a regular file".to_string());
            return Some(src);
        }
    }
    match read_capped(file, MAX_CRONTAB_BYTES) {
        Ok((bytes, truncated)) => {
            let bytes = if truncated {
                // Keep whole lines only, so the cut does not look like a missing newline.
                let keep = bytes.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
                bytes[..keep].to_vec()
            } else {
                bytes
            };
            src.truncated = truncated;
            match String::from_utf8(bytes) {
                Ok(text) => src.text = Some(text),
                Err(e) => {
                    src.lossy_utf8 = true;
                    src.text = Some(String::from_utf8_lossy(e.as_bytes()).into_owned());
                }
            }
        }
        Err(e) => src.read_error = Some(e.to_string()),
    }
    Some(src)
}

/// Reads at most `cap` bytes; the flag says there was more.
fn read_capped(file: File, cap: u64) -> std::io::Result<(Vec<u8>, bool)> {
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes)?;
    let truncated = bytes.len() as u64 > cap;
    bytes.truncate(cap as usize);
    Ok((bytes, truncated))
}

fn read_text(path: &Path, cap: u64) -> Option<String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let (bytes, _) = read_capped(file, cap).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn mtime_ns(meta: &Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}
