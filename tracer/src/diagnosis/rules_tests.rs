//! Each rule's conditions pinned one by one: written against what cargo-mutants
//! found the first tests let through (a rule removed, a condition inverted, a guard
//! made always true), so that breaking any of them fails a test here.
use super::{
    exec::{exec_failure, shell_role, ExecContext},
    noise::{is_noise_path, is_optional_probe, is_routine},
    *,
};
use crate::{
    facts::{Fact, FileFact, RecordedFacts},
    model::event::{Body, Event, ExitStatus, SysResult},
    model::job::Tracker,
    testutil::{ev, exec_events, exit, fork, open, snapshot_root, stat},
};

fn connect(pid: u32, ts: u64, fd: i32, address: &str, ret: i64) -> Event {
    ev(
        pid,
        ts,
        Body::Connect {
            fd,
            address: address.into(),
            result: SysResult::new(ret),
        },
    )
}

fn nofile(pid: u32, ts: u64, soft: u64) -> Event {
    ev(
        pid,
        ts,
        Body::Rlimit {
            syscall: "prlimit64",
            target_pid: 0,
            resource: "NOFILE",
            soft: Some(soft),
            hard: Some(soft),
            result: SysResult::new(0),
        },
    )
}

/// cron 100 forks `leader` (uid `uid`), which forks `leader+1` running `sh -c cmd`
/// with `env`; `body` are events of the job; the shell exits `code`.
fn run(
    t: &mut Tracker,
    leader: u32,
    ts: u64,
    cmd: &str,
    env: &[&str],
    body: Vec<Event>,
    code: i32,
) {
    let sh = leader + 1;
    t.push(fork(100, ts, leader));
    t.push(fork(leader, ts + 1, sh));
    for e in exec_events(sh, ts + 2, &["/bin/sh", "-c", cmd], env, 0) {
        t.push(e);
    }
    for e in body {
        t.push(e);
    }
    t.push(exit(sh, ts + 50, code));
    t.push(exit(leader, ts + 60, 0));
}

fn tracker() -> Tracker {
    let mut t = Tracker::default();
    t.push(snapshot_root(100));
    t
}

fn diagnosed(t: &Tracker, job: usize, facts: &[Fact]) -> Vec<Finding> {
    let mut rec = RecordedFacts::default();
    for f in facts {
        rec.add(f);
    }
    diagnose(t, &t.jobs()[job], &mut rec, true)
}

fn kinds(f: &[Finding]) -> Vec<&str> {
    f.iter().map(|x| x.kind.as_str()).collect()
}

// ---- delivery -------------------------------------------------------------------

/// The job's shell, then cron's child (200) mailing through `/usr/sbin/sendmail`
/// (pid 210), whose exec returns `exec_ret` and which exits `code`.
fn mailed(exec_ret: i64, code: i32) -> Tracker {
    let mut t = tracker();
    t.push(fork(100, 1, 200));
    t.push(fork(200, 2, 201));
    for e in exec_events(201, 3, &["/bin/sh", "-c", "report"], &[], 0) {
        t.push(e);
    }
    t.push(exit(201, 10, 0));
    t.push(fork(200, 20, 210));
    for e in exec_events(
        210,
        21,
        &["/usr/sbin/sendmail", "-i", "root"],
        &[],
        exec_ret,
    ) {
        t.push(e);
    }
    t.push(exit(210, 30, code));
    t.push(exit(200, 40, 0));
    t
}

#[test]
fn output_lost_names_a_failing_mailer_and_a_missing_one_and_not_a_working_one() {
    let f = diagnosed(&mailed(0, 1), 0, &[]);
    assert_eq!(kinds(&f), ["output_lost"], "{f:#?}");
    assert!(
        f[0].message.contains("/usr/sbin/sendmail exit 1"),
        "{}",
        f[0].message
    );
    let t = mailed(0, 1);
    let tl = &t.jobs()[0].timeline;
    let shown: Vec<(&str, u32)> = f[0]
        .evidence
        .iter()
        .map(|&i| (tl[i].body.name(), tl[i].pid))
        .collect();
    assert_eq!(shown, [("exec_attempt", 210), ("exit", 210)]);

    let f = diagnosed(&mailed(-2, 127), 0, &[]);
    assert_eq!(kinds(&f), ["output_lost"]);
    assert!(
        f[0].message.contains("could not be run (ENOENT)"),
        "{}",
        f[0].message
    );

    assert!(
        diagnosed(&mailed(0, 0), 0, &[]).is_empty(),
        "mail that went out"
    );
}

#[test]
fn no_mta_is_cron_failing_to_find_sendmail_not_the_job_failing_to() {
    let job = |who: u32| {
        let mut t = tracker();
        t.push(fork(100, 1, 200));
        t.push(fork(200, 2, 201));
        for e in exec_events(201, 3, &["/bin/sh", "-c", "report"], &[], 0) {
            t.push(e);
        }
        t.push(stat(who, 9, "/usr/sbin/sendmail", -2));
        t.push(exit(201, 10, 0));
        t.push(exit(200, 40, 0));
        t
    };
    let f = diagnosed(&job(200), 0, &[]);
    assert_eq!(kinds(&f), ["output_lost"]);
    assert!(
        f[0].message.contains("/usr/sbin/sendmail does not exist"),
        "{}",
        f[0].message
    );
    assert!(
        diagnosed(&job(201), 0, &[]).is_empty(),
        "the job's own lookup"
    );
}

