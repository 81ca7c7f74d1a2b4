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
//! `kind:u8 len:u32 data`: kind 1 is a kernel record as `tracer-common` lays it out
//! (already redacted; a syscall record up to its data's used length, format 2.0; an
//! exec attempt packed, format 3.0), kind 2 a JSON [`Synthetic`] event (a process found in `/proc`
//! while recording), kind 3 a JSON [`Fact`] the diagnosis learnt from the host, kind 4
//! a JSON `ScheduleView` (the crontabs of a daemon that started while recording),
//! kind 5 a JSON [`LostEvents`].
//!
//! Format 1.3: an event block's frame has flag 1 (zstd) and its payload is one zstd
//! frame holding the block; the checksum covers the compressed bytes. Each block is
//! compressed on its own, so damage still costs one block. Records are written with
//! the bytes past their used lengths cleared, which is what makes them compress (a
//! storm of short jobs: 15 bytes per event on disk, from 512).
//!
//! Format 2.0: a syscall record is stored as the kernel sends it, up to the used length
//! of its data (`SYSCALL_FIXED_LEN + data_len` bytes, not the whole struct): a 1.x
//! tracer would fail on every one, so it is told to upgrade instead. 1.x files, whose
//! records are whole, still replay.
//!
//! Format 3.0: an exec attempt is the kernel's `ExecAttemptPacked` (record kind 7):
//! its file name, argv and env back to back, up to their used length, where the
//! whole `ExecAttemptRecord` (kind 2) was 6.5 KB. A 2.x tracer would skip every exec,
//! so it is told to upgrade. 1.x and 2.x files still replay.
//!
//! Format 1.5: the trailer repeats the host's answers (`facts`, the last answer to each
//! question, up to 10,000 questions). A replay reads the trailer from the end of the
//! file first; when the answers are there, one pass over the file does. A file cut
//! short, one with more questions, or one replayed with `--crontab`, takes two: the
//! first gathers the answers and the crontab views.
//!
//! Blocks are written at least every second and synced, so a crash, `kill -9` or a
//! full disk loses at most the last second.
mod format;
mod reader;
mod writer;

pub use format::{
    CaptureOptions, Entry, LateSchedulerFiles, LateSchedules, LostEvents, Synthetic, TraceHeader,
    Trailer, FORMAT_MAJOR, FORMAT_MINOR, MAGIC, MAX_FRAME, SYNC,
};
pub use reader::{
    read, trailer_at_end, Damage, FileWindow, ReadError, Source, TraceContents, TraceStream,
};
pub use writer::{create_file, CreateError, TraceWriter};

