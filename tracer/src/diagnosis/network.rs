//! Connections the job made that failed.
use foldhash::HashMap;

use super::{view::View, Draft, Kind};
use crate::model::event::Body;

const SOL_SOCKET: i64 = 1;
const SO_ERROR: i64 = 4;

/// The service a connect reached for: the port of an inet address (IPv6 refused and
/// IPv4 accepted is one service), or the path of a unix socket.
fn service(address: &str) -> &str {
    if address.starts_with("unix:") {
        return address;
    }
    address.rsplit(':').next().unwrap_or(address)
}

/// Whether the failed connect at `i` was followed by a connect to the same service that
/// worked (a retry, the other address family): the job got past it.
pub(super) fn recovered(v: &View, i: usize) -> bool {
    let Body::Connect {
        address, result, ..
    } = &v.tl[i].body
    else {
        return false;
    };
    if result.ok() {
        return false;
    }
    let svc = service(address);
    v.tl[i + 1..].iter().any(|e| {
        matches!(&e.body, Body::Connect { address, result, .. } if result.ok() && service(address) == svc)
    })
}

/// The job failed and a connection it made failed: refused, timed out, unreachable.
/// A non-blocking connect (EINPROGRESS) is resolved by the SO_ERROR the program read.
/// A failure the job got past (a retry, another address of the same service that then
/// connected) is not the cause.
pub(super) fn connect_failed(v: &View, d: &mut Vec<Draft>) {
    let mut in_progress: HashMap<(u32, i32), (usize, String)> = HashMap::default();
    // (index of the last event, service, the finding) of each failure, in order.
    let mut failures: Vec<(usize, String, Draft)> = Vec::new();
    // (index, service) of each connect that worked.
    let mut successes: Vec<(usize, String)> = Vec::new();
    for (i, e) in v.tl.iter().enumerate() {
        // The body first: `is_job_work` walks the process tree.
        if !matches!(e.body, Body::Connect { .. } | Body::Getsockopt { .. }) || !v.is_job_work(i) {
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
                Some(err) => failures.push((
                    i,
                    service(address).to_string(),
                    Draft {
                        kind: Kind::ConnectFailed,
                        message: format!(
                            "connect to {address} failed {err} (pid {} {})",
                            e.pid, e.comm
                        ),
                        pid: e.pid,
                        evidence: vec![i],
                    },
                )),
                None => successes.push((i, service(address).to_string())),
            },
            Body::Getsockopt {
                fd,
                level: SOL_SOCKET,
                optname: SO_ERROR,
                value: Some(errno),
                ..
            } => {
                let Some((ci, address)) = in_progress.remove(&(e.pid, *fd)) else {
                    continue;
                };
                if *errno == 0 {
                    successes.push((i, service(&address).to_string()));
                    continue;
                }
                failures.push((
                    i,
                    service(&address).to_string(),
                    Draft {
                        kind: Kind::ConnectFailed,
                        message: format!(
                            "connect to {address} failed {} (non-blocking connect; the error came back through SO_ERROR) (pid {} {})",
                            crate::model::names::errno_name(*errno as i64),
                            e.pid,
                            e.comm
                        ),
                        pid: e.pid,
                        evidence: vec![ci, i],
                    },
                ));
            }
            _ => {}
        }
    }
    let recovered = |at: usize, svc: &str| successes.iter().any(|(j, s)| *j > at && s == svc);
    if let Some((_, _, draft)) = failures
        .into_iter()
        .find(|(at, svc, _)| !recovered(*at, svc))
    {
        d.push(draft);
    }
}
