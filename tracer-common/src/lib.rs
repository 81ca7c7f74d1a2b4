//! The one definition of every record the kernel programs send to user space.
//!
//! Records hold only integers and byte arrays, with explicit padding, so the
//! kernel and user space agree on their layout byte for byte. Every record
//! starts with a [`Header`]; its `kind` field (a [`RecordKind`]) says which
//! record follows. User space decodes by checking the length, reading the kind
//! as an integer with `TryFrom`, and only then reading the record.
#![no_std]

use core::mem::size_of;

pub const COMM_LEN: usize = 16;
/// Bytes kept of a path or address. A power of two so the kernel can mask offsets.
pub const DATA_LEN: usize = 256;
/// Bytes kept of the exec'd file name.
pub const FILENAME_LEN: usize = 256;
/// Bytes kept of argv, all strings NUL-separated.
pub const ARGS_LEN: usize = 2048;
/// Bytes kept of envp, all strings NUL-separated.
pub const ENV_LEN: usize = 4096;
/// Longest single argv/env string copied; longer ones are cut and flagged.
pub const STR_MAX: usize = 256;
/// Most argv entries read.
pub const MAX_ARGS: usize = 32;
/// Most env entries read.
pub const MAX_ENV: usize = 64;

/// Header `flags`: a string in the record was cut to fit.
pub const FLAG_TRUNCATED: u32 = 1 << 0;
/// Header `flags`: a user-memory read faulted (page not resident); the field is partial.
pub const FLAG_READ_FAULT: u32 = 1 << 1;
/// Header `flags`: this exec made the process a root (its comm is a scheduler's or a `--comm`).
pub const FLAG_NEW_ROOT: u32 = 1 << 2;
/// Exec record flags (`ExecRecord::trunc`): which part was cut.
pub const EXEC_FILENAME_TRUNC: u32 = 1 << 0;
pub const EXEC_ARGS_TRUNC: u32 = 1 << 1;
pub const EXEC_ENV_TRUNC: u32 = 1 << 2;

/// What a record is. The numbering is part of the trace file format: never reuse a value.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Fork = 1,
    /// An [`ExecAttemptRecord`], whole: what tracers wrote before trace format 3.
    ExecAttempt = 2,
    ExecSuccess = 3,
    Exit = 4,
    Signal = 5,
    Syscall = 6,
    /// An [`ExecAttemptPacked`]: what the kernel sends since trace format 3.
    ExecAttemptPacked = 7,
}

/// Tgids per entry of the kernel's `FOLLOWED` table (one byte each). User space writes
/// the byte of tgid `t` at offset `t` of the table's shared mapping.
pub const FOLLOWED_GROUP: usize = 64;

/// Number of slots in the per-kind lost-event counter map: slot = the record kind's
/// value for kinds 1-6; a packed exec attempt (kind 7) counts in `ExecAttempt`'s slot 2,
/// since slot 7 is `LOST_PENDING_FULL`.
pub const LOST_SLOTS: u32 = 8;
/// Slot of the lost counter that counts processes not tracked because the map was full.
pub const LOST_TRACK_FULL: u32 = 0;
/// Slot counting syscall results dropped because the enter half could not be stored.
pub const LOST_PENDING_FULL: u32 = 7;

impl TryFrom<u32> for RecordKind {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        Ok(match v {
            1 => Self::Fork,
            2 => Self::ExecAttempt,
            3 => Self::ExecSuccess,
            4 => Self::Exit,
            5 => Self::Signal,
            6 => Self::Syscall,
            7 => Self::ExecAttemptPacked,
            other => return Err(other),
        })
    }
}