// ---- noise ----------------------------------------------------------------------

#[test]
fn noise_paths_by_each_shape() {
    for p in [
        "/usr/lib/x86_64-linux-gnu/libfoo.so",
        "/lib/libc.so.6",
        "/usr/lib/glibc-hwcaps/x86-64-v3/libm.so.6",
        "/root/.terminfo/x/xterm",
        "/opt/app/__pycache__/m.cpython-311.pyc",
        "/opt/app/m.pyc",
        "/usr/lib/python3/dist-packages/distutils-precedence.pth",
        "/opt/venv/pyvenv.cfg",
        "/etc/nsswitch.conf",
        "/etc/localtime",
        "/usr/share/zoneinfo/UTC",
    ] {
        assert!(is_noise_path(p), "{p}");
    }
    for p in [
        "/etc/app.conf",
        "/usr/lib/myapp/data.csv",
        "/opt/app/pyvenv.cfg.bak",
    ] {
        assert!(!is_noise_path(p), "{p}");
    }
    // "." and ".." are not dotfiles.
    assert!(!is_optional_probe("/srv/./data.csv", "ENOENT"));
    assert!(!is_optional_probe("/srv/a/../data.csv", "ENOENT"));
}

#[test]
fn routine_events_are_the_ones_a_timeline_reader_can_skip() {
    let e = |body| ev(5, 1, body);
    let socket = |family_name| Body::Socket {
        family: 0,
        family_name,
        sock_type: 1,
        protocol: 0,
        result: SysResult::new(3),
    };
    let routine = [
        open(5, 1, "/etc/pam.d/cron", 3),
        open(5, 1, "/usr/lib/locale/C/LC_CTYPE", -2),
        stat(5, 1, "/usr/bin/x", -2),
        e(Body::Getsockopt {
            fd: 3,
            level: 1,
            optname: 4,
            value: Some(0),
            result: SysResult::new(0),
        }),
        connect(5, 1, 3, "unix:/var/run/nscd/socket", -2),
        e(socket("AF_UNIX")),
        e(Body::Wait {
            waited_for: -1,
            status: None,
            result: SysResult::new(-10),
        }),
        e(Body::Rlimit {
            syscall: "prlimit64",
            target_pid: 0,
            resource: "CORE",
            soft: Some(0),
            hard: None,
            result: SysResult::new(0),
        }),
    ];
    for r in &routine {
        assert!(is_routine(r), "{r:?}");
    }
    let telling = [
        open(5, 1, "/etc/pam.d/cron", -13),
        open(5, 1, "/etc/app.conf", 3),
        e(Body::Getsockopt {
            fd: 3,
            level: 1,
            optname: 4,
            value: Some(111),
            result: SysResult::new(0),
        }),
        connect(5, 1, 3, "127.0.0.1:5432", -111),
        e(socket("AF_INET")),
        e(Body::Wait {
            waited_for: -1,
            status: None,
            result: SysResult::new(7),
        }),
        nofile(5, 1, 16),
        exit(5, 1, 0),
    ];
    for r in &telling {
        assert!(!is_routine(r), "{r:?}");
    }
}

// ---- env ------------------------------------------------------------------------

#[test]
fn env_mismatch_compares_only_an_earlier_good_run_of_the_same_command_and_user() {
    let good = ["PATH=/usr/local/bin:/usr/bin:/bin"];
    let bad = ["PATH=/usr/bin:/bin"];
    // Same command, earlier run fine, this one fails with another PATH.
    let mut t = tracker();
    run(&mut t, 200, 1, "backup", &good, vec![], 0);
    run(&mut t, 300, 100, "backup", &bad, vec![], 1);
    let f = diagnosed(&t, 1, &[]);
    assert_eq!(kinds(&f), ["env_mismatch", "nonzero_exit"], "{f:#?}");
    assert!(
        f[0].message
            .contains("PATH was /usr/local/bin:/usr/bin:/bin in job 1"),
        "{}",
        f[0].message
    );
    let tl = &t.jobs()[1].timeline;
    let at = f[0].evidence[0];
    assert!(matches!(tl[at].body, Body::ExecAttempt { .. }) && tl[at].pid == 301);
    // The later run is not compared by the earlier one.
    let mut t = tracker();
    run(&mut t, 200, 1, "backup", &bad, vec![], 1);
    run(&mut t, 300, 100, "backup", &good, vec![], 0);
    assert_eq!(kinds(&diagnosed(&t, 0, &[])), ["nonzero_exit"]);
    // Another command, or an earlier run that failed too: nothing to compare.
    for (cmd, code) in [("restore", 0), ("backup", 2)] {
        let mut t = tracker();
        run(&mut t, 200, 1, cmd, &good, vec![], code);
        run(&mut t, 300, 100, "backup", &bad, vec![], 1);
        assert_eq!(
            kinds(&diagnosed(&t, 1, &[])),
            ["nonzero_exit"],
            "{cmd} {code}"
        );
    }
    // Another user's run of the same command.
    let mut t = tracker();
    run(&mut t, 200, 1, "backup", &good, vec![], 0);
    let mut other = fork(100, 100, 300);
    other.uid = 0;
    t.push(other);
    t.push(fork(300, 101, 301));
    for mut e in exec_events(301, 102, &["/bin/sh", "-c", "backup"], &bad, 0) {
        e.uid = 1000;
        t.push(e);
    }
    t.push(exit(301, 150, 1));
    t.push(exit(300, 160, 0));
    assert!(!kinds(&diagnosed(&t, 1, &[])).contains(&"env_mismatch"));
}

