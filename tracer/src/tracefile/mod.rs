//! The trace file: what `record --output` writes and `replay` reads.
//!
//! ```text
//! file   := MAGIC frame*
//! MAGIC  := "JOBTRACE"
//! frame  := SYNC tag:u8 flags:u8 reserved:u16 len:u32 crc:u32 payload[len]
//! SYNC   := "JTFR"
//! ```
//! Little endian. `crc` is CRC-32 over tag..len and the payload, so a damaged length is
//! caught too; after damage the reader looks for the next SYNC whose frame checks out.
//! Frames: a JSON header (tag 1), event blocks (tag 2), a JSON trailer (tag 3). Unknown
//! tags are skipped and JSON readers ignore unknown fields, so a newer writer's file
//! still replays as long as the major version is ours. An event block holds entries
//! `kind:u8 len:u32 data`: kind 1 is a kernel record exactly as `tracer-common` lays it
//! out (already redacted), kind 2 a JSON [`Synthetic`] event (a process found in `/proc`
//! while recording), kind 3 a JSON [`Fact`] the diagnosis learnt from the host.
//!
//! Blocks are written at least every second and synced, so a crash, `kill -9` or a
//! full disk loses at most the last second.
use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::{capture::snapshot::ProcInfo, facts::Fact};

pub const MAGIC: &[u8; 8] = b"JOBTRACE";
pub const SYNC: &[u8; 4] = b"JTFR";
/// Incompatible layout changes bump the major; additions bump the minor.
pub const FORMAT_MAJOR: u32 = 1;
pub const FORMAT_MINOR: u32 = 0;
const FRAME_HEAD: usize = 4 + 1 + 1 + 2 + 4 + 4;
/// Frames larger than this are damage, not data.
pub const MAX_FRAME: usize = 64 << 20;
const TAG_HEADER: u8 = 1;
const TAG_EVENTS: u8 = 2;
const TAG_TRAILER: u8 = 3;
const ENTRY_KERNEL: u8 = 1;
const ENTRY_SYNTHETIC: u8 = 2;
const ENTRY_FACT: u8 = 3;
/// Write a block when it grows past this, or a second has passed.
const BLOCK_BYTES: usize = 256 << 10;
const FLUSH_EVERY: Duration = Duration::from_secs(1);

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
    /// Crontab files as read at start, path -> text (secret-looking values redacted).
    pub crontabs: BTreeMap<String, String>,
    /// uid -> name on the recording host, so a replay elsewhere names the same users.
    pub users: BTreeMap<u32, String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Trailer {
    pub kernel_records: u64,
    pub synthetic_events: u64,
    pub lost_events: u64,
    pub lost_by_kind: BTreeMap<String, u64>,
    pub end_ns: u64,
}

/// An entry of an event block.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Kernel(Bytes),
    Synthetic(Synthetic),
    /// An answer about the recording host the diagnosis used (see `facts`).
    Fact(Fact),
}

fn frame(tag: u8, payload: &[u8]) -> BytesMut {
    let mut f = BytesMut::with_capacity(FRAME_HEAD + payload.len());
    f.put_slice(SYNC);
    let mut covered = BytesMut::with_capacity(8);
    covered.put_u8(tag);
    covered.put_u8(0);
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

/// Where and why reading stopped early or skipped bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Damage {
    pub offset: u64,
    pub what: String,
    /// Bytes skipped to the next good frame (0 when the file simply ends).
    pub skipped: u64,
}

#[derive(Debug)]
pub enum ReadError {
    Empty,
    NotATrace,
    NewerFormat {
        major: u32,
        minor: u32,
    },
    /// The header frame itself is damaged: nothing can be trusted.
    BadHeader(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Empty => write!(f, "the file is empty (the recording never started writing)"),
            ReadError::NotATrace => write!(f, "not a tracer trace file (no JOBTRACE magic at byte 0)"),
            ReadError::NewerFormat { major, minor } => write!(
                f,
                "written by a newer tracer (trace format {major}.{minor}); this tracer reads format {FORMAT_MAJOR}.x: upgrade tracer to replay it"
            ),
            ReadError::BadHeader(why) => write!(f, "the trace header is damaged: {why}"),
        }
    }
}

#[derive(Debug, Default)]
pub struct TraceContents {
    pub header: TraceHeader,
    pub entries: Vec<Entry>,
    pub trailer: Option<Trailer>,
    pub damage: Vec<Damage>,
    pub unknown_frames: u64,
    pub bytes_total: u64,
}

impl TraceContents {
    pub fn is_damaged(&self) -> bool {
        !self.damage.is_empty() || self.trailer.is_none()
    }
}

