//! The files and lines a cron daemon will not run, as data: one row per rule, with the
//! daemons it holds for, where it applies, what goes wrong and the fix, and the source
//! it was read from. The check functions below and the readers in `syntax/` cite these
//! ids; `analyse` turns them into [`Problem`](super::Problem)s.
//!
//! Sources verified: Debian cron 3.0pl1-162 (bookworm source package, patches applied),
//! cronie master (cronie-crond/cronie, src/), busybox 1.35.0 (Debian 1:1.35.0-4+deb12u1,
//! its busybox-static config). Where a rule was also checked on the real daemon, the row
//! says so.
use super::{Effect, ProblemKind};
use crate::schedules::source::{CrontabSource, HostContext, Origin, S_IFLNK, S_IFMT, S_IFREG};
use crate::schedules::Daemon;

/// Where a rule looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A file in /etc/cron.d.
    CronDFile,
    /// /etc/crontab.
    SystemCrontab,
    /// A per-user spool file (Debian, cronie) or a busybox `-c DIR` file.
    UserSpool,
    /// One line of any crontab.
    Line,
}

pub struct Rule {
    pub id: &'static str,
    pub daemons: &'static [Daemon],
    pub applies_to: &'static [Scope],
    pub kind: ProblemKind,
    pub description: &'static str,
    pub fix: &'static str,
    /// File and function the rule was verified against.
    pub source: &'static str,
}

use Daemon::{BusyboxCrond as BB, Cronie as CR, DebianCron as DEB};
use ProblemKind::{CrontabIgnored as IGNORED, CrontabSyntax as SYNTAX};
use Scope::{CronDFile as CROND, Line as LINE, SystemCrontab as SYSTAB, UserSpool as SPOOL};

