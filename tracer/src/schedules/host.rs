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

/// A crontab from this machine standing in for `as_path` of a recorded host (`replay
/// --crontab`): read like the daemon reads it, named as the daemon names it.
pub fn read_file_as(local: &Path, as_path: &str) -> Option<CrontabSource> {
    let origin = origin_of(as_path);
    let mut src = read_one(Path::new("/"), &local.to_string_lossy(), origin)?;
    src.path = as_path.to_string();
    Some(src)
}

/// Which slot a path is in, from where it lives.
pub fn origin_of(path: &str) -> Origin {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    match dir {
        _ if path == "/etc/crontab" => Origin::SystemCrontab,
        "/etc/cron.d" => Origin::CronD,
        "/var/spool/cron/crontabs" | "/var/spool/cron" => Origin::UserSpool {
            user: name.to_string(),
        },
        _ => Origin::BusyboxSpool {
            user: name.to_string(),
        },
    }
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

/// A regular file's whole text, or why not: not a regular file, unreadable, or past
/// `cap` bytes (refused, not cut). Opened non-blocking: a FIFO cannot hang the reader.
pub fn read_whole_text(path: &Path, cap: u64) -> Result<String, String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| e.to_string())?;
    if !file.metadata().map_err(|e| e.to_string())?.is_file() {
        return Err("not a regular file".into());
    }
    match read_capped(file, cap).map_err(|e| e.to_string())? {
        (_, true) => Err(format!("larger than {} KiB", cap / 1024)),
        (bytes, false) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
    }
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::schedules::crontab::analyse;

    /// A scratch root under the system temp dir, removed on drop.
    struct Root(PathBuf);

    impl Root {
        fn new() -> Root {
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "tracer-schedules-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Root(dir)
        }

        fn write(&self, path: &str, bytes: &[u8], mode: u32) -> PathBuf {
            let p = under(&self.0, path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, bytes).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            p
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn find<'a>(srcs: &'a [CrontabSource], path: &str) -> &'a CrontabSource {
        srcs.iter()
            .find(|s| s.path == path)
            .unwrap_or_else(|| panic!("{path} not read: {srcs:#?}"))
    }

    #[test]
    fn reads_files_and_turns_bad_input_into_data() {
        let root = Root::new();
        root.write(
            "/etc/crontab",
            b"17 * * * * root run-parts /etc/cron.hourly\n",
            0o644,
        );
        root.write("/etc/cron.d/good", b"* * * * * root /bin/true\n", 0o644);
        root.write("/etc/cron.d/.placeholder", b"# keep\n", 0o644);
        root.write("/etc/cron.d/bad.sh", b"* * * * * root /bin/true\n", 0o644);
        root.write(
            "/etc/cron.d/binary",
            &[0x7f, b'E', b'L', b'F', 0xff, 0xfe, 0, 1, 2, b'\n'],
            0o644,
        );
        let mut big = b"* * * * * root /bin/true\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', (MAX_CRONTAB_BYTES as usize) + 10));
        root.write("/etc/cron.d/huge", &big, 0o644);
        symlink("/nowhere/at/all", under(&root.0, "/etc/cron.d/dangling")).unwrap();
        fs::create_dir_all(under(&root.0, "/etc/cron.d/adir")).unwrap();
        root.write("/var/spool/cron/crontabs/alice", b"@daily sync\n", 0o600);

        let srcs = read_sources(&root.0, Daemon::DebianCron, None);
        let names: Vec<&str> = srcs.iter().map(|s| s.path.as_str()).collect();
        assert!(!names.contains(&"/etc/cron.d/.placeholder"), "{names:?}");
        assert_eq!(find(&srcs, "/etc/crontab").origin, Origin::SystemCrontab);
        let good = find(&srcs, "/etc/cron.d/good");
        assert_eq!(good.text.as_deref(), Some("* * * * * root /bin/true\n"));
        assert_eq!(good.mode & 0o7777, 0o644);
        assert!(!good.lossy_utf8 && !good.truncated && good.read_error.is_none());
        let bin = find(&srcs, "/etc/cron.d/binary");
        assert!(bin.lossy_utf8 && bin.text.as_deref().is_some_and(|t| t.contains('\u{fffd}')));
        let huge = find(&srcs, "/etc/cron.d/huge");
        assert!(huge.truncated);
        assert!(huge
            .text
            .as_deref()
            .is_some_and(|t| t.len() <= MAX_CRONTAB_BYTES as usize && t.ends_with('\n')));
        let dangling = find(&srcs, "/etc/cron.d/dangling");
        assert_eq!(dangling.symlink_target.as_deref(), Some("/nowhere/at/all"));
        assert!(
            dangling.text.is_none()
                && dangling
                    .read_error
                    .as_deref()
                    .is_some_and(|e| e.contains("dangling"))
        );
        let dir = find(&srcs, "/etc/cron.d/adir");
        assert!(dir.text.is_none() && !dir.is_regular());
        assert_eq!(
            find(&srcs, "/var/spool/cron/crontabs/alice").origin,
            Origin::UserSpool {
                user: "alice".into()
            }
        );

        // Every bad file becomes a problem naming it; nothing panics.
        root.write(
            "/etc/passwd",
            b"root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n",
            0o644,
        );
        let ctx = read_context(&root.0);
        let set = analyse(&srcs, &ctx, Daemon::DebianCron);
        for (file, rule) in [
            ("/etc/cron.d/bad.sh", "crond_file_name"),
            ("/etc/cron.d/binary", "file_not_utf8"),
            ("/etc/cron.d/huge", "file_truncated"),
            ("/etc/cron.d/dangling", "file_unreadable"),
            ("/etc/cron.d/adir", "not_regular_file"),
        ] {
            assert!(
                set.problems
                    .iter()
                    .any(|p| p.file == file && p.rule == rule),
                "{file} {rule}: {:#?}",
                set.problems
            );
        }
    }

    #[test]
    fn unreadable_file_is_a_read_error() {
        // As root the permission bits do not stop a read; a FIFO must not block.
        let root = Root::new();
        let fifo = under(&root.0, "/etc/cron.d/fifo");
        fs::create_dir_all(fifo.parent().unwrap()).unwrap();
        let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let srcs = read_sources(&root.0, Daemon::DebianCron, None);
        let f = find(&srcs, "/etc/cron.d/fifo");
        assert!(f.text.is_none() && f.read_error.is_some());
    }

    #[test]
    fn cronie_and_busybox_layouts() {
        let root = Root::new();
        root.write("/var/spool/cron/alice", b"* * * * * x\n", 0o600);
        fs::create_dir_all(under(&root.0, "/var/spool/cron/crontabs")).unwrap();
        let srcs = read_sources(&root.0, Daemon::Cronie, None);
        let spools: Vec<&str> = srcs
            .iter()
            .filter(|s| !s.origin.is_system())
            .map(|s| s.path.as_str())
            .collect();
        assert_eq!(
            spools,
            ["/var/spool/cron/alice"],
            "directories are not crontabs"
        );

        root.write("/srv/cron/root", b"* * * * * x\n", 0o600);
        let srcs = read_sources(&root.0, Daemon::BusyboxCrond, Some(Path::new("/srv/cron")));
        assert_eq!(srcs.len(), 1);
        assert_eq!(
            srcs[0].origin,
            Origin::BusyboxSpool {
                user: "root".into()
            }
        );
        assert_eq!(srcs[0].path, "/srv/cron/root");
    }

    #[test]
    fn context_users_lists_and_zone() {
        let root = Root::new();
        root.write(
            "/etc/passwd",
            b"root:x:0:0:root:/root:/bin/bash\n# comment\nbroken line\nalice:x:1000:1000:Alice:/home/alice:/bin/zsh\nbad:x:notanumber:0::/:/bin/sh\n",
            0o644,
        );
        root.write("/etc/cron.deny", b"alice\n\n# not me\nbob \n", 0o644);
        let ctx = read_context(&root.0);
        let names: Vec<&str> = ctx.users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["root", "alice"]);
        assert_eq!(
            ctx.user("alice")
                .map(|u| (u.uid, u.home.as_str(), u.shell.as_str())),
            Some((1000, "/home/alice", "/bin/zsh"))
        );
        assert_eq!(ctx.cron_allow, None);
        assert_eq!(
            ctx.cron_deny,
            Some(vec!["alice".to_string(), "bob".to_string()])
        );
        assert_eq!(ctx.tz, "UTC", "no /etc/localtime nor /etc/timezone");
        root.write("/etc/timezone", b"Europe/Berlin\n", 0o644);
        assert_eq!(read_context(&root.0).tz, "Europe/Berlin");
        symlink(
            "/usr/share/zoneinfo/America/New_York",
            under(&root.0, "/etc/localtime"),
        )
        .unwrap();
        assert_eq!(
            read_context(&root.0).tz,
            "America/New_York",
            "the symlink wins"
        );
    }
}
