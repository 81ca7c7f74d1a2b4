//! Trace files made by someone else: frames whose checksums are right around payloads
//! that are not (random kernel records of a real kind, JSON that is almost a process,
//! entries cut short or claiming gigabytes), and files stuffed with false frame
//! markers. Reading, decoding, the job model and the diagnosis (`replay::analyse`, all
//! that `tracer replay` runs) must neither panic nor take long on any of them.
//!
//! Frames are built here from the format as `tracefile`'s documentation states it, not
//! with the writer, so a mistake shared by the writer and the reader shows up too.
use std::time::{Duration, Instant};

/// `default` cases, or PROPTEST_CASES for a longer run (an explicit count in
/// `ProptestConfig` would otherwise win over the variable).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

use bytes::Bytes;
use proptest::prelude::*;
use tracer::{commands::replay, tracefile, Format};
use tracer_common::{
    ExecAttemptPacked, ExecAttemptRecord, ExecSuccessRecord, ExitRecord, ForkRecord, Header,
    RecordKind, SignalRecord, SyscallRecord, EXEC_PACKED_FIXED_LEN, FILENAME_LEN,
    SYSCALL_FIXED_LEN,
};

static FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/cron-scenarios.jtrace");

const TAG_HEADER: u8 = 1;
const TAG_EVENTS: u8 = 2;
const TAG_TRAILER: u8 = 3;

/// `SYNC tag flags reserved len crc payload`, CRC-32 over tag..len and the payload.
fn frame(tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut covered = vec![tag, 0, 0, 0];
    covered.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&covered);
    h.update(payload);
    let mut f = tracefile::SYNC.to_vec();
    f.extend_from_slice(&covered);
    f.extend_from_slice(&h.finalize().to_le_bytes());
    f.extend_from_slice(payload);
    f
}

/// An event-block entry `kind:u8 len:u32 data`, with the length it claims.
fn entry(kind: u8, claimed_len: u32, data: &[u8]) -> Vec<u8> {
    let mut e = vec![kind];
    e.extend_from_slice(&claimed_len.to_le_bytes());
    e.extend_from_slice(data);
    e
}

/// The fixture's header (real crontab views, snapshot, users), so the schedule checks
/// run over the crafted events.
fn real_header() -> tracefile::TraceHeader {
    static HEADER: std::sync::OnceLock<tracefile::TraceHeader> = std::sync::OnceLock::new();
    HEADER
        .get_or_init(|| {
            tracefile::read(Bytes::from_static(FIXTURE))
                .expect("fixture reads")
                .header
        })
        .clone()
}

fn file_with(header: &tracefile::TraceHeader, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut v = tracefile::MAGIC.to_vec();
    v.extend(frame(
        TAG_HEADER,
        &serde_json::to_vec(header).expect("header serialises"),
    ));
    for f in frames {
        v.extend_from_slice(f);
    }
    v
}

fn read_and_analyse(data: Vec<u8>) -> Option<tracefile::TraceContents> {
    let c = tracefile::read(Bytes::from(data)).ok()?;
    let rep = replay::analyse(&c, Format::Json, true);
    let mut sink = Vec::new();
    tracer::output::report::write_json(&mut sink, &rep, false).expect("report serialises");
    Some(c)
}

/// Markers every 16 bytes, each with a known tag, a clean header and a length that
/// runs exactly to the end of the file: every one passes the cheap checks and claims
/// a checksum over everything after it.
fn false_markers(region: usize, file_end: usize, region_start: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(region);
    while v.len() + 16 <= region {
        let at = region_start + v.len();
        let len = (file_end - at - 16) as u32;
        v.extend_from_slice(tracefile::SYNC);
        v.extend_from_slice(&[TAG_EVENTS, 0, 0, 0]);
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    }
    v.resize(region, b'x');
    v
}

