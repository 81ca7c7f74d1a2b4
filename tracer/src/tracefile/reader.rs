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
