//! Syscall enter halves waiting for their exit, one per thread.
//!
//! A thread's half lives in the array slot `tid % PENDING_SLOTS`, built in place. It
//! was a hash map: an insert and a delete per followed call, with the record copied in
//! from a scratch slot, were about a fifth of the kernel time of a followed open. An
//! array slot is an offset.
//!
//! When the slot holds another thread's call still waiting (tids equal modulo the slot
//! count, both followed, both inside a syscall), the half goes to the spill hash map.
//! A slot a thread left without an exit (the tracer attached mid-call) is cleared when
//! the thread exits, or taken over by the same tid's next call.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
};
use tracer_common::{SyscallRecord, LOST_PENDING_FULL};

use crate::maps::count_lost;

/// A power of two; 8192 records of 368 bytes, about 3 MiB. The loader may shrink the
/// map (`TRACER_PENDING_SLOTS`) and sets `PENDING_MASK` to match, so a test can make
/// every pair of threads collide.
const PENDING_SLOTS: u32 = 8192;

#[unsafe(no_mangle)]
static PENDING_MASK: u32 = PENDING_SLOTS - 1;

#[map]
static PENDING: Array<SyscallRecord> = Array::with_max_entries(PENDING_SLOTS, 0);

#[map]
static PENDING_SPILL: HashMap<u32, SyscallRecord> = HashMap::with_max_entries(4096, 0);

/// Where a half bound for the spill map is built, off the 512-byte stack.
#[map]
static SCRATCH: PerCpuArray<SyscallRecord> = PerCpuArray::with_max_entries(1, 0);

/// Set once a half has ever been spilled, and left set. While it is clear, an exit
/// looks no further than the slot: an unfollowed thread's exit costs one array lookup.
/// (A count would let it clear again, but this target has no atomic add without the
/// unstable intrinsics, and a racy count could read zero with a half still spilled.)
#[map]
static SPILLED: Array<u32> = Array::with_max_entries(1, 0);

#[derive(Clone, Copy, PartialEq)]
pub enum Place {
    Slot,
    Spill,
}

/// A free slot has tid 0: the idle task makes no syscalls.
const FREE: u32 = 0;

#[inline(always)]
fn slot(tid: u32) -> Option<*mut SyscallRecord> {
    // Volatile so the mask patched in by the loader is read, not the one compiled in.
    let mask = unsafe { core::ptr::read_volatile(&PENDING_MASK) };
    PENDING.get_ptr_mut(tid & mask)
}

#[inline(always)]
fn owner(p: *mut SyscallRecord) -> u32 {
    // Volatile: another CPU's thread may take or free the slot between two reads.
    unsafe { core::ptr::read_volatile(&raw const (*p).hdr.tid) }
}

#[inline(always)]
fn any_spilled() -> bool {
    SPILLED
        .get_ptr_mut(0)
        .is_some_and(|c| unsafe { core::ptr::read_volatile(c) } != 0)
}

/// Where to build `tid`'s enter half: its slot when free or its own, else the per-CPU
/// scratch record, to be spilled by [`commit`].
#[inline(always)]
pub fn begin(tid: u32) -> Option<(*mut SyscallRecord, Place)> {
    if let Some(p) = slot(tid) {
        let o = owner(p);
        if o == FREE || o == tid {
            return Some((p, Place::Slot));
        }
    }
    SCRATCH.get_ptr_mut(0).map(|p| (p, Place::Spill))
}

/// The half built at `p` (by `begin`, with `tid` in its header) waits for its exit.
#[inline(always)]
pub fn commit(tid: u32, p: *mut SyscallRecord, place: Place) {
    match place {
        Place::Slot => {
            // Two colliding threads that found the slot free at the same instant both
            // wrote it; the one whose tid is not the last written has lost its half.
            if owner(p) != tid {
                count_lost(LOST_PENDING_FULL);
            }
        }
        Place::Spill => {
            if let Some(c) = SPILLED.get_ptr_mut(0) {
                // Before the insert, so an exit never sees the half but not the flag.
                unsafe { core::ptr::write_volatile(c, 1) };
            }
            if PENDING_SPILL.insert(&tid, unsafe { &*p }, 0).is_err() {
                count_lost(LOST_PENDING_FULL);
            }
        }
    }
}

/// `tid`'s waiting half, if any.
#[inline(always)]
pub fn find(tid: u32) -> Option<(*mut SyscallRecord, Place)> {
    if let Some(p) = slot(tid) {
        if owner(p) == tid {
            return Some((p, Place::Slot));
        }
    }
    if !any_spilled() {
        return None;
    }
    PENDING_SPILL.get_ptr_mut(&tid).map(|p| (p, Place::Spill))
}

/// The exit has used `tid`'s half: free its place.
#[inline(always)]
pub fn release(tid: u32, p: *mut SyscallRecord, place: Place) {
    match place {
        Place::Slot => unsafe { core::ptr::write_volatile(&raw mut (*p).hdr.tid, FREE) },
        Place::Spill => {
            let _ = PENDING_SPILL.remove(&tid);
        }
    }
}

/// A thread is gone: a half it left without an exit frees its place.
#[inline(always)]
pub fn forget(tid: u32) {
    if let Some((p, place)) = find(tid) {
        release(tid, p, place);
    }
}

/// `from`'s waiting half becomes `to`'s (an exec from a non-leader thread takes the
/// leader's tid).
#[inline(always)]
pub fn move_to(from: u32, to: u32) {
    let Some((src, src_place)) = find(from) else {
        return;
    };
    if let Some((dst, dst_place)) = begin(to) {
        unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                dst.cast(),
                core::mem::size_of::<SyscallRecord>() as u32,
                src as *const core::ffi::c_void,
            );
            core::ptr::write_volatile(&raw mut (*dst).hdr.tid, to);
        }
        commit(to, dst, dst_place);
    }
    release(from, src, src_place);
}
