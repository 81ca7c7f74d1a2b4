//! Writing a trace as it is recorded: flushed and synced often, so a crash loses at
//! most the last second.
use std::{
    fs::{File, OpenOptions},
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    time::Instant,
};

use bytes::{BufMut, BytesMut};

use super::format::*;
use crate::{facts::Fact, schedules::ScheduleView};

/// Creates the file 0600, never through a symlink, never over an existing file unless
/// `force` (and even then not through a symlink).
pub fn create_file(path: &Path, force: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    let f = o.open(path)?;
    // An existing file kept its mode through O_TRUNC: tighten it.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

pub struct TraceWriter {
    path: PathBuf,
    file: Option<File>,
    block: BytesMut,
    last_flush: Instant,
    pub kernel_records: u64,
    pub synthetic_events: u64,
    pub bytes_written: u64,
    /// The first write error; writing stops there, the live analysis goes on.
    pub error: Option<String>,
}

impl TraceWriter {
    pub fn new(path: &Path, file: File, header: &TraceHeader) -> Self {
        let mut w = TraceWriter {
            path: path.to_path_buf(),
            file: Some(file),
            block: BytesMut::new(),
            last_flush: Instant::now(),
            kernel_records: 0,
            synthetic_events: 0,
            bytes_written: 0,
            error: None,
        };
        let json = serde_json::to_vec(header).expect("header serialises");
        let mut first = BytesMut::from(&MAGIC[..]);
        first.extend_from_slice(&frame(TAG_HEADER, &json));
        w.write_raw(&first);
        w
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_raw(&mut self, bytes: &[u8]) {
        let Some(f) = self.file.as_mut() else { return };
        let r = f.write_all(bytes).and_then(|_| f.sync_data());
        match r {
            Ok(()) => self.bytes_written += bytes.len() as u64,
            Err(e) => {
                self.error = Some(format!(
                    "writing {} failed after {} bytes: {e}; the file is intact up to there",
                    self.path.display(),
                    self.bytes_written
                ));
                self.file = None;
            }
        }
    }

    /// One entry of the current block: `kind:u8 len:u32 data`.
    fn entry(&mut self, kind: u8, data: &[u8]) {
        self.block.put_u8(kind);
        self.block.put_u32_le(data.len() as u32);
        self.block.put_slice(data);
        self.flush_if_due();
    }

    pub fn kernel_record(&mut self, raw: &[u8]) {
        self.kernel_records += 1;
        self.entry(ENTRY_KERNEL, raw);
    }

    pub fn synthetic(&mut self, s: &Synthetic) {
        let json = serde_json::to_vec(s).expect("synthetic event serialises");
        self.synthetic_events += 1;
        self.entry(ENTRY_SYNTHETIC, &json);
    }

    pub fn schedules(&mut self, v: &ScheduleView, ts_ns: u64) {
        let late = LateSchedules {
            ts_ns,
            view: v.clone(),
        };
        let json = serde_json::to_vec(&late).expect("schedule view serialises");
        self.entry(ENTRY_SCHEDULES, &json);
    }

    pub fn fact(&mut self, f: &Fact) {
        let json = serde_json::to_vec(f).expect("fact serialises");
        self.entry(ENTRY_FACT, &json);
    }

    fn flush_if_due(&mut self) {
        if self.block.len() >= BLOCK_BYTES {
            self.flush();
        }
    }

    /// Called by the event loop's timer: at most a second of events is ever unwritten.
    pub fn tick(&mut self) {
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        self.last_flush = Instant::now();
        if self.block.is_empty() {
            return;
        }
        let block = std::mem::take(&mut self.block);
        let f = frame(TAG_EVENTS, &block);
        self.write_raw(&f);
    }

    pub fn finish(mut self, trailer: &Trailer) -> Option<String> {
        self.flush();
        let json = serde_json::to_vec(trailer).expect("trailer serialises");
        let f = frame(TAG_TRAILER, &json);
        self.write_raw(&f);
        self.error
    }
}
