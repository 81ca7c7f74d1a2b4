//! What every probe needs: who is running, whether we follow it, and the header.
use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid, bpf_ktime_get_ns,
};
use tracer_common::{Header, FOLLOWED_GROUP};

use crate::maps::{FOLLOWED, TRACKED};

/// Set by the loader: the tracer's own tgid, never traced.
#[unsafe(no_mangle)]
static SELF_TGID: u32 = 0;
/// Set by the loader for `--all`: every process is followed.
#[unsafe(no_mangle)]
static TRACE_ALL: u32 = 0;

/// Tracepoint field offsets, read by the loader from this kernel's format files
/// (layouts changed across kernel versions). The defaults are 6.x's.
#[unsafe(no_mangle)]
static FORK_CHILD_PID_OFF: u32 = 20;
/// 0 when this kernel's sched_process_exit has no group_dead field.
#[unsafe(no_mangle)]
static EXIT_GROUP_DEAD_OFF: u32 = 32;

pub fn fork_child_pid_off() -> usize {
    global(&FORK_CHILD_PID_OFF) as usize
}

pub fn exit_group_dead_off() -> usize {
    global(&EXIT_GROUP_DEAD_OFF) as usize
}

#[inline(always)]
fn global(v: &u32) -> u32 {
    // Volatile so the value patched in by the loader is read, not the 0 compiled in.
    unsafe { core::ptr::read_volatile(v) }
}

/// (tgid, tid) of the current task.
#[inline(always)]
pub fn ids() -> (u32, u32) {
    let v = bpf_get_current_pid_tgid();
    ((v >> 32) as u32, v as u32)
}

/// What a syscall probe needs of a followed process's `TRACKED` entry, read once per
/// call: the entry was looked up to decide, again for the header's ppid, and a third
/// time for a stat's budget.
#[derive(Clone, Copy)]
pub struct Followed {
    pub ppid: u32,
    pub stat_misses: u32,
}

/// False when `tgid` is certainly not followed (the tracer itself, or a clear byte
/// without `--all`); otherwise its `TRACKED` entry decides, or `--all` does when it
/// has none.
#[inline(always)]
pub fn may_follow(tgid: u32) -> bool {
    !is_self(tgid) && (trace_all() || maybe_followed(tgid))
}

/// `Some` when `tgid` is followed, with its entry's fields (zero when `--all` follows
/// a process that has no entry).
#[inline(always)]
pub fn followed(tgid: u32) -> Option<Followed> {
    if !may_follow(tgid) {
        return None;
    }
    match unsafe { TRACKED.get(&tgid) } {
        Some(t) => Some(Followed {
            ppid: t.ppid,
            stat_misses: t.stat_misses,
        }),
        None if trace_all() => Some(Followed {
            ppid: 0,
            stat_misses: 0,
        }),
        None => None,
    }
}

/// `tgid`'s byte in `FOLLOWED`, or None past the table's end.
#[inline(always)]
fn followed_byte(tgid: u32) -> Option<*mut u8> {
    FOLLOWED
        .get_ptr_mut(tgid / FOLLOWED_GROUP as u32)
        .map(|g| unsafe { g.cast::<u8>().add((tgid % FOLLOWED_GROUP as u32) as usize) })
}

/// False when `tgid` is certainly not followed (its byte in `FOLLOWED` is clear).
#[inline(always)]
pub fn maybe_followed(tgid: u32) -> bool {
    followed_byte(tgid).is_none_or(|b| unsafe { core::ptr::read_volatile(b) } != 0)
}

/// Set `tgid`'s byte before it goes into `TRACKED`; clear it once it has left.
#[inline(always)]
pub fn mark_followed(tgid: u32, on: bool) {
    if let Some(b) = followed_byte(tgid) {
        unsafe { core::ptr::write_volatile(b, on as u8) };
    }
}

#[inline(always)]
pub fn trace_all() -> bool {
    global(&TRACE_ALL) != 0
}

#[inline(always)]
pub fn is_self(tgid: u32) -> bool {
    tgid == global(&SELF_TGID)
}

/// Fill a header in place (it may live in the ring buffer or a scratch map).
#[inline(always)]
pub fn fill_header(h: *mut Header, kind: u32, tgid: u32, tid: u32) {
    let ppid = unsafe { TRACKED.get(&tgid) }.map(|t| t.ppid).unwrap_or(0);
    fill_header_as(h, kind, tgid, tid, ppid);
}

/// [`fill_header`] with the ppid already read from `TRACKED` (see [`followed`]).
#[inline(always)]
pub fn fill_header_as(h: *mut Header, kind: u32, tgid: u32, tid: u32, ppid: u32) {
    let ug = bpf_get_current_uid_gid();
    let comm = bpf_get_current_comm().unwrap_or([0u8; 16]);
    unsafe {
        (*h).kind = kind;
        (*h).flags = 0;
        (*h).ts_ns = bpf_ktime_get_ns();
        (*h).pid = tgid;
        (*h).tid = tid;
        (*h).ppid = ppid;
        (*h).uid = ug as u32;
        (*h).gid = (ug >> 32) as u32;
        (*h)._pad = 0;
        (*h).comm = comm;
    }
}
