//! Syscalls on the job path: arguments saved at `sys_enter_*` (per thread, in
//! `pending`), joined with the result at `sys_exit_*` into one `SyscallRecord`.
//! One exit program serves every syscall. Another, on the exits of the other syscalls
//! that make a descriptor, reports their EMFILE/ENFILE.
use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_probe_read_user, generated},
    macros::tracepoint,
    programs::TracePointContext,
};
use tracer_common::{
    RecordKind, SyscallKind, SyscallRecord, DATA_LEN, FLAG_READ_FAULT, FLAG_TRUNCATED,
    STAT_MISSES_KEPT, SYSCALL_FIXED_LEN, TRACKED_EXIT_GROUP,
};

use crate::{
    common::{fill_header_as, followed, ids, may_follow, maybe_followed, trace_all, Followed},
    maps::{count_lost, EVENTS, ROOT_COMMS, TRACKED},
    pending,
};

/// Syscall tracepoints lay their arguments out as 8-byte slots from offset 16.
#[inline(always)]
pub fn arg(ctx: &TracePointContext, i: usize) -> u64 {
    unsafe { ctx.read_at::<u64>(16 + 8 * i) }.unwrap_or(0)
}

/// What user memory to copy into `data` at entry.
pub enum Data {
    None,
    Str(u64),
    Bytes(u64, u64),
    /// A path read at the exit, and only there (the exit reads it only for a call
    /// that failed: most stats succeed and their path is never needed).
    StrAtExit(u64),
}

/// Build the enter half where `pending` keeps it until the exit, for a process
/// [`followed`] said is followed.
#[inline(always)]
pub fn store_pending(f: Followed, kind: SyscallKind, args: [u64; 4], data: Data) {
    let (tgid, tid) = ids();
    let Some((r, place)) = pending::begin(tid) else {
        return;
    };
    fill_header_as(
        unsafe { &raw mut (*r).hdr },
        RecordKind::Syscall as u32,
        tgid,
        tid,
        f.ppid,
    );
    let mut flags = 0u32;
    let mut len = 0u32;
    // A path whose page is not resident yet cannot be read here; the syscall itself
    // will fault it in, so the exit probe reads it again from this pointer.
    let mut retry_ptr = 0u64;
    unsafe {
        let buf = (&raw mut (*r).data).cast::<u8>();
        match data {
            Data::None => {}
            Data::Str(p) => {
                let n = generated::bpf_probe_read_user_str(
                    buf.cast(),
                    DATA_LEN as u32,
                    p as *const core::ffi::c_void,
                );
                if n <= 0 {
                    flags |= FLAG_READ_FAULT;
                    retry_ptr = p;
                } else {
                    // Length without the NUL; a full buffer means the path was cut.
                    len = (n - 1) as u32;
                    if n as usize >= DATA_LEN {
                        flags |= FLAG_TRUNCATED;
                    }
                }
            }
            Data::StrAtExit(p) => {
                flags |= FLAG_READ_FAULT;
                retry_ptr = p;
            }
            Data::Bytes(p, want) => {
                let mut n = want;
                if n > DATA_LEN as u64 {
                    n = DATA_LEN as u64;
                    flags |= FLAG_TRUNCATED;
                }
                if n > 0 {
                    let rc = generated::bpf_probe_read_user(
                        buf.cast(),
                        n as u32,
                        p as *const core::ffi::c_void,
                    );
                    if rc < 0 {
                        flags |= FLAG_READ_FAULT;
                    } else {
                        len = n as u32;
                    }
                }
            }
        }
        (*r).hdr.flags = flags;
        (*r).syscall = kind as u32;
        (*r).data_len = len;
        (*r).ret = 0;
        (*r).enter_ns = (*r).hdr.ts_ns;
        (*r).args = args;
        if retry_ptr != 0 {
            (*r).args[3] = retry_ptr;
        }
    }
    pending::commit(tid, r, place);
}

