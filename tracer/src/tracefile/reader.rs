//! Reading a trace back: everything readable is kept, damage is located and skipped.
use bytes::{Buf, Bytes};

use super::format::*;

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
                "written by a newer tracer (trace format {major}.{minor}); this tracer reads formats 1.x to {FORMAT_MAJOR}.x: upgrade tracer to replay it"
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

/// The bytes of a trace: all in memory, or a window over a file that moves forward
/// with the reading (a multi-GB trace is replayed in constant memory).
pub enum Source {
    Memory(Bytes),
    File(FileWindow),
}

/// Bytes read from a file are held this many at a time (more for a larger frame).
const WINDOW: usize = 4 << 20;

pub struct FileWindow {
    file: std::fs::File,
    /// The file's length when opened, less anything past a read error.
    len: usize,
    /// `buf` holds the file's bytes from offset `start`.
    buf: Bytes,
    start: usize,
    /// Where and why reading the file failed.
    failed: Option<(usize, String)>,
}

impl FileWindow {
    pub fn new(file: std::fs::File, len: u64) -> Self {
        FileWindow {
            file,
            len: len as usize,
            buf: Bytes::new(),
            start: 0,
            failed: None,
        }
    }

    fn get(&mut self, pos: usize, n: usize) -> Option<Bytes> {
        if pos.checked_add(n)? > self.len {
            return None;
        }
        let held = pos >= self.start && pos + n <= self.start + self.buf.len();
        if !held {
            use std::os::unix::fs::FileExt;
            let want = n.max(WINDOW).min(self.len - pos);
            let mut b = vec![0u8; want];
            if let Err(e) = self.file.read_exact_at(&mut b, pos as u64) {
                // Past here the file cannot be read: it ends here for the reader.
                self.failed = Some((pos, e.to_string()));
                self.len = pos;
                self.buf = Bytes::new();
                return None;
            }
            self.buf = Bytes::from(b);
            self.start = pos;
        }
        let at = pos - self.start;
        Some(self.buf.slice(at..at + n))
    }
}

impl Source {
    /// The same bytes again, from the start, for another pass (a pipe read whole is
    /// not read twice).
    pub fn again(&self) -> std::io::Result<Source> {
        Ok(match self {
            Source::Memory(b) => Source::Memory(b.clone()),
            Source::File(w) => Source::File(FileWindow::new(w.file.try_clone()?, w.len as u64)),
        })
    }

    fn len(&self) -> usize {
        match self {
            Source::Memory(b) => b.len(),
            Source::File(w) => w.len,
        }
    }

    /// `n` bytes at `pos`, or None when the trace ends first.
    fn get(&mut self, pos: usize, n: usize) -> Option<Bytes> {
        match self {
            Source::Memory(b) => {
                let end = pos.checked_add(n)?;
                (end <= b.len()).then(|| b.slice(pos..end))
            }
            Source::File(w) => w.get(pos, n),
        }
    }

    /// The offset of the first frame marker at or after `from`.
    fn find_sync(&mut self, from: usize) -> Option<usize> {
        let mut p = from;
        loop {
            let n = WINDOW.min(self.len().checked_sub(p)?);
            if n < SYNC.len() {
                return None;
            }
            let w = self.get(p, n)?;
            if let Some(i) = w.windows(SYNC.len()).position(|x| x == SYNC) {
                return Some(p + i);
            }
            // A marker may straddle the end of this window.
            p += n - (SYNC.len() - 1);
        }
    }
}

/// Checksumming is paid for by progress through the file, so reading stays linear in
/// its size whatever the bytes. A false frame marker (a "JTFR" inside recorded argv, or
/// a crafted file full of them) may claim a length up to the end of the file; checking
/// each of them in full and moving on by one byte is quadratic (minutes for a few MiB).
/// The reader starts with one file's worth of credit, so any single frame can be
/// checked, and earns `CREDIT_PER_BYTE` for every byte it moves past; a real frame thus
/// pays for itself, and only false markers spend more than they earn. A candidate that
/// cannot be paid for is passed over like one whose checksum fails. In all, at most
/// `(1 + CREDIT_PER_BYTE)` times the file size is checksummed.
struct Credit {
    left: u64,
    /// The furthest offset already paid out for.
    reached: usize,
}