/// Which syscall a [`SyscallRecord`] reports. Part of the file format: never reuse a value.
///
/// Meaning of `args` and `data` per kind (unused slots are zero):
/// - `Open`/`Openat`/`Openat2`/`Creat`: args = [dfd, flags, mode, 0] (dfd is AT_FDCWD for
///   open/creat); data = path.
/// - `Socket`: args = [family, type, protocol, 0].
/// - `Connect`: args = [fd, addrlen, 0, 0]; data = the sockaddr bytes.
/// - `Chdir`: data = path. `Fchdir`: args = [fd, ..].
/// - `Setuid`/`Setgid`: args = [id, ..]; `Setre*`: [r, e, ..]; `Setres*`: [r, e, s, ..].
/// - `Setrlimit`: args = [resource, ..]; `Prlimit64`: args = [target pid, resource, ..];
///   data = the new `struct rlimit` (cur, max as u64) when one was given.
/// - `Wait4`: args = [pid asked for, options, 0, 0]; data[0..4] = the wait status when
///   `ret` > 0 and a status pointer was given (args[2] = 1 then).
/// - `ExitGroup`: args = [status, ..]; no result (the call does not return), `ret` = 0.
/// - `Getsockopt`: args = [fd, level, optname, 0]; data[0..4] = the int value read back.
/// - `Execve`/`Execveat`: the result of an exec attempt; `ret` = 0 on success.
/// - `FdExhausted`: any other syscall that failed with EMFILE/ENFILE; args = [raw nr, ..].
/// - `Stat`: args = [dfd, flags, failures_only, 0]; data = path. Every stat of a process
///   whose comm is a root's (the scheduler and its children before they exec) but
///   `fstat(fd)` (AT_EMPTY_PATH on a descriptor: no path); for the
///   job's processes (failures_only = 1) only `stat(path)` calls that failed: a shell's
///   PATH search.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallKind {
    Open = 1,
    Openat = 2,
    Openat2 = 3,
    Creat = 4,
    Socket = 5,
    Connect = 6,
    Chdir = 7,
    Fchdir = 8,
    Setuid = 9,
    Setgid = 10,
    Setreuid = 11,
    Setregid = 12,
    Setresuid = 13,
    Setresgid = 14,
    Setrlimit = 15,
    Prlimit64 = 16,
    Wait4 = 17,
    ExitGroup = 18,
    Getsockopt = 19,
    Execve = 20,
    Execveat = 21,
    FdExhausted = 22,
    /// Internal: clone flags held between enter and the fork tracepoint; never emitted.
    Clone = 23,
    /// newfstatat/statx: all of a scheduler process's (cron checking for its MTA), a
    /// job's only when `stat(path)` failed (a shell's PATH search). data = path.
    Stat = 24,
}

impl TryFrom<u32> for SyscallKind {
    type Error = u32;
    fn try_from(v: u32) -> Result<Self, u32> {
        use SyscallKind::*;
        Ok(match v {
            1 => Open,
            2 => Openat,
            3 => Openat2,
            4 => Creat,
            5 => Socket,
            6 => Connect,
            7 => Chdir,
            8 => Fchdir,
            9 => Setuid,
            10 => Setgid,
            11 => Setreuid,
            12 => Setregid,
            13 => Setresuid,
            14 => Setresgid,
            15 => Setrlimit,
            16 => Prlimit64,
            17 => Wait4,
            18 => ExitGroup,
            19 => Getsockopt,
            20 => Execve,
            21 => Execveat,
            22 => FdExhausted,
            23 => Clone,
            24 => Stat,
            other => return Err(other),
        })
    }
}