macro_rules! enter_probe {
    ($name:ident, $kind:expr, |$ctx:ident| $args:expr, $data:expr) => {
        #[tracepoint]
        pub fn $name($ctx: TracePointContext) -> u32 {
            let (tgid, _) = ids();
            let Some(f) = followed(tgid) else {
                return 0;
            };
            let ctx = &$ctx;
            let _ = ctx;
            store_pending(f, $kind, $args, $data);
            0
        }
    };
}

const AT_FDCWD: u64 = -100i64 as u64;

enter_probe!(
    sys_enter_open,
    SyscallKind::Open,
    |c| [AT_FDCWD, arg(&c, 1), arg(&c, 2), 0],
    Data::Str(arg(&c, 0))
);
enter_probe!(
    sys_enter_openat,
    SyscallKind::Openat,
    |c| [arg(&c, 0), arg(&c, 2), arg(&c, 3), 0],
    Data::Str(arg(&c, 1))
);
enter_probe!(
    sys_enter_creat,
    SyscallKind::Creat,
    |c| [AT_FDCWD, 0o1101, arg(&c, 1), 0],
    Data::Str(arg(&c, 0))
);
enter_probe!(
    sys_enter_socket,
    SyscallKind::Socket,
    |c| [arg(&c, 0), arg(&c, 1), arg(&c, 2), 0],
    Data::None
);
enter_probe!(
    sys_enter_connect,
    SyscallKind::Connect,
    |c| [arg(&c, 0), arg(&c, 2), 0, 0],
    Data::Bytes(arg(&c, 1), arg(&c, 2))
);
enter_probe!(
    sys_enter_getsockopt,
    SyscallKind::Getsockopt,
    |c| [arg(&c, 0), arg(&c, 1), arg(&c, 2), arg(&c, 3)],
    Data::None
);
enter_probe!(
    sys_enter_chdir,
    SyscallKind::Chdir,
    |c| [0, 0, 0, 0],
    Data::Str(arg(&c, 0))
);
enter_probe!(
    sys_enter_fchdir,
    SyscallKind::Fchdir,
    |c| [arg(&c, 0), 0, 0, 0],
    Data::None
);
enter_probe!(
    sys_enter_setuid,
    SyscallKind::Setuid,
    |c| [arg(&c, 0), 0, 0, 0],
    Data::None
);
enter_probe!(
    sys_enter_setgid,
    SyscallKind::Setgid,
    |c| [arg(&c, 0), 0, 0, 0],
    Data::None
);
enter_probe!(
    sys_enter_setreuid,
    SyscallKind::Setreuid,
    |c| [arg(&c, 0), arg(&c, 1), 0, 0],
    Data::None
);
enter_probe!(
    sys_enter_setregid,
    SyscallKind::Setregid,
    |c| [arg(&c, 0), arg(&c, 1), 0, 0],
    Data::None
);
enter_probe!(
    sys_enter_setresuid,
    SyscallKind::Setresuid,
    |c| [arg(&c, 0), arg(&c, 1), arg(&c, 2), 0],
    Data::None
);
enter_probe!(
    sys_enter_setresgid,
    SyscallKind::Setresgid,
    |c| [arg(&c, 0), arg(&c, 1), arg(&c, 2), 0],
    Data::None
);
enter_probe!(
    sys_enter_setrlimit,
    SyscallKind::Setrlimit,
    |c| [arg(&c, 0), 0, 0, 0],
    Data::Bytes(arg(&c, 1), if arg(&c, 1) != 0 { 16 } else { 0 })
);
/// Only a call that sets a limit: glibc's `getrlimit` is a `prlimit64` with no new
/// limit (every `cat` of the cost bench's workload made one as it started), and a
/// query changes nothing the rules look at (the report counted it as routine).
#[tracepoint]
pub fn sys_enter_prlimit64(ctx: TracePointContext) -> u32 {
    let new_limit = arg(&ctx, 2);
    if new_limit == 0 {
        return 0;
    }
    let (tgid, _) = ids();
    let Some(f) = followed(tgid) else {
        return 0;
    };
    store_pending(
        f,
        SyscallKind::Prlimit64,
        [arg(&ctx, 0), arg(&ctx, 1), 0, 0],
        Data::Bytes(new_limit, 16),
    );
    0
}
// wait4 keeps the status pointer in args[3] until the exit probe reads the status.
enter_probe!(
    sys_enter_wait4,
    SyscallKind::Wait4,
    |c| [arg(&c, 0), arg(&c, 2), 0, arg(&c, 1)],
    Data::None
);
enter_probe!(
    sys_enter_clone,
    SyscallKind::Clone,
    |c| [arg(&c, 0), 0, 0, 0],
    Data::None
);