// ---- files ----------------------------------------------------------------------

#[test]
fn emfile_names_the_limit_set_by_an_ancestor_and_counts_only_the_failing_processs_opens() {
    let mut t = tracker();
    let mut body = vec![nofile(201, 5, 16), fork(201, 6, 202)];
    body.extend(exec_events(202, 7, &["/usr/bin/worker"], &[], 0));
    // Opens by the shell are not the worker's.
    body.extend((0..5).map(|k| open(201, 10 + k, "/etc/hostname", 3)));
    body.extend((0..13).map(|k| open(202, 20 + k, "/srv/in", 3)));
    body.push(open(202, 40, "/srv/in", -24));
    body.push(exit(202, 45, 1));
    run(&mut t, 200, 1, "jobs", &[], body, 1);
    let f = diagnosed(&t, 0, &[]);
    assert_eq!(f[0].kind, "fd_exhausted", "{f:#?}");
    let m = &f[0].message;
    assert!(m.contains("after 13 successful opens in pid 202"), "{m}");
    assert!(
        m.contains("NOFILE limit 16 (set by prlimit64 in pid 201)"),
        "{m}"
    );
    let tl = &t.jobs()[0].timeline;
    assert!(
        matches!(tl[f[0].evidence[0]].body, Body::Rlimit { .. }),
        "the limit's setting is evidence"
    );

    let mut t = tracker();
    run(
        &mut t,
        200,
        1,
        "jobs",
        &[],
        vec![open(201, 5, "/srv/in", -23)],
        1,
    );
    let f = diagnosed(&t, 0, &[]);
    assert!(
        f[0].message.contains("whole system ran out"),
        "{}",
        f[0].message
    );
}

// ---- network --------------------------------------------------------------------

#[test]
fn a_connect_is_recovered_only_by_a_later_success_to_the_same_service() {
    let case = |events: Vec<Event>| {
        let mut t = tracker();
        run(&mut t, 200, 1, "sync", &[], events, 1);
        diagnosed(&t, 0, &[])
    };
    // Another service answering later does not excuse the failure.
    let f = case(vec![
        connect(201, 5, 3, "127.0.0.1:5432", -111),
        connect(201, 6, 4, "127.0.0.1:6379", 0),
    ]);
    assert_eq!(kinds(&f), ["connect_failed", "nonzero_exit"], "{f:#?}");
    assert!(
        f[1].message
            .contains("last failing call before it: connect(127.0.0.1:5432)"),
        "{}",
        f[1].message
    );
    // A success before the failure does not either.
    let f = case(vec![
        connect(201, 5, 3, "127.0.0.1:5432", 0),
        connect(201, 6, 4, "127.0.0.1:5432", -111),
    ]);
    assert_eq!(kinds(&f), ["connect_failed", "nonzero_exit"]);
    // The same service answering after (IPv6 refused, IPv4 fine): not the cause, and
    // not the last failing call either.
    let f = case(vec![
        connect(201, 5, 3, "[::1]:5432", -111),
        connect(201, 6, 4, "127.0.0.1:5432", 0),
    ]);
    assert_eq!(kinds(&f), ["nonzero_exit"]);
    assert!(!f[0].message.contains("connect"), "{}", f[0].message);
    // nscd's socket missing is every libc program's probe.
    let f = case(vec![connect(201, 5, 3, "unix:/var/run/nscd/socket", -2)]);
    assert_eq!(kinds(&f), ["nonzero_exit"]);
}

#[test]
fn a_non_blocking_connect_fails_through_so_error() {
    let so_error = |v| {
        ev(
            201,
            7,
            Body::Getsockopt {
                fd: 3,
                level: 1,
                optname: 4,
                value: Some(v),
                result: SysResult::new(0),
            },
        )
    };
    let mut t = tracker();
    run(
        &mut t,
        200,
        1,
        "curl x",
        &[],
        vec![connect(201, 5, 3, "127.0.0.1:9", -115), so_error(111)],
        7,
    );
    let f = diagnosed(&t, 0, &[]);
    assert_eq!(f[0].kind, "connect_failed", "{f:#?}");
    assert!(
        f[0].message
            .contains("failed ECONNREFUSED (non-blocking connect"),
        "{}",
        f[0].message
    );
    assert_eq!(f[0].evidence.len(), 2);
    let mut t = tracker();
    run(
        &mut t,
        200,
        1,
        "curl x",
        &[],
        vec![connect(201, 5, 3, "127.0.0.1:9", -115), so_error(0)],
        7,
    );
    assert_eq!(kinds(&diagnosed(&t, 0, &[])), ["nonzero_exit"]);
}

// ---- exec -----------------------------------------------------------------------

