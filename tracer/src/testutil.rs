//! Builders shared by the unit tests.
use crate::event::{Body, Event};

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
