use super::{
    exec::command_words,
    noise::{is_noise_path, is_optional_probe},
    *,
};
use crate::{
    facts::RecordedFacts,
    model::event::{Body, Event, ExitStatus, SysResult},
    model::job::Tracker,
    testutil::{ev, exec_events, exit, fork, open, snapshot_root, stat},
};

fn root() -> Event {
    snapshot_root(100)
}

/// One cron run: 100 forks `leader`, which forks `leader+1` running `sh -c cmd`.
fn cron_job(
    t: &mut Tracker,
    leader: u32,
    ts: u64,
    cmd: &str,
    env: &[&str],
    body: Vec<Event>,
    code: i32,
) {
    let sh = leader + 1;
    t.push(ev(
        100,
        ts,
        Body::Fork {
            child_pid: leader,
            clone_flags: 0,
        },
    ));
    t.push(ev(
        leader,
        ts + 1,
        Body::Fork {
            child_pid: sh,
            clone_flags: 0,
        },
    ));
    for e in exec_events(sh, ts + 2, &["/bin/sh", "-c", cmd], env, 0) {
        t.push(e);
    }
    for e in body {
        t.push(e);
    }
    t.push(exit(sh, ts + 50, code));
    t.push(exit(leader, ts + 60, 0));
}

fn kinds(t: &Tracker, job: usize) -> Vec<String> {
    let mut facts = RecordedFacts::default();
    diagnose(t, &t.jobs()[job], &mut facts, true)
        .into_iter()
        .map(|f| f.kind)
        .collect()
}

#[test]
fn a_healthy_job_full_of_routine_failures_has_no_finding() {
    let mut t = Tracker::default();
    t.push(root());
    let noise = vec![
        open(101, 10, "/usr/lib/locale/C.UTF-8/LC_CTYPE", -2),
        open(101, 11, "/root/.curlrc", -2),
        ev(
            101,
            12,
            Body::Connect {
                fd: 3,
                address: "unix:/var/run/nscd/socket".into(),
                result: SysResult::new(-2),
            },
        ),
        open(101, 13, "/etc/hostname", 3),
    ];
    cron_job(
        &mut t,
        200,
        1,
        "backup --all",
        &["PATH=/usr/bin:/bin"],
        noise,
        0,
    );
    assert!(kinds(&t, 0).is_empty(), "{:?}", kinds(&t, 0));
}

#[test]
fn chdir_failure_before_exec_leads_and_no_exec_follows() {
    let mut t = Tracker::default();
    t.push(root());
    t.push(ev(
        100,
        1,
        Body::Fork {
            child_pid: 300,
            clone_flags: 0,
        },
    ));
    t.push(ev(
        300,
        2,
        Body::Fork {
            child_pid: 301,
            clone_flags: 0,
        },
    ));
    t.push(ev(
        301,
        3,
        Body::Chdir {
            path: "/home/gone".into(),
            result: SysResult::new(-2),
        },
    ));
    t.push(exit(301, 4, 1));
    t.push(exit(300, 5, 0));
    let k = kinds(&t, 0);
    assert_eq!(k.first().map(String::as_str), Some("chdir_failed"), "{k:?}");
    assert!(k.contains(&"no_exec".to_string()), "{k:?}");
}

#[test]
fn a_run_that_fails_with_a_different_path_than_a_good_run_is_env_mismatch() {
    let mut t = Tracker::default();
    t.push(root());
    cron_job(
        &mut t,
        200,
        1,
        "report.sh",
        &["PATH=/usr/local/bin:/usr/bin:/bin"],
        vec![],
        0,
    );
    cron_job(
        &mut t,
        400,
        1000,
        "report.sh",
        &["PATH=/usr/bin:/bin"],
        vec![],
        1,
    );
    let mut facts = RecordedFacts::default();
    let f = diagnose(&t, &t.jobs()[1], &mut facts, true);
    let em = f
        .iter()
        .find(|f| f.kind == "env_mismatch")
        .expect("env_mismatch");
    assert!(
        em.message
            .contains("PATH was /usr/local/bin:/usr/bin:/bin in job 1"),
        "{}",
        em.message
    );
    assert_eq!(f.last().unwrap().kind, "nonzero_exit");
}