#[test]
fn a_file_full_of_false_frame_markers_replays_in_linear_time() {
    let header = real_header();
    let mut fork = vec![0u8; std::mem::size_of::<ForkRecord>()];
    fork[0] = 1;
    let block = frame(TAG_EVENTS, &entry(1, fork.len() as u32, &fork));
    let trailer = frame(
        TAG_TRAILER,
        &serde_json::to_vec(&tracefile::Trailer::default()).unwrap(),
    );
    let head = file_with(&header, &[block]);
    let region = 4 << 20;
    let end = head.len() + region + trailer.len();
    let mut data = head.clone();
    data.extend(false_markers(region, end, head.len()));
    data.extend_from_slice(&trailer);
    assert_eq!(data.len(), end);

    let t = Instant::now();
    let c = read_and_analyse(data).expect("the header is fine");
    let took = t.elapsed();
    // Checking each of the 262,144 markers in full would checksum ~550 GB (minutes);
    // the reader's budget is 3 × the file (~12 MiB, milliseconds). The bound leaves
    // room for a loaded CI machine and for the analysis of the fixture's crontabs; a
    // debug build checksums and analyses ~10× slower.
    let bound = if cfg!(debug_assertions) {
        Duration::from_secs(20)
    } else {
        Duration::from_secs(2)
    };
    assert!(
        took < bound,
        "replay of 4 MiB of false markers took {took:?}"
    );
    // What came before is kept and the damage is located. The trailer after the
    // markers may go unfound once they have used up the checksum budget: a crafted
    // file can hide a frame that way, as it could by leaving it out.
    assert_eq!(c.entries.len(), 1);
    assert_eq!(c.damage.len(), 1, "{:?}", c.damage);
    assert_eq!(c.damage[0].offset as usize, head.len());
    assert!(c.damage[0].skipped as usize >= region);
}

/// A timestamp: `far`, anywhere up to u64::MAX (the schedule check then has centuries
/// to look through); else within minutes of the fixture's start.
fn time(far: bool) -> BoxedStrategy<u64> {
    const S: u64 = 1_000_000_000;
    if far {
        prop_oneof![Just(u64::MAX), any::<u64>(), 0u64..20_000 * S].boxed()
    } else {
        prop_oneof![Just(5_300 * S), 0u64..6_000 * S].boxed()
    }
}

#[test]
fn a_file_damaged_all_through_is_summarised_in_a_few_lines() {
    let mut frames = Vec::new();
    for _ in 0..500 {
        frames.push(frame(TAG_EVENTS, &entry(9, 1, b"x")));
        frames.push(b"JTFR garbage".to_vec());
    }
    let c = tracefile::read(Bytes::from(file_with(&real_header(), &frames))).unwrap();
    assert_eq!(c.damage.len(), 500);
    let s = replay::damage_summary(std::path::Path::new("x.jtrace"), &c).unwrap();
    assert!(s.lines().count() <= 13, "{s}");
    assert!(s.contains("and 490 more damaged places"), "{s}");
}

#[test]
fn an_event_centuries_ahead_does_not_stall_the_schedule_check() {
    // One exit time-stamped u64::MAX ns after boot: the trace then spans 584 years, and
    // every minute of them was a fire of the fixture's every-minute entries.
    let header = real_header();
    let mut r = vec![0u8; std::mem::size_of::<ExitRecord>()];
    r[0] = 4;
    r[8..16].copy_from_slice(&u64::MAX.to_ne_bytes());
    let data = file_with(&header, &[frame(TAG_EVENTS, &entry(1, r.len() as u32, &r))]);
    let t = Instant::now();
    let c = tracefile::read(Bytes::from(data)).unwrap();
    let rep = replay::analyse(&c, Format::Json, true);
    let took = t.elapsed();
    // The check stops after 10,000 missed runs (about a quarter of a day of the
    // fixture's crontabs): ~50 ms in release, a few hundred in debug.
    let bound = if cfg!(debug_assertions) {
        Duration::from_secs(20)
    } else {
        Duration::from_secs(2)
    };
    assert!(took < bound, "took {took:?}");
    let missed: Vec<_> = rep
        .findings
        .iter()
        .filter(|f| f.kind == "missed_schedule")
        .collect();
    assert!(!missed.is_empty());
    assert!(
        missed.iter().all(|f| f
            .message
            .contains("were not looked for (more than 10000 missed runs")),
        "{:#?}",
        missed[0].message
    );
    let times: usize = missed.iter().map(|f| f.times.len()).sum();
    assert!((10_000..20_000).contains(&times), "{times}");
}