/// The syscalls that make a descriptor and have no probe of their own, with their
/// x86_64 numbers: the EMFILE/ENFILE probe is attached to each one's `sys_exit_*`
/// tracepoint (those this kernel has), and a report names the call from its number.
pub const FD_SYSCALLS: [(i64, &str); 33] = [
    (22, "pipe"),
    (293, "pipe2"),
    (32, "dup"),
    (33, "dup2"),
    (292, "dup3"),
    (72, "fcntl"),
    (43, "accept"),
    (288, "accept4"),
    (53, "socketpair"),
    (213, "epoll_create"),
    (291, "epoll_create1"),
    (253, "inotify_init"),
    (294, "inotify_init1"),
    (282, "signalfd"),
    (289, "signalfd4"),
    (283, "timerfd_create"),
    (284, "eventfd"),
    (290, "eventfd2"),
    (298, "perf_event_open"),
    (300, "fanotify_init"),
    (304, "open_by_handle_at"),
    (319, "memfd_create"),
    (321, "bpf"),
    (323, "userfaultfd"),
    (425, "io_uring_setup"),
    (434, "pidfd_open"),
    (438, "pidfd_getfd"),
    (240, "mq_open"),
    (428, "open_tree"),
    (430, "fsopen"),
    (432, "fsmount"),
    (433, "fspick"),
    (447, "memfd_secret"),
];

/// Common to every record.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// A [`RecordKind`] value.
    pub kind: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) when the event happened.
    pub ts_ns: u64,
    /// Process id (tgid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Parent process id as known to the tracked-process map (0 if unknown).
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub _pad: u32,
    pub comm: [u8; COMM_LEN],
}

/// A tracked process created a new process (not a thread).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ForkRecord {
    pub hdr: Header,
    pub child_pid: u32,
    pub _pad: u32,
    /// Clone flags when the call was seen at syscall entry, else 0.
    pub clone_flags: u64,
}

/// An execve/execveat attempt: what was asked for, read at syscall entry while the
/// caller's memory still exists. The result follows as a `Syscall` record (`Execve`).
/// Sent whole before trace format 3 (files still hold it); the kernel now reads the
/// strings into one of these in a scratch map and sends an [`ExecAttemptPacked`].
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecAttemptRecord {
    pub hdr: Header,
    /// Bytes used in `args` / `env` (strings NUL-terminated back to back).
    pub args_len: u32,
    pub env_len: u32,
    /// Strings captured.
    pub argc: u32,
    pub envc: u32,
    /// `EXEC_*_TRUNC` bits.
    pub trunc: u32,
    /// 1 for execveat.
    pub is_execveat: u32,
    pub filename: [u8; FILENAME_LEN],
    pub args: [u8; ARGS_LEN],
    pub env: [u8; ENV_LEN],
}

/// An execve/execveat attempt as the kernel sends it: the fields of an
/// [`ExecAttemptRecord`], then the file name, argv and env back to back, sent up to
/// their used length (`EXEC_PACKED_FIXED_LEN` + the three lengths). A whole record was
/// 6.5 KB of the ring for about 500 bytes used: three pages touched per exec on each
/// side, and a ring that held a tenth of the execs it holds now.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecAttemptPacked {
    pub hdr: Header,
    /// Bytes of the file name in `data`, its NUL included (0 when it could not be read).
    pub filename_len: u32,
    /// Bytes of argv after it (at most `ARGS_LEN`), then of env (at most `ENV_LEN`).
    pub args_len: u32,
    pub env_len: u32,
    pub argc: u32,
    pub envc: u32,
    /// `EXEC_*_TRUNC` bits.
    pub trunc: u32,
    /// 1 for execveat.
    pub is_execveat: u32,
    pub _pad: u32,
    pub data: [u8; EXEC_DATA_LEN],
}

/// Room for the three strings of an [`ExecAttemptPacked`].
pub const EXEC_DATA_LEN: usize = FILENAME_LEN + ARGS_LEN + ENV_LEN;
/// Bytes of an [`ExecAttemptPacked`] before its strings.
pub const EXEC_PACKED_FIXED_LEN: usize = core::mem::offset_of!(ExecAttemptPacked, data);

/// The kernel replaced the process image (`sched_process_exec`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecSuccessRecord {
    pub hdr: Header,
    pub old_tid: u32,
    pub filename_len: u32,
    pub filename: [u8; FILENAME_LEN],
}

/// Exit status known to the kernel side.
pub const EXIT_HAS_CODE: u32 = 1 << 0;
pub const EXIT_HAS_SIGNAL: u32 = 1 << 1;