/// One frame at `pos`, checked; Ok((tag, payload, next_pos)).
fn frame_at(data: &Bytes, pos: usize) -> Result<(u8, Bytes, usize), String> {
    let rest = data.len() - pos;
    if rest < FRAME_HEAD {
        return Err(format!(
            "file ends inside a frame header ({rest} of {FRAME_HEAD} bytes)"
        ));
    }
    if &data[pos..pos + 4] != SYNC {
        return Err("no frame marker where a frame should start".into());
    }
    let mut h = &data[pos + 4..pos + FRAME_HEAD];
    let covered = &data[pos + 4..pos + 12];
    let tag = h.get_u8();
    let flags = h.get_u8();
    let reserved = h.get_u16_le();
    let len = h.get_u32_le() as usize;
    let crc = h.get_u32_le();
    // Cheap checks before the checksum: resync tries many false starts.
    if len > MAX_FRAME || reserved != 0 {
        return Err(format!(
            "frame header is implausible (length {len}, reserved {reserved})"
        ));
    }
    let start = pos + FRAME_HEAD;
    if data.len() - start < len {
        return Err(format!(
            "file ends inside a frame ({} of {len} payload bytes present)",
            data.len() - start
        ));
    }
    let payload = data.slice(start..start + len);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(covered);
    hasher.update(&payload);
    if hasher.finalize() != crc {
        return Err("checksum mismatch".into());
    }
    if flags != 0 {
        return Err(format!(
            "frame flags {flags:#x} not understood (compressed by a newer writer?)"
        ));
    }
    Ok((tag, payload, start + len))
}

/// The next offset after `from` where a frame that checks out begins.
fn resync(data: &Bytes, from: usize) -> Option<usize> {
    let mut p = from;
    while p + 4 <= data.len() {
        let hit = data[p..].windows(4).position(|w| w == SYNC)? + p;
        // Only frame kinds this reader knows are resync points: a stray "JTFR" inside
        // recorded argv is not worth a checksum over whatever length follows it.
        let known = data
            .get(hit + 4)
            .is_some_and(|t| matches!(*t, TAG_EVENTS | TAG_TRAILER));
        if known && frame_at(data, hit).is_ok() {
            return Some(hit);
        }
        p = hit + 1;
    }
    None
}

fn parse_entries(payload: &Bytes, out: &mut Vec<Entry>) -> Result<(), String> {
    let mut p = 0usize;
    while p < payload.len() {
        if payload.len() - p < 5 {
            return Err("event block ends inside an entry header".into());
        }
        let kind = payload[p];
        let len = u32::from_le_bytes(payload[p + 1..p + 5].try_into().unwrap()) as usize;
        p += 5;
        if payload.len() - p < len {
            return Err("event block entry overruns its block".into());
        }
        let data = payload.slice(p..p + len);
        p += len;
        match kind {
            ENTRY_KERNEL => out.push(Entry::Kernel(data)),
            ENTRY_SYNTHETIC => match serde_json::from_slice(&data) {
                Ok(s) => out.push(Entry::Synthetic(s)),
                Err(e) => return Err(format!("synthetic event is not valid JSON: {e}")),
            },
            ENTRY_FACT => {
                // A fact kind from a newer writer is not needed to replay: skipped.
                if let Ok(f) = serde_json::from_slice(&data) {
                    out.push(Entry::Fact(f));
                }
            }
            // A newer writer's entry kind: skip it.
            _ => {}
        }
    }
    Ok(())
}

