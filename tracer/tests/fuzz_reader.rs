//! Property-based fuzzing of the trace reader and the analysis behind it: whatever the
//! bytes (garbage, a real trace with flipped bytes, a real trace cut anywhere), reading
//! never panics, what was read analyses without panicking, every entry read is one that
//! was written, and whatever was lost is reported as damage. Bounded case counts keep it
//! a few seconds in CI; PROPTEST_CASES raises them for a longer run.
use bytes::Bytes;
use proptest::prelude::*;
use tracer::{commands::replay, tracefile, Format};

/// `default` cases, or PROPTEST_CASES for a longer run (an explicit count in
/// `ProptestConfig` would otherwise win over the variable).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

static FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/cron-scenarios.jtrace");

fn whole() -> tracefile::TraceContents {
    tracefile::read(Bytes::from_static(FIXTURE)).unwrap()
}

fn read_and_analyse(data: Vec<u8>) -> Option<usize> {
    match tracefile::read(Bytes::from(data)) {
        Ok(c) => {
            let rep = replay::analyse(&c, Format::Json, true);
            assert!(rep.stats.events as usize >= c.header.snapshot.len());
            Some(c.entries.len())
        }
        Err(e) => {
            // Every refusal explains itself.
            assert!(!e.to_string().is_empty());
            None
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), ..ProptestConfig::default() })]

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        read_and_analyse(data);
    }

    #[test]
    fn garbage_after_a_valid_magic_never_panics(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut v = tracefile::MAGIC.to_vec();
        v.extend_from_slice(tracefile::SYNC);
        v.extend(data);
        read_and_analyse(v);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), ..ProptestConfig::default() })]

    #[test]
    fn a_real_trace_with_flipped_bytes_loses_nothing_silently(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8)
    ) {
        let mut v = FIXTURE.to_vec();
        for (at, x) in flips {
            let i = at.index(v.len());
            v[i] ^= x;
        }
        let whole = whole();
        if read_and_analyse(v.clone()).is_some() {
            let c = tracefile::read(Bytes::from(v)).unwrap();
            // A flip can only lose frames (their checksums fail), never invent entries,
            // and what it loses is reported as damage.
            prop_assert!(c.entries.len() <= whole.entries.len());
            prop_assert!(
                c.entries.len() == whole.entries.len() || !c.damage.is_empty(),
                "{} of {} entries read and no damage reported",
                c.entries.len(),
                whole.entries.len()
            );
            // What survives is what was written, in order.
            let mut rest = whole.entries.iter();
            for e in &c.entries {
                prop_assert!(rest.any(|w| w == e), "an entry read that was never written: {e:?}");
            }
        }
    }

    #[test]
    fn a_real_trace_cut_anywhere_keeps_what_came_before(
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
    ) {
        let (a, b) = (a.index(FIXTURE.len()), b.index(FIXTURE.len()));
        let (short, long) = (a.min(b), a.max(b));
        let whole = whole();
        let read = |at: usize| tracefile::read(Bytes::from(FIXTURE[..at].to_vec())).ok();
        read_and_analyse(FIXTURE[..short].to_vec());
        if let (Some(s), Some(l)) = (read(short), read(long)) {
            // A cut file holds the entries before the cut, exactly as written: a prefix
            // of the whole, and a longer cut never holds fewer.
            prop_assert_eq!(&s.entries[..], &whole.entries[..s.entries.len()]);
            prop_assert_eq!(&l.entries[..], &whole.entries[..l.entries.len()]);
            prop_assert!(s.entries.len() <= l.entries.len());
            // A cut file says it is incomplete (no trailer, or damage at the cut).
            prop_assert!(short < FIXTURE.len() && s.is_damaged());
        }
    }
}