/// `args[2]` of a job's stat: keep it only if it failed (a PATH search miss).
const STAT_FAILURES_ONLY: u64 = 1;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_EMPTY_PATH: u64 = 0x1000;

/// The scheduler's stats but `fstat(fd)` (cron looks for its MTA this way), and a job's
/// failed `stat(path)` calls: how bash and dash search PATH, so a command missing from
/// PATH inside a script leaves a trace. A job's successful stats would flood (a tree
/// walk makes millions); `lstat` and dirfd-relative calls are never a PATH search.
#[inline(always)]
fn stat_enter(ctx: &TracePointContext, flags_arg: usize) -> u32 {
    let (dirfd, flags) = (arg(ctx, 0), arg(ctx, flags_arg));
    // `fstat(fd)` is `newfstatat(fd, "", AT_EMPTY_PATH)`: no path, nothing a rule reads,
    // and every program makes several (7,000 of the cost bench's 7,040 stats a run). It
    // is left before the process is even looked up, the scheduler's own included.
    if flags & AT_EMPTY_PATH != 0 && dirfd as u32 != AT_FDCWD as u32 {
        return 0;
    }
    let (tgid, _) = ids();
    let Some(f) = followed(tgid) else {
        return 0;
    };
    let comm = aya_ebpf::helpers::bpf_get_current_comm().unwrap_or([0u8; 16]);
    let keep = if unsafe { ROOT_COMMS.get(&comm) }.is_some() {
        0
    } else if dirfd as u32 == AT_FDCWD as u32 && flags & (AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) == 0
    {
        // Past its budget of misses a program's stats are not even set up.
        if f.stat_misses >= STAT_MISSES_KEPT {
            return 0;
        }
        STAT_FAILURES_ONLY
    } else {
        return 0;
    };
    // Only failures are sent (below its budget of misses): the path waits for the
    // exit to say it failed.
    let path = if keep == STAT_FAILURES_ONLY {
        Data::StrAtExit(arg(ctx, 1))
    } else {
        Data::Str(arg(ctx, 1))
    };
    store_pending(f, SyscallKind::Stat, [dirfd, flags, keep, 0], path);
    0
}

#[tracepoint]
pub fn sys_enter_newfstatat(ctx: TracePointContext) -> u32 {
    stat_enter(&ctx, 3)
}

#[tracepoint]
pub fn sys_enter_statx(ctx: TracePointContext) -> u32 {
    stat_enter(&ctx, 2)
}

#[tracepoint]
pub fn sys_enter_openat2(ctx: TracePointContext) -> u32 {
    let (tgid, _) = ids();
    let Some(f) = followed(tgid) else {
        return 0;
    };
    // struct open_how { u64 flags; u64 mode; u64 resolve; }
    let how = arg(&ctx, 2) as *const u64;
    let flags = unsafe { bpf_probe_read_user(how) }.unwrap_or(0);
    let mode = unsafe { bpf_probe_read_user(how.wrapping_add(1)) }.unwrap_or(0);
    store_pending(
        f,
        SyscallKind::Openat2,
        [arg(&ctx, 0), flags, mode, 0],
        Data::Str(arg(&ctx, 1)),
    );
    0
}

