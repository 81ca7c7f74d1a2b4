//! Rare things the kernel side wants a person to know about, through aya-log: a record
//! dropped because the ring buffer was full, a tracked-process map full, a user string
//! that could not be read or did not fit. The loader leaves the log level at 0 unless
//! the user asks (-v), so each call costs one global load and compare. The per-kind
//! `LOST` counters stay the source of truth (the live loop says each loss, summed, at
//! default verbosity); these lines, one per record, say who, and only at -v: in a
//! storm they would be thousands.
use aya_log_ebpf::info;

/// `slot` is a record kind, or one of tracer-common's special `LOST_*` slots.
#[inline(always)]
pub fn record_dropped(slot: u32, tgid: u32) {
    info!(
        &(),
        "record dropped (lost slot {}) for pid {}: ring buffer or map full", slot, tgid
    );
}

/// A program reached its budget of failed `stat(path)` records: its later PATH
/// searches are not seen.
#[inline(always)]
pub fn stat_misses_capped(tgid: u32) {
    info!(
        &(),
        "pid {} failed {} stat calls: its later ones are not recorded",
        tgid,
        tracer_common::STAT_MISSES_KEPT
    );
}

/// A string of a tracked process's syscall was cut to fit its record.
#[inline(always)]
pub fn truncated(what: &str, tgid: u32) {
    info!(&(), "{} truncated for pid {}", what, tgid);
}

/// A user page was not resident or the pointer was bad: the string is empty or partial.
#[inline(always)]
pub fn read_fault(what: &str, tgid: u32) {
    info!(&(), "{} could not be read for pid {}", what, tgid);
}