#[test]
fn a_failed_exec_followed_by_a_hit_is_a_path_search_not_a_finding() {
    let mut t = Tracker::default();
    t.push(root());
    let mut body = exec_events(202, 10, &["/usr/local/bin/tool"], &[], -2);
    body.extend(exec_events(202, 20, &["/usr/bin/tool"], &[], 0));
    body.insert(
        0,
        ev(
            201,
            9,
            Body::Fork {
                child_pid: 202,
                clone_flags: 0,
            },
        ),
    );
    body.push(exit(202, 30, 1));
    // The job fails (so the exec rules run), but not because of the search.
    cron_job(
        &mut t,
        200,
        1,
        "tool",
        &["PATH=/usr/local/bin:/usr/bin"],
        body,
        1,
    );
    assert_eq!(kinds(&t, 0), vec!["nonzero_exit"]);
}

/// `/opt/backup.sh` (pid 202, run by cron's `sh -c`) looks NAME up on PATH with
/// failed stats in `dirs`, then runs `after` (events of 202 and its children), and
/// the job exits `code`.
fn script_search(name: &str, dirs: &[&str], after: Vec<Event>, code: i32) -> Tracker {
    let mut t = Tracker::default();
    t.push(root());
    let mut body = vec![fork(201, 5, 202)];
    body.extend(exec_events(
        202,
        6,
        &["/opt/backup.sh"],
        &["PATH=/usr/bin:/bin"],
        0,
    ));
    for (k, d) in dirs.iter().enumerate() {
        body.push(stat(202, 10 + k as u64, &format!("{d}/{name}"), -2));
    }
    body.extend(after);
    body.push(exit(202, 40, code));
    cron_job(
        &mut t,
        200,
        1,
        "/opt/backup.sh",
        &["PATH=/usr/bin:/bin"],
        body,
        code,
    );
    t
}

fn findings_with(t: &Tracker, facts: &[crate::facts::Fact]) -> Vec<Finding> {
    let mut rec = RecordedFacts::default();
    for f in facts {
        rec.add(f);
    }
    diagnose(t, &t.jobs()[0], &mut rec, true)
}

#[test]
fn a_command_a_script_did_not_find_on_path_is_named_even_when_the_job_exits_0() {
    // bash: the search in the script's shell, then a child that exits 127 unexec'd.
    let t = script_search(
        "pg_dumpall",
        &["/usr/bin", "/bin"],
        vec![fork(202, 20, 203), exit(203, 21, 127)],
        0,
    );
    let at = crate::facts::Fact::Locate {
        name: "pg_dumpall".into(),
        found: Some("/usr/local/pgsql/bin/pg_dumpall".into()),
    };
    let f = findings_with(&t, &[at]);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].kind, "command_not_found");
    let m = &f[0].message;
    for want in [
        "\"pg_dumpall\" not found in PATH=/usr/bin:/bin",
        "found at /usr/local/pgsql/bin/pg_dumpall",
        "looked up by /opt/backup.sh, pid 202",
        "child pid 203 exited 127",
        "went on and exited 0",
    ] {
        assert!(m.contains(want), "{m} lacks {want}");
    }
    // The stats and the child's exit are the evidence.
    let tl = &t.jobs()[0].timeline;
    let shown: Vec<&str> = f[0].evidence.iter().map(|&i| tl[i].body.name()).collect();
    assert_eq!(shown, vec!["stat", "stat", "exit"]);
}

#[test]
fn a_lookup_without_127_is_named_only_when_the_command_is_installed_off_path() {
    // dash, or `command -v NAME`: the search and nothing after it.
    let t = script_search("jq", &["/usr/bin", "/bin"], vec![], 0);
    assert!(
        findings_with(&t, &[]).is_empty(),
        "a probe for an absent tool"
    );
    let at = crate::facts::Fact::Locate {
        name: "jq".into(),
        found: Some("/usr/local/bin/jq".into()),
    };
    let f = findings_with(&t, &[at]);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].message.contains("found at /usr/local/bin/jq"),
        "{}",
        f[0].message
    );
    assert!(
        f[0].message.contains("a lookup with no exec after it"),
        "{}",
        f[0].message
    );
}