pub static RULES: &[Rule] = &[
    Rule {
        id: "crond_file_name",
        daemons: &[DEB],
        applies_to: &[CROND],
        kind: IGNORED,
        description: "file names in /etc/cron.d must match ^[A-Za-z0-9_-]+$; others (backup.sh, job~, x.dpkg-old, anything with a dot) are skipped (with cron -l: LSB names)",
        fix: "rename it to letters, digits, - and _ only (no dot, no extension)",
        source: "Debian database.c load_database/valid_name; checked on the real daemon (TOOLCHAIN.md)",
    },
    Rule {
        id: "cronie_skipped_name",
        daemons: &[CR],
        applies_to: &[CROND, SPOOL],
        kind: IGNORED,
        description: "names starting with . or #, ending with ~, .rpmsave, .rpmorig or .rpmnew, or 255+ bytes long are skipped",
        fix: "rename the file",
        source: "cronie database.c not_a_crontab",
    },
    Rule {
        id: "busybox_name_has_dot",
        daemons: &[BB],
        applies_to: &[SPOOL],
        kind: IGNORED,
        description: "files whose name contains a dot are skipped",
        fix: "name the file exactly after the user, without a dot",
        source: "busybox crond.c rescan_crontab_dir",
    },
    Rule {
        id: "not_read_by_daemon",
        daemons: &[BB],
        applies_to: &[SYSTAB, CROND],
        kind: IGNORED,
        description: "busybox crond reads only its -c directory, never /etc/crontab or /etc/cron.d",
        fix: "move the lines (without the user field) into the user's file in busybox crond's -c directory, or run a cron daemon that reads /etc/crontab",
        source: "busybox crond.c crond_main/rescan_crontab_dir",
    },
    Rule {
        id: "file_unreadable",
        daemons: &[DEB, CR, BB],
        applies_to: &[CROND, SYSTAB, SPOOL],
        kind: IGNORED,
        description: "the file cannot be opened (dangling symlink, permissions, I/O error), so it is skipped",
        fix: "make the path an existing, readable regular file",
        source: "Debian database.c process_crontab (CAN'T OPEN); cronie database.c check_open; busybox crond.c load_crontab",
    },
    Rule {
        id: "not_regular_file",
        daemons: &[DEB, CR],
        applies_to: &[CROND, SYSTAB, SPOOL],
        kind: IGNORED,
        description: "only regular files are read (not directories, FIFOs, devices)",
        fix: "replace it with a regular file",
        source: "Debian database.c process_crontab (NOT A REGULAR FILE); cronie database.c check_open",
    },
    Rule {
        id: "system_file_not_root",
        daemons: &[DEB, CR],
        applies_to: &[CROND, SYSTAB],
        kind: IGNORED,
        description: "/etc/crontab and /etc/cron.d files (the symlink target, too) must be owned by root",
        fix: "chown root FILE",
        source: "Debian database.c process_crontab (WRONG FILE OWNER); cronie database.c check_open; Debian checked on the real daemon",
    },
    Rule {
        id: "system_symlink_not_root",
        daemons: &[DEB],
        applies_to: &[CROND, SYSTAB],
        kind: IGNORED,
        description: "a symlink in /etc/cron.d (or /etc/crontab) must itself be owned by root",
        fix: "chown -h root LINK",
        source: "Debian database.c process_crontab (WRONG SYMLINK OWNER)",
    },
    Rule {
        id: "system_file_writable",
        daemons: &[DEB],
        applies_to: &[CROND, SYSTAB],
        kind: IGNORED,
        description: "group- or world-writable system crontabs are skipped",
        fix: "chmod go-w FILE (0644)",
        source: "Debian database.c process_crontab (INSECURE MODE); checked on the real daemon",
    },
    Rule {
        id: "cronie_bad_mode",
        daemons: &[CR],
        applies_to: &[CROND, SYSTAB, SPOOL],
        kind: IGNORED,
        description: "the mode must give the owner read, and no execute, set-id, sticky, group/other write or execute bits (mode & 07533 == 0400)",
        fix: "chmod 0600 FILE (0644 for system files)",
        source: "cronie database.c check_open (BAD FILE MODE)",
    },
    Rule {
        id: "hard_links",
        daemons: &[DEB, CR],
        applies_to: &[CROND, SYSTAB, SPOOL],
        kind: IGNORED,
        description: "files with more than one hard link are skipped (cronie: user spools only)",
        fix: "make it a single-link file (cp it to a new file and mv that over it)",
        source: "Debian database.c process_crontab (NUMBER OF HARD LINKS > 1); cronie database.c check_open (BAD LINK COUNT)",
    },
    Rule {
        id: "spool_owner",
        daemons: &[DEB, CR],
        applies_to: &[SPOOL],
        kind: IGNORED,
        description: "a user crontab must be owned by that user or by root",
        fix: "reinstall it with crontab -u USER FILE, or chown USER FILE",
        source: "Debian database.c process_crontab (WRONG FILE OWNER); cronie database.c check_open",
    },
    Rule {
        id: "spool_mode",
        daemons: &[DEB],
        applies_to: &[SPOOL],
        kind: IGNORED,
        description: "a user crontab must have mode exactly 0600",
        fix: "chmod 0600 FILE (or reinstall with crontab -u USER FILE)",
        source: "Debian database.c process_crontab (INSECURE MODE (mode 0600 expected))",
    },
    Rule {
        id: "spool_symlink",
        daemons: &[DEB],
        applies_to: &[SPOOL],
        kind: IGNORED,
        description: "user crontabs are opened with O_NOFOLLOW, so a symlink there is never read",
        fix: "install the crontab with crontab -u USER FILE instead of linking it",
        source: "Debian database.c process_crontab (open O_NOFOLLOW, CAN'T OPEN)",
    },
    Rule {
        id: "busybox_owner_not_root",
        daemons: &[BB],
        applies_to: &[SPOOL],
        kind: IGNORED,
        description: "busybox crond silently skips crontab files not owned by root (its crontab command writes them as root)",
        fix: "chown root FILE (or install it with busybox crontab -u USER FILE)",
        source: "busybox crond.c load_crontab (st_uid == DAEMON_UID)",
    },
    Rule {
        id: "unknown_user",
        daemons: &[DEB, CR, BB],
        applies_to: &[SPOOL, LINE],
        kind: IGNORED,
        description: "the user does not exist: a spool file named after no user is skipped; a system-crontab line naming one is a syntax error that drops the whole file in Debian cron, and is not run by cronie",
        fix: "create the user, or fix the user name",
        source: "Debian database.c process_crontab (ORPHAN), entry.c load_entry (e_username; checked on the real daemon: the whole cron.d file is dropped); cronie database.c process_crontab, job.c job_add; busybox crond.c load_crontab",
    },
    Rule {
        id: "cron_allow_deny",
        daemons: &[DEB, CR],
        applies_to: &[SPOOL],
        kind: IGNORED,
        description: "cron.allow/cron.deny are read only by the crontab command: the daemon still runs an existing crontab of a user they exclude, but the user cannot edit or reinstall it",
        fix: "add the user to /etc/cron.allow (or remove them from /etc/cron.deny) if they should manage this crontab; remove the crontab if they should not have one",
        source: "Debian misc.c allowed, called only from crontab.c; cronie security.c allowed, called only from crontab.c",
    },
    Rule {
        id: "syntax_error",
        daemons: &[DEB, CR, BB],
        applies_to: &[LINE],
        kind: SYNTAX,
        description: "a line the daemon cannot parse: Debian cron then ignores the whole file, cronie only the line; busybox logs it and runs the line with the fields it managed to fill",
        fix: "correct the line (crontab(5)); for Debian cron the other lines of the file run again once it is fixed",
        source: "Debian user.c load_user, entry.c load_entry/get_range (checked on the real daemon: 5/10 drops the file, 5;x is accepted); cronie user.c load_user, entry.c; busybox crond.c ParseField",
    },
    Rule {
        id: "empty_env_unquoted",
        daemons: &[DEB],
        applies_to: &[LINE],
        kind: SYNTAX,
        description: "NAME= with nothing after it is not an environment setting for Debian cron; it is read as a job line, fails, and the whole file is ignored",
        fix: "write NAME=\"\" (e.g. MAILTO=\"\")",
        source: "Debian env.c load_env (state EQ2 not accepted); crontab(5) 'To define an empty variable, quotes must be used'; checked on the real daemon (MAILTO= drops the file, MAILTO=\"\" runs)",
    },
    Rule {
        id: "missing_final_newline",
        daemons: &[DEB, CR],
        applies_to: &[LINE],
        // The line itself is fine: the daemon ignores it (DESIGN: crontab_ignored).
        kind: IGNORED,
        description: "the last line has no newline: Debian cron ignores the whole file, cronie the last line",
        fix: "add a newline at the end of the file (echo >> FILE)",
        source: "Debian user.c load_user (Missing newline before EOF); cronie user.c load_user; Debian checked on the real daemon",
    },
    Rule {
        id: "command_too_long",
        daemons: &[DEB, CR],
        applies_to: &[LINE],
        kind: SYNTAX,
        description: "Debian: a command of 999 bytes or more is a syntax error (the whole file is ignored); cronie silently cuts commands at 131071 bytes",
        fix: "move the command into a script and call that",
        source: "Debian entry.c load_entry (e_cmd_len, MAX_COMMAND 1000); cronie entry.c load_entry (get_string, MAX_COMMAND 131072)",
    },
    Rule {
        id: "env_line_too_long",
        daemons: &[DEB],
        applies_to: &[LINE],
        kind: SYNTAX,
        description: "Debian reads 998 bytes of a line: a longer environment setting loses the end of its value without a message",
        fix: "shorten the value (set it in a wrapper script instead)",
        source: "Debian env.c load_env (get_string into MAX_ENVSTR)",
    },
    Rule {
        id: "too_many_lines",
        daemons: &[DEB, CR, BB],
        applies_to: &[CROND, SYSTAB, SPOOL],
        kind: IGNORED,
        description: "size limits: Debian ignores files over 10000 lines; cronie ignores user crontabs with over 10000 entries, 1000 settings or 32 KiB of comments in a row; busybox reads 255 non-comment lines of a non-root file",
        fix: "split the file, or move the work into scripts",
        source: "Debian user.c load_user (MAX_TAB_LINES); cronie user.c load_user, misc.c skip_comments; busybox crond.c load_crontab (MAXLINES)",
    },
    Rule {
        id: "cron_tz_unsupported",
        daemons: &[DEB, BB],
        applies_to: &[LINE],
        kind: IGNORED,
        description: "CRON_TZ is not supported: the schedule runs in the daemon's time zone and CRON_TZ is just a variable in the job's environment (busybox drops the line)",
        fix: "write the times in the daemon's time zone, or test the local time in the job (crontab(5) LIMITATIONS)",
        source: "Debian crontab(5) LIMITATIONS, cron.c find_jobs (no CRON_TZ); busybox crond.c load_crontab",
    },
    Rule {
        id: "cron_tz_unknown",
        daemons: &[CR],
        applies_to: &[LINE],
        kind: IGNORED,
        description: "CRON_TZ names no known time zone; glibc then uses UTC for the schedule",
        fix: "use an IANA name from /usr/share/zoneinfo, e.g. CRON_TZ=Europe/Berlin",
        source: "cronie cron.c find_jobs (setenv TZ, localtime)",
    },
    Rule {
        id: "busybox_env_ignored",
        daemons: &[BB],
        applies_to: &[LINE],
        kind: IGNORED,
        description: "busybox crond honours only MAILTO= and SHELL= lines (no blanks around =); PATH=, HOME=, CRON_TZ= and others are dropped",
        fix: "set the variable inside the command or a wrapper script (PATH=/usr/local/bin:$PATH cmd)",
        source: "busybox crond.c load_crontab",
    },
    Rule {
        id: "busybox_short_line",
        daemons: &[BB],
        applies_to: &[LINE],
        kind: SYNTAX,
        description: "a line with fewer than five time fields and a command is dropped without a log message",
        fix: "write five time fields and a command",
        source: "busybox crond.c load_crontab (n < 6)",
    },
    Rule {
        id: "busybox_hash_truncates",
        daemons: &[BB],
        applies_to: &[LINE],
        kind: SYNTAX,
        description: "# anywhere in a line starts a comment for busybox crond, so the command is cut short at the first #",
        fix: "move the command into a script, or avoid # in the line",
        source: "busybox libbb/parse_config.c config_read (PARSE_EOL_COMMENTS)",
    },
    Rule {
        id: "busybox_special_crash",
        daemons: &[BB],
        applies_to: &[LINE],
        kind: IGNORED,
        description: "@reboot/@daily/... lines crash busybox crond builds without CONFIG_FEATURE_CROND_D (Debian's busybox-static 1.35) with SIGSEGV when the file is loaded",
        fix: "write the five fields instead (@daily = 0 0 * * *)",
        source: "busybox crond.c load_crontab (parser->data is NULL without PARSE_KEEP_COPY); SIGSEGV reproduced with Debian's busybox-static 1:1.35.0-4+deb12u1",
    },
    Rule {
        id: "crlf_line_end",
        daemons: &[DEB, CR, BB],
        applies_to: &[LINE],
        kind: SYNTAX,
        description: "CRLF line ends: the carriage return becomes part of the command (the shell looks for 'cmd\\r'); in Debian cron a blank line holding only \\r is a syntax error",
        fix: "convert the file to Unix line ends (dos2unix FILE or sed -i 's/\\r$//' FILE)",
        source: "Debian/cronie entry.c load_entry (command up to \\n), misc.c skip_comments (only space and tab are blanks); Debian checked on the real daemon (a CRLF blank line drops the file)",
    },
    Rule {
        id: "random_range",
        daemons: &[CR],
        applies_to: &[LINE],
        kind: SYNTAX,
        description: "A~B picks one random value each time cronie loads the file",
        fix: "none needed if intended; expect the job at one of the listed times",
        source: "cronie entry.c get_range (R_RANDOM)",
    },
    Rule {
        id: "never_fires",
        daemons: &[DEB, CR, BB],
        applies_to: &[LINE],
        kind: SYNTAX,
        description: "the time fields can never match (an empty range like 5-1, or a date that does not exist like 31 2)",
        fix: "correct the time fields",
        source: "Debian entry.c get_range (empty loop for A>B); calendar",
    },
    Rule {
        id: "file_not_utf8",
        daemons: &[DEB, CR, BB],
        applies_to: &[CROND, SYSTAB, SPOOL],
        kind: SYNTAX,
        description: "the file is not valid UTF-8 (binary data or another encoding); what is shown has replacement characters",
        fix: "check the file is the crontab you meant; re-save it as text",
        source: "tracer",
    },
    Rule {
        id: "file_truncated",
        daemons: &[DEB, CR, BB],
        applies_to: &[CROND, SYSTAB, SPOOL],
        kind: SYNTAX,
        description: "the file is larger than the tracer reads (1 MiB) or grew while it was read; only its beginning was analysed",
        fix: "check why a crontab is this large",
        source: "tracer",
    },
];

pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// A rule that holds for a file or line, before it becomes a `Problem`.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub rule: &'static str,
    pub detail: String,
    pub effect: Effect,
}

fn hit(rule: &'static str, detail: String, effect: Effect) -> Hit {
    Hit {
        rule,
        detail,
        effect,
    }
}

/// Whether `daemon` reads files from this slot at all.
pub fn read_by(origin: &Origin, daemon: Daemon) -> bool {
    match origin {
        Origin::BusyboxSpool { .. } => daemon == Daemon::BusyboxCrond,
        Origin::UserSpool { .. } => daemon.is_vixie(),
        Origin::SystemCrontab | Origin::CronD => daemon.is_vixie(),
    }
}

/// Debian database.c `valid_name` in its default (non-LSB) mode: `^[A-Za-z0-9_-]+$`.
pub fn debian_valid_crond_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// cronie database.c `not_a_crontab`.
pub fn cronie_skips_name(name: &str) -> bool {
    name.starts_with('.')
        || name.starts_with('#')
        || name.ends_with('~')
        || name.len() >= 255
        || [".rpmsave", ".rpmorig", ".rpmnew"]
            .iter()
            .any(|s| name.len() > s.len() && name.ends_with(s))
}

/// The rules about a file as a whole (name, owner, mode, type), before its text.
pub fn file_checks(src: &CrontabSource, ctx: &HostContext, daemon: Daemon) -> Vec<Hit> {
    use Effect::SkipsFile;
    let mut hits = Vec::new();
    let name = src.file_name();
    let system = src.origin.is_system();
    if !read_by(&src.origin, daemon) {
        if daemon == Daemon::BusyboxCrond && system {
            hits.push(hit(
                "not_read_by_daemon",
                "busybox crond never reads this file".into(),
                SkipsFile,
            ));
        }
        return hits;
    }
    // Names first: a skipped name is never opened, so nothing else about it matters.
    match (daemon, &src.origin) {
        (Daemon::DebianCron, Origin::CronD) if !debian_valid_crond_name(name) => {
            hits.push(hit(
                "crond_file_name",
                format!("the name '{name}' has characters other than A-Z a-z 0-9 _ -"),
                SkipsFile,
            ));
        }
        (Daemon::DebianCron, Origin::UserSpool { .. }) if name.starts_with('.') => {
            hits.push(hit(
                "crond_file_name",
                format!("the name '{name}' starts with a dot"),
                SkipsFile,
            ));
        }
        (Daemon::Cronie, Origin::CronD | Origin::UserSpool { .. }) if cronie_skips_name(name) => {
            hits.push(hit(
                "cronie_skipped_name",
                format!("cronie skips the name '{name}'"),
                SkipsFile,
            ));
        }
        (Daemon::BusyboxCrond, _) if name.contains('.') => {
            hits.push(hit(
                "busybox_name_has_dot",
                format!("the name '{name}' contains a dot"),
                SkipsFile,
            ));
        }
        _ => {}
    }
    if !hits.is_empty() {
        return hits;
    }
    if let Some(user) = src.origin.spool_user() {
        if ctx.user(user).is_none() {
            hits.push(hit(
                "unknown_user",
                format!("no user '{user}' exists for this crontab"),
                SkipsFile,
            ));
            return hits;
        }
    }
    let is_link = src.symlink_target.is_some() || src.mode & S_IFMT == S_IFLNK;
    if daemon == Daemon::DebianCron && !system && is_link {
        let target = src.symlink_target.as_deref().unwrap_or("?");
        hits.push(hit(
            "spool_symlink",
            format!("it is a symlink to {target}"),
            SkipsFile,
        ));
        return hits;
    }
    if daemon == Daemon::DebianCron && system && src.link_uid.is_some_and(|u| u != 0) {
        let owner = owner_name(ctx, src.link_uid.unwrap_or(0));
        hits.push(hit(
            "system_symlink_not_root",
            format!("the symlink is owned by {owner}"),
            SkipsFile,
        ));
        return hits;
    }
    // open() failed: a dangling symlink, no permission, an I/O error. (A directory or
    // FIFO opens, and fails the regular-file check below instead.)
    let open_failed = src.text.is_none() && matches!(src.mode & S_IFMT, S_IFREG | S_IFLNK | 0);
    if open_failed {
        let why = src
            .read_error
            .clone()
            .unwrap_or_else(|| "it could not be read".into());
        hits.push(hit(
            "file_unreadable",
            format!("it cannot be opened: {why}"),
            SkipsFile,
        ));
        return hits;
    }
    let owner = owner_name(ctx, src.uid);
    if daemon == Daemon::BusyboxCrond {
        if src.uid != 0 {
            hits.push(hit(
                "busybox_owner_not_root",
                format!("it is owned by {owner}"),
                SkipsFile,
            ));
        }
        return hits;
    }
    let debian = daemon == Daemon::DebianCron;
    // The order of database.c: owner, type, mode, links (Debian); cronie check_open:
    // type, mode, owner, links. Each check ends the file, so report the first only.
    let perm = src.mode & 0o7777;
    let spool_owner_ok =
        |u: &str| src.uid == 0 || ctx.user(u).is_some_and(|info| info.uid == src.uid);
    let owner_hit = match &src.origin {
        Origin::UserSpool { user } if !spool_owner_ok(user) => Some(hit(
            "spool_owner",
            format!("it is owned by {owner}, not by {user} or root"),
            SkipsFile,
        )),
        Origin::SystemCrontab | Origin::CronD if src.uid != 0 => Some(hit(
            "system_file_not_root",
            format!("it is owned by {owner}, not root"),
            SkipsFile,
        )),
        _ => None,
    };
    let type_hit = (!src.is_regular()).then(|| {
        hit(
            "not_regular_file",
            format!("it is not a regular file (mode {:o})", src.mode),
            SkipsFile,
        )
    });
    let mode_hit = if debian {
        match &src.origin {
            Origin::UserSpool { .. } if perm != 0o600 => Some(hit(
                "spool_mode",
                format!("its mode is {perm:04o}, not 0600"),
                SkipsFile,
            )),
            Origin::SystemCrontab | Origin::CronD if perm & 0o022 != 0 => Some(hit(
                "system_file_writable",
                format!("its mode {perm:04o} lets group or others write it"),
                SkipsFile,
            )),
            _ => None,
        }
    } else {
        (perm & 0o7533 != 0o400).then(|| {
            hit(
                "cronie_bad_mode",
                format!("its mode is {perm:04o}"),
                SkipsFile,
            )
        })
    };
    let links_apply = debian || !system;
    let link_hit = (links_apply && src.nlink > 1).then(|| {
        hit(
            "hard_links",
            format!("it has {} hard links", src.nlink),
            SkipsFile,
        )
    });
    let ordered = if debian {
        [owner_hit, type_hit, mode_hit, link_hit]
    } else {
        [type_hit, mode_hit, owner_hit, link_hit]
    };
    if let Some(first) = ordered.into_iter().flatten().next() {
        hits.push(first);
        return hits;
    }
    hits
}

/// cron.allow/cron.deny as crontab(1) applies them (root is always allowed).
pub fn allow_deny(user: &str, ctx: &HostContext) -> Option<String> {
    if user == "root" {
        return None;
    }
    if let Some(allow) = &ctx.cron_allow {
        return (!allow.iter().any(|u| u == user))
            .then(|| "/etc/cron.allow exists and does not list them".to_string());
    }
    if let Some(deny) = &ctx.cron_deny {
        return deny
            .iter()
            .any(|u| u == user)
            .then(|| "/etc/cron.deny lists them".to_string());
    }
    None
}

fn owner_name(ctx: &HostContext, uid: u32) -> String {
    match ctx.user_by_uid(uid) {
        Some(u) => format!("{} (uid {uid})", u.name),
        None => format!("uid {uid}"),
    }
}