#[test]
fn an_exec_failure_is_explained_by_what_the_host_says_of_the_file() {
    let how = ExecContext {
        cwd: Some("/root"),
        scheduler: "cron",
        shown: "x",
        uid: 1000,
        near: vec![],
    };
    let says = |path: &str, fact: FileFact, errno: i64| {
        let mut f = RecordedFacts::default();
        f.add(&Fact::File {
            path: path.into(),
            fact,
        });
        exec_failure(path, errno, &how, &mut f)
    };
    let (k, m) = says(
        "/opt/tool",
        FileFact {
            exists: true,
            mode: 0o755,
            ..Default::default()
        },
        2,
    );
    assert_eq!(
        (k, m.contains("program loader")),
        (Kind::ExecFailed, true),
        "{m}"
    );
    let (k, m) = says("/opt/tool", FileFact::default(), 8);
    assert_eq!(
        (k, m.contains("ENOEXEC: not a binary and no #! line")),
        (Kind::ExecFailed, true),
        "{m}"
    );
    let (k, m) = says(
        "/opt/dir",
        FileFact {
            exists: true,
            is_dir: true,
            mode: 0o755,
            ..Default::default()
        },
        13,
    );
    assert_eq!(
        (k, m.contains("it is a directory")),
        (Kind::NotExecutable, true),
        "{m}"
    );
    let (_, m) = says(
        "/mnt/x.sh",
        FileFact {
            exists: true,
            mode: 0o755,
            noexec_mount: true,
            ..Default::default()
        },
        13,
    );
    assert!(m.contains("mounted noexec"), "{m}");
    let (_, m) = says(
        "/srv/x.sh",
        FileFact {
            exists: true,
            mode: 0o755,
            ..Default::default()
        },
        13,
    );
    assert!(m.contains("permission denied for uid 1000"), "{m}");
    let (_, m) = says("/srv/x.sh", FileFact::default(), 7);
    assert!(m.contains("failed E2BIG"), "{m}");
}

#[test]
fn a_shell_is_named_by_what_it_runs() {
    let s = |a: &[&str]| shell_role(&a.iter().map(|x| x.to_string()).collect::<Vec<_>>());
    assert_eq!(
        s(&["/bin/bash", "/opt/backup.sh"]),
        "bash running /opt/backup.sh"
    );
    assert_eq!(s(&["/bin/sh", "-c", "x"]), "sh -c");
    assert_eq!(s(&["/opt/backup.sh"]), "/opt/backup.sh");
    assert_eq!(s(&["bash", "-e", "/opt/x.sh"]), "bash");
    assert_eq!(s(&[]), "the shell");
}

#[test]
fn a_shell_search_is_failed_stats_of_one_name_over_distinct_absolute_directories() {
    let located = Fact::Locate {
        name: "jq".into(),
        found: Some("/usr/local/bin/jq".into()),
    };
    let case = |stats: Vec<Event>| {
        let mut t = tracker();
        let mut body = vec![fork(201, 4, 202)];
        body.extend(exec_events(
            202,
            5,
            &["/opt/s.sh"],
            &["PATH=/usr/bin:/bin"],
            0,
        ));
        body.extend(stats);
        body.push(exit(202, 40, 0));
        run(
            &mut t,
            200,
            1,
            "/opt/s.sh",
            &["PATH=/usr/bin:/bin"],
            body,
            0,
        );
        kinds(&diagnosed(&t, 0, std::slice::from_ref(&located))).len()
    };
    let miss = |p: &str| stat(202, 10, p, -2);
    assert_eq!(
        case(vec![miss("/usr/bin/jq"), miss("/bin/jq")]),
        1,
        "the search"
    );
    let notdir = stat(202, 11, "/bin/jq", -20);
    assert_eq!(
        case(vec![miss("/usr/bin/jq"), notdir]),
        1,
        "ENOTDIR is a miss too"
    );
    assert_eq!(
        case(vec![miss("/usr/bin/jq"), stat(202, 11, "/bin/jq", -13)]),
        0,
        "EACCES is not a search"
    );
    assert_eq!(
        case(vec![miss("/usr/bin/jq"), miss("/usr/bin/jq")]),
        0,
        "one directory twice"
    );
    assert_eq!(
        case(vec![miss("/usr/bin/jq"), miss("/bin/yq")]),
        0,
        "two names"
    );
    assert_eq!(
        case(vec![miss("/usr/bin/.jq"), miss("/bin/.jq")]),
        0,
        "dotfiles"
    );
    assert_eq!(
        case(vec![miss("usr/bin/jq"), miss("bin/jq")]),
        0,
        "relative paths"
    );
    // Another process's stat does not extend the search.
    assert_eq!(
        case(vec![miss("/usr/bin/jq"), stat(201, 11, "/bin/jq", -2)]),
        0,
        "two processes"
    );
}

#[test]
fn a_confirming_127_is_the_next_child_of_the_searching_shell_that_never_execd() {
    let case = |after: Vec<Event>| {
        let mut t = tracker();
        let mut body = vec![fork(201, 4, 202)];
        body.extend(exec_events(
            202,
            5,
            &["/opt/s.sh"],
            &["PATH=/usr/bin:/bin"],
            0,
        ));
        body.push(stat(202, 10, "/usr/bin/nothere", -2));
        body.push(stat(202, 11, "/bin/nothere", -2));
        body.extend(after);
        body.push(exit(202, 40, 0));
        run(
            &mut t,
            200,
            1,
            "/opt/s.sh",
            &["PATH=/usr/bin:/bin"],
            body,
            0,
        );
        diagnosed(&t, 0, &[])
            .iter()
            .filter(|f| f.message.contains("looked up by /opt/s.sh"))
            .count()
    };
    assert_eq!(case(vec![fork(202, 20, 203), exit(203, 21, 127)]), 1);
    // The 127 of a child of another process, or of a later child, does not confirm.
    assert_eq!(case(vec![fork(201, 20, 203), exit(203, 21, 127)]), 0);
    assert_eq!(
        case(vec![
            fork(202, 20, 203),
            exit(203, 21, 0),
            fork(202, 22, 204),
            exit(204, 23, 127)
        ]),
        0
    );
}

