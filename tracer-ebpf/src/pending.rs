//! Syscall enter halves waiting for their exit, one per thread.
//!
//! A thread's half lives in the array slot `tid % slots` when the thread owns that
//! slot, built in place. It was a hash map: an insert and a delete per followed call,
//! with the record copied in from a scratch slot, were about a fifth of the kernel time
//! of a followed open. An array slot is an offset.
//!
//! Only the owner writes a slot, so two CPUs never write one at once. A slot is given
//! to a thread when its parent forks it, and only if no live thread owns it; it is given
//! back when the thread exits. (A "take it if free" at each call would let two threads
//! whose tids share a slot both take it in the same instant: this target has no
//! compare-and-swap before kernel 5.12's BPF atomics.) A thread without a slot (one
//! that existed before the tracer attached, a root, a thread whose tid shares a slot
//! with a live owner) keeps its halves in the spill hash map, as all threads once did.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
};
use tracer_common::{SyscallRecord, LOST_PENDING_FULL};

use crate::maps::count_lost;

/// A power of two; 8192 records of 376 bytes, about 3 MiB. The loader may shrink the
/// map (`TRACER_PENDING_SLOTS`) and sets `PENDING_MASK` to match, so a test can make
/// every pair of threads share one.
const PENDING_SLOTS: u32 = 8192;

#[unsafe(no_mangle)]
static PENDING_MASK: u32 = PENDING_SLOTS - 1;

#[repr(C)]
pub struct Slot {
    /// The thread the slot belongs to; 0 while it belongs to none.
    owner: u32,
    _pad: u32,
    /// The owner's waiting half while `rec.hdr.tid` is the owner's tid; free when 0
    /// (the idle task makes no syscalls).
    rec: SyscallRecord,
}

#[map]
static PENDING: Array<Slot> = Array::with_max_entries(PENDING_SLOTS, 0);

#[map]
static PENDING_SPILL: HashMap<u32, SyscallRecord> = HashMap::with_max_entries(8192, 0);

/// Where a half bound for the spill map is built, off the 512-byte stack.
#[map]
static SCRATCH: PerCpuArray<SyscallRecord> = PerCpuArray::with_max_entries(1, 0);

#[derive(Clone, Copy, PartialEq)]
pub enum Place {
    Slot,
    Spill,
}

#[inline(always)]
fn slot(tid: u32) -> Option<*mut Slot> {
    // Volatile so the mask patched in by the loader is read, not the one compiled in.
    let mask = unsafe { core::ptr::read_volatile(&PENDING_MASK) };
    PENDING.get_ptr_mut(tid & mask)
}

#[inline(always)]
fn owner(s: *mut Slot) -> u32 {
    // Volatile: a fork or an exit on another CPU may change it between two reads.
    unsafe { core::ptr::read_volatile(&raw const (*s).owner) }
}

/// A new thread (`tid`, just forked by a followed parent, not yet running) gets its
/// slot if no live thread owns it.
#[inline(always)]
pub fn assign(tid: u32) {
    if let Some(s) = slot(tid) {
        if owner(s) == 0 {
            unsafe {
                core::ptr::write_volatile(&raw mut (*s).rec.hdr.tid, 0);
                core::ptr::write_volatile(&raw mut (*s).owner, tid);
            }
        }
    }
}

/// Where to build `tid`'s enter half: its own slot, else the per-CPU scratch record,
/// to be spilled by [`commit`].
#[inline(always)]
pub fn begin(tid: u32) -> Option<(*mut SyscallRecord, Place)> {
    if let Some(s) = slot(tid) {
        if owner(s) == tid {
            return Some((unsafe { &raw mut (*s).rec }, Place::Slot));
        }
    }
    SCRATCH.get_ptr_mut(0).map(|p| (p, Place::Spill))
}

/// The half built at `p` by `begin` (with `tid` in its header) waits for its exit.
#[inline(always)]
pub fn commit(tid: u32, p: *mut SyscallRecord, place: Place) {
    if place == Place::Spill && PENDING_SPILL.insert(&tid, unsafe { &*p }, 0).is_err() {
        count_lost(LOST_PENDING_FULL);
    }
}

/// `tid`'s waiting half, if any. A thread that owns its slot never has one in the
/// spill map (see [`move_to`]), so it is not looked for there: every exit of a call
/// that left no half (each `fstat`, each limit query: 8,000 a run of the cost bench)
/// paid a hash lookup for nothing.
#[inline(always)]
pub fn find(tid: u32) -> Option<(*mut SyscallRecord, Place)> {
    if let Some(s) = slot(tid) {
        if owner(s) == tid {
            let mine = unsafe { core::ptr::read_volatile(&raw const (*s).rec.hdr.tid) } == tid;
            return mine.then(|| (unsafe { &raw mut (*s).rec }, Place::Slot));
        }
    }
    PENDING_SPILL.get_ptr_mut(&tid).map(|p| (p, Place::Spill))
}

/// The exit has used `tid`'s half: free its place.
#[inline(always)]
pub fn release(tid: u32, p: *mut SyscallRecord, place: Place) {
    match place {
        Place::Slot => unsafe { core::ptr::write_volatile(&raw mut (*p).hdr.tid, 0) },
        Place::Spill => {
            let _ = PENDING_SPILL.remove(&tid);
        }
    }
}

/// A thread is gone: its slot is given back, and a half it left without an exit is
/// dropped.
#[inline(always)]
pub fn forget(tid: u32) {
    if let Some(s) = slot(tid) {
        if owner(s) == tid {
            unsafe {
                core::ptr::write_volatile(&raw mut (*s).rec.hdr.tid, 0);
                core::ptr::write_volatile(&raw mut (*s).owner, 0);
            }
        }
    }
    // A lookup first: it takes no lock, and most threads never spilled.
    if PENDING_SPILL.get_ptr(&tid).is_some() {
        let _ = PENDING_SPILL.remove(&tid);
    }
}

/// `from`'s waiting half becomes `to`'s (an exec from a non-leader thread takes the
/// leader's tid). It goes to the spill map: `to`'s slot belonged to the old leader.
#[inline(always)]
pub fn move_to(from: u32, to: u32) {
    let Some((src, _)) = find(from) else {
        // Nothing to move, but no thread has the tid `from` any more either.
        forget(from);
        return;
    };
    // The old leader gave its slot back as it exited (de_thread waits for its exit, so
    // its `forget` has run by now). Should `to` still own the slot all the same, it
    // gives it up, so that no owner ever has a spilled half for `find` to miss.
    if let Some(s) = slot(to) {
        if owner(s) == to {
            unsafe {
                core::ptr::write_volatile(&raw mut (*s).rec.hdr.tid, 0);
                core::ptr::write_volatile(&raw mut (*s).owner, 0);
            }
        }
    }
    unsafe { core::ptr::write_volatile(&raw mut (*src).hdr.tid, to) };
    if PENDING_SPILL.insert(&to, unsafe { &*src }, 0).is_err() {
        count_lost(LOST_PENDING_FULL);
    }
    // No thread has the tid `from` any more: its slot and its spilled half go.
    forget(from);
}
