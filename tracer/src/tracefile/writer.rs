//! Writing a trace as it is recorded: flushed and synced often, so a crash loses at
//! most the last second.
use std::{
    fs::{File, OpenOptions},
    io::Write,
    os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    time::Instant,
};

use bytes::{BufMut, BytesMut};

use super::format::*;
use crate::{facts::Fact, schedules::ScheduleView};

/// Why a trace (or an export of one) could not be created, and what to do instead.
#[derive(Debug)]
pub struct CreateError {
    pub what: String,
    pub fix: String,
}

impl std::fmt::Display for CreateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n  fix: {}", self.what, self.fix)
    }
}

impl std::error::Error for CreateError {}

fn refuse(path: &Path, why: impl std::fmt::Display, fix: impl Into<String>) -> CreateError {
    CreateError {
        what: format!("cannot create {}: {why}", path.display()),
        fix: fix.into(),
    }
}

fn file_kind(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Creates the file 0600 (argv and env can hold secrets), as the tracer runs: root, so
/// the file and its directory must give no other user a way in. Never through a
/// symlink; never over an existing file unless `force`, and then only over a regular
/// file of ours with no other name (a hard link would carry the trace, or the
/// truncation, to that other name); never in a directory every user can write without
/// the sticky bit (anyone could swap the name for a link of their own at any time).
/// The directory is synced, so the new name survives a crash like the data does.
pub fn create_file(path: &Path, force: bool) -> Result<File, CreateError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dmeta = std::fs::metadata(dir).map_err(|e| {
        refuse(
            path,
            format!("its directory {}: {e}", dir.display()),
            "name a file in an existing directory",
        )
    })?;
    let dmode = dmeta.permissions().mode();
    if dmode & 0o002 != 0 && dmode & 0o1000 == 0 {
        return Err(refuse(
            path,
            format!(
                "its directory {} is writable by every user and has no sticky bit: another user could replace the file while it is written",
                dir.display()
            ),
            format!(
                "write it to a directory only root can write (e.g. /root or /var/log), or set the sticky bit: chmod +t {}",
                dir.display()
            ),
        ));
    }
    if force {
        match std::fs::symlink_metadata(path) {
            Ok(m) => check_overwrite(path, &m)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(refuse(path, e, "name a new file")),
        }
    }
    let mut o = OpenOptions::new();
    // No O_TRUNC: what is there is checked on the open descriptor first. O_NONBLOCK: a
    // FIFO swapped in after the check fails to open (ENXIO) instead of hanging.
    o.write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
    if force {
        o.create(true);
    } else {
        o.create_new(true);
    }
    let f = o.open(path).map_err(|e| open_error(path, e))?;
    let m = f.metadata().map_err(|e| refuse(path, e, "retry"))?;
    check_overwrite(path, &m)?;
    f.set_len(0).map_err(|e| refuse(path, e, "retry"))?;
    // An existing file kept its mode: tighten it.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| refuse(path, e, "retry"))?;
    // Best effort: the file is there and writable; only a crash in the next moments
    // could lose its name, and a directory without read permission cannot be opened.
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        log::warn!(
            "could not sync directory {} after creating {}: {e}",
            dir.display(),
            path.display()
        );
    }
    Ok(f)
}

/// What `--force` may write over: a regular file of ours with one name.
fn check_overwrite(path: &Path, m: &std::fs::Metadata) -> Result<(), CreateError> {
    if m.file_type().is_symlink() {
        return Err(symlink(path));
    }
    if !m.file_type().is_file() {
        return Err(refuse(
            path,
            format!(
                "it is {}; --force overwrites only regular files",
                file_kind(m.file_type())
            ),
            "name a new file",
        ));
    }
    if m.nlink() > 1 {
        return Err(refuse(
            path,
            format!(
                "it has {} hard links: writing it would change the file under its other names too",
                m.nlink()
            ),
            format!(
                "name a new file, or remove {} first if the other names do not matter",
                path.display()
            ),
        ));
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if m.uid() != me {
        return Err(refuse(
            path,
            format!(
                "it belongs to uid {}, who could then read the trace (argv and env) through it",
                m.uid()
            ),
            format!("name a new file, or remove {} first", path.display()),
        ));
    }
    Ok(())
}

fn symlink(path: &Path) -> CreateError {
    refuse(
        path,
        "the path is a symlink, and traces are never written through one",
        "name a new file",
    )
}

fn open_error(path: &Path, e: std::io::Error) -> CreateError {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let fix = match e.raw_os_error() {
        _ if is_link => return symlink(path),
        Some(libc::EEXIST) => "choose a new file name, or pass --force to overwrite it",
        Some(libc::ENXIO) => "name a new file (this one is a FIFO)",
        Some(libc::EISDIR) => "name a file, not a directory",
        _ => "check that the directory exists and is writable",
    };
    refuse(path, e, fix)
}

pub struct TraceWriter {
    path: PathBuf,
    file: Option<File>,
    block: BytesMut,
    last_flush: Instant,
    pub kernel_records: u64,
    pub synthetic_events: u64,
    pub bytes_written: u64,
    /// The first write error (already said on stderr); writing stops there, the live
    /// analysis goes on.
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
                // Part of the frame may be on disk: cut it off, so the file ends at
                // the last whole frame (if even that fails, the reader stops at the
                // partial frame all the same).
                let _ = f.set_len(self.bytes_written).and_then(|_| f.sync_data());
                let msg = format!(
                    "writing {} failed after {} bytes: {e}; the file is intact up to there and replays up to there",
                    self.path.display(),
                    self.bytes_written
                );
                // Said once, when it happens; nothing more is written and the live
                // analysis goes on.
                eprintln!("tracer: warning: {msg}; the live analysis goes on");
                self.error = Some(msg);
                self.file = None;
            }
        }
    }

    /// One entry of the current block: `kind:u8 len:u32 data`.
    fn entry(&mut self, kind: u8, data: &[u8]) {
        if self.file.is_none() {
            return;
        }
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