// ---- survivors of the second cargo-mutants run -------------------------------------

#[test]
fn an_earlier_run_without_a_recorded_environment_is_not_compared() {
    let mut t = tracker();
    run(&mut t, 200, 1, "backup", &[], vec![], 0);
    run(
        &mut t,
        300,
        100,
        "backup",
        &["PATH=/usr/bin:/bin"],
        vec![],
        1,
    );
    assert_eq!(kinds(&diagnosed(&t, 1, &[])), ["nonzero_exit"]);
}

#[test]
fn emfile_counts_opens_from_where_the_failing_process_set_its_own_limit() {
    let mut t = tracker();
    let mut body: Vec<Event> = (0..5)
        .map(|k| open(201, 5 + k, "/etc/hostname", 3))
        .collect();
    body.push(nofile(201, 20, 16));
    body.extend((0..13).map(|k| open(201, 30 + k, "/srv/in", 3)));
    body.push(open(201, 45, "/srv/in", -24));
    run(&mut t, 200, 1, "ulimit -n 16; work", &[], body, 1);
    let f = diagnosed(&t, 0, &[]);
    assert!(
        f[0].message
            .contains("after 13 successful opens in pid 201"),
        "{}",
        f[0].message
    );
}

#[test]
fn emfile_finds_who_set_the_limit_even_when_pids_were_reused_in_a_loop() {
    // 201 forks a new 200 (pid reuse): 200's parent is 201 and 201's is 200.
    let mut t = tracker();
    let body = vec![fork(201, 5, 200), open(201, 10, "/srv/in", -24)];
    run(&mut t, 200, 1, "work", &[], body, 1);
    let f = diagnosed(&t, 0, &[]);
    assert_eq!(f[0].kind, "fd_exhausted", "{f:#?}");
}

#[test]
fn emfile_from_fanotify_names_its_own_limit() {
    let mut t = tracker();
    let e = ev(
        201,
        10,
        Body::FdExhausted {
            syscall: "fanotify_init".into(),
            nr: 300,
            result: SysResult::new(-24),
        },
    );
    run(&mut t, 200, 1, "watch", &[], vec![e], 1);
    let f = diagnosed(&t, 0, &[]);
    assert!(
        f[0].message.contains("the fanotify group limit"),
        "{}",
        f[0].message
    );
}

#[test]
fn a_dotfile_is_named_only_from_the_failing_processs_own_last_failure() {
    let mut t = tracker();
    let body = vec![
        fork(201, 4, 202),
        fork(201, 5, 203),
        open(202, 10, "/srv/data", -13),
        open(203, 11, "/root/.pgpass", -2),
        exit(203, 12, 0),
        exit(202, 13, 1),
    ];
    run(&mut t, 200, 1, "load", &[], body, 1);
    let f = diagnosed(&t, 0, &[]);
    assert!(!f.iter().any(|x| x.message.contains(".pgpass")), "{f:#?}");
}

#[test]
fn an_absolute_path_or_a_refusal_is_never_the_cwds_fault() {
    // Even with a recorded answer that the name exists elsewhere.
    let facts = |rel: &str| Fact::Relative {
        rel: rel.into(),
        near: vec![],
        found: Some("/opt/app/x".into()),
    };
    for (path, ret) in [("/srv/x", -2), ("x", -13)] {
        let mut t = tracker();
        run(
            &mut t,
            200,
            1,
            "load",
            &[],
            vec![open(201, 10, path, ret)],
            1,
        );
        let f = diagnosed(&t, 0, &[facts(path)]);
        assert_eq!(f[0].kind, "open_failed", "{path}: {f:#?}");
    }
}

#[test]
fn a_connect_that_failed_after_a_success_is_the_last_failing_call() {
    let mut t = tracker();
    let body = vec![
        connect(201, 5, 3, "127.0.0.1:5432", 0),
        connect(201, 6, 4, "127.0.0.1:5432", -111),
    ];
    run(&mut t, 200, 1, "sync", &[], body, 1);
    let f = diagnosed(&t, 0, &[]);
    assert!(
        f[1].message
            .contains("last failing call before it: connect(127.0.0.1:5432)"),
        "{}",
        f[1].message
    );
    // A missing socket file is a cause; only nscd's is routine.
    let mut t = tracker();
    run(
        &mut t,
        200,
        1,
        "sync",
        &[],
        vec![connect(201, 5, 3, "unix:/run/app.sock", -2)],
        1,
    );
    assert_eq!(
        kinds(&diagnosed(&t, 0, &[])),
        ["connect_failed", "nonzero_exit"]
    );
}

