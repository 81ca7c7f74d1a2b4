//! Exec: the attempt (path, argv, env read at syscall entry, while the caller's memory
//! still exists), and the success (`sched_process_exec`, where a new root is noticed).
//! The attempt's result arrives through the generic syscall-exit probe.
use aya_ebpf::{
    helpers::{bpf_probe_read_kernel_str_bytes, bpf_probe_read_user, generated},
    macros::{map, tracepoint},
    maps::PerCpuArray,
    programs::TracePointContext,
};
use tracer_common::{
    ExecAttemptPacked, ExecAttemptRecord, ExecSuccessRecord, RecordKind, SyscallKind, Tracked,
    ARGS_LEN, COMM_LEN, ENV_LEN, EXEC_ARGS_TRUNC, EXEC_ENV_TRUNC, EXEC_FILENAME_TRUNC,
    EXEC_PACKED_FIXED_LEN, FILENAME_LEN, FLAG_NEW_ROOT, FLAG_READ_FAULT, FLAG_TRUNCATED, MAX_ARGS,
    MAX_ENV, STR_MAX, TRACKED_ROOT,
};

use crate::{
    common::{fill_header_as, followed, ids, is_self, mark_followed, may_follow, trace_all},
    maps::{count_lost, EVENTS, ROOT_COMMS, TRACKED},
    pending,
    probes::syscall::{arg, store_pending, Data},
};

#[tracepoint]
pub fn sys_enter_execve(ctx: TracePointContext) -> u32 {
    exec_attempt(&ctx, 0, SyscallKind::Execve)
}

#[tracepoint]
pub fn sys_enter_execveat(ctx: TracePointContext) -> u32 {
    exec_attempt(&ctx, 1, SyscallKind::Execveat)
}

/// Copy up to `max` NUL-terminated user strings from the pointer array `vec` into
/// `buf` (size `cap`), back to back. Returns (bytes used, strings, truncated, faulted).
#[inline(always)]
fn read_strings<const MAX: usize>(
    vec: *const *const u8,
    buf: *mut u8,
    cap: usize,
) -> (u32, u32, bool, bool) {
    let mut off: usize = 0;
    let mut count: u32 = 0;
    let mut trunc = false;
    let mut fault = false;
    if vec.is_null() {
        return (0, 0, false, false);
    }
    let mut i = 0usize;
    while i < MAX {
        let p: *const u8 = match unsafe { bpf_probe_read_user(vec.wrapping_add(i)) } {
            Ok(p) => p,
            Err(_) => {
                fault = true;
                break;
            }
        };
        if p.is_null() {
            break;
        }
        if off > cap - STR_MAX {
            trunc = true;
            break;
        }
        let n = unsafe {
            generated::bpf_probe_read_user_str(
                buf.wrapping_add(off).cast(),
                STR_MAX as u32,
                p.cast(),
            )
        };
        if n <= 0 {
            fault = true;
            break;
        }
        let mut n = n as usize;
        if n > STR_MAX {
            n = STR_MAX;
        }
        if n == STR_MAX {
            // The helper stops at STR_MAX-1 bytes + NUL: the string may be longer.
            trunc = true;
        }
        off += n;
        count += 1;
        i += 1;
    }
    if i == MAX {
        // Room ran out before the array's NULL: say so if more strings follow.
        if let Ok(p) = unsafe { bpf_probe_read_user::<*const u8>(vec.wrapping_add(MAX)) } {
            if !p.is_null() {
                trunc = true;
            }
        }
    }
    (off as u32, count, trunc, fault)
}

/// Where an exec attempt's argv and env are read (its `args` and `env`; the rest is
/// unused), off the 512-byte stack, before they are packed behind the file name.
#[map]
static EXEC_STRINGS: PerCpuArray<ExecAttemptRecord> = PerCpuArray::with_max_entries(1, 0);

