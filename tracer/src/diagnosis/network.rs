//! Connections the job made that failed.
use std::collections::HashMap;

use super::{view::View, Draft, Kind};
use crate::model::event::Body;

const SOL_SOCKET: i64 = 1;
const SO_ERROR: i64 = 4;

/// The job failed and a connection it made failed: refused, timed out, unreachable.
/// A non-blocking connect (EINPROGRESS) is resolved by the SO_ERROR the program read.
pub(super) fn connect_failed(v: &View, d: &mut Vec<Draft>) {
    let mut in_progress: HashMap<(u32, i32), (usize, String)> = HashMap::new();
    for (i, e) in v.tl.iter().enumerate() {
        if !v.is_job_work(i) {
            continue;
        }
        match &e.body {
            Body::Connect {
                fd,
                address,
                result,
            } => match result.error {
                Some("EINPROGRESS") | Some("EALREADY") => {
                    in_progress.insert((e.pid, *fd), (i, address.clone()));
                }
                Some("ENOENT") if address.contains("nscd") => {}
                Some(err) => {
                    d.push(Draft {
                        kind: Kind::ConnectFailed,
                        message: format!(
                            "connect to {address} failed {err} (pid {} {})",
                            e.pid, e.comm
                        ),
                        pid: e.pid,
                        evidence: vec![i],
                    });
                    return;
                }
                None => {}
            },
            Body::Getsockopt {
                fd,
                level: SOL_SOCKET,
                optname: SO_ERROR,
                value: Some(errno),
                ..
            } if *errno != 0 => {
                if let Some((ci, address)) = in_progress.remove(&(e.pid, *fd)) {
                    d.push(Draft {
                        kind: Kind::ConnectFailed,
                        message: format!(
                            "connect to {address} failed {} (non-blocking connect; the error came back through SO_ERROR) (pid {} {})",
                            crate::model::names::errno_name(*errno as i64),
                            e.pid,
                            e.comm
                        ),
                        pid: e.pid,
                        evidence: vec![ci, i],
                    });
                    return;
                }
            }
            _ => {}
        }
    }
}