#[tracepoint]
pub fn sys_enter_clone3(ctx: TracePointContext) -> u32 {
    let (tgid, _) = ids();
    let Some(f) = followed(tgid) else {
        return 0;
    };
    // struct clone_args starts with u64 flags.
    let flags = unsafe { bpf_probe_read_user(arg(&ctx, 0) as *const u64) }.unwrap_or(0);
    store_pending(f, SyscallKind::Clone, [flags, 0, 0, 0], Data::None);
    0
}

/// A syscall record with no enter half (no path data): the call is reported whole now.
#[inline(always)]
fn emit_now(ppid: u32, kind: SyscallKind, ret: i64, args: [u64; 4]) {
    let (tgid, tid) = ids();
    // No data: the record ends where `data` would start (see SYSCALL_FIXED_LEN).
    let Some(mut e) = EVENTS.reserve_bytes(SYSCALL_FIXED_LEN, 0) else {
        count_lost(RecordKind::Syscall as u32);
        return;
    };
    let r = e.as_mut_ptr().cast::<SyscallRecord>();
    fill_header_as(
        unsafe { &raw mut (*r).hdr },
        RecordKind::Syscall as u32,
        tgid,
        tid,
        ppid,
    );
    unsafe {
        (*r).syscall = kind as u32;
        (*r).data_len = 0;
        (*r).ret = ret;
        (*r).enter_ns = (*r).hdr.ts_ns;
        (*r).args = args;
    }
    e.submit(crate::maps::submit_flags());
}

/// exit_group does not return: emit at entry and remember the code for the exit record.
/// One lookup of the entry serves both (as `followed` would, then a second for the code).
#[tracepoint]
pub fn sys_enter_exit_group(ctx: TracePointContext) -> u32 {
    let (tgid, _) = ids();
    if !may_follow(tgid) {
        return 0;
    }
    let code = arg(&ctx, 0);
    let ppid = match TRACKED.get_ptr_mut(&tgid) {
        Some(t) => unsafe {
            (*t).flags |= TRACKED_EXIT_GROUP;
            (*t).exit_code = code as i32;
            (*t).ppid
        },
        // `--all` follows processes it has no entry for.
        None if trace_all() => 0,
        None => return 0,
    };
    emit_now(ppid, SyscallKind::ExitGroup, 0, [code, 0, 0, 0]);
    0
}

