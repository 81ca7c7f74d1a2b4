//! The inputs of the schedules stage as plain data: crontab files as read from the host
//! and the host facts the daemons consult (users, cron.allow/deny, time zone). These are
//! stored in the trace header, so they must round-trip through serde unchanged.
use serde::{Deserialize, Serialize};

/// Which slot of the daemon's configuration a file was found in; this decides its
/// format (system files carry a user field) and which ownership rules apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// `/etc/crontab`.
    SystemCrontab,
    /// A file in `/etc/cron.d`.
    CronD,
    /// A per-user crontab of Debian cron (`/var/spool/cron/crontabs/USER`) or cronie
    /// (`/var/spool/cron/USER`); `user` is the file name.
    UserSpool { user: String },
    /// A file in busybox crond's `-c DIR`; `user` is the file name.
    BusyboxSpool { user: String },
}

impl Origin {
    /// System files name the user on each line; spool files are the user's own.
    pub fn is_system(&self) -> bool {
        matches!(self, Origin::SystemCrontab | Origin::CronD)
    }

    /// The owner the file name implies, for spool files.
    pub fn spool_user(&self) -> Option<&str> {
        match self {
            Origin::UserSpool { user } | Origin::BusyboxSpool { user } => Some(user),
            _ => None,
        }
    }
}

/// One crontab file as read from the host.
///
/// `uid`, `gid`, `mode` and `nlink` describe what `open()` reaches (the target, for a
/// symlink), because that is what every daemon checks with `fstat` after opening;
/// `link_uid` is the owner of the symlink itself (Debian cron also checks that one).
/// `mode` keeps the file-type bits (`S_IFMT`) so a directory or FIFO is recognisable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrontabSource {
    pub path: String,
    pub origin: Origin,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    /// Hard links to the file; Debian cron and cronie refuse files with more than one.
    #[serde(default = "one")]
    pub nlink: u64,
    pub symlink_target: Option<String>,
    /// Owner of the symlink itself when `path` is one.
    #[serde(default)]
    pub link_uid: Option<u32>,
    /// `None` when unreadable or not a regular file. Callers may have redacted secret
    /// values, but line structure and the final newline are preserved.
    pub text: Option<String>,
    pub read_error: Option<String>,
    /// The file was longer than the read cap; `text` is its beginning only.
    pub truncated: bool,
    /// The file was not valid UTF-8; `text` has U+FFFD where bytes were invalid.
    pub lossy_utf8: bool,
    pub mtime_unix_ns: i64,
}

fn one() -> u64 {
    1
}

/// The file-type bits of `mode`.
pub(crate) const S_IFMT: u32 = 0o170_000;
pub(crate) const S_IFREG: u32 = 0o100_000;
pub(crate) const S_IFLNK: u32 = 0o120_000;

impl CrontabSource {
    /// A readable regular file owned by root with mode 0644, the shape most tests start from.
    pub fn new(path: &str, origin: Origin, text: &str) -> CrontabSource {
        CrontabSource {
            path: path.to_string(),
            origin,
            uid: 0,
            gid: 0,
            mode: S_IFREG | 0o644,
            nlink: 1,
            symlink_target: None,
            link_uid: None,
            text: Some(text.to_string()),
            read_error: None,
            truncated: false,
            lossy_utf8: false,
            mtime_unix_ns: 0,
        }
    }

    pub fn is_regular(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }

    /// The last path component, which Debian cron and cronie filter on.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// One `/etc/passwd` line, as far as cron uses it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

/// What the daemons look up besides the crontabs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostContext {
    pub users: Vec<UserInfo>,
    /// Names in `/etc/cron.allow`; `None` when the file does not exist.
    pub cron_allow: Option<Vec<String>>,
    /// Names in `/etc/cron.deny`; `None` when the file does not exist.
    pub cron_deny: Option<Vec<String>>,
    /// IANA name (or POSIX TZ string) of the zone the daemon runs in.
    pub tz: String,
}

impl HostContext {
    pub fn user(&self, name: &str) -> Option<&UserInfo> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn user_by_uid(&self, uid: u32) -> Option<&UserInfo> {
        self.users.iter().find(|u| u.uid == uid)
    }
}