/// Kernel records of a real kind, of the right size or not, with random fields;
/// pids, timestamps and child pids drawn from small sets so that forks, execs and
/// exits of the same processes meet in the model.
fn kernel_record(far: bool) -> impl Strategy<Value = Vec<u8>> {
    let sizes = [
        std::mem::size_of::<ForkRecord>(),
        std::mem::size_of::<ExecAttemptRecord>(),
        std::mem::size_of::<ExecSuccessRecord>(),
        std::mem::size_of::<ExitRecord>(),
        std::mem::size_of::<SignalRecord>(),
        std::mem::size_of::<SyscallRecord>(),
    ];
    (
        // 7: a syscall record as the kernel sends it since format 2, cut after its
        // data, with a data_len that says so or claims more than is there. 8: a packed
        // exec attempt (format 3), its three lengths likewise.
        1u32..=8,
        prop_oneof![Just(0i64), -8i64..8, 0i64..64],
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..96),
        0u32..=25,
        prop::collection::vec(0u32..6, 4),
        time(far),
    )
        .prop_map(move |(kind, size_delta, seed, tail, sys, pids, ts)| {
            let (short, packed) = (kind == 7, kind == 8);
            let kind = match kind {
                7 => 6,
                8 => RecordKind::ExecAttemptPacked as u32,
                k => k,
            };
            let len = if short {
                SYSCALL_FIXED_LEN + (seed % 64) as usize
            } else if packed {
                EXEC_PACKED_FIXED_LEN + (seed % 300) as usize
            } else {
                let full = sizes[kind as usize - 1];
                (full as i64 + size_delta).clamp(0, full as i64 + 64) as usize
            };
            let mut v = vec![0u8; len];
            // Cheap deterministic noise over the whole record, then the fields that
            // steer decoding and the model set on purpose.
            let mut x = seed | 1;
            for b in v.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let n = tail.len().min(len);
            let at = len - n;
            v[at..].copy_from_slice(&tail[..n]);
            let put = |v: &mut Vec<u8>, off: usize, bytes: &[u8]| {
                if off + bytes.len() <= v.len() {
                    v[off..off + bytes.len()].copy_from_slice(bytes);
                }
            };
            let pid = |i: usize| 100 + pids[i];
            put(&mut v, 0, &kind.to_ne_bytes());
            put(&mut v, 8, &ts.to_ne_bytes());
            put(&mut v, 16, &pid(0).to_ne_bytes());
            put(&mut v, 20, &pid(0).to_ne_bytes());
            put(&mut v, 24, &pid(1).to_ne_bytes());
            let body = std::mem::size_of::<Header>();
            match kind {
                // fork: child pid
                1 => put(&mut v, body, &pid(2).to_ne_bytes()),
                // signal: target pid
                5 => put(&mut v, body, &pid(3).to_ne_bytes()),
                // syscall: which one
                6 => put(&mut v, body, &sys.to_ne_bytes()),
                _ => {}
            }
            if short {
                let used = (len - SYSCALL_FIXED_LEN) as u32 + (seed >> 8) as u32 % 3;
                put(
                    &mut v,
                    std::mem::offset_of!(SyscallRecord, data_len),
                    &used.to_ne_bytes(),
                );
            }
            if packed {
                // The used bytes split three ways, the last claiming up to two more.
                let used = (len - EXEC_PACKED_FIXED_LEN) as u32;
                let name = used / 4;
                let args = (used - name) / 2;
                let mut env = used - name - args + (seed >> 8) as u32 % 3;
                // Now and then a length past its field's room (read as the room).
                if seed % 7 == 0 {
                    env = u32::MAX - (seed >> 32) as u32 % 5000;
                }
                let name = if seed % 11 == 0 {
                    FILENAME_LEN as u32 + 1 + (seed >> 40) as u32 % 100
                } else {
                    name
                };
                for (field, n) in [
                    (std::mem::offset_of!(ExecAttemptPacked, filename_len), name),
                    (std::mem::offset_of!(ExecAttemptPacked, args_len), args),
                    (std::mem::offset_of!(ExecAttemptPacked, env_len), env),
                    (
                        std::mem::offset_of!(ExecAttemptPacked, argc),
                        (seed >> 16) as u32 % 5,
                    ),
                    (
                        std::mem::offset_of!(ExecAttemptPacked, envc),
                        (seed >> 24) as u32 % 5,
                    ),
                ] {
                    put(&mut v, field, &n.to_ne_bytes());
                }
            }
            v
        })
}