/// The last thread of a tracked process exited (`sched_process_exit`, group_dead).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitRecord {
    pub hdr: Header,
    /// `EXIT_*` bits.
    pub status_flags: u32,
    /// exit_group() status, when `EXIT_HAS_CODE`.
    pub code: i32,
    /// The fatal signal generated for it, when `EXIT_HAS_SIGNAL` and no exit_group() ran.
    pub signal: i32,
    pub _pad: u32,
}

/// A signal was generated for a tracked process (`signal_generate`). The header is the
/// sender's context (the process that called kill, or the kernel's current task).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SignalRecord {
    pub hdr: Header,
    pub target_pid: u32,
    pub sig: i32,
    pub code: i32,
    /// 0 delivered, 1 ignored, 2 already pending, 3 overflow, 4 lose info.
    pub result: i32,
}

/// A syscall's arguments (read at entry) joined with its result (read at exit).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SyscallRecord {
    pub hdr: Header,
    /// A [`SyscallKind`] value.
    pub syscall: u32,
    /// Bytes used in `data`.
    pub data_len: u32,
    /// Return value; negative errno on failure.
    pub ret: i64,
    /// Entry time; `hdr.ts_ns` is the exit time.
    pub enter_ns: u64,
    pub args: [u64; 4],
    pub data: [u8; DATA_LEN],
}

/// Bytes of a [`SyscallRecord`] before `data`. A record is sent (and stored) up to the
/// used length of its data: most paths are a tenth of the buffer, and every byte sent
/// is copied by the kernel, read by the tracer and compressed into the trace.
pub const SYSCALL_FIXED_LEN: usize = core::mem::offset_of!(SyscallRecord, data);

/// Value of the tracked-process map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Tracked {
    pub ppid: u32,
    /// `TRACKED_*` bits.
    pub flags: u32,
    pub exit_code: i32,
    pub last_signal: i32,
    /// Failed `stat(path)` records sent for the program it runs (see `STAT_MISSES_KEPT`).
    pub stat_misses: u32,
}

/// A program's failed `stat(path)` calls past this many are neither sent nor set up:
/// a shell's PATH search misses a few times per new command, while a program that
/// stats missing files in a loop would pay a record for each (measured: a tight loop
/// of failing `os.stat` ran 2.2x slower with every miss sent). An exec starts over.
pub const STAT_MISSES_KEPT: u32 = 128;

pub const TRACKED_ROOT: u32 = 1 << 0;
pub const TRACKED_EXIT_GROUP: u32 = 1 << 1;
pub const TRACKED_SIGNALED: u32 = 1 << 2;

// Layout guards: a change here is a file-format change.
const _: () = assert!(size_of::<Header>() == 56);
const _: () = assert!(size_of::<ForkRecord>() == 72);
const _: () =
    assert!(size_of::<ExecAttemptRecord>() == 56 + 24 + FILENAME_LEN + ARGS_LEN + ENV_LEN);
const _: () = assert!(EXEC_PACKED_FIXED_LEN == 56 + 32);
const _: () = assert!(size_of::<ExecAttemptPacked>() == EXEC_PACKED_FIXED_LEN + EXEC_DATA_LEN);
const _: () = assert!(size_of::<ExecSuccessRecord>() == 56 + 8 + FILENAME_LEN);
const _: () = assert!(size_of::<ExitRecord>() == 72);
const _: () = assert!(size_of::<SignalRecord>() == 72);
const _: () = assert!(size_of::<SyscallRecord>() == 56 + 8 + 8 + 8 + 32 + DATA_LEN);
const _: () = assert!(size_of::<Tracked>() == 20);
const _: () = assert!(DATA_LEN.is_power_of_two() && ARGS_LEN.is_power_of_two());
const _: () = assert!(ENV_LEN.is_power_of_two() && FILENAME_LEN.is_power_of_two());

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: plain #[repr(C)] integers and byte arrays with explicit padding.
    unsafe impl aya::Pod for Tracked {}
}
