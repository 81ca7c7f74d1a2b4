//! `sched/sched_process_exit`: the last thread of a tracked process is gone.
//!
//! The tracepoint carries no exit status; the status comes from what this process did
//! before (exit_group's code, or a fatal signal generated for it), both kept in its
//! `TRACKED` entry by the syscall and signal probes.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_common::{
    ExitRecord, RecordKind, EXIT_HAS_CODE, EXIT_HAS_SIGNAL, TRACKED_EXIT_GROUP, TRACKED_SIGNALED,
};

use crate::{
    common::{
        exit_group_dead_off, fill_header_as, ids, is_self, mark_followed, may_follow,
        maybe_followed, trace_all,
    },
    maps::{count_lost, EVENTS, THREADS, TRACKED},
    pending,
};

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = ids();
    // Without group_dead (older kernels), the leader thread's exit stands for the
    // process's.
    let off = exit_group_dead_off();
    let group_dead: u8 = if off == 0 {
        (tid == tgid) as u8
    } else {
        unsafe { ctx.read_at::<u8>(off) }.unwrap_or(1)
    };
    // Whether or not its process is still followed: a slot left owned by a gone
    // thread would serve the next thread given its tid a stale half. The last thread
    // of a process whose byte is clear has neither a slot nor a spilled half (both are
    // made only while the byte is set), so every single-threaded exit on the host
    // skips this. Any other thread forgets: it may have counted itself out of the
    // group before the last one, and reach this probe after that one cleared the byte.
    if group_dead == 0 || trace_all() || maybe_followed(tgid) {
        pending::forget(tid);
    }
    // The process's byte goes with it. Without group_dead, "the leader's exit" may be
    // the old leader's, gone in an exec from another thread whose result is still
    // waiting: those kernels keep the byte (a stale set byte only costs a lookup).
    let clears_byte = group_dead != 0 && off != 0;
    // The entry is read once, for whether the process is followed, its status and the
    // header's ppid (it was three lookups). Into plain scalars: an `Option<Tracked>`
    // copy left registers unset on `--all`'s path, which the verifier refused.
    let looked = may_follow(tgid);
    let (found, ppid, tflags, exit_code, last_signal) = match if looked {
        unsafe { TRACKED.get(&tgid) }
    } else {
        None
    } {
        Some(t) => (true, t.ppid, t.flags, t.exit_code, t.last_signal),
        None => (false, 0, 0, 0, 0),
    };
    if is_self(tgid) || (!found && !trace_all()) {
        // A byte set for a process that never made it into TRACKED (a full map, a
        // process user space marked as it exited).
        if clears_byte && maybe_followed(tgid) {
            mark_followed(tgid, false);
        }
        return 0;
    }
    if tid != tgid {
        let _ = THREADS.remove(&tid);
    }
    if group_dead == 0 {
        return 0;
    }
    let (mut flags, mut code, mut signal) = (0u32, 0i32, 0i32);
    if tflags & TRACKED_EXIT_GROUP != 0 {
        flags |= EXIT_HAS_CODE;
        code = exit_code;
    } else if tflags & TRACKED_SIGNALED != 0 {
        flags |= EXIT_HAS_SIGNAL;
        signal = last_signal;
    }
    match EVENTS.reserve::<ExitRecord>(0) {
        Some(mut e) => {
            let r = e.as_mut_ptr();
            fill_header_as(
                unsafe { &raw mut (*r).hdr },
                RecordKind::Exit as u32,
                tgid,
                tid,
                ppid,
            );
            unsafe {
                (*r).status_flags = flags;
                (*r).code = code;
                (*r).signal = signal;
                (*r)._pad = 0;
            }
            e.submit(crate::maps::submit_flags());
        }
        None => count_lost(RecordKind::Exit as u32),
    }
    let _ = TRACKED.remove(&tgid);
    if clears_byte {
        mark_followed(tgid, false);
    }
    0
}