/// Read a whole trace. Damage after the header is reported in `damage` with everything
/// readable kept; only an unusable start of file is an error.
pub fn read(data: Bytes) -> Result<TraceContents, ReadError> {
    if data.is_empty() {
        return Err(ReadError::Empty);
    }
    if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
        return Err(ReadError::NotATrace);
    }
    let mut c = TraceContents {
        bytes_total: data.len() as u64,
        ..Default::default()
    };
    let (tag, payload, mut pos) = frame_at(&data, MAGIC.len())
        .map_err(|e| ReadError::BadHeader(format!("{e} at byte {}", MAGIC.len())))?;
    if tag != TAG_HEADER {
        return Err(ReadError::BadHeader(format!(
            "first frame has tag {tag}, not the header"
        )));
    }
    let header: TraceHeader = serde_json::from_slice(&payload)
        .map_err(|e| ReadError::BadHeader(format!("header JSON: {e}")))?;
    if header.format_major > FORMAT_MAJOR || header.format_major == 0 {
        return Err(ReadError::NewerFormat {
            major: header.format_major,
            minor: header.format_minor,
        });
    }
    c.header = header;
    while pos < data.len() {
        match frame_at(&data, pos) {
            Ok((tag, payload, next)) => {
                match tag {
                    TAG_EVENTS => {
                        if let Err(e) = parse_entries(&payload, &mut c.entries) {
                            c.damage.push(Damage {
                                offset: pos as u64,
                                what: e,
                                skipped: 0,
                            });
                        }
                    }
                    TAG_TRAILER => match serde_json::from_slice(&payload) {
                        Ok(t) => c.trailer = Some(t),
                        Err(e) => c.damage.push(Damage {
                            offset: pos as u64,
                            what: format!("trailer JSON: {e}"),
                            skipped: 0,
                        }),
                    },
                    TAG_HEADER => c.damage.push(Damage {
                        offset: pos as u64,
                        what: "a second header frame (files concatenated?)".into(),
                        skipped: 0,
                    }),
                    _ => c.unknown_frames += 1,
                }
                pos = next;
            }
            Err(what) => {
                let next = resync(&data, pos + 1);
                let skipped = next.unwrap_or(data.len()) - pos;
                c.damage.push(Damage {
                    offset: pos as u64,
                    what,
                    skipped: skipped as u64,
                });
                match next {
                    Some(n) => pos = n,
                    None => break,
                }
            }
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> TraceHeader {
        TraceHeader {
            format_major: FORMAT_MAJOR,
            format_minor: FORMAT_MINOR,
            tool_version: "test".into(),
            hostname: "h".into(),
            ..Default::default()
        }
    }

    fn write_sample(path: &Path, records: usize) -> Vec<u8> {
        let f = create_file(path, false).unwrap();
        let mut w = TraceWriter::new(path, f, &header());
        for i in 0..records {
            w.kernel_record(&[i as u8; 72]);
            if i % 3 == 0 {
                w.flush();
            }
        }
        assert!(w
            .finish(&Trailer {
                kernel_records: records as u64,
                ..Default::default()
            })
            .is_none());
        std::fs::read(path).unwrap()
    }

    fn tmp(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("tracefile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    #[test]
    fn round_trip_keeps_header_entries_and_trailer() {
        let p = tmp("rt");
        let bytes = write_sample(&p, 10);
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let c = read(Bytes::from(bytes)).unwrap();
        assert_eq!(c.header, header());
        assert_eq!(c.entries.len(), 10);
        assert_eq!(c.entries[3], Entry::Kernel(Bytes::from(vec![3u8; 72])));
        assert_eq!(c.trailer.unwrap().kernel_records, 10);
        assert!(c.damage.is_empty());
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn refuses_existing_files_and_symlinks() {
        let p = tmp("exists");
        std::fs::write(&p, b"x").unwrap();
        assert!(create_file(&p, false).is_err());
        let f = create_file(&p, true).unwrap();
        drop(f);
        assert_eq!(std::fs::read(&p).unwrap().len(), 0);
        let link = tmp("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(create_file(&link, true).is_err(), "followed a symlink");
        assert!(create_file(&link, false).is_err());
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn a_cut_file_keeps_everything_before_the_cut() {
        let p = tmp("cut");
        let bytes = write_sample(&p, 10);
        std::fs::remove_file(&p).unwrap();
        let mut last_entries = 0;
        let header_end = bytes
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == SYNC)
            .nth(1)
            .unwrap()
            .0;
        for cut in MAGIC.len() + 1..header_end {
            assert!(
                matches!(
                    read(Bytes::copy_from_slice(&bytes[..cut])),
                    Err(ReadError::BadHeader(_))
                ),
                "a header cut at {cut} must be an error"
            );
        }
        for cut in header_end..bytes.len() {
            let c = read(Bytes::copy_from_slice(&bytes[..cut])).unwrap();
            assert!(c.is_damaged(), "cut at {cut} not reported");
            assert!(
                c.entries.len() >= last_entries,
                "lost entries before the cut at {cut}"
            );
            last_entries = c.entries.len();
        }
        assert!(matches!(
            read(Bytes::copy_from_slice(&bytes[..5])),
            Err(ReadError::NotATrace)
        ));
        assert!(matches!(
            read(Bytes::copy_from_slice(&bytes[..12])),
            Err(ReadError::BadHeader(_))
        ));
        assert!(matches!(read(Bytes::new()), Err(ReadError::Empty)));
    }

    #[test]
    fn a_flipped_byte_loses_one_block_only() {
        let p = tmp("flip");
        let bytes = write_sample(&p, 10);
        std::fs::remove_file(&p).unwrap();
        let clean = read(Bytes::from(bytes.clone())).unwrap();
        // Flip a byte inside the second event block's payload.
        let second = bytes
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == SYNC)
            .nth(2)
            .unwrap()
            .0;
        let mut bad = bytes.clone();
        bad[second + FRAME_HEAD + 3] ^= 0x40;
        let c = read(Bytes::from(bad)).unwrap();
        assert_eq!(c.damage.len(), 1);
        assert!(c.damage[0].what.contains("checksum"), "{:?}", c.damage);
        assert!(c.entries.len() < clean.entries.len());
        assert!(c.entries.len() >= clean.entries.len() - 3);
        assert!(c.trailer.is_some(), "resync found the trailer");
    }

    #[test]
    fn newer_major_is_refused_and_unknown_fields_are_ignored() {
        let mut h = header();
        h.format_major = FORMAT_MAJOR + 1;
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&frame(TAG_HEADER, &serde_json::to_vec(&h).unwrap()));
        assert!(matches!(
            read(Bytes::from(v)),
            Err(ReadError::NewerFormat { .. })
        ));

        let mut json: serde_json::Value = serde_json::to_value(header()).unwrap();
        json["format_minor"] = 7.into();
        json["a_field_from_the_future"] = serde_json::json!({"x": 1});
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&frame(TAG_HEADER, &serde_json::to_vec(&json).unwrap()));
        v.extend_from_slice(&frame(99, b"a frame kind from the future"));
        let c = read(Bytes::from(v)).unwrap();
        assert_eq!(c.header.format_minor, 7);
        assert_eq!(c.unknown_frames, 1);
        assert!(c.damage.is_empty());
    }
}