#[test]
fn a_partial_search_or_a_test_of_one_file_is_not_a_missing_command() {
    // `[ -x /usr/bin/jq ]`: one stat, no 127, even with jq installed elsewhere.
    let at = crate::facts::Fact::Locate {
        name: "jq".into(),
        found: Some("/usr/local/bin/jq".into()),
    };
    let t = script_search("jq", &["/usr/bin"], vec![], 1);
    assert_eq!(
        findings_with(&t, std::slice::from_ref(&at))
            .iter()
            .map(|f| f.kind.as_str())
            .collect::<Vec<_>>(),
        vec!["nonzero_exit"]
    );
    // A child exiting 127 after it ran something (exec'd) is not the search's doing.
    let mut after = vec![fork(202, 20, 203)];
    after.extend(exec_events(203, 21, &["/usr/bin/other"], &[], 0));
    after.push(exit(203, 25, 127));
    let t = script_search("nothere", &["/usr/bin", "/bin"], after, 1);
    let k: Vec<String> = findings_with(&t, &[]).into_iter().map(|f| f.kind).collect();
    assert_eq!(k, vec!["nonzero_exit"]);
}

#[test]
fn a_dash_c_command_not_found_names_the_command_from_its_search() {
    // `sh -c 'mytool --x'`: dash searches, then exits 127 itself.
    let mut t = Tracker::default();
    t.push(root());
    let body = vec![
        stat(201, 10, "/usr/bin/mytool", -2),
        stat(201, 11, "/bin/mytool", -2),
    ];
    cron_job(
        &mut t,
        200,
        1,
        "FOO=1 mytool --x",
        &["PATH=/usr/bin:/bin"],
        body,
        127,
    );
    let f = findings(&t, 0);
    assert_eq!(f.len(), 1, "no nonzero_exit beside it: {f:#?}");
    assert!(
        f[0].message
            .contains("\"mytool\" not found in PATH=/usr/bin:/bin"),
        "{}",
        f[0].message
    );
    assert!(
        f[0].message
            .contains("looked up by sh -c, pid 201: it exited 127"),
        "{}",
        f[0].message
    );
}

#[test]
fn command_words_finds_commands_in_position() {
    assert_eq!(
        command_words("go build ./... && ./deploy.sh"),
        vec!["go", "./deploy.sh"]
    );
    assert_eq!(
        command_words("FOO=1 backup --all > /tmp/x 2>&1; echo done | logger"),
        vec!["backup", "echo", "logger"]
    );
    assert_eq!(
        command_words("cd /srv && 'my tool' -x"),
        vec!["cd", "my tool"]
    );
}

#[test]
fn noise_paths() {
    assert!(is_noise_path("/usr/lib/locale/C.UTF-8/LC_CTYPE"));
    assert!(is_noise_path("/lib/x86_64-linux-gnu/libc.so.6"));
    assert!(!is_noise_path("/etc/myapp/config.ini"));
    assert!(!is_noise_path("config.ini"));
    assert!(is_optional_probe("/root/.config/curlrc", "ENOENT"));
    assert!(is_optional_probe("/root/.curlrc", "ENOENT"));
    assert!(!is_optional_probe("../data/in.csv", "ENOENT"));
    assert!(!is_optional_probe("/root/.curlrc", "EACCES"));
}

fn findings(t: &Tracker, job: usize) -> Vec<Finding> {
    let mut facts = RecordedFacts::default();
    diagnose(t, &t.jobs()[job], &mut facts, true)
}

fn connect(pid: u32, ts: u64, address: &str, ret: i64) -> Event {
    ev(
        pid,
        ts,
        Body::Connect {
            fd: 3,
            address: address.into(),
            result: SysResult::new(ret),
        },
    )
}