const CREDIT_PER_BYTE: u64 = 2;

impl Credit {
    fn new(len: usize) -> Self {
        Credit {
            left: len as u64,
            reached: 0,
        }
    }

    fn reach(&mut self, pos: usize) {
        if pos > self.reached {
            self.left += CREDIT_PER_BYTE * (pos - self.reached) as u64;
            self.reached = pos;
        }
    }

    fn spend(&mut self, bytes: usize) -> bool {
        let ok = self.left >= bytes as u64;
        if ok {
            self.left -= bytes as u64;
        }
        ok
    }
}

/// A frame's fixed part, read without looking at its payload.
struct FrameHead {
    tag: u8,
    flags: u8,
    reserved: u16,
    len: usize,
    crc: u32,
}

fn head_at(src: &mut Source, pos: usize) -> Result<FrameHead, String> {
    let rest = src.len().saturating_sub(pos);
    if rest < FRAME_HEAD {
        return Err(format!(
            "file ends inside a frame header ({rest} of {FRAME_HEAD} bytes)"
        ));
    }
    let bytes = src
        .get(pos, FRAME_HEAD)
        .ok_or_else(|| "file ends inside a frame header".to_string())?;
    if &bytes[..4] != SYNC {
        return Err("no frame marker where a frame should start".into());
    }
    let mut h = &bytes[4..FRAME_HEAD];
    let head = FrameHead {
        tag: h.get_u8(),
        flags: h.get_u8(),
        reserved: h.get_u16_le(),
        len: h.get_u32_le() as usize,
        crc: h.get_u32_le(),
    };
    if head.len > MAX_FRAME || head.reserved != 0 {
        return Err(format!(
            "frame header is implausible (length {}, reserved {})",
            head.len, head.reserved
        ));
    }
    let present = src.len().saturating_sub(pos + FRAME_HEAD);
    if present < head.len {
        return Err(format!(
            "file ends inside a frame ({present} of {} payload bytes present)",
            head.len
        ));
    }
    Ok(head)
}

/// One frame at `pos`, checked; Ok((tag, payload, next_pos)).
fn frame_at(
    src: &mut Source,
    pos: usize,
    credit: &mut Credit,
) -> Result<(u8, Bytes, usize), String> {
    let head = head_at(src, pos)?;
    let start = pos + FRAME_HEAD;
    if !credit.spend(head.len) {
        return Err(format!(
            "frame of {} bytes not checked: the checksum work allowed for this file went to false frame markers before it",
            head.len
        ));
    }
    // The header past the marker and the payload in one piece; the checksum covers
    // tag..len (8 bytes), not itself (4), and the payload.
    let frame = src
        .get(pos + 4, FRAME_HEAD - 4 + head.len)
        .ok_or_else(|| "file ends inside a frame".to_string())?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&frame[..8]);
    hasher.update(&frame[FRAME_HEAD - 4..]);
    if hasher.finalize() != head.crc {
        return Err("checksum mismatch".into());
    }
    let payload = frame.slice(FRAME_HEAD - 4..);
    match (head.tag, head.flags) {
        (_, 0) => Ok((head.tag, payload, start + head.len)),
        (TAG_EVENTS, FLAG_ZSTD) => Ok((head.tag, decompress(&payload)?, start + head.len)),
        (_, f) => Err(format!(
            "frame flags {f:#x} not understood (compressed by a newer writer?)"
        )),
    }
}