/// The exec attempt as sent: only its used bytes go to the ring (see
/// [`ExecAttemptPacked`]). Both maps are per CPU: a program runs to its end on one.
#[map]
static EXEC_OUT: PerCpuArray<ExecAttemptPacked> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn exec_attempt(ctx: &TracePointContext, is_at: u32, kind: SyscallKind) -> u32 {
    let (tgid, tid) = ids();
    let Some(f) = followed(tgid) else {
        return 0;
    };
    // execveat shifts the arguments by one (dirfd first).
    let base = is_at as usize;
    let filename = arg(ctx, base) as *const u8;
    let argv = arg(ctx, base + 1) as *const *const u8;
    let envp = arg(ctx, base + 2) as *const *const u8;
    store_pending(f, kind, [arg(ctx, 0), 0, 0, 0], Data::None);

    let (Some(r), Some(s)) = (EXEC_OUT.get_ptr_mut(0), EXEC_STRINGS.get_ptr_mut(0)) else {
        return 0;
    };
    fill_header_as(
        unsafe { &raw mut (*r).hdr },
        RecordKind::ExecAttemptPacked as u32,
        tgid,
        tid,
        f.ppid,
    );
    // What each step found goes to the record at once, not into a register carried to
    // the next step: the verifier then sees the same state at the start of each string
    // loop whatever the step before found, and checks each loop once, not once per
    // outcome of the step before (that product took half a second to verify).
    unsafe {
        (*r).is_execveat = is_at;
        (*r).trunc = 0;
        (*r)._pad = 0;
        (*r).hdr.flags = 0;
        // The name goes where it is sent from; argv and env are read whole into the
        // scratch record, then moved up behind it.
        let data = (&raw mut (*r).data).cast::<u8>();
        let n =
            generated::bpf_probe_read_user_str(data.cast(), FILENAME_LEN as u32, filename.cast());
        if n < 0 {
            core::ptr::write_volatile(&raw mut (*r).filename_len, 0);
            mark(&raw mut (*r).hdr.flags, FLAG_READ_FAULT);
        } else {
            core::ptr::write_volatile(&raw mut (*r).filename_len, n as u32);
            if n as usize >= FILENAME_LEN {
                mark(&raw mut (*r).trunc, EXEC_FILENAME_TRUNC);
            }
        }
        let (alen, argc, at, af) =
            read_strings::<MAX_ARGS>(argv, (&raw mut (*s).args).cast::<u8>(), ARGS_LEN);
        core::ptr::write_volatile(&raw mut (*r).args_len, alen);
        core::ptr::write_volatile(&raw mut (*r).argc, argc);
        if at {
            mark(&raw mut (*r).trunc, EXEC_ARGS_TRUNC);
        }
        if af {
            mark(&raw mut (*r).hdr.flags, FLAG_READ_FAULT);
        }
        let (elen, envc, et, ef) =
            read_strings::<MAX_ENV>(envp, (&raw mut (*s).env).cast::<u8>(), ENV_LEN);
        core::ptr::write_volatile(&raw mut (*r).env_len, elen);
        core::ptr::write_volatile(&raw mut (*r).envc, envc);
        if et {
            mark(&raw mut (*r).trunc, EXEC_ENV_TRUNC);
        }
        if ef {
            mark(&raw mut (*r).hdr.flags, FLAG_READ_FAULT);
        }
        if core::ptr::read_volatile(&raw const (*r).trunc) != 0 {
            mark(&raw mut (*r).hdr.flags, FLAG_TRUNCATED);
            crate::anomaly::truncated("execve filename/argv/env", tgid);
        }
        if core::ptr::read_volatile(&raw const (*r).hdr.flags) & FLAG_READ_FAULT != 0 {
            crate::anomaly::read_fault("execve filename/argv/env", tgid);
        }
        // Each length is read back and bounded where it is used: the verifier then
        // knows every copy and the record sent stay inside their maps.
        let flen = bounded(&raw const (*r).filename_len, FILENAME_LEN);
        let alen = bounded(&raw const (*r).args_len, ARGS_LEN);
        let elen = bounded(&raw const (*r).env_len, ENV_LEN);
        generated::bpf_probe_read_kernel(
            data.wrapping_add(flen).cast(),
            alen as u32,
            (&raw const (*s).args).cast(),
        );
        generated::bpf_probe_read_kernel(
            data.wrapping_add(flen + alen).cast(),
            elen as u32,
            (&raw const (*s).env).cast(),
        );
        let sent =
            core::slice::from_raw_parts(r.cast::<u8>(), EXEC_PACKED_FIXED_LEN + flen + alen + elen);
        if EVENTS
            .output::<[u8]>(sent, crate::maps::submit_flags())
            .is_err()
        {
            // Counted as an exec attempt: the lost slots past the kinds are taken.
            count_lost(RecordKind::ExecAttempt as u32);
        }
    }
    0
}

/// A length the program wrote into a record, no larger than `max`.
#[inline(always)]
unsafe fn bounded(field: *const u32, max: usize) -> usize {
    let v = unsafe { core::ptr::read_volatile(field) } as usize;
    if v > max {
        max
    } else {
        v
    }
}