#[test]
fn routine_failures_of_a_failing_job_never_lead_its_findings() {
    // The job fails: every rule runs, and the noise must not be what it names.
    let mut t = Tracker::default();
    t.push(root());
    let body = vec![
        open(201, 10, "/usr/lib/locale/C.UTF-8/LC_CTYPE", -2),
        open(201, 11, "/root/.curlrc", -2),
        connect(201, 12, "unix:/var/run/nscd/socket", -2),
        open(201, 13, "/srv/app/config.yml", -2),
    ];
    cron_job(
        &mut t,
        200,
        1,
        "app --run",
        &["PATH=/usr/bin:/bin"],
        body,
        1,
    );
    let f = findings(&t, 0);
    assert_eq!(f[0].kind, "open_failed", "{f:#?}");
    assert!(
        f[0].message.contains("/srv/app/config.yml"),
        "{}",
        f[0].message
    );
    assert!(!f
        .iter()
        .any(|x| x.message.contains("curlrc") || x.message.contains("nscd")));
}

#[test]
fn a_connect_the_job_recovered_from_is_not_the_cause() {
    let mut t = Tracker::default();
    t.push(root());
    // IPv6 refused, then IPv4 to the same port works; later something else fails.
    let body = vec![
        connect(201, 10, "[::1]:5432", -111),
        connect(201, 11, "127.0.0.1:5432", 0),
        connect(201, 12, "10.0.0.9:6379", -111),
    ];
    cron_job(&mut t, 200, 1, "sync-db", &[], body, 1);
    let f = findings(&t, 0);
    let c: Vec<&Finding> = f.iter().filter(|x| x.kind == "connect_failed").collect();
    assert_eq!(c.len(), 1, "{f:#?}");
    assert!(c[0].message.contains("10.0.0.9:6379"), "{}", c[0].message);
    // With only the recovered failure, no connect finding at all.
    let mut t = Tracker::default();
    t.push(root());
    let body = vec![
        connect(201, 10, "[::1]:5432", -111),
        connect(201, 11, "127.0.0.1:5432", 0),
    ];
    cron_job(&mut t, 200, 1, "sync-db", &[], body, 1);
    assert!(!kinds(&t, 0).contains(&"connect_failed".to_string()));
}

#[test]
fn a_connect_by_the_scheduler_before_the_job_runs_is_not_the_jobs() {
    // cron's child (200) never execs: its connect is the scheduler's work, not the job's.
    let mut t = Tracker::default();
    t.push(root());
    let body = vec![
        connect(200, 10, "10.0.0.9:25", -111),
        connect(201, 11, "10.0.0.9:6379", -111),
    ];
    cron_job(&mut t, 200, 1, "sync-db", &[], body, 1);
    let f = findings(&t, 0);
    let c: Vec<&Finding> = f.iter().filter(|x| x.kind == "connect_failed").collect();
    assert_eq!(c.len(), 1, "{f:#?}");
    assert!(c[0].message.contains("10.0.0.9:6379"), "{}", c[0].message);
}

#[test]
fn an_env_path_walk_is_one_command_not_found() {
    let mut t = Tracker::default();
    t.push(root());
    let mut body = Vec::new();
    // `/usr/bin/env mytool` tries each PATH directory, then exits 127.
    body.extend(exec_events(
        201,
        10,
        &["/usr/bin/env", "mytool"],
        &["PATH=/usr/bin:/bin"],
        0,
    ));
    body.extend(exec_events(201, 20, &["/usr/bin/mytool"], &[], -2));
    body.extend(exec_events(201, 30, &["/bin/mytool"], &[], -2));
    cron_job(
        &mut t,
        200,
        1,
        "/usr/bin/env mytool",
        &["PATH=/usr/bin:/bin"],
        body,
        127,
    );
    let f = findings(&t, 0);
    let nf: Vec<&Finding> = f.iter().filter(|x| x.kind == "command_not_found").collect();
    assert_eq!(nf.len(), 1, "{f:#?}");
    assert!(
        nf[0]
            .message
            .contains("\"mytool\" not found in PATH=/usr/bin:/bin"),
        "{}",
        nf[0].message
    );
    assert!(!f.iter().any(|x| x.kind == "exec_failed"), "{f:#?}");
}

