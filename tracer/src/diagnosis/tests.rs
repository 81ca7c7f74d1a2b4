use super::{
    exec::command_words,
    noise::{is_noise_path, is_optional_probe},
    *,
};
use crate::{
    facts::RecordedFacts,
    model::event::{Body, Event, ExitStatus, SysResult},
    model::job::Tracker,
    testutil::{ev, exec_events, snapshot_root},
};

fn root() -> Event {
    snapshot_root(100)
}

fn exit(pid: u32, ts: u64, code: i32) -> Event {
    ev(
        pid,
        ts,
        Body::Exit {
            status: Some(ExitStatus::code(code)),
        },
    )
}

fn open(pid: u32, ts: u64, path: &str, ret: i64) -> Event {
    ev(
        pid,
        ts,
        Body::Open {
            syscall: "openat",
            dfd: -100,
            path: path.into(),
            flags: 0,
            mode: 0,
            result: SysResult::new(ret),
        },
    )
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
    body.push(exit(202, 30, 0));
    cron_job(
        &mut t,
        200,
        1,
        "tool",
        &["PATH=/usr/local/bin:/usr/bin"],
        body,
        0,
    );
    assert!(kinds(&t, 0).is_empty(), "{:?}", kinds(&t, 0));
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