#[test]
fn losses_apart_are_two_findings_and_the_message_counts_what_matters() {
    use crate::diagnosis::loss::events_lost;
    use crate::tracefile::LostEvents;
    let l = |since, ts, kinds: &[(&str, u64)]| LostEvents {
        since_ns: since,
        ts_ns: ts,
        by_kind: kinds.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
    };
    let mut t = tracker();
    for k in 0..11u32 {
        t.push(fork(100, 10, 200 + k));
    }
    let jobs: Vec<_> = t.jobs().iter().map(|j| (j, "x".to_string())).collect();
    let f = events_lost(
        &[l(0, 5, &[("fork", 1)]), l(100, 105, &[("fork", 2)])],
        &[],
        0,
        |n| n.to_string(),
    );
    assert_eq!(f.len(), 2, "{f:#?}");
    assert!(
        f[0].message.contains("no job was running then"),
        "{}",
        f[0].message
    );
    let f = events_lost(&[l(5, 20, &[("fork", 1), ("exit", 0)])], &jobs, 0, |n| {
        n.to_string()
    });
    assert!(
        f[0].message.contains("(fork 1)"),
        "zero counts are not listed: {}",
        f[0].message
    );
    assert!(
        f[0].message.contains(", 1 more were running"),
        "{}",
        f[0].message
    );
    let f = events_lost(&[l(5, 20, &[("fork", 1)])], &jobs[..10], 0, |n| {
        n.to_string()
    });
    assert!(!f[0].message.contains("more"), "{}", f[0].message);
    let f = events_lost(
        &[l(
            5,
            20,
            &[("tracked_map_full", 3), ("pending_map_full", 4)],
        )],
        &[],
        0,
        |n| n.to_string(),
    );
    assert!(
        f[0].message
            .contains("3 processes not followed: the tracked-process map was full"),
        "{}",
        f[0].message
    );
    assert!(
        f[0].message
            .contains("4 syscalls: the in-flight map was full"),
        "{}",
        f[0].message
    );
}

// ---- survivors of the second run: outcome -------------------------------------------

/// cron's child 200 forks `sh -c cmd` (201), which runs no exit: still going.
fn unfinished(t: &mut Tracker, leader: u32, ts: u64, cmd: &str) {
    t.push(fork(100, ts, leader));
    t.push(fork(leader, ts + 1, leader + 1));
    for e in exec_events(leader + 1, ts + 2, &["/bin/sh", "-c", cmd], &[], 0) {
        t.push(e);
    }
}

#[test]
fn still_running_names_overlapping_earlier_runs_of_the_same_command_only() {
    let mut t = tracker();
    unfinished(&mut t, 200, 1_000_000_000, "sync --all");
    unfinished(&mut t, 300, 2_000_000_000, "other");
    unfinished(&mut t, 400, 3_000_000_000, "sync --all");
    run(&mut t, 500, 3_500_000_000, "sync --all", &[], vec![], 0);
    t.push(ev(
        100,
        5_000_000_000,
        Body::Wait {
            waited_for: -1,
            status: None,
            result: SysResult::new(-10),
        },
    ));
    let f = diagnosed(&t, 2, &[]);
    assert_eq!(kinds(&f), ["still_running"], "{f:#?}");
    let m = &f[0].message;
    assert!(m.contains("`sync --all` (pid 401) had not exited"), "{m}");
    assert!(m.contains("(2.0 s after it started)"), "{m}");
    assert!(
        m.ends_with("overlaps earlier runs still going: job 1"),
        "{m}"
    );
    // The first run overlaps nothing earlier; finished jobs are never still running.
    assert!(!diagnosed(&t, 0, &[])[0].message.contains("overlaps"));
    assert!(diagnosed(&t, 3, &[]).is_empty());
    // Only at the end of the trace.
    let mut rec = RecordedFacts::default();
    assert!(diagnose(&t, &t.jobs()[2], &mut rec, false).is_empty());
}

#[test]
fn the_last_failing_call_is_the_last_that_tells_something() {
    let last = |body: Vec<Event>| {
        let mut t = tracker();
        run(&mut t, 200, 1, "job", &[], body, 1);
        diagnosed(&t, 0, &[])
            .into_iter()
            .find(|f| f.kind == "nonzero_exit")
            .unwrap()
            .message
    };
    let chdir = ev(
        201,
        5,
        Body::Chdir {
            path: "/srv/in".into(),
            result: SysResult::new(-2),
        },
    );
    assert!(last(vec![chdir]).ends_with("chdir(\"/srv/in\") ENOENT in pid 201"));
    let fd = ev(
        201,
        5,
        Body::FdExhausted {
            syscall: "pipe2".into(),
            nr: 293,
            result: SysResult::new(-23),
        },
    );
    assert!(last(vec![fd]).contains("pipe2() ENFILE"));
    // Noise, dotfiles and a connect still in progress are skipped.
    let m = last(vec![
        open(201, 5, "/srv/need", -13),
        open(201, 6, "/usr/lib/locale/x", -2),
        open(201, 7, "/root/.curlrc", -2),
        connect(201, 8, 3, "127.0.0.1:80", -115),
    ]);
    assert!(
        m.ends_with("openat(\"/srv/need\") EACCES in pid 201"),
        "{m}"
    );
}

