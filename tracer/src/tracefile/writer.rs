//! Writing a trace as it is recorded: flushed and synced often, so a crash loses at
//! most the last second, by a thread of its own, so the disk never slows the drain.
use std::{
    fs::{File, OpenOptions},
    io::Write,
    os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::{
        mpsc::{sync_channel, SyncSender},
        Arc, Mutex,
    },
    thread::JoinHandle,
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

/// What the disk side has done: bytes safely written, and the first error.
#[derive(Default)]
struct DiskState {
    bytes_written: u64,
    error: Option<String>,
}

/// What the disk thread is given: an event block to frame (and compress), or a
/// frame as it is.
enum Frame {
    Events(BytesMut),
    Ready(BytesMut),
}

/// Frames waiting for the disk thread; when the disk falls this far behind, the
/// event loop waits for it.
const DISK_QUEUE_FRAMES: usize = 64;

/// Questions the trailer repeats at most (about 1.5 MB of JSON, well inside the tail a
/// replay reads to find the trailer).
const TRAILER_FACTS: usize = 10_000;

pub struct TraceWriter {
    path: PathBuf,
    block: BytesMut,
    last_flush: Instant,
    pub kernel_records: u64,
    pub synthetic_events: u64,
    /// The latest answer to each question, for the trailer.
    /// None once more than `TRAILER_FACTS` questions were asked: a day-long recording
    /// of jobs failing on ever new paths must not grow this without bound (its
    /// replay then takes two passes).
    facts: Option<std::collections::BTreeMap<String, Fact>>,
    /// Frames go to a thread that writes and syncs them, so a slow disk or a long
    /// fsync never holds up draining the kernel's ring buffer. None once writing
    /// has stopped (the first error).
    disk: Option<SyncSender<Frame>>,
    thread: Option<JoinHandle<()>>,
    state: Arc<Mutex<DiskState>>,
}

/// Write one frame and sync it. On failure the file is cut back to its last whole
/// frame, the error is said once and kept, and false is returned: nothing more is
/// written, and the live analysis goes on.
fn write_frame(f: &mut File, bytes: &[u8], path: &Path, state: &Mutex<DiskState>) -> bool {
    let r = f.write_all(bytes).and_then(|_| f.sync_data());
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    match r {
        Ok(()) => {
            st.bytes_written += bytes.len() as u64;
            true
        }
        Err(e) => {
            // Part of the frame may be on disk: cut it off, so the file ends at the
            // last whole frame (if even that fails, the reader stops at the partial
            // frame all the same).
            let _ = f.set_len(st.bytes_written).and_then(|_| f.sync_data());
            let msg = format!(
                "writing {} failed after {} bytes: {e}; the file is intact up to there and replays up to there",
                path.display(),
                st.bytes_written
            );
            eprintln!("tracer: warning: {msg}; the live analysis goes on");
            st.error = Some(msg);
            false
        }
    }
}

impl TraceWriter {
    /// The header is written (and synced) before this returns, so a file that cannot
    /// be written is known at once; later frames are written by the disk thread.
    pub fn new(path: &Path, mut file: File, header: &TraceHeader) -> Self {
        let state = Arc::new(Mutex::new(DiskState::default()));
        let json = serde_json::to_vec(header).expect("header serialises");
        let mut first = BytesMut::from(&MAGIC[..]);
        first.extend_from_slice(&frame(TAG_HEADER, &json));
        let (disk, thread) = if write_frame(&mut file, &first, path, &state) {
            let (tx, rx) = sync_channel::<Frame>(DISK_QUEUE_FRAMES);
            let (st, p) = (state.clone(), path.to_path_buf());
            let t = std::thread::Builder::new()
                .name("trace-disk".into())
                .spawn(move || {
                    let mut ok = true;
                    // After an error the queue is still received, so senders never block.
                    for frame in rx {
                        // Compressed here, off the event loop.
                        let bytes = match frame {
                            Frame::Events(block) => events_frame(&block),
                            Frame::Ready(f) => f,
                        };
                        ok = ok && write_frame(&mut file, &bytes, &p, &st);
                    }
                })
                .ok();
            (t.is_some().then_some(tx), t)
        } else {
            (None, None)
        };
        TraceWriter {
            path: path.to_path_buf(),
            block: BytesMut::new(),
            last_flush: Instant::now(),
            kernel_records: 0,
            synthetic_events: 0,
            facts: Some(Default::default()),
            disk,
            thread,
            state,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The first write error, once the disk thread has met it.
    pub fn error(&self) -> Option<String> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .error
            .clone()
    }

    /// Bytes written and synced so far.
    pub fn bytes_written(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bytes_written
    }

    fn write_raw(&mut self, bytes: Frame) {
        let Some(tx) = &self.disk else { return };
        if self.error().is_some() || tx.send(bytes).is_err() {
            self.disk = None;
        }
    }

    /// One entry of the current block: `kind:u8 len:u32 data`.
    fn entry(&mut self, kind: u8, data: &[u8]) {
        if self.disk.is_none() {
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

    pub fn scheduler_files(&mut self, late: &LateSchedulerFiles) {
        let json = serde_json::to_vec(late).expect("scheduler files serialise");
        self.entry(ENTRY_SCHEDULER_FILES, &json);
    }

    pub fn lost(&mut self, l: &LostEvents) {
        let json = serde_json::to_vec(l).expect("lost events serialise");
        self.entry(ENTRY_LOST, &json);
    }

    pub fn fact(&mut self, f: &Fact) {
        let json = serde_json::to_vec(f).expect("fact serialises");
        self.entry(ENTRY_FACT, &json);
        if let Some(facts) = self.facts.as_mut() {
            facts.insert(f.question(), f.clone());
            if facts.len() > TRAILER_FACTS {
                self.facts = None;
            }
        }
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
        self.write_raw(Frame::Events(block));
    }

    /// The last block and the trailer, then waits for the disk: the file is whole
    /// when this returns. Returns the write error, if writing stopped early.
    pub fn finish(mut self, trailer: &Trailer) -> Option<String> {
        self.flush();
        let trailer = Trailer {
            facts: self.facts.take().map(|f| f.into_values().collect()),
            ..trailer.clone()
        };
        let json = serde_json::to_vec(&trailer).expect("trailer serialises");
        let f = frame(TAG_TRAILER, &json);
        self.write_raw(Frame::Ready(f));
        self.close()
    }

    /// Stop writing: what is queued reaches the disk, nothing more is added.
    fn close(&mut self) -> Option<String> {
        self.disk = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.error()
    }
}

impl Drop for TraceWriter {
    /// A writer dropped without `finish` (an error path) still leaves every whole
    /// frame it was given on disk.
    fn drop(&mut self) {
        self.flush();
        self.close();
    }
}
