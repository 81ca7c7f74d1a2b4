//! Builders shared by the unit tests.
use crate::model::event::{Body, Event, SysResult};

/// A property test's case count: `default`, or PROPTEST_CASES for a longer run (an
/// explicit count in `ProptestConfig` would otherwise win over the variable).
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An event of `pid` at `ts` with neutral header fields.
pub fn ev(pid: u32, ts: u64, body: Body) -> Event {
    Event {
        ts_ns: ts,
        pid,
        tid: pid,
        ppid: 0,
        uid: 0,
        gid: 0,
        comm: "cron".into(),
        truncated: false,
        read_fault: false,
        dur_ns: None,
        body,
    }
}

/// A scheduler root seen in the start-up snapshot.
pub fn snapshot_root(pid: u32) -> Event {
    ev(
        pid,
        0,
        Body::Snapshot {
            root: true,
            cmdline: vec!["/usr/sbin/cron".into()],
            cwd: Some("/".into()),
            exe: None,
            nofile: None,
        },
    )
}

/// An exec attempt of `argv` with `env`; when `ret` is 0 the image is replaced. Then
/// the attempt's result.
pub fn exec_events(pid: u32, ts: u64, argv: &[&str], env: &[&str], ret: i64) -> Vec<Event> {
    let mut v = vec![ev(
        pid,
        ts,
        Body::ExecAttempt {
            filename: argv[0].into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|s| s.to_string()).collect(),
            result: None,
            argv_truncated: false,
            env_truncated: false,
            execveat: false,
        },
    )];
    if ret == 0 {
        v.push(ev(
            pid,
            ts + 1,
            Body::Exec {
                filename: argv[0].into(),
                old_tid: pid,
                new_root: false,
            },
        ));
    }
    v.push(ev(
        pid,
        ts + 2,
        Body::ExecResult {
            result: SysResult::new(ret),
        },
    ));
    v
}

/// `pid` exits with `code`.
pub fn exit(pid: u32, ts: u64, code: i32) -> Event {
    ev(
        pid,
        ts,
        Body::Exit {
            status: Some(crate::model::event::ExitStatus::code(code)),
        },
    )
}

/// `pid` forks `child`.
pub fn fork(pid: u32, ts: u64, child: u32) -> Event {
    ev(
        pid,
        ts,
        Body::Fork {
            child_pid: child,
            clone_flags: 0,
        },
    )
}

/// `openat(AT_FDCWD, path)` returning `ret`.
pub fn open(pid: u32, ts: u64, path: &str, ret: i64) -> Event {
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

/// `stat(path)` returning `ret`.
pub fn stat(pid: u32, ts: u64, path: &str, ret: i64) -> Event {
    ev(
        pid,
        ts,
        Body::Stat {
            path: path.into(),
            result: SysResult::new(ret),
        },
    )
}

/// The bytes of a plain `#[repr(C)]` record, as the kernel would send them.
pub fn record_bytes<T>(r: &T) -> Vec<u8> {
    // SAFETY: reading the bytes of a plain #[repr(C)] value of integers and arrays.
    unsafe { std::slice::from_raw_parts((r as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
        .to_vec()
}
