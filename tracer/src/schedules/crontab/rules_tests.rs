//! One case per row of `rules::RULES`: a file that breaks the rule (the problem must be
//! reported, and a file-level refusal must stop its entries) and, where there is one,
//! the corrected file (the problem must be gone and its entries run).
use super::rules::RULES;
use super::*;
use crate::schedules::source::{Origin, UserInfo, S_IFLNK, S_IFREG};
use crate::schedules::Daemon::{BusyboxCrond as BB, Cronie as CR, DebianCron as DEB};

pub(crate) fn ctx() -> HostContext {
    let user = |name: &str, uid: u32, home: &str| UserInfo {
        name: name.into(),
        uid,
        gid: uid,
        home: home.into(),
        shell: "/bin/bash".into(),
    };
    HostContext {
        users: vec![
            user("root", 0, "/root"),
            user("alice", 1000, "/home/alice"),
            user("nobody", 65534, "/nonexistent"),
        ],
        cron_allow: None,
        cron_deny: None,
        tz: "UTC".into(),
    }
}

pub(crate) fn crond(name: &str, text: &str) -> CrontabSource {
    CrontabSource::new(&format!("/etc/cron.d/{name}"), Origin::CronD, text)
}

pub(crate) fn spool(user: &str, text: &str) -> CrontabSource {
    let mut s = CrontabSource::new(
        &format!("/var/spool/cron/crontabs/{user}"),
        Origin::UserSpool { user: user.into() },
        text,
    );
    s.uid = if user == "alice" { 1000 } else { 0 };
    s.mode = S_IFREG | 0o600;
    s
}

fn bb(user: &str, text: &str) -> CrontabSource {
    let mut s = CrontabSource::new(
        &format!("/var/spool/cron/crontabs/{user}"),
        Origin::BusyboxSpool { user: user.into() },
        text,
    );
    s.mode = S_IFREG | 0o600;
    s
}

fn with(mut s: CrontabSource, f: impl FnOnce(&mut CrontabSource)) -> CrontabSource {
    f(&mut s);
    s
}

struct Case {
    rule: &'static str,
    daemon: Daemon,
    bad: CrontabSource,
    good: Option<CrontabSource>,
    ctx: HostContext,
}

fn case(
    rule: &'static str,
    daemon: Daemon,
    bad: CrontabSource,
    good: Option<CrontabSource>,
) -> Case {
    Case {
        rule,
        daemon,
        bad,
        good,
        ctx: ctx(),
    }
}

const JOB: &str = "* * * * * root /usr/local/bin/job\n";
const USER_JOB: &str = "* * * * * /usr/local/bin/job\n";