#[cfg(test)]
mod tests {
    use super::{format::*, *};
    use bytes::Bytes;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

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
    fn the_trailer_repeats_the_latest_answer_to_each_question_and_is_found_from_the_end() {
        use crate::facts::Fact;
        let p = tmp("facts");
        let f = create_file(&p, false).unwrap();
        let mut w = TraceWriter::new(&p, f, &header());
        let locate = |found: Option<&str>| Fact::Locate {
            name: "backup".into(),
            found: found.map(str::to_string),
        };
        w.fact(&locate(None));
        w.kernel_record(&[1u8; 72]);
        w.fact(&Fact::Locate {
            name: "rsync".into(),
            found: Some("/usr/bin/rsync".into()),
        });
        w.fact(&locate(Some("/opt/bin/backup")));
        assert!(w.finish(&Trailer::default()).is_none());
        let bytes = std::fs::read(&p).unwrap();

        let mut src = Source::Memory(Bytes::from(bytes.clone()));
        let t = trailer_at_end(&mut src).expect("a whole file's trailer");
        let facts = t.facts.expect("format 1.5 trailers carry the answers");
        assert_eq!(facts.len(), 2, "{facts:?}");
        assert!(
            facts.contains(&locate(Some("/opt/bin/backup"))),
            "{facts:?}"
        );
        assert!(
            !facts.contains(&locate(None)),
            "an answer that was replaced"
        );
        // The same trailer as a reader of the whole file finds.
        let whole = read(Bytes::from(bytes.clone())).unwrap();
        assert_eq!(whole.trailer.unwrap().facts.unwrap(), facts);

        // Cut short (no trailer) or a damaged last byte: a replay needs both passes.
        for cut in [bytes.len() - 1, bytes.len() / 2] {
            let mut src = Source::Memory(Bytes::from(bytes[..cut].to_vec()));
            assert!(trailer_at_end(&mut src).is_none(), "cut at {cut}");
        }
        let mut bad = bytes.clone();
        let last = bad.len() - 2;
        bad[last] ^= 0x20;
        assert!(trailer_at_end(&mut Source::Memory(Bytes::from(bad))).is_none());
        // A file that is nothing but its magic.
        assert!(trailer_at_end(&mut Source::Memory(Bytes::from_static(MAGIC))).is_none());
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn a_recording_that_asked_too_many_questions_leaves_them_out_of_its_trailer() {
        use crate::facts::Fact;
        let p = tmp("many-facts");
        let f = create_file(&p, false).unwrap();
        let mut w = TraceWriter::new(&p, f, &header());
        for i in 0..=10_000 {
            w.fact(&Fact::Locate {
                name: format!("cmd{i}"),
                found: None,
            });
        }
        assert!(w.finish(&Trailer::default()).is_none());
        let c = read(Bytes::from(std::fs::read(&p).unwrap())).unwrap();
        let t = c.trailer.expect("a whole file");
        assert_eq!(t.facts, None, "the trailer would grow without bound");
        // The answers are all still in the file, for a two-pass replay.
        let in_file = c
            .entries
            .iter()
            .filter(|e| matches!(e, Entry::Fact(_)))
            .count();
        assert_eq!(in_file, 10_001);
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

    /// A fresh directory with `mode`, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str, mode: u32) -> Dir {
            let p = tmp(name);
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir(&p).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            Dir(p)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn refusal(path: &Path, force: bool) -> String {
        let e = create_file(path, force).expect_err("must be refused");
        e.to_string()
    }

    #[test]
    fn a_directory_anyone_can_write_without_the_sticky_bit_is_refused() {
        let open = Dir::new("o+w", 0o777);
        let target = open.0.join("x.jtrace");
        for force in [false, true] {
            let e = refusal(&target, force);
            assert!(
                e.contains("writable by every user") && e.contains("chmod +t"),
                "{e}"
            );
        }
        assert!(!target.exists(), "nothing created");
        let sticky = Dir::new("o+wt", 0o1777);
        let f = create_file(&sticky.0.join("x.jtrace"), false).unwrap();
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o7777, 0o600);
    }

    #[test]
    fn force_never_writes_over_a_hard_link_a_fifo_a_device_or_a_directory() {
        let d = Dir::new("force", 0o700);
        let a = d.0.join("a");
        std::fs::write(&a, b"keep me").unwrap();
        let b = d.0.join("b.jtrace");
        std::fs::hard_link(&a, &b).unwrap();
        let e = refusal(&b, true);
        assert!(e.contains("2 hard links"), "{e}");
        assert_eq!(
            std::fs::read(&a).unwrap(),
            b"keep me",
            "truncated through a link"
        );

        let fifo = d.0.join("fifo.jtrace");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = refusal(&fifo, true);
        assert!(
            e.contains("a FIFO") && e.contains("only regular files"),
            "{e}"
        );
        assert!(refusal(&fifo, false).contains("--force"));

        let e = refusal(Path::new("/dev/null"), true);
        assert!(e.contains("a character device"), "{e}");
        let sub = d.0.join("sub.jtrace");
        std::fs::create_dir(&sub).unwrap();
        assert!(refusal(&sub, true).contains("a directory"));

        // A regular file of ours with one name is fine, and loses its old content.
        std::fs::remove_file(&b).unwrap();
        drop(create_file(&a, true).unwrap());
        assert!(std::fs::read(&a).unwrap().is_empty());
    }

    #[test]
    fn force_never_writes_over_another_users_file() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return; // only root can make a file that belongs to someone else
        }
        let d = Dir::new("owner", 0o755);
        let theirs = d.0.join("theirs.jtrace");
        std::fs::write(&theirs, b"x").unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
        let e = refusal(&theirs, true);
        assert!(e.contains("belongs to uid 65534"), "{e}");
        assert_eq!(std::fs::read(&theirs).unwrap(), b"x");
    }

    #[test]
    fn a_write_error_stops_writing_once_and_for_all() {
        // /dev/full fails every write with ENOSPC, like a full disk.
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let mut w = TraceWriter::new(Path::new("/dev/full"), full, &header());
        let first = w.error().expect("the header write failed");
        assert!(first.contains("No space left on device"), "{first}");
        for i in 0..10_000 {
            w.kernel_record(&[i as u8; 72]);
        }
        w.flush();
        assert_eq!(w.error(), Some(first.clone()), "the first error is kept");
        assert_eq!(w.bytes_written(), 0);
        assert_eq!(w.finish(&Trailer::default()), Some(first));
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
    fn a_file_read_through_its_window_reads_as_it_would_whole() {
        // Larger than the window, damaged on both sides of its edge: a frame that
        // straddles it, a marker cut in two by it, a resync that crosses it.
        let p = tmp("window");
        let f = create_file(&p, false).unwrap();
        let mut w = TraceWriter::new(&p, f, &header());
        // Noise, so that the compressed blocks are as large as the records.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..120_000u32 {
            let mut rec = [0u8; 72];
            for b in rec.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.copy_from_slice(&x.to_le_bytes());
            }
            rec[..4].copy_from_slice(&i.to_le_bytes());
            w.kernel_record(&rec);
            if i % 1000 == 0 {
                w.flush();
            }
        }
        assert!(w.finish(&Trailer::default()).is_none());
        let mut bytes = std::fs::read(&p).unwrap();
        assert!(bytes.len() > 2 * (4 << 20), "{}", bytes.len());
        for at in [(4 << 20) - 2, (4 << 20) + 5000, (8 << 20) - 40_000] {
            bytes[at] ^= 0x55;
        }
        let marker = bytes[(4 << 20) + 20_000..]
            .windows(4)
            .position(|x| x == SYNC)
            .unwrap()
            + (4 << 20)
            + 20_000;
        bytes[marker + 2] = b'X';
        std::fs::write(&p, &bytes).unwrap();
        let whole = read(Bytes::from(bytes.clone())).unwrap();
        let file = std::fs::File::open(&p).unwrap();
        let len = file.metadata().unwrap().len();
        let streamed = TraceStream::open(Source::File(FileWindow::new(file, len)))
            .unwrap()
            .read_all();
        std::fs::remove_file(&p).unwrap();
        assert!(whole.damage.len() >= 2, "{:?}", whole.damage);
        assert_eq!(streamed.damage, whole.damage);
        assert_eq!(streamed.entries, whole.entries);
        assert_eq!(streamed.trailer, whole.trailer);
        assert!(streamed.trailer.is_some());
        assert_eq!(streamed.bytes_total, bytes.len() as u64);
    }

    #[test]
    fn event_blocks_are_compressed_and_a_bad_compressed_block_is_damage() {
        let p = tmp("zstd");
        let bytes = write_sample(&p, 3000);
        std::fs::remove_file(&p).unwrap();
        // 3,000 records of 72 bytes, each a repeated byte: far less on disk.
        assert!(bytes.len() < 3000 * 72 / 4, "{} bytes", bytes.len());
        assert_eq!(read(Bytes::from(bytes)).unwrap().entries.len(), 3000);
        let start = || {
            let mut v = MAGIC.to_vec();
            v.extend_from_slice(&frame(TAG_HEADER, &serde_json::to_vec(&header()).unwrap()));
            v
        };
        let whole = zstd::bulk::compress(&[1u8, 4, 0, 0, 0, 9, 9, 9, 9], 1).unwrap();
        let huge = zstd::bulk::compress(&vec![0u8; MAX_FRAME + 1], 1).unwrap();
        // Not zstd at all; a zstd frame that claims more than a frame may hold; one
        // cut short. Each is damage, and the good block after it is read.
        for (bad, why) in [
            (b"not zstd".to_vec(), "no readable size"),
            (huge, "claims 67108865 bytes"),
            (whole[..whole.len() - 2].to_vec(), "does not decompress"),
        ] {
            let mut v = start();
            v.extend_from_slice(&frame_with(TAG_EVENTS, FLAG_ZSTD, &bad));
            v.extend_from_slice(&frame_with(TAG_EVENTS, FLAG_ZSTD, &whole));
            let c = read(Bytes::from(v)).unwrap();
            assert_eq!(
                c.entries,
                vec![Entry::Kernel(Bytes::from_static(&[9, 9, 9, 9]))]
            );
            assert_eq!(c.damage.len(), 1, "{:?}", c.damage);
            assert!(c.damage[0].what.contains(why), "{:?}", c.damage);
        }
        // A flag this reader does not know is damage too.
        let mut v = start();
        v.extend_from_slice(&frame_with(TAG_EVENTS, 2, &whole));
        let c = read(Bytes::from(v)).unwrap();
        assert!(
            c.damage[0].what.contains("not understood"),
            "{:?}",
            c.damage
        );
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