#[test]
fn a_kill_names_the_kernel_when_it_raised_it_and_the_sender_otherwise() {
    let killed = |sig: i32, code: i32, sender: Option<u32>| {
        let mut t = tracker();
        let mut body = vec![];
        if let Some(p) = sender {
            body.push(ev(
                p,
                20,
                Body::Signal {
                    target_pid: 201,
                    signal: sig,
                    code,
                    signal_name: "",
                    result: 0,
                },
            ));
        }
        t.push(fork(100, 1, 200));
        t.push(fork(200, 2, 201));
        for e in exec_events(201, 3, &["/bin/sh", "-c", "big"], &[], 0) {
            t.push(e);
        }
        for e in body {
            t.push(e);
        }
        t.push(ev(
            201,
            30,
            Body::Exit {
                status: Some(ExitStatus::signal(sig, false)),
            },
        ));
        t.push(exit(200, 40, 0));
        diagnosed(&t, 0, &[])
    };
    let f = killed(9, 128, Some(201));
    assert!(
        f[0].message
            .contains("raised by the kernel: the OOM killer"),
        "{}",
        f[0].message
    );
    let f = killed(11, 128, Some(201));
    assert!(
        f[0].message.contains("raised by the kernel: a fault"),
        "{}",
        f[0].message
    );
    let f = killed(15, 0, Some(201));
    assert!(
        f[0].message.contains("sent by the job itself"),
        "{}",
        f[0].message
    );
    let f = killed(15, 0, Some(100));
    assert!(
        f[0].message.contains("sent by pid 100 cron"),
        "{}",
        f[0].message
    );
    let f = killed(9, 0, None);
    assert!(
        f[0].message.contains("no sender in the trace"),
        "{}",
        f[0].message
    );
    let f = killed(15, 0, None);
    assert!(
        f[0].message.ends_with("was killed by SIGTERM"),
        "{}",
        f[0].message
    );
}