/// A compressed block, at most `MAX_FRAME` bytes once decompressed (what it says it
/// holds is checked before anything is allocated).
fn decompress(z: &[u8]) -> Result<Bytes, String> {
    let size = match zstd::zstd_safe::get_frame_content_size(z) {
        Ok(Some(n)) if n <= MAX_FRAME as u64 => n as usize,
        Ok(Some(n)) => return Err(format!("compressed block claims {n} bytes")),
        _ => return Err("compressed block has no readable size".into()),
    };
    thread_local! {
        // One context for every block: making one per block was 6% of a replay.
        static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let out = DCTX.with(|d| {
        let mut d = d.borrow_mut();
        let d = match d.as_mut() {
            Some(d) => d,
            None => d.insert(zstd::bulk::Decompressor::new()?),
        };
        d.decompress(z, size)
    });
    match out {
        Ok(out) if out.len() == size => Ok(Bytes::from(out)),
        Ok(out) => Err(format!(
            "compressed block holds {} bytes, not the {size} it claims",
            out.len()
        )),
        Err(e) => Err(format!("compressed block does not decompress: {e}")),
    }
}

/// The trailer, when the file ends with one that checks out. Read from the end, so a
/// replay knows before it starts whether one pass will do. None for a file cut short
/// or damaged at its end, or a trailer that starts before the last `TAIL` bytes.
pub fn trailer_at_end(src: &mut Source) -> Option<Trailer> {
    const TAIL: usize = 4 << 20;
    // Markers inside the tail's payloads fail their checksums; a few are tried.
    const TRIES: usize = 16;
    let len = src.len();
    let from = len.saturating_sub(TAIL).max(MAGIC.len());
    let tail = src.get(from, len.checked_sub(from)?)?;
    let mut credit = Credit::new(2 * tail.len());
    let mut end = tail.len();
    for _ in 0..TRIES {
        let at = tail[..end].windows(SYNC.len()).rposition(|w| w == SYNC)?;
        if let Ok((TAG_TRAILER, payload, next)) = frame_at(src, from + at, &mut credit) {
            if next == len {
                return serde_json::from_slice(&payload).ok();
            }
        }
        end = at + SYNC.len() - 1;
    }
    None
}

/// The next frame at or after `from` that checks out: Some((pos, tag, payload, next)).
fn resync(src: &mut Source, from: usize, credit: &mut Credit) -> Option<(usize, u8, Bytes, usize)> {
    let mut p = from;
    while p + FRAME_HEAD <= src.len() {
        let hit = src.find_sync(p)?;
        credit.reach(hit);
        // Everything that costs nothing first: only frame kinds this reader knows, with
        // a header a writer could have written, whose payload fits in the file, are
        // worth a checksum (a newer writer's kinds and flags are recognised only where
        // a frame is expected, not when hunting for one).
        let plausible = head_at(src, hit).is_ok_and(|h| {
            matches!(
                (h.tag, h.flags),
                (TAG_EVENTS, 0 | FLAG_ZSTD) | (TAG_TRAILER, 0)
            )
        });
        if plausible {
            if let Ok((tag, payload, next)) = frame_at(src, hit, credit) {
                return Some((hit, tag, payload, next));
            }
        }
        p = hit + 1;
    }
    None
}

/// A kernel entry's usual size in an event block (a syscall record with a short path,
/// and its entry header): room for a block's entries is made once instead of by
/// doublings, each a copy of every entry so far (a twentieth of a replay). Format 1
/// files' whole records are larger: their room is only too generous.
const TYPICAL_ENTRY_BYTES: usize = 5 + tracer_common::SYSCALL_FIXED_LEN + 24;

fn parse_entries(payload: &Bytes, out: &mut Vec<Entry>) -> Result<(), String> {
    out.reserve(payload.len() / TYPICAL_ENTRY_BYTES);
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
            // A view from a newer writer that does not parse is not needed to replay.
            ENTRY_SCHEDULES => {
                if let Ok(v) = serde_json::from_slice(&data) {
                    out.push(Entry::Schedules(v));
                }
            }
            ENTRY_FACT => {
                // A fact kind from a newer writer is not needed to replay: skipped.
                if let Ok(f) = serde_json::from_slice(&data) {
                    out.push(Entry::Fact(f));
                }
            }
            ENTRY_LOST => match serde_json::from_slice(&data) {
                Ok(l) => out.push(Entry::Lost(l)),
                Err(e) => return Err(format!("lost-events entry is not valid JSON: {e}")),
            },
            ENTRY_SCHEDULER_FILES => {
                if let Ok(v) = serde_json::from_slice(&data) {
                    out.push(Entry::SchedulerFiles(v));
                }
            }
            // A newer writer's entry kind: skip it.
            _ => {}
        }
    }
    Ok(())
}

