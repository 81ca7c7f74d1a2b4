//! `signal/signal_generate`: a signal aimed at a tracked process.
use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use tracer_common::{RecordKind, SignalRecord, TRACKED_SIGNALED};

use crate::{
    common::{fill_header, ids},
    maps::{count_lost, EVENTS, THREADS, TRACKED},
};

const OFF_SIG: usize = 8;
const OFF_CODE: usize = 16;
const OFF_PID: usize = 36;
const OFF_RESULT: usize = 44;
const SIGCHLD: i32 = 17;

/// Signals whose default action does not end the process.
#[inline(always)]
fn default_is_fatal(sig: i32) -> bool {
    !matches!(sig, 17..=23 | 28)
}

#[tracepoint]
pub fn signal_generate(ctx: TracePointContext) -> u32 {
    let sig = unsafe { ctx.read_at::<i32>(OFF_SIG) }.unwrap_or(0);
    // SIGCHLD reaches every parent for every child: noise, and the exit record covers it.
    if sig == SIGCHLD || sig == 0 {
        return 0;
    }
    let tid = unsafe { ctx.read_at::<i32>(OFF_PID) }.unwrap_or(0) as u32;
    // The target is a thread; its process is what we follow.
    let target = match unsafe { THREADS.get(&tid) } {
        Some(tgid) => *tgid,
        None => tid,
    };
    let Some(t) = TRACKED.get_ptr_mut(&target) else {
        return 0;
    };
    let result = unsafe { ctx.read_at::<i32>(OFF_RESULT) }.unwrap_or(-1);
    if result == 0 && default_is_fatal(sig) {
        unsafe {
            (*t).flags |= TRACKED_SIGNALED;
            (*t).last_signal = sig;
        }
    }
    let (tgid, tid) = ids();
    match EVENTS.reserve::<SignalRecord>(0) {
        Some(mut e) => {
            let r = e.as_mut_ptr();
            fill_header(
                unsafe { &raw mut (*r).hdr },
                RecordKind::Signal as u32,
                tgid,
                tid,
            );
            unsafe {
                (*r).target_pid = target;
                (*r).sig = sig;
                (*r).code = ctx.read_at::<i32>(OFF_CODE).unwrap_or(0);
                (*r).result = result;
            }
            e.submit(crate::maps::submit_flags());
        }
        None => count_lost(RecordKind::Signal as u32),
    }
    0
}
