//! Maps shared by the probes. Sizes are the kernel-side budget: overflow is counted in
//! `LOST`, never silent.
use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    macros::map,
    maps::{Array, HashMap, PerCpuArray, RingBuf},
};
use tracer_common::{Tracked, COMM_LEN, FOLLOWED_GROUP, LOST_SLOTS};

/// Every record to user space. 16 MiB holds a few thousand exec records.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Set by the loader: a sixteenth of the ring's size (see [`submit_flags`]). Asking the
/// ring its size was a second helper call per record.
#[unsafe(no_mangle)]
static WAKE_AT_BYTES: u64 = 16 * 1024 * 1024 / 16;

/// How a record is submitted: the reader is woken only once a sixteenth of the ring
/// is waiting. A wakeup per record is an interrupt per record (a VM exit in a guest):
/// it was most of the kernel time of a followed syscall (6.5 us of a sys_exit run).
/// The reader drains on a short timer besides while records come, and on a
/// half-second one always.
#[inline(always)]
pub fn submit_flags() -> u64 {
    use aya_ebpf::bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
    let waiting = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    // Volatile so the value patched in by the loader is read, not the one compiled in.
    if waiting >= unsafe { core::ptr::read_volatile(&WAKE_AT_BYTES) } {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// Processes followed, keyed by tgid. Roots are put here by user space (from `/proc`
/// and `--pid`) or by the exec probe (scheduler comms); forks of entries are added.
#[map]
pub static TRACKED: HashMap<u32, Tracked> = HashMap::with_max_entries(32768, 0);

/// One byte per tgid, set before the tgid goes into `TRACKED` (by a probe, or by user
/// space through a shared mapping) and cleared when its process ends. A clear byte
/// means "not followed" without the hash lookup: every watched call of every other
/// process on the host asks, and a hash bucket of a process that made no call lately
/// is a cache miss (about 40 ns of the 100-140 of such a call's two programs). A set
/// byte says only "maybe": `TRACKED` decides. The loader sizes it to the host's
/// `pid_max`; a tgid past its end (pid_max raised later) falls back to `TRACKED`.
/// Byte-wide writes, so no writer needs an atomic read-modify-write of a neighbour.
#[map]
pub static FOLLOWED: Array<[u8; FOLLOWED_GROUP]> =
    Array::with_max_entries(4_194_304 / FOLLOWED_GROUP as u32, BPF_F_MMAPABLE);

/// Threads of tracked processes: tid -> tgid, so a signal aimed at one thread finds
/// its process.
#[map]
pub static THREADS: HashMap<u32, u32> = HashMap::with_max_entries(16384, 0);

/// Comms that make a process a root when it execs (cron, crond, anacron, atd, systemd,
/// `--comm`).
#[map]
pub static ROOT_COMMS: HashMap<[u8; COMM_LEN], u8> = HashMap::with_max_entries(64, 0);

/// Records dropped, per record kind (slot = kind), plus the special slots in tracer-common.
#[map]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOST_SLOTS, 0);

#[inline(always)]
pub fn count_lost(slot: u32) {
    if let Some(p) = LOST.get_ptr_mut(slot) {
        // Per-CPU slot: no other writer on this CPU while we run.
        unsafe { *p += 1 };
    }
    crate::anomaly::record_dropped(slot, crate::common::ids().0);
}