/// A process found in `/proc`, as JSON, with random fields.
fn process(far: bool) -> impl Strategy<Value = Vec<u8>> {
    (
        0u32..8,
        0u32..8,
        any::<bool>(),
        prop::collection::vec("[ -~]{0,12}", 0..4),
        time(far),
        prop::option::of((any::<u64>(), any::<u64>())),
    )
        .prop_map(|(pid, ppid, root, argv, ts, nofile)| {
            serde_json::to_vec(&serde_json::json!({
                "ts_ns": ts,
                "root": root,
                "process": {
                    "pid": 100 + pid, "ppid": 100 + ppid, "comm": "cron", "cmdline": argv,
                    "uid": 0, "gid": 0, "cwd": "/", "exe": null, "nofile": nofile
                }
            }))
            .unwrap()
        })
}

/// JSON that is a process, almost a process, or not one at all.
fn json_ish(far: bool) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        process(far),
        process(far).prop_map(|mut v| {
            let n = v.len() / 2;
            v.truncate(n);
            v
        }),
        "[\\[\\]{}\":,0-9a-z ]{0,64}".prop_map(String::into_bytes),
        Just(b"{\"ts_ns\":1,\"root\":true,\"process\":{\"pid\":-1}}".to_vec()),
        Just(vec![b'['; 4096]),
    ]
}

/// An event-block payload: entries that are whole (whatever is inside them), then
/// perhaps one that is not: cut short, claiming more than the block holds (up to
/// gigabytes), or a process that is not JSON. The reader keeps what came before it
/// and drops the rest of the block.
fn block(far: bool) -> impl Strategy<Value = Vec<u8>> {
    let whole = prop_oneof![
        8 => kernel_record(far).prop_map(|r| entry(1, r.len() as u32, &r)),
        2 => process(far).prop_map(|j| entry(2, j.len() as u32, &j)),
        1 => json_ish(far).prop_map(|j| entry(3, j.len() as u32, &j)),
        1 => json_ish(far).prop_map(|j| entry(4, j.len() as u32, &j)),
        1 => (5u8.., prop::collection::vec(any::<u8>(), 0..32))
            .prop_map(|(k, d)| entry(k, d.len() as u32, &d)),
    ];
    let broken = prop_oneof![
        json_ish(far).prop_map(|j| entry(2, j.len() as u32, &j)),
        (
            any::<u8>(),
            any::<u32>(),
            prop::collection::vec(any::<u8>(), 0..32)
        )
            .prop_map(|(k, claimed, d)| entry(k, claimed.max(d.len() as u32 + 1), &d)),
        kernel_record(far).prop_map(|r| {
            let mut e = entry(1, r.len() as u32, &r);
            e.truncate(e.len() / 2);
            e
        }),
        prop::collection::vec(any::<u8>(), 1..5),
    ];
    (
        prop::collection::vec(whole, 0..48),
        prop::option::weighted(0.3, broken),
    )
        .prop_map(|(es, end)| {
            let mut b = es.concat();
            b.extend(end.unwrap_or_default());
            b
        })
}

