//! The environment a daemon hands a job: its defaults, the crontab's settings above the
//! entry, and the variables it forces. Not known from the files, so not included: what
//! PAM adds (Debian and cronie run pam_env: /etc/environment, /etc/default/locale),
//! what cronie copies from its own environment (LANG, LC_*), and busybox's PATH, which
//! it inherits from however crond was started.
use std::collections::BTreeMap;

use crate::schedules::source::UserInfo;
use crate::schedules::Daemon;

/// Debian pathnames.h `_PATH_DEFPATH`.
pub const DEBIAN_PATH: &str = "/usr/bin:/bin";
/// cronie pathnames.h `_PATH_STDPATH` (glibc's value).
pub const CRONIE_PATH: &str = "/usr/bin:/bin:/usr/sbin:/sbin";
/// `_PATH_BSHELL`.
pub const DEFAULT_SHELL: &str = "/bin/sh";

/// `env_lines` are the crontab's settings above the entry, in file order.
pub fn job_env(
    daemon: Daemon,
    env_lines: &[(String, String)],
    user: &str,
    info: Option<&UserInfo>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    match daemon {
        Daemon::DebianCron | Daemon::Cronie => {
            // entry.c load_entry: settings, then SHELL/HOME/PATH only where unset,
            // then LOGNAME (and cronie's USER) always: they cannot be overridden.
            for (name, value) in env_lines {
                env.insert(name.clone(), value.clone());
            }
            env.entry("SHELL".into())
                .or_insert_with(|| DEFAULT_SHELL.to_string());
            if let Some(home) = info.map(|u| u.home.as_str()).filter(|h| !h.is_empty()) {
                env.entry("HOME".into()).or_insert_with(|| home.to_string());
            }
            let path = if daemon == Daemon::DebianCron {
                DEBIAN_PATH
            } else {
                CRONIE_PATH
            };
            env.entry("PATH".into()).or_insert_with(|| path.to_string());
            env.insert("LOGNAME".into(), user.to_string());
            if daemon == Daemon::Cronie {
                env.insert("USER".into(), user.to_string());
            }
        }
        Daemon::BusyboxCrond => {
            // crond.c set_env_vars: LOGNAME, USER, HOME from passwd, SHELL from the
            // crontab's SHELL= or crond's default; MAILTO only addresses the mail.
            env.insert("LOGNAME".into(), user.to_string());
            env.insert("USER".into(), user.to_string());
            if let Some(u) = info {
                env.insert("HOME".into(), u.home.clone());
            }
            let shell = env_lines
                .iter()
                .rev()
                .find(|(n, _)| n == "SHELL")
                .map_or(DEFAULT_SHELL, |(_, v)| v.as_str());
            env.insert("SHELL".into(), shell.to_string());
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> UserInfo {
        UserInfo {
            name: "alice".into(),
            uid: 1000,
            gid: 1000,
            home: "/home/alice".into(),
            shell: "/bin/bash".into(),
        }
    }

    fn lines(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn debian_defaults_and_overrides() {
        let env = job_env(
            Daemon::DebianCron,
            &lines(&[("PATH", "/opt/bin"), ("LOGNAME", "mallory"), ("MAILTO", "")]),
            "alice",
            Some(&alice()),
        );
        assert_eq!(env["PATH"], "/opt/bin");
        assert_eq!(env["LOGNAME"], "alice", "LOGNAME cannot be overridden");
        assert_eq!(env["HOME"], "/home/alice");
        assert_eq!(env["SHELL"], "/bin/sh", "the login shell is not used");
        assert_eq!(env["MAILTO"], "");
        assert!(!env.contains_key("USER"), "Debian sets USER only on BSD");
        let plain = job_env(Daemon::DebianCron, &[], "alice", Some(&alice()));
        assert_eq!(plain["PATH"], DEBIAN_PATH);
    }

    #[test]
    fn cronie_and_busybox_defaults() {
        let env = job_env(
            Daemon::Cronie,
            &lines(&[("HOME", "/srv")]),
            "alice",
            Some(&alice()),
        );
        assert_eq!(
            (
                env["PATH"].as_str(),
                env["USER"].as_str(),
                env["HOME"].as_str()
            ),
            (CRONIE_PATH, "alice", "/srv")
        );
        let env = job_env(
            Daemon::BusyboxCrond,
            &lines(&[("SHELL", "/bin/ash"), ("MAILTO", "x")]),
            "alice",
            Some(&alice()),
        );
        assert_eq!(env["SHELL"], "/bin/ash");
        assert_eq!(env["HOME"], "/home/alice");
        assert!(!env.contains_key("PATH") && !env.contains_key("MAILTO"));
    }
}