fn cases() -> Vec<Case> {
    let denied = HostContext {
        cron_deny: Some(vec!["alice".into()]),
        ..ctx()
    };
    vec![
        case(
            "crond_file_name",
            DEB,
            crond("backup.sh", JOB),
            Some(crond("backup", JOB)),
        ),
        case(
            "cronie_skipped_name",
            CR,
            crond("job~", JOB),
            Some(crond("job", JOB)),
        ),
        case(
            "busybox_name_has_dot",
            BB,
            bb("alice.bak", USER_JOB),
            Some(bb("alice", USER_JOB)),
        ),
        case("not_read_by_daemon", BB, crond("job", JOB), None),
        case(
            "file_unreadable",
            DEB,
            with(crond("job", JOB), |s| {
                s.text = None;
                s.mode = S_IFLNK | 0o777;
                s.symlink_target = Some("/srv/gone".into());
                s.link_uid = Some(0);
                s.read_error = Some("dangling symlink to /srv/gone".into());
            }),
            Some(crond("job", JOB)),
        ),
        case(
            "not_regular_file",
            DEB,
            with(crond("job", JOB), |s| {
                s.text = None;
                s.mode = 0o040_755;
                s.read_error = Some("not a regular file".into());
            }),
            None,
        ),
        case(
            "system_file_not_root",
            DEB,
            with(crond("job", JOB), |s| s.uid = 65534),
            Some(crond("job", JOB)),
        ),
        case(
            "system_symlink_not_root",
            DEB,
            with(crond("job", JOB), |s| {
                s.symlink_target = Some("/srv/job".into());
                s.link_uid = Some(1000);
            }),
            Some(with(crond("job", JOB), |s| {
                s.symlink_target = Some("/srv/job".into());
                s.link_uid = Some(0);
            })),
        ),
        case(
            "system_file_writable",
            DEB,
            with(crond("job", JOB), |s| s.mode = S_IFREG | 0o664),
            Some(crond("job", JOB)),
        ),
        case(
            "cronie_bad_mode",
            CR,
            with(crond("job", JOB), |s| s.mode = S_IFREG | 0o755),
            Some(crond("job", JOB)),
        ),
        case(
            "hard_links",
            DEB,
            with(crond("job", JOB), |s| s.nlink = 2),
            Some(crond("job", JOB)),
        ),
        case(
            "spool_owner",
            DEB,
            with(spool("alice", USER_JOB), |s| s.uid = 65534),
            Some(spool("alice", USER_JOB)),
        ),
        case(
            "spool_mode",
            DEB,
            with(spool("alice", USER_JOB), |s| s.mode = S_IFREG | 0o644),
            Some(spool("alice", USER_JOB)),
        ),
        case(
            "spool_symlink",
            DEB,
            with(spool("alice", USER_JOB), |s| {
                s.symlink_target = Some("/home/alice/crontab".into())
            }),
            Some(spool("alice", USER_JOB)),
        ),
        case(
            "busybox_owner_not_root",
            BB,
            with(bb("alice", USER_JOB), |s| s.uid = 1000),
            Some(bb("alice", USER_JOB)),
        ),
        case(
            "unknown_user",
            DEB,
            spool("bob", USER_JOB),
            Some(spool("alice", USER_JOB)),
        ),
        Case {
            rule: "cron_allow_deny",
            daemon: DEB,
            bad: spool("alice", USER_JOB),
            good: None,
            ctx: denied,
        },
        case(
            "syntax_error",
            CR,
            spool("alice", "61 * * * * x\n"),
            Some(spool("alice", "59 * * * * x\n")),
        ),
        case(
            "empty_env_unquoted",
            DEB,
            crond("job", &format!("MAILTO=\n{JOB}")),
            Some(crond("job", &format!("MAILTO=\"\"\n{JOB}"))),
        ),
        case(
            "missing_final_newline",
            DEB,
            crond("job", JOB.trim_end()),
            Some(crond("job", JOB)),
        ),
        case(
            "command_too_long",
            DEB,
            crond("job", &format!("* * * * * root {}\n", "a".repeat(999))),
            Some(crond(
                "job",
                &format!("* * * * * root {}\n", "a".repeat(998)),
            )),
        ),
        case(
            "env_line_too_long",
            DEB,
            crond("job", &format!("X={}\n{JOB}", "v".repeat(2000))),
            Some(crond("job", &format!("X={}\n{JOB}", "v".repeat(900)))),
        ),
        case(
            "too_many_lines",
            BB,
            bb("alice", &USER_JOB.repeat(300)),
            Some(bb("alice", &USER_JOB.repeat(10))),
        ),
        case(
            "cron_tz_unsupported",
            DEB,
            crond("job", &format!("CRON_TZ=Asia/Tokyo\n{JOB}")),
            Some(crond("job", JOB)),
        ),
        case(
            "cron_tz_unknown",
            CR,
            crond("job", &format!("CRON_TZ=Mars/Olympus_Mons\n{JOB}")),
            Some(crond("job", &format!("CRON_TZ=Europe/Berlin\n{JOB}"))),
        ),
        case(
            "busybox_env_ignored",
            BB,
            bb("alice", &format!("PATH=/opt/bin\n{USER_JOB}")),
            Some(bb("alice", USER_JOB)),
        ),
        case(
            "busybox_short_line",
            BB,
            bb("alice", "* * * * *\n"),
            Some(bb("alice", USER_JOB)),
        ),
        case(
            "busybox_hash_truncates",
            BB,
            bb("alice", "* * * * * echo a#b\n"),
            Some(bb("alice", "* * * * * echo ab\n")),
        ),
        case(
            "busybox_special_crash",
            BB,
            bb("alice", "@daily x\n"),
            Some(bb("alice", "0 0 * * * x\n")),
        ),
        case(
            "crlf_line_end",
            DEB,
            crond("job", &JOB.replace('\n', "\r\n")),
            Some(crond("job", JOB)),
        ),
        case(
            "random_range",
            CR,
            spool("alice", "0~30 * * * * x\n"),
            Some(spool("alice", "0-30 * * * * x\n")),
        ),
        case(
            "never_fires",
            DEB,
            crond("job", "0 0 31 2 * root x\n"),
            Some(crond("job", "0 0 28 2 * root x\n")),
        ),
        case(
            "file_not_utf8",
            DEB,
            with(crond("job", JOB), |s| s.lossy_utf8 = true),
            Some(crond("job", JOB)),
        ),
        case(
            "file_truncated",
            DEB,
            with(crond("job", JOB), |s| s.truncated = true),
            Some(crond("job", JOB)),
        ),
    ]
}