/// A crontab line as the recorded host's file might hold, odd values included.
fn crontab_line() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("*".to_string()),
        Just("*/0".to_string()),
        Just("0-59/7".to_string()),
        Just("60".to_string()),
        Just("31".to_string()),
        Just("feb".to_string()),
        Just("5-1".to_string()),
        "[0-9*/,-]{1,6}",
    ];
    prop_oneof![
        (prop::collection::vec(field, 5), "[a-z]{0,6}", "[ -~]{0,20}")
            .prop_map(|(f, user, cmd)| format!("{} {user} {cmd}", f.join(" "))),
        Just("@reboot root true".to_string()),
        Just("@hourly root true".to_string()),
        Just("CRON_TZ=Mars/Olympus_Mons".to_string()),
        Just("TZ=Europe/Berlin".to_string()),
        Just("PATH=".to_string()),
        "[ -~]{0,40}",
    ]
}

fn trailer(far: bool) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        time(far).prop_map(|end| serde_json::to_vec(&serde_json::json!({
            "kernel_records": 1, "lost_events": end, "end_ns": end
        }))
        .unwrap()),
        json_ish(far),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(96), ..ProptestConfig::default() })]

    #[test]
    fn valid_frames_with_malformed_payloads_never_panic(
        // Far timestamps in a few cases only: each costs the schedule check its limit.
        (blocks, trailer, snapshot) in prop::bool::weighted(0.1).prop_flat_map(|far| (
            prop::collection::vec(block(far), 0..6),
            prop::option::of(trailer(far)),
            prop::collection::vec(json_ish(far), 0..4),
        )),
        start_ns in prop_oneof![Just(0u64), Just(1_000_000_000u64), any::<u64>()],
        cut in prop::option::of(any::<prop::sample::Index>()),
        // A frame header that claims anything (past the end, past MAX_FRAME) with a
        // checksum that cannot match, between two frames: the reader resyncs.
        junk in prop::option::of((any::<u32>(), any::<prop::sample::Index>())),
        // The recorded crontab of the host's first daemon, replaced.
        crontab in prop::option::of(prop::collection::vec(crontab_line(), 0..8)),
    ) {
        let mut header = real_header();
        header.start_ns = start_ns;
        if let (Some(lines), Some(source)) = (
            crontab,
            header.schedules.first_mut().and_then(|v| v.sources.first_mut()),
        ) {
            source.text = Some(lines.join("\n") + "\n");
        }
        header.snapshot = snapshot
            .iter()
            .filter_map(|j| serde_json::from_slice(j).ok())
            .collect();
        let mut frames: Vec<Vec<u8>> = blocks.iter().map(|b| frame(TAG_EVENTS, b)).collect();
        if let Some(t) = &trailer {
            frames.push(frame(TAG_TRAILER, t));
        }
        if let Some((len, at)) = junk {
            let mut head = tracefile::SYNC.to_vec();
            head.extend_from_slice(&[TAG_EVENTS, 0, 0, 0]);
            head.extend_from_slice(&len.to_le_bytes());
            head.extend_from_slice(&[0; 4]);
            frames.insert(at.index(frames.len() + 1), head);
        }
        let mut data = file_with(&header, &frames);
        if let Some(at) = cut {
            let min = data.len() - frames.iter().map(Vec::len).sum::<usize>();
            let at = min + at.index(data.len() - min + 1);
            data.truncate(at);
        }
        let t = Instant::now();
        read_and_analyse(data);
        // Generous: a case is a few hundred records; this catches work that grows
        // with the values inside them (timestamps, lengths, pids), not slow machines.
        prop_assert!(t.elapsed() < Duration::from_secs(5), "one case took {:?}", t.elapsed());
    }
}
