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
    fn new(data: &Bytes) -> Self {
        Credit {
            left: data.len() as u64,
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

fn head_at(data: &Bytes, pos: usize) -> Result<FrameHead, String> {
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
    let present = data.len() - (pos + FRAME_HEAD);
    if present < head.len {
        return Err(format!(
            "file ends inside a frame ({present} of {} payload bytes present)",
            head.len
        ));
    }
    Ok(head)
}

/// One frame at `pos`, checked; Ok((tag, payload, next_pos)).
fn frame_at(data: &Bytes, pos: usize, credit: &mut Credit) -> Result<(u8, Bytes, usize), String> {
    let head = head_at(data, pos)?;
    let start = pos + FRAME_HEAD;
    if !credit.spend(head.len) {
        return Err(format!(
            "frame of {} bytes not checked: the checksum work allowed for this file went to false frame markers before it",
            head.len
        ));
    }
    let payload = data.slice(start..start + head.len);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&data[pos + 4..pos + 12]);
    hasher.update(&payload);
    if hasher.finalize() != head.crc {
        return Err("checksum mismatch".into());
    }
    if head.flags != 0 {
        return Err(format!(
            "frame flags {:#x} not understood (compressed by a newer writer?)",
            head.flags
        ));
    }
    Ok((head.tag, payload, start + head.len))
}

/// The next frame at or after `from` that checks out: Some((pos, tag, payload, next)).
fn resync(data: &Bytes, from: usize, credit: &mut Credit) -> Option<(usize, u8, Bytes, usize)> {
    let mut p = from;
    while p + FRAME_HEAD <= data.len() {
        let hit = data[p..].windows(4).position(|w| w == SYNC)? + p;
        credit.reach(hit);
        // Everything that costs nothing first: only frame kinds this reader knows, with
        // a header a writer could have written, whose payload fits in the file, are
        // worth a checksum (a newer writer's kinds and flags are recognised only where
        // a frame is expected, not when hunting for one).
        let plausible = head_at(data, hit)
            .is_ok_and(|h| matches!(h.tag, TAG_EVENTS | TAG_TRAILER) && h.flags == 0);
        if plausible {
            if let Ok((tag, payload, next)) = frame_at(data, hit, credit) {
                return Some((hit, tag, payload, next));
            }
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
    let mut credit = Credit::new(&data);
    let (tag, payload, mut pos) = frame_at(&data, MAGIC.len(), &mut credit)
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
    let mut found = None;
    while pos < data.len() {
        credit.reach(pos);
        let frame = match found.take() {
            Some(f) => Ok(f),
            None => frame_at(&data, pos, &mut credit),
        };
        match frame {
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
                let next = resync(&data, pos + 1, &mut credit);
                let to = next.as_ref().map_or(data.len(), |n| n.0);
                c.damage.push(Damage {
                    offset: pos as u64,
                    what,
                    skipped: (to - pos) as u64,
                });
                match next {
                    Some((at, tag, payload, end)) => {
                        pos = at;
                        found = Some((tag, payload, end));
                    }
                    None => break,
                }
            }
        }
    }
    Ok(c)
}