#[test]
fn every_rule_row_has_a_case_and_ids_are_unique() {
    let cases = cases();
    for (i, rule) in RULES.iter().enumerate() {
        assert!(
            cases.iter().any(|c| c.rule == rule.id),
            "no test case for rule {}",
            rule.id
        );
        assert!(
            RULES[..i].iter().all(|r| r.id != rule.id),
            "duplicate rule id {}",
            rule.id
        );
        assert!(
            !rule.fix.is_empty() && !rule.source.is_empty(),
            "{}",
            rule.id
        );
    }
    for c in &cases {
        let row = rules::rule(c.rule).unwrap_or_else(|| panic!("case for unknown rule {}", c.rule));
        assert!(
            row.daemons.contains(&c.daemon),
            "{} is not a rule of {:?}",
            c.rule,
            c.daemon
        );
    }
}

#[test]
fn each_rule_fires_on_its_bad_file_and_not_on_the_fixed_one() {
    for c in cases() {
        let set = analyse(std::slice::from_ref(&c.bad), &c.ctx, c.daemon);
        let hit = set.problems.iter().find(|p| p.rule == c.rule);
        let Some(hit) = hit else {
            panic!(
                "{} ({:?}) not reported; got {:#?}",
                c.rule, c.daemon, set.problems
            );
        };
        assert!(
            hit.message.starts_with(&c.bad.path),
            "{}: {}",
            c.rule,
            hit.message
        );
        assert!(hit.message.contains("Fix: "), "{}: {}", c.rule, hit.message);
        assert_eq!(
            hit.kind,
            rules::rule(c.rule)
                .map(|r| r.kind)
                .unwrap_or(ProblemKind::CrontabSyntax)
        );
        if hit.effect == Effect::SkipsFile {
            assert!(
                set.entries.iter().all(|e| !e.runs),
                "{}: an entry of a skipped file runs",
                c.rule
            );
        }
        if let Some(good) = &c.good {
            let set = analyse(std::slice::from_ref(good), &c.ctx, c.daemon);
            assert!(
                set.problems.iter().all(|p| p.rule != c.rule),
                "{} on the fixed file: {:#?}",
                c.rule,
                set.problems
            );
            assert!(
                !set.entries.is_empty() && set.entries.iter().all(|e| e.runs),
                "{}: fixed file does not run",
                c.rule
            );
        }
    }
}

#[test]
fn allow_deny_is_reported_as_advisory_and_true() {
    let denied = HostContext {
        cron_deny: Some(vec!["alice".into()]),
        ..ctx()
    };
    let set = analyse(&[spool("alice", USER_JOB)], &denied, DEB);
    assert!(set.entries[0].runs, "the daemon does not read cron.deny");
    let p = set
        .problems
        .iter()
        .find(|p| p.rule == "cron_allow_deny")
        .expect("reported");
    assert_eq!(p.effect, Effect::Advisory);
    assert!(
        p.message.contains("still runs") && p.message.contains("cron.deny"),
        "{}",
        p.message
    );
    // cron.allow without the user: same; root is always allowed.
    let allow = HostContext {
        cron_allow: Some(vec!["root".into()]),
        ..ctx()
    };
    assert!(analyse(&[spool("alice", USER_JOB)], &allow, CR)
        .problems
        .iter()
        .any(|p| p.rule == "cron_allow_deny"));
    assert!(analyse(&[spool("root", USER_JOB)], &allow, DEB)
        .problems
        .is_empty());
}

#[test]
fn name_rules_match_the_daemons_patterns() {
    for ok in ["backup", "0hourly", "php_cleanup", "A-b_9"] {
        assert!(rules::debian_valid_crond_name(ok), "{ok}");
    }
    for bad in [
        "backup.sh",
        "job~",
        "x.dpkg-old",
        ".placeholder",
        "with space",
        "",
    ] {
        assert!(!rules::debian_valid_crond_name(bad), "{bad}");
    }
    for skipped in [
        ".hidden",
        "#tmp#",
        "job~",
        "x.rpmsave",
        "x.rpmorig",
        "x.rpmnew",
    ] {
        assert!(rules::cronie_skips_name(skipped), "{skipped}");
    }
    for kept in ["backup.sh", "x.dpkg-old", "0hourly"] {
        assert!(!rules::cronie_skips_name(kept), "{kept}");
    }
}
