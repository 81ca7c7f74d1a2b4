//! `analyse` end to end over a few files, as a host would have them.
use super::rules_tests::{crond, ctx, spool};
use super::*;
use crate::schedules::source::{Origin, S_IFREG};
use crate::schedules::Daemon::{Cronie as CR, DebianCron as DEB};

fn host() -> Vec<CrontabSource> {
    vec![
        CrontabSource::new(
            "/etc/crontab",
            Origin::SystemCrontab,
            "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\n\n17 * * * * root cd / && run-parts --report /etc/cron.hourly\n",
        ),
        crond("backup.sh", "0 3 * * * root /usr/local/bin/backup\n"),
        {
            let mut gw = crond("reports", "30 6 * * 1-5 root /usr/local/bin/report\n");
            gw.mode = S_IFREG | 0o664;
            gw
        },
        crond("cleanup", "0 4 * * * root /usr/local/bin/good\n*/10 * * * * root /usr/local/bin/last"),
        crond("ghost", "0 5 * * * bob /usr/local/bin/ghost\n"),
        crond("mail", "MAILTO=ops@example.com\n0 1 * * * root mail -s report joe%line one%line two\n"),
        spool("alice", "PATH=/home/alice/bin:/usr/bin:/bin\n@daily sync-photos\n"),
    ]
}

fn entry<'a>(set: &'a CrontabSet, file: &str) -> Vec<&'a Entry> {
    set.entries.iter().filter(|e| e.file == file).collect()
}

fn rules_for<'a>(set: &'a CrontabSet, file: &str) -> Vec<&'a str> {
    set.problems
        .iter()
        .filter(|p| p.file == file)
        .map(|p| p.rule)
        .collect()
}

#[test]
fn debian_host_end_to_end() {
    let ctx = HostContext {
        cron_deny: Some(vec!["alice".into()]),
        tz: "Europe/Berlin".into(),
        ..ctx()
    };
    let set = analyse(&host(), &ctx, DEB);

    let sys = entry(&set, "/etc/crontab");
    assert_eq!(sys.len(), 1);
    assert!(sys[0].runs);
    assert_eq!(sys[0].user, "root");
    assert_eq!(sys[0].line, 4);
    assert_eq!(sys[0].schedule, "17 * * * *");
    assert_eq!(
        sys[0].env["PATH"],
        "/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin"
    );
    assert_eq!(sys[0].env["HOME"], "/root");
    assert_eq!(sys[0].env["LOGNAME"], "root");
    assert_eq!(sys[0].tz, "Europe/Berlin");
    assert!(sys[0].wildcard);

    // A dotted name: skipped before it is opened.
    assert_eq!(
        rules_for(&set, "/etc/cron.d/backup.sh"),
        ["crond_file_name"]
    );
    assert!(entry(&set, "/etc/cron.d/backup.sh").iter().all(|e| !e.runs));
    // Group-writable.
    assert_eq!(
        rules_for(&set, "/etc/cron.d/reports"),
        ["system_file_writable"]
    );
    let gw = entry(&set, "/etc/cron.d/reports");
    assert!(!gw[0].runs);
    assert!(
        gw[0]
            .skipped_because
            .as_deref()
            .unwrap_or_default()
            .contains("0664"),
        "{:?}",
        gw[0].skipped_because
    );
    // No final newline: the good first line is lost too.
    assert_eq!(
        rules_for(&set, "/etc/cron.d/cleanup"),
        ["missing_final_newline"]
    );
    let cleanup = entry(&set, "/etc/cron.d/cleanup");
    assert_eq!(cleanup.len(), 2);
    assert!(cleanup.iter().all(|e| !e.runs));
    assert!(cleanup[0]
        .skipped_because
        .as_deref()
        .unwrap_or_default()
        .contains("newline"));
    let p = set
        .problems
        .iter()
        .find(|p| p.rule == "missing_final_newline")
        .unwrap();
    assert_eq!(p.line, Some(2));
    assert!(
        p.message.starts_with("/etc/cron.d/cleanup:2: ") && p.message.contains("echo >> FILE"),
        "{}",
        p.message
    );
    // Unknown user in a system line: Debian drops the file.
    assert_eq!(rules_for(&set, "/etc/cron.d/ghost"), ["unknown_user"]);
    assert!(
        entry(&set, "/etc/cron.d/ghost").is_empty(),
        "a line Debian cannot read is not an entry"
    );
    // % in the command.
    let mail = entry(&set, "/etc/cron.d/mail");
    assert_eq!(mail[0].command, "mail -s report joe");
    assert_eq!(mail[0].stdin.as_deref(), Some("line one\nline two\n"));
    assert_eq!(mail[0].env["MAILTO"], "ops@example.com");
    // cron.deny: the daemon still runs it; the problem says so.
    let alice = entry(&set, "/var/spool/cron/crontabs/alice");
    assert!(alice[0].runs);
    assert_eq!(alice[0].env["HOME"], "/home/alice");
    assert_eq!(alice[0].env["PATH"], "/home/alice/bin:/usr/bin:/bin");
    assert_eq!(
        rules_for(&set, "/var/spool/cron/crontabs/alice"),
        ["cron_allow_deny"]
    );

    // Entries' fire times in the daemon's zone: 17 past each hour.
    let tz = daemon_tz(&ctx);
    let from: Timestamp = "2026-06-01T10:00:00Z".parse().unwrap();
    let to: Timestamp = "2026-06-01T13:00:00Z".parse().unwrap();
    let fires = sys[0].fires_between(&tz, from, to, DEB);
    let at: Vec<String> = fires.iter().map(|f| f.at.to_string()).collect();
    assert_eq!(
        at,
        [
            "2026-06-01T10:17:00Z",
            "2026-06-01T11:17:00Z",
            "2026-06-01T12:17:00Z"
        ]
    );
    // A skipped entry never fires.
    assert!(gw[0].fires_between(&tz, from, to, DEB).is_empty());
    let next = alice[0].next_fires(&tz, from, 2, DEB);
    let next: Vec<String> = next.iter().map(|z| z.to_string()).collect();
    assert_eq!(
        next,
        [
            "2026-06-02T00:00:00+02:00[Europe/Berlin]",
            "2026-06-03T00:00:00+02:00[Europe/Berlin]"
        ]
    );
}