#[test]
fn a_shell_exit_of_128_plus_n_is_a_kill_only_if_a_child_died_of_n() {
    let case = |child_sig: i32, code: i32| {
        let mut t = tracker();
        let mut body = vec![fork(201, 4, 202)];
        body.extend(exec_events(202, 5, &["/usr/bin/worker"], &[], 0));
        body.push(ev(
            202,
            10,
            Body::Exit {
                status: Some(ExitStatus::signal(child_sig, false)),
            },
        ));
        run(&mut t, 200, 1, "worker", &[], body, code);
        kinds(&diagnosed(&t, 0, &[]))
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(case(15, 143), ["killed_by_signal", "nonzero_exit"]);
    assert_eq!(
        case(9, 143),
        ["nonzero_exit"],
        "a child killed by another signal"
    );
    assert_eq!(case(15, 128), ["nonzero_exit"], "128 is no signal");
    assert_eq!(case(1, 200), ["nonzero_exit"], "past 128+64");
}

// ---- survivors of the exec.rs run ----------------------------------------------------

#[test]
fn a_cd_inside_the_job_is_not_crons_chdir() {
    let mut t = tracker();
    let cd = ev(
        201,
        10,
        Body::Chdir {
            path: "/nope".into(),
            result: SysResult::new(-2),
        },
    );
    run(&mut t, 200, 1, "cd /nope && x", &[], vec![cd], 2);
    assert_eq!(kinds(&diagnosed(&t, 0, &[])), ["nonzero_exit"]);
}

#[test]
fn no_exec_is_a_finished_fork_that_never_tried_to_exec() {
    let mut t = tracker();
    t.push(fork(100, 1, 200));
    t.push(exit(200, 5, 1));
    assert_eq!(kinds(&diagnosed(&t, 0, &[])), ["no_exec", "nonzero_exit"]);
    // Still going at the end: not yet.
    let mut t = tracker();
    t.push(fork(100, 1, 200));
    assert_eq!(kinds(&diagnosed(&t, 0, &[])), ["still_running"]);
    // It tried (and failed): that is the exec's finding, not no_exec.
    let mut t = tracker();
    t.push(fork(100, 1, 200));
    for e in exec_events(200, 2, &["/opt/gone"], &[], -2) {
        t.push(e);
    }
    t.push(exit(200, 5, 1));
    assert!(!kinds(&diagnosed(&t, 0, &[])).contains(&"no_exec"));
}

#[test]
fn an_exec_fails_for_good_unless_the_same_process_later_execs() {
    // `sh -c 'exec /opt/gone'`: the shell's own earlier exec does not excuse it.
    let mut t = tracker();
    run(
        &mut t,
        200,
        1,
        "exec /opt/gone",
        &[],
        exec_events(201, 10, &["/opt/gone"], &[], -2),
        127,
    );
    assert_eq!(kinds(&diagnosed(&t, 0, &[])), ["exec_failed"]);
    // Another process's successful exec does not either.
    let mut t = tracker();
    let mut body = vec![fork(201, 4, 202), fork(201, 5, 203)];
    body.extend(exec_events(202, 10, &["/opt/gone"], &[], -2));
    body.extend(exec_events(203, 20, &["/bin/true"], &[], 0));
    run(&mut t, 200, 1, "x", &[], body, 1);
    assert!(kinds(&diagnosed(&t, 0, &[])).contains(&"exec_failed"));
}

#[test]
fn an_exec_walk_is_one_name_over_several_absolute_directories_never_recovered() {
    let walk = |files: &[&str], then_ok: bool| {
        let mut t = tracker();
        let mut body = vec![fork(201, 4, 202)];
        body.extend(exec_events(
            202,
            5,
            &["/usr/bin/env", "x"],
            &["PATH=/usr/bin:/bin"],
            0,
        ));
        for (k, f) in files.iter().enumerate() {
            body.extend(exec_events(202, 10 + 3 * k as u64, &[f], &[], -2));
        }
        if then_ok {
            body.extend(exec_events(202, 30, &["/opt/bin/x"], &[], 0));
        }
        body.push(exit(202, 40, if then_ok { 0 } else { 127 }));
        run(
            &mut t,
            200,
            1,
            "env x; true",
            &["PATH=/usr/bin:/bin"],
            body,
            1,
        );
        let f = diagnosed(&t, 0, &[]);
        (
            f.iter().filter(|x| x.kind == "command_not_found").count(),
            f.iter().filter(|x| x.kind == "exec_failed").count(),
        )
    };
    assert_eq!(walk(&["/usr/bin/x", "/bin/x"], false), (1, 0));
    assert_eq!(walk(&["/usr/bin/x", "/bin/y"], false).0, 0, "two names");
    assert_eq!(walk(&["usr/bin/x", "bin/x"], false).0, 0, "relative");
    assert_eq!(walk(&["/usr/bin/x"], false).0, 0, "one directory");
    assert_eq!(
        walk(&["/usr/bin/x", "/usr/bin/x"], false).0,
        0,
        "one directory twice"
    );
    assert_eq!(
        walk(&["/usr/bin/x", "/bin/x"], true),
        (0, 0),
        "found after all"
    );
}

#[test]
fn an_unconfirmed_search_must_cover_the_path_exactly_and_twice_at_least() {
    let case = |path: &str, dirs: &[&str], code: i32| {
        let mut t = tracker();
        let env = [format!("PATH={path}")];
        let env: Vec<&str> = env.iter().map(String::as_str).collect();
        let mut body = vec![fork(201, 4, 202)];
        body.extend(exec_events(202, 5, &["/opt/s.sh"], &env, 0));
        for (k, d) in dirs.iter().enumerate() {
            body.push(stat(202, 10 + k as u64, &format!("{d}/jq"), -2));
        }
        body.push(exit(202, 40, code));
        run(&mut t, 200, 1, "/opt/s.sh", &env, body, code);
        let located = Fact::Locate {
            name: "jq".into(),
            found: Some("/usr/local/bin/jq".into()),
        };
        diagnosed(&t, 0, &[located])
            .into_iter()
            .filter(|f| f.kind == "command_not_found")
            .map(|f| f.message)
            .collect::<Vec<_>>()
    };
    assert_eq!(case("/usr/bin:/bin", &["/usr/bin", "/bin"], 0).len(), 1);
    assert!(
        case("/usr/bin:/bin", &["/usr/bin"], 0).is_empty(),
        "part of PATH"
    );
    assert!(
        case("/usr/bin:/bin", &["/usr/bin", "/bin", "/opt"], 0).is_empty(),
        "beyond PATH"
    );
    assert!(
        case("/usr/bin", &["/usr/bin"], 0).is_empty(),
        "a one-directory PATH: a test of one file"
    );
    let m = case("/usr/bin:/bin", &["/usr/bin", "/bin"], 1);
    assert!(!m[0].contains("went on"), "{}", m[0]);
}

#[test]
fn a_confirmed_search_of_a_relative_or_hidden_name_is_no_path_search() {
    let case = |a: &str, b: &str| {
        let mut t = tracker();
        let mut body = vec![fork(201, 4, 202)];
        body.extend(exec_events(
            202,
            5,
            &["/opt/s.sh"],
            &["PATH=/usr/bin:/bin"],
            0,
        ));
        body.push(stat(202, 10, a, -2));
        body.push(stat(202, 11, b, -2));
        body.extend([fork(202, 20, 203), exit(203, 21, 127), exit(202, 40, 0)]);
        run(
            &mut t,
            200,
            1,
            "/opt/s.sh",
            &["PATH=/usr/bin:/bin"],
            body,
            0,
        );
        diagnosed(&t, 0, &[])
            .iter()
            .filter(|f| f.message.contains("looked up by"))
            .count()
    };
    assert_eq!(case("/usr/bin/jq", "/bin/jq"), 1);
    assert_eq!(case("usr/bin/jq", "bin/jq"), 0);
    assert_eq!(case("/usr/bin/.jq", "/bin/.jq"), 0);
    assert_eq!(case("/usr/bin/", "/bin/"), 0);
}

#[test]
fn without_the_shells_stats_127_names_the_first_word_that_did_not_run() {
    let named = |cmd: &str, ran: &[&str]| {
        let mut t = tracker();
        let mut body = vec![];
        for (k, r) in ran.iter().enumerate() {
            body.push(fork(201, 4 + k as u64, 210 + k as u32));
            body.extend(exec_events(210 + k as u32, 5 + k as u64, &[r], &[], 0));
        }
        run(&mut t, 200, 1, cmd, &["PATH=/usr/bin:/bin"], body, 127);
        let f = diagnosed(&t, 0, &[]);
        assert_eq!(f[0].kind, "command_not_found", "{f:#?}");
        f[0].message.clone()
    };
    assert!(named("ls; mytool", &["/usr/bin/ls"]).starts_with("\"mytool\" not found"));
    assert!(named("./run.sh; mytool", &["./run.sh"]).starts_with("\"mytool\" not found"));
    assert!(named("$TOOL; mytool", &[]).starts_with("\"mytool\" not found"));
}

#[test]
fn redirections_are_not_command_separators() {
    assert_eq!(
        exec::command_words("a &>/dev/null; b 2>&1 | c"),
        vec!["a", "b", "c"]
    );
}