/// A trace read one event block at a time: the header first, then `next_block` until
/// it returns None; damage, the trailer and counts are known once it has.
pub struct TraceStream {
    src: Source,
    pos: usize,
    credit: Credit,
    /// A frame that resync found and checked, to be used next.
    found: Option<(u8, Bytes, usize)>,
    pub header: TraceHeader,
    pub trailer: Option<Trailer>,
    pub damage: Vec<Damage>,
    pub unknown_frames: u64,
    pub bytes_total: u64,
    /// Entries read so far.
    pub entries: u64,
}

impl TraceStream {
    /// Read the header. Only an unusable start of file is an error; damage later on is
    /// reported in `damage` with everything readable kept.
    pub fn open(mut src: Source) -> Result<Self, ReadError> {
        let len = src.len();
        if len == 0 {
            return Err(ReadError::Empty);
        }
        if src.get(0, MAGIC.len()).is_none_or(|m| &m[..] != MAGIC) {
            return Err(ReadError::NotATrace);
        }
        let mut credit = Credit::new(len);
        let (tag, payload, pos) = frame_at(&mut src, MAGIC.len(), &mut credit)
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
        Ok(TraceStream {
            src,
            pos,
            credit,
            found: None,
            header,
            trailer: None,
            damage: Vec::new(),
            unknown_frames: 0,
            bytes_total: len as u64,
            entries: 0,
        })
    }

    /// The entries of the next event block (possibly none, for a damaged one); None at
    /// the end of the trace.
    pub fn next_block(&mut self) -> Option<Vec<Entry>> {
        let mut out = Vec::new();
        while self.pos < self.src.len() {
            let pos = self.pos;
            self.credit.reach(pos);
            let frame = match self.found.take() {
                Some(f) => Ok(f),
                None => frame_at(&mut self.src, pos, &mut self.credit),
            };
            match frame {
                Ok((tag, payload, next)) => {
                    self.pos = next;
                    match tag {
                        TAG_EVENTS => {
                            if let Err(e) = parse_entries(&payload, &mut out) {
                                self.damage.push(Damage {
                                    offset: pos as u64,
                                    what: e,
                                    skipped: 0,
                                });
                            }
                            self.entries += out.len() as u64;
                            return Some(out);
                        }
                        TAG_TRAILER => match serde_json::from_slice(&payload) {
                            Ok(t) => self.trailer = Some(t),
                            Err(e) => self.damage.push(Damage {
                                offset: pos as u64,
                                what: format!("trailer JSON: {e}"),
                                skipped: 0,
                            }),
                        },
                        TAG_HEADER => self.damage.push(Damage {
                            offset: pos as u64,
                            what: "a second header frame (files concatenated?)".into(),
                            skipped: 0,
                        }),
                        _ => self.unknown_frames += 1,
                    }
                }
                Err(what) => {
                    let next = resync(&mut self.src, pos + 1, &mut self.credit);
                    let to = next.as_ref().map_or(self.src.len(), |n| n.0);
                    self.damage.push(Damage {
                        offset: pos as u64,
                        what,
                        skipped: (to - pos) as u64,
                    });
                    match next {
                        Some((at, tag, payload, end)) => {
                            self.pos = at;
                            self.found = Some((tag, payload, end));
                        }
                        None => self.pos = self.src.len(),
                    }
                }
            }
        }
        if let Source::File(w) = &mut self.src {
            if let Some((at, e)) = w.failed.take() {
                self.damage.push(Damage {
                    offset: at as u64,
                    what: format!("cannot read the file past here: {e}"),
                    skipped: 0,
                });
            }
        }
        None
    }
}

/// Read a whole trace. Damage after the header is reported in `damage` with everything
/// readable kept; only an unusable start of file is an error.
pub fn read(data: Bytes) -> Result<TraceContents, ReadError> {
    Ok(TraceStream::open(Source::Memory(data))?.read_all())
}

impl TraceStream {
    /// Every entry left, in memory.
    pub fn read_all(mut self) -> TraceContents {
        let mut entries = Vec::new();
        while let Some(block) = self.next_block() {
            entries.extend(block);
        }
        TraceContents {
            header: self.header,
            entries,
            trailer: self.trailer,
            damage: self.damage,
            unknown_frames: self.unknown_frames,
            bytes_total: self.bytes_total,
        }
    }
}