/// Attached to every `sys_exit_*` whose enter half is above.
#[tracepoint]
pub fn sys_exit(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = ids();
    // Untracked threads never have a pending half. The byte answers for most of them
    // before the slot and the spill map are looked at (two likely cache misses).
    if !trace_all() && !maybe_followed(tgid) {
        return 0;
    }
    let Some((p, place)) = pending::find(tid) else {
        return 0;
    };
    let ret = unsafe { ctx.read_at::<i64>(16) }.unwrap_or(0);
    unsafe {
        let kind = (*p).syscall;
        if kind == SyscallKind::Clone as u32 {
            // Only needed by the fork probe, which has run by now.
            pending::release(tid, p, place);
            return 0;
        }
        if kind == SyscallKind::Stat as u32 && (*p).args[2] == STAT_FAILURES_ONLY {
            if ret >= 0 {
                pending::release(tid, p, place);
                return 0;
            }
            if let Some(t) = TRACKED.get_ptr_mut(&(*p).hdr.pid) {
                (*t).stat_misses += 1;
                if (*t).stat_misses == STAT_MISSES_KEPT {
                    crate::anomaly::stat_misses_capped((*p).hdr.pid);
                }
            }
        }
        if kind == SyscallKind::Wait4 as u32 {
            if ret == 0 || ret == -ECHILD {
                // It reaped nothing (WNOHANG with no child done, or no child left): a
                // shell makes one of these after each child it reaps, half its waits.
                pending::release(tid, p, place);
                return 0;
            }
            let stat = (*p).args[3];
            (*p).args[3] = 0;
            if ret > 0 && stat != 0 {
                if let Ok(st) = bpf_probe_read_user(stat as *const i32) {
                    (&raw mut (*p).data).cast::<i32>().write_unaligned(st);
                    (*p).data_len = 4;
                    (*p).args[2] = 1;
                }
            }
        } else if is_path_kind(kind) {
            let retry = (*p).args[3];
            (*p).args[3] = 0;
            if retry != 0 && (*p).hdr.flags & FLAG_READ_FAULT != 0 {
                let buf = (&raw mut (*p).data).cast::<u8>();
                let n = generated::bpf_probe_read_user_str(
                    buf.cast(),
                    DATA_LEN as u32,
                    retry as *const core::ffi::c_void,
                );
                if n > 0 {
                    (*p).hdr.flags &= !FLAG_READ_FAULT;
                    (*p).data_len = (n - 1) as u32;
                    if n as usize >= DATA_LEN {
                        (*p).hdr.flags |= FLAG_TRUNCATED;
                    }
                }
            }
        } else if kind == SyscallKind::Getsockopt as u32 {
            let optval = (*p).args[3];
            (*p).args[3] = 0;
            if ret == 0 && optval != 0 {
                if let Ok(v) = bpf_probe_read_user(optval as *const i32) {
                    (&raw mut (*p).data).cast::<i32>().write_unaligned(v);
                    (*p).data_len = 4;
                }
            }
        }
        (*p).ret = ret;
        (*p).hdr.ts_ns = bpf_ktime_get_ns();
        let flags = (*p).hdr.flags;
        if flags & FLAG_TRUNCATED != 0 {
            crate::anomaly::truncated("a syscall's path or data", (*p).hdr.pid);
        }
        if flags & FLAG_READ_FAULT != 0 {
            crate::anomaly::read_fault("a syscall's path or data", (*p).hdr.pid);
        }
    }
    // One helper copies the half into the ring (a reserve, a copy and a submit were
    // three), up to the used length of its data (see SYSCALL_FIXED_LEN).
    let mut used = unsafe { (*p).data_len } as usize;
    if used > DATA_LEN {
        used = DATA_LEN;
    }
    let sent = unsafe { core::slice::from_raw_parts(p.cast::<u8>(), SYSCALL_FIXED_LEN + used) };
    if EVENTS
        .output::<[u8]>(sent, crate::maps::submit_flags())
        .is_err()
    {
        count_lost(RecordKind::Syscall as u32);
    }
    pending::release(tid, p, place);
    0
}

/// Syscalls whose `data` is a path read at entry (args[3] is free to hold a retry pointer).
#[inline(always)]
fn is_path_kind(kind: u32) -> bool {
    kind == SyscallKind::Open as u32
        || kind == SyscallKind::Openat as u32
        || kind == SyscallKind::Openat2 as u32
        || kind == SyscallKind::Creat as u32
        || kind == SyscallKind::Chdir as u32
        || kind == SyscallKind::Stat as u32
}

const EMFILE: i64 = 24;
const ENFILE: i64 = 23;
const ECHILD: i64 = 10;

/// Attached to the `sys_exit_*` of every syscall in tracer-common's `FD_SYSCALLS`
/// (pipe, dup2, accept...): descriptors made by calls without a probe of their own.
/// Only those calls run it. A catch-all on `raw_syscalls/sys_exit` did this before, and
/// made every syscall on the host pay for it: 6% on a fork-heavy workload the tracer
/// did not even follow.
#[tracepoint]
pub fn sys_exit_fd(ctx: TracePointContext) -> u32 {
    let ret = unsafe { ctx.read_at::<i64>(16) }.unwrap_or(0);
    if ret != -EMFILE && ret != -ENFILE {
        return 0;
    }
    let (tgid, _) = ids();
    let Some(f) = followed(tgid) else {
        return 0;
    };
    // Syscall tracepoints start with `int __syscall_nr` after the common fields.
    let nr = unsafe { ctx.read_at::<i32>(8) }.unwrap_or(-1);
    emit_now(
        f.ppid,
        SyscallKind::FdExhausted,
        ret,
        [nr as i64 as u64, 0, 0, 0],
    );
    0
}
