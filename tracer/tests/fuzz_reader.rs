//! Property-based fuzzing of the trace reader and the analysis behind it: whatever the
//! bytes (garbage, a real trace with flipped bytes, a real trace cut anywhere), reading
//! never panics, and what was read analyses without panicking. Bounded case counts keep
//! it a few seconds in CI; PROPTEST_CASES raises them for a longer run.
use bytes::Bytes;
use proptest::prelude::*;
use tracer::{commands::replay, tracefile, Format};

static FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/cron-scenarios.jtrace");

fn entries_of_whole() -> usize {
    tracefile::read(Bytes::from_static(FIXTURE))
        .unwrap()
        .entries
        .len()
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
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

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
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn a_real_trace_with_flipped_bytes_never_panics(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8)
    ) {
        let mut v = FIXTURE.to_vec();
        for (at, x) in flips {
            let i = at.index(v.len());
            v[i] ^= x;
        }
        if let Some(n) = read_and_analyse(v) {
            prop_assert!(n <= entries_of_whole() + 8);
        }
    }

    #[test]
    fn a_real_trace_cut_anywhere_keeps_what_came_before(cut in any::<prop::sample::Index>()) {
        let at = cut.index(FIXTURE.len());
        let n = read_and_analyse(FIXTURE[..at].to_vec());
        if let Some(n) = n {
            prop_assert!(n <= entries_of_whole());
        }
    }
}