#[test]
fn a_child_killed_under_its_shell_is_named() {
    let mut t = Tracker::default();
    t.push(root());
    let mut body = vec![ev(
        201,
        5,
        Body::Fork {
            child_pid: 202,
            clone_flags: 0,
        },
    )];
    body.extend(exec_events(202, 6, &["/usr/bin/pg_dump", "db"], &[], 0));
    let mut kill = ev(
        999,
        20,
        Body::Signal {
            target_pid: 202,
            signal: 15,
            signal_name: "SIGTERM",
            code: 0,
            result: 0,
        },
    );
    kill.comm = "timeout".into();
    body.push(kill);
    body.push(ev(
        202,
        21,
        Body::Exit {
            status: Some(ExitStatus::signal(15, false)),
        },
    ));
    cron_job(
        &mut t,
        200,
        1,
        "pg_dump db > /backup/db.sql",
        &[],
        body,
        143,
    );
    let f = findings(&t, 0);
    assert_eq!(f[0].kind, "killed_by_signal", "{f:#?}");
    assert!(
        f[0].message
            .contains("`/usr/bin/pg_dump db`, run by the job,"),
        "{}",
        f[0].message
    );
    assert!(
        f[0].message.contains("SIGTERM (sent by pid 999 timeout)"),
        "{}",
        f[0].message
    );
    assert!(f[0].message.contains("exited 143"), "{}", f[0].message);
}

#[test]
fn emfile_counts_only_when_the_job_failed_and_names_the_right_limit() {
    let emfile = |pid, ts, syscall: &str| {
        ev(
            pid,
            ts,
            Body::FdExhausted {
                syscall: syscall.into(),
                nr: 0,
                result: SysResult::new(-24),
            },
        )
    };
    let mut t = Tracker::default();
    t.push(root());
    cron_job(
        &mut t,
        200,
        1,
        "probe-limits",
        &[],
        vec![emfile(201, 10, "dup")],
        0,
    );
    assert!(kinds(&t, 0).is_empty(), "a job that carried on is fine");
    let mut t = Tracker::default();
    t.push(root());
    cron_job(
        &mut t,
        200,
        1,
        "watcher",
        &[],
        vec![emfile(201, 10, "inotify_init1")],
        1,
    );
    let f = findings(&t, 0);
    assert_eq!(f[0].kind, "fd_exhausted", "{f:#?}");
    assert!(
        f[0].message.contains("fs.inotify.max_user_instances"),
        "{}",
        f[0].message
    );
}

#[test]
fn the_mailers_whole_tree_is_delivery_not_the_job() {
    let mut t = Tracker::default();
    t.push(root());
    let fork = |p, ts, c| {
        ev(
            p,
            ts,
            Body::Fork {
                child_pid: c,
                clone_flags: 0,
            },
        )
    };
    t.push(fork(100, 1, 200));
    t.push(fork(200, 2, 201));
    for e in exec_events(201, 3, &["/bin/sh", "-c", "report --daily"], &[], 0) {
        t.push(e);
    }
    t.push(exit(201, 10, 1));
    // cron's child mails the output: sendmail forks a delivery that fails an open.
    t.push(fork(200, 20, 210));
    for e in exec_events(210, 21, &["/usr/sbin/sendmail", "-i", "root"], &[], 0) {
        t.push(e);
    }
    t.push(fork(210, 22, 211));
    t.push(open(211, 23, "/var/spool/exim4/input/x", -13));
    t.push(exit(210, 24, 0));
    t.push(exit(200, 30, 0));
    let f = findings(&t, 0);
    assert!(!f.iter().any(|x| x.message.contains("exim4")), "{f:#?}");
    assert_eq!(f[0].kind, "nonzero_exit", "{f:#?}");
    // The delivery still running did not keep the job open.
    assert!(t.jobs()[0].finished());
}

