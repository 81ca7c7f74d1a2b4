//! The bytes on disk: magic, frames, entry kinds, and the JSON header and trailer.
use std::{collections::BTreeMap, time::Duration};

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::{
    capture::snapshot::ProcInfo,
    facts::Fact,
    schedules::{systemd::ManagerView, tables::TableFile, ScheduleView},
};

pub const MAGIC: &[u8; 8] = b"JOBTRACE";
pub const SYNC: &[u8; 4] = b"JTFR";
/// Incompatible layout changes bump the major; additions bump the minor.
/// 2.0: a syscall record is stored up to the used length of its data
/// (`SYSCALL_FIXED_LEN`), as the kernel now sends it; a 1.x tracer could not decode
/// those records, so it is told to upgrade instead. 1.x files still replay.
/// 3.0: an exec attempt is stored packed (`ExecAttemptPacked`, record kind 7), as the
/// kernel sends it; a 2.x tracer would skip every one. 1.x and 2.x files still replay.
pub const FORMAT_MAJOR: u32 = 3;
/// 1.3: event blocks are compressed (`FLAG_ZSTD`).
/// 1.4: systemd managers' units, anacrontabs and at jobs (`managers`, `tables`,
/// `ENTRY_SCHEDULER_FILES`).
/// 1.5: the trailer repeats every host answer (`facts`, the latest per question), so a
/// replay of a whole file reads it once instead of twice.
pub const FORMAT_MINOR: u32 = 0;
/// Frame flag (format 1.3): the payload is one zstd frame holding the block, which
/// checksums cover as written (damage is found before anything is decompressed).
pub(super) const FLAG_ZSTD: u8 = 1;
/// Fast, and records are mostly zeros past their used lengths (9-10x here).
const ZSTD_LEVEL: i32 = 1;
pub(super) const FRAME_HEAD: usize = 4 + 1 + 1 + 2 + 4 + 4;
/// Frames larger than this are damage, not data.
pub const MAX_FRAME: usize = 64 << 20;
pub(super) const TAG_HEADER: u8 = 1;
pub(super) const TAG_EVENTS: u8 = 2;
pub(super) const TAG_TRAILER: u8 = 3;
pub(super) const ENTRY_KERNEL: u8 = 1;
pub(super) const ENTRY_SYNTHETIC: u8 = 2;
pub(super) const ENTRY_FACT: u8 = 3;
pub(super) const ENTRY_SCHEDULES: u8 = 4;
/// Format 1.2: events the kernel dropped, as the live loop saw the counters grow.
pub(super) const ENTRY_LOST: u8 = 5;
/// Format 1.4: the units of a systemd manager that started while recording.
pub(super) const ENTRY_SCHEDULER_FILES: u8 = 6;
/// Write a block when it grows past this, or a second has passed.
pub(super) const BLOCK_BYTES: usize = 256 << 10;
pub(super) const FLUSH_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct CaptureOptions {
    pub comms: Vec<String>,
    pub pids: Vec<u32>,
    pub all: bool,
    pub capture_secrets: bool,
    pub duration_secs: Option<f64>,
}

/// A process alive at start (or found by a later `/proc` scan), and whether it is a root.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Synthetic {
    pub ts_ns: u64,
    pub root: bool,
    pub process: ProcInfo,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct TraceHeader {
    pub format_major: u32,
    pub format_minor: u32,
    pub tool_version: String,
    pub hostname: String,
    pub kernel: String,
    pub boot_id: String,
    /// CLOCK_REALTIME - CLOCK_MONOTONIC at start: add to an event's `ts_ns` for wall time.
    pub mono_to_wall_ns: i64,
    pub start_ns: u64,
    pub options: CaptureOptions,
    /// Processes alive at start that were followed (roots and their descendants).
    pub snapshot: Vec<Synthetic>,
    /// Format 1.0 only: crontab files as text (1.1 has `schedules`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub crontabs: BTreeMap<String, String>,
    /// The crontabs as each cron daemon saw them at start, with the owners, modes and
    /// host facts its rules depend on (secret-looking values redacted).
    pub schedules: Vec<ScheduleView>,
    /// uid -> name on the recording host, so a replay elsewhere names the same users.
    pub users: BTreeMap<u32, String>,
    /// The timers and services of each systemd manager at start (format 1.4).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub managers: Vec<ManagerView>,
    /// anacron's anacrontab and atd's queued jobs at start (format 1.4).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableFile>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Trailer {
    pub kernel_records: u64,
    pub synthetic_events: u64,
    pub lost_events: u64,
    pub lost_by_kind: BTreeMap<String, u64>,
    pub end_ns: u64,
    /// What redaction replaced while recording, per rule (counts only).
    pub redactions: BTreeMap<String, u64>,
    /// Format 1.5: the host's last answer to each question asked while recording (the
    /// same answers as the file's fact entries). A replay that finds them here does
    /// not need a first pass over the file to gather them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facts: Option<Vec<Fact>>,
}

/// A daemon's crontabs read while recording (when it started), and when.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LateSchedules {
    pub ts_ns: u64,
    pub view: ScheduleView,
}

/// Records the kernel dropped (ring buffer or a map full) between two polls of its
/// counters while recording: the loss happened in `since_ns..ts_ns`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LostEvents {
    pub since_ns: u64,
    pub ts_ns: u64,
    /// Per kind (`fork`, `exec_attempt`, `syscall`, `tracked_map_full`, ...).
    pub by_kind: BTreeMap<String, u64>,
}

impl LostEvents {
    pub fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }
}

/// An entry of an event block.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Kernel(Bytes),
    Synthetic(Synthetic),
    /// An answer about the recording host the diagnosis used (see `facts`).
    Fact(Fact),
    /// The crontabs of a daemon that started during the recording, as it saw them.
    Schedules(LateSchedules),
    /// Events the kernel dropped while recording (format 1.2).
    Lost(LostEvents),
    /// The files of a systemd manager, anacron or atd that started during the
    /// recording (format 1.4).
    SchedulerFiles(LateSchedulerFiles),
}

/// A systemd manager's units, an anacrontab or at jobs read while recording, and when.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LateSchedulerFiles {
    pub ts_ns: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub managers: Vec<ManagerView>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<TableFile>,
}

pub(super) fn frame(tag: u8, payload: &[u8]) -> BytesMut {
    frame_with(tag, 0, payload)
}

/// An event block's payload compressed (`FLAG_ZSTD`), or as it is if that fails.
pub(super) fn events_frame(block: &[u8]) -> BytesMut {
    match zstd::bulk::compress(block, ZSTD_LEVEL) {
        Ok(z) => frame_with(TAG_EVENTS, FLAG_ZSTD, &z),
        Err(_) => frame(TAG_EVENTS, block),
    }
}

pub(super) fn frame_with(tag: u8, flags: u8, payload: &[u8]) -> BytesMut {
    let mut f = BytesMut::with_capacity(FRAME_HEAD + payload.len());
    f.put_slice(SYNC);
    let mut covered = BytesMut::with_capacity(8);
    covered.put_u8(tag);
    covered.put_u8(flags);
    covered.put_u16_le(0);
    covered.put_u32_le(payload.len() as u32);
    let mut h = crc32fast::Hasher::new();
    h.update(&covered);
    h.update(payload);
    f.put_slice(&covered);
    f.put_u32_le(h.finalize());
    f.put_slice(payload);
    f
}