const OFF_FILENAME_LOC: usize = 8;
const OFF_OLD_PID: usize = 16;

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = ids();
    if is_self(tgid) {
        return 0;
    }
    // An exec from a non-leader thread: the thread became the leader, so its pending
    // exec result moves to the new tid.
    let old_tid = unsafe { ctx.read_at::<i32>(OFF_OLD_PID) }.unwrap_or(0) as u32;
    if old_tid != 0 && old_tid != tid {
        pending::move_to(old_tid, tid);
    }
    let comm: [u8; COMM_LEN] = aya_ebpf::helpers::bpf_get_current_comm().unwrap_or([0u8; 16]);
    let is_root_comm = unsafe { ROOT_COMMS.get(&comm) }.is_some();
    let mut hflags = 0u32;
    if is_root_comm {
        // Before the match: an entry can be there with its byte clear (user space put
        // it in as the process it was for died and its pid was given to this one).
        mark_followed(tgid, true);
        match TRACKED.get_ptr_mut(&tgid) {
            Some(t) => unsafe { (*t).flags |= TRACKED_ROOT },
            None => {
                let t = Tracked {
                    ppid: 0,
                    flags: TRACKED_ROOT,
                    exit_code: 0,
                    last_signal: 0,
                    stat_misses: 0,
                };
                if TRACKED.insert(&tgid, &t, 0).is_err() {
                    count_lost(tracer_common::LOST_TRACK_FULL);
                    return 0;
                }
            }
        }
        hflags |= FLAG_NEW_ROOT;
    } else if !may_follow(tgid) {
        // Every exec on the host asks: the byte answers without a lookup.
        return 0;
    }
    // One lookup: a new program's PATH searches are kept again, and the ppid is the
    // header's.
    let ppid = match TRACKED.get_ptr_mut(&tgid) {
        Some(t) => unsafe {
            (*t).stat_misses = 0;
            (*t).ppid
        },
        // `--all` follows processes it has no entry for.
        None if trace_all() => 0,
        None => return 0,
    };
    let Some(mut e) = EVENTS.reserve::<ExecSuccessRecord>(0) else {
        count_lost(RecordKind::ExecSuccess as u32);
        return 0;
    };
    let r = e.as_mut_ptr();
    fill_header_as(
        unsafe { &raw mut (*r).hdr },
        RecordKind::ExecSuccess as u32,
        tgid,
        tid,
        ppid,
    );
    unsafe {
        (*r).old_tid = ctx.read_at::<i32>(OFF_OLD_PID).unwrap_or(0) as u32;
        // __data_loc: low 16 bits offset from the record start, high 16 bits length.
        let loc = ctx.read_at::<u32>(OFF_FILENAME_LOC).unwrap_or(0);
        let off = (loc & 0xffff) as usize;
        let buf = &mut *(&raw mut (*r).filename);
        match bpf_probe_read_kernel_str_bytes((ctx.ctx_ptr() as *const u8).wrapping_add(off), buf) {
            Ok(s) => {
                let len = s.len();
                (*r).filename_len = len as u32;
                if len >= FILENAME_LEN - 1 {
                    hflags |= FLAG_TRUNCATED;
                }
            }
            Err(_) => {
                (*r).filename_len = 0;
                hflags |= FLAG_READ_FAULT;
            }
        }
        (*r).hdr.flags = hflags;
    }
    // User space reads a new scheduler's files from /proc when this record arrives,
    // and a short-lived one (anacron) may be gone by the next timed drain: wake the
    // reader now. Rare, so the wakeup costs nothing worth counting.
    let flags = if hflags & FLAG_NEW_ROOT != 0 {
        aya_ebpf::bindings::BPF_RB_FORCE_WAKEUP as u64
    } else {
        crate::maps::submit_flags()
    };
    e.submit(flags);
    0
}

/// Set `bit` in a field of a record being built (through memory: see `exec_attempt`).
#[inline(always)]
unsafe fn mark(field: *mut u32, bit: u32) {
    unsafe { core::ptr::write_volatile(field, core::ptr::read_volatile(field) | bit) };
}

trait CtxPtr {
    fn ctx_ptr(&self) -> *mut core::ffi::c_void;
}
impl CtxPtr for TracePointContext {
    fn ctx_ptr(&self) -> *mut core::ffi::c_void {
        use aya_ebpf::EbpfContext;
        self.as_ptr()
    }
}