#[test]
fn cronie_reads_the_same_host_differently() {
    let set = analyse(&host(), &ctx(), CR);
    // Dots are fine for cronie; group-writable is not (mode & 07533 != 0400).
    assert!(entry(&set, "/etc/cron.d/backup.sh")[0].runs);
    assert_eq!(rules_for(&set, "/etc/cron.d/reports"), ["cronie_bad_mode"]);
    // Only the unterminated last line is lost.
    let cleanup = entry(&set, "/etc/cron.d/cleanup");
    assert!(cleanup[0].runs && !cleanup[1].runs);
    // The unknown user's line is kept and refused.
    let ghost = entry(&set, "/etc/cron.d/ghost");
    assert!(!ghost[0].runs);
    assert_eq!(rules_for(&set, "/etc/cron.d/ghost"), ["unknown_user"]);
    let sys = entry(&set, "/etc/crontab");
    assert_eq!(sys[0].env["USER"], "root");
}

#[test]
fn cronie_cron_tz_entries_fire_in_their_zone() {
    let src = crond(
        "tokyo",
        "CRON_TZ=Asia/Tokyo\n0 9 * * * root /usr/local/bin/morning\n",
    );
    let set = analyse(std::slice::from_ref(&src), &ctx(), CR);
    let e = &set.entries[0];
    assert_eq!(e.tz, "Asia/Tokyo");
    let from: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let to: Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
    let fires = e.fires_between(&TimeZone::UTC, from, to, CR);
    assert_eq!(fires.len(), 1);
    assert_eq!(
        fires[0].at.to_string(),
        "2026-01-02T00:00:00Z",
        "09:00 in Tokyo is midnight UTC"
    );
    // Debian reads the same file as 09:00 in its own zone, and says so.
    let set = analyse(&[src], &ctx(), DEB);
    assert_eq!(set.entries[0].tz, "UTC");
    assert_eq!(
        set.entries[0].fires_between(&TimeZone::UTC, from, to, DEB)[0]
            .at
            .to_string(),
        "2026-01-01T09:00:00Z"
    );
    assert!(set.problems.iter().any(|p| p.rule == "cron_tz_unsupported"));
}

#[test]
fn json_shapes() {
    let set = analyse(&host(), &ctx(), DEB);
    let v = serde_json::to_value(&set).unwrap();
    let p = &v["problems"][0];
    assert!(
        p["kind"] == "crontab_ignored" || p["kind"] == "crontab_syntax",
        "{p}"
    );
    assert_eq!(
        v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["rule"] == "crond_file_name")
            .count(),
        1
    );
    let e = &v["entries"][0];
    assert!(e.get("spec").is_none() && e.get("cron_tz").is_none());
    assert_eq!(e["file"], "/etc/crontab");
    assert_eq!(serde_json::to_value(DEB).unwrap(), "debian_cron");
    // Sources round-trip (they are stored in trace headers).
    let src = host();
    let back: Vec<CrontabSource> =
        serde_json::from_str(&serde_json::to_string(&src).unwrap()).unwrap();
    assert_eq!(back, src);
    let origin = serde_json::to_value(Origin::UserSpool {
        user: "alice".into(),
    })
    .unwrap();
    assert_eq!(
        origin,
        serde_json::json!({"kind": "user_spool", "user": "alice"})
    );
}