#[test]
fn wrappers_pass_the_command_position_on_and_builtins_are_never_missing() {
    assert_eq!(
        command_words("nohup sudo -u app timeout 5m backup --all & exec tool; . ./env.sh; time x"),
        vec!["nohup", "sudo", "timeout", "backup", "exec", "tool", ".", "time", "x"]
    );
    // `source`, `command`, `.` exit 127 never because of themselves.
    let mut t = Tracker::default();
    t.push(root());
    cron_job(
        &mut t,
        200,
        1,
        ". /etc/profile; command -v jt-nope",
        &["PATH=/usr/bin:/bin"],
        vec![],
        127,
    );
    let f = findings(&t, 0);
    assert_eq!(f[0].kind, "command_not_found", "{f:#?}");
    assert!(!f[0].message.contains("\".\""), "{}", f[0].message);
}

#[test]
fn a_relative_path_is_the_cwds_fault_only_if_the_file_is_elsewhere() {
    let run = |facts: &mut RecordedFacts| {
        let mut t = Tracker::default();
        t.push(root());
        let mut body = exec_events(201, 5, &["/opt/app/run.sh"], &[], 0);
        body.push(ev(
            201,
            8,
            Body::Chdir {
                path: "/root".into(),
                result: SysResult::new(0),
            },
        ));
        body.push(open(201, 10, "config.ini", -2));
        cron_job(&mut t, 200, 1, "/opt/app/run.sh", &[], body, 2);
        diagnose(&t, &t.jobs()[0], facts, true)
    };
    let mut facts = RecordedFacts::default();
    facts.add(&crate::facts::Fact::Relative {
        rel: "config.ini".into(),
        near: vec!["/opt/app".into()],
        found: Some("/opt/app/config.ini".into()),
    });
    let f = run(&mut facts);
    assert_eq!(f[0].kind, "relative_path", "{f:#?}");
    assert!(
        f[0].message.contains("it is at /opt/app/config.ini"),
        "{}",
        f[0].message
    );
    // Not there either: the file is simply missing.
    let f = run(&mut RecordedFacts::default());
    assert_eq!(f[0].kind, "open_failed", "{f:#?}");
}

#[test]
fn a_dotfile_is_a_cause_when_it_was_the_last_thing_that_failed() {
    let mut t = Tracker::default();
    t.push(root());
    let body = vec![
        open(201, 10, "/root/.curlrc", -2),
        open(201, 11, "/etc/hostname", 3),
        open(201, 12, "/root/.pgpass", -2),
    ];
    cron_job(&mut t, 200, 1, "nightly-dump", &[], body, 2);
    let f = findings(&t, 0);
    assert_eq!(f[0].kind, "open_failed", "{f:#?}");
    assert!(f[0].message.contains("/root/.pgpass"), "{}", f[0].message);
    // The shell's wait that reaped nothing after it (in recordings made before the
    // kernel side stopped sending those) is not a failure that comes after.
    let mut t = Tracker::default();
    t.push(root());
    let echild = |ts| {
        ev(
            201,
            ts,
            Body::Wait {
                waited_for: -1,
                status: None,
                result: SysResult::new(-10),
            },
        )
    };
    let body = vec![open(201, 12, "/root/.pgpass", -2), echild(13)];
    cron_job(&mut t, 200, 1, "nightly-dump", &[], body, 2);
    let f = findings(&t, 0);
    assert_eq!(f[0].kind, "open_failed", "{f:#?}");
    assert!(f[0].message.contains("/root/.pgpass"), "{}", f[0].message);
    // A dotfile probe followed by another failure is still just a probe.
    let mut t = Tracker::default();
    t.push(root());
    let body = vec![
        open(201, 10, "/root/.curlrc", -2),
        connect(201, 11, "10.0.0.9:443", -111),
    ];
    cron_job(&mut t, 200, 1, "fetch", &[], body, 7);
    let f = findings(&t, 0);
    assert!(!f.iter().any(|x| x.message.contains(".curlrc")), "{f:#?}");
}
