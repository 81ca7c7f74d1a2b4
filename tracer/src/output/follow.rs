//! `record --follow`: JSON Lines as things happen, for journald, Vector or Fluent Bit:
//! each job when it ends, each host-level finding when it is found, a summary at the
//! end. Lines go to stdout or are appended to a file that SIGHUP reopens (logrotate
//! moves the old one away).
use std::{
    fs::{File, OpenOptions},
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use serde::Serialize;

pub struct Follow {
    path: Option<PathBuf>,
    out: Box<dyn Write + Send>,
    /// Set by the signal watcher on SIGHUP: reopen before the next line.
    reopen: Arc<AtomicBool>,
    /// The first write error, said once; lines after it are dropped.
    failed: bool,
}

/// Appends, creates 0600 (jobs carry argv and env), never through a symlink.
fn open_log(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

impl Follow {
    /// Lines to `path` (appended), or to stdout.
    pub fn new(path: Option<&Path>, reopen: Arc<AtomicBool>) -> std::io::Result<Follow> {
        let out: Box<dyn Write + Send> = match path {
            Some(p) => Box::new(open_log(p)?),
            None => Box::new(std::io::stdout()),
        };
        Ok(Follow {
            path: path.map(Path::to_path_buf),
            out,
            reopen,
            failed: false,
        })
    }

    /// One line: `{"type": kind, ...value's fields}`.
    pub fn line(&mut self, kind: &str, value: &impl Serialize) {
        if let (true, Some(p)) = (self.reopen.swap(false, Ordering::SeqCst), &self.path) {
            match open_log(p) {
                Ok(f) => {
                    log::info!("SIGHUP: reopened {}", p.display());
                    self.out = Box::new(f);
                    self.failed = false;
                }
                Err(e) => eprintln!(
                    "tracer: warning: cannot reopen {}: {e}; still writing to the old file",
                    p.display()
                ),
            }
        }
        if self.failed {
            return;
        }
        let mut v = match serde_json::to_value(value) {
            Ok(serde_json::Value::Object(m)) => m,
            Ok(other) => {
                let mut m = serde_json::Map::new();
                m.insert("value".into(), other);
                m
            }
            Err(_) => return,
        };
        v.insert("type".into(), kind.into());
        let mut buf = serde_json::to_vec(&v).unwrap_or_default();
        buf.push(b'\n');
        // One write per line, so a reader never sees half of one.
        if let Err(e) = self.out.write_all(&buf).and_then(|_| self.out.flush()) {
            eprintln!(
                "tracer: warning: writing {} failed: {e}; lines are dropped until it is reopened (SIGHUP)",
                self.path.as_deref().map_or("stdout".into(), |p| p.display().to_string())
            );
            self.failed = true;
        }
    }
}
