//! `sched/sched_process_fork`: a tracked process made a new process; track the child.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_common::{ForkRecord, RecordKind, SyscallKind, Tracked};

use crate::{
    common::{fill_header_as, followed, fork_child_pid_off, ids, is_self, mark_followed},
    maps::{count_lost, EVENTS, THREADS, TRACKED},
    pending,
};

const CLONE_THREAD: u64 = 0x0001_0000;

#[tracepoint]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = ids();
    // The parent's entry is read once: whether it is followed, and its ppid for the
    // record's header.
    let Some(parent) = followed(tgid) else {
        return 0;
    };
    // The tracepoint fires for new threads too; the clone flags saved at syscall
    // entry tell them apart. fork()/vfork() leave no entry: those are processes.
    let mut clone_flags = 0u64;
    if let Some((p, _)) = pending::find(tid) {
        unsafe {
            if (*p).syscall == SyscallKind::Clone as u32 {
                clone_flags = (*p).args[0];
            }
        }
    }
    let child: u32 = match unsafe { ctx.read_at::<i32>(fork_child_pid_off()) } {
        Ok(v) => v as u32,
        Err(_) => return 0,
    };
    if is_self(child) {
        return 0;
    }
    // Before the child first runs: no syscall of its own can race the assignment.
    pending::assign(child);
    if clone_flags & CLONE_THREAD != 0 {
        let _ = THREADS.insert(&child, &tgid, 0);
        return 0;
    }
    let t = Tracked {
        ppid: tgid,
        flags: 0,
        exit_code: 0,
        last_signal: 0,
        stat_misses: 0,
    };
    mark_followed(child, true);
    if TRACKED.insert(&child, &t, 0).is_err() {
        count_lost(tracer_common::LOST_TRACK_FULL);
    }
    match EVENTS.reserve::<ForkRecord>(0) {
        Some(mut e) => {
            let r = e.as_mut_ptr();
            fill_header_as(
                unsafe { &raw mut (*r).hdr },
                RecordKind::Fork as u32,
                tgid,
                tid,
                parent.ppid,
            );
            unsafe {
                (*r).child_pid = child;
                (*r)._pad = 0;
                (*r).clone_flags = clone_flags;
            }
            e.submit(crate::maps::submit_flags());
        }
        None => count_lost(RecordKind::Fork as u32),
    }
    0
}
