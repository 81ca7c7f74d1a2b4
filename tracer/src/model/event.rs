//! The event stream every source (live kernel, `/proc` snapshot, and later trace
//! files) produces, and everything after the source consumes.
use serde::Serialize;

use crate::model::names::{errno_name, signal_name};

/// A task's comm: at most 15 bytes, so held inline (no allocation for the one every
/// event carries, nor for the copies processes and schedulers keep of it).
pub type Comm = compact_str::CompactString;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Event {
    /// CLOCK_MONOTONIC ns.
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: Comm,
    /// A string in the event was cut to the kernel-side bound.
    #[serde(skip_serializing_if = "is_false")]
    pub truncated: bool,
    /// A user-memory read faulted; a field is partial or empty.
    #[serde(skip_serializing_if = "is_false")]
    pub read_fault: bool,
    /// How long the syscall took (entry to exit), for syscall events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dur_ns: Option<u64>,
    #[serde(flatten)]
    pub body: Body,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A syscall's result: `ret`, and the errno name when it failed.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct SysResult {
    pub ret: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
}

impl SysResult {
    pub fn new(ret: i64) -> Self {
        let error = (ret < 0).then(|| errno_name(ret.checked_neg().unwrap_or(0)));
        Self { ret, error }
    }
    pub fn ok(&self) -> bool {
        self.ret >= 0
    }
}

/// How a process ended.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct ExitStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal_name: Option<&'static str>,
    #[serde(skip_serializing_if = "is_false")]
    pub core_dumped: bool,
}

impl ExitStatus {
    pub fn code(code: i32) -> Self {
        Self {
            code: Some(code),
            signal: None,
            signal_name: None,
            core_dumped: false,
        }
    }
    pub fn signal(sig: i32, core_dumped: bool) -> Self {
        Self {
            code: None,
            signal: Some(sig),
            signal_name: Some(signal_name(sig)),
            core_dumped,
        }
    }
    /// Decode a wait(2) status word.
    pub fn from_wait_status(st: i32) -> Self {
        let sig = st & 0x7f;
        if sig == 0 {
            Self::code((st >> 8) & 0xff)
        } else {
            Self::signal(sig, st & 0x80 != 0)
        }
    }
    pub fn is_success(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit {c}"),
            (None, Some(s)) => write!(f, "killed by {}", signal_name(s)),
            _ => write!(f, "exit ?"),
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Body {
    /// The process forked a child process.
    Fork {
        child_pid: u32,
        clone_flags: u64,
    },
    /// execve/execveat was called; `result` is joined in by the job model when the
    /// call returns (decoding gives it as a separate `ExecResult`).
    ExecAttempt {
        filename: String,
        argv: Vec<String>,
        env: Vec<String>,
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        result: Option<SysResult>,
        #[serde(skip_serializing_if = "is_false")]
        argv_truncated: bool,
        #[serde(skip_serializing_if = "is_false")]
        env_truncated: bool,
        #[serde(skip_serializing_if = "is_false")]
        execveat: bool,
    },
    /// An exec attempt's result, before the model joins it to its attempt; left alone
    /// only when the attempt was not seen (it began before the trace).
    ExecResult {
        #[serde(flatten)]
        result: SysResult,
    },
    /// The process image was replaced.
    Exec {
        filename: String,
        old_tid: u32,
        #[serde(skip_serializing_if = "is_false")]
        new_root: bool,
    },
    /// The process ended; the status is what the kernel side saw (exit_group code, or
    /// the fatal signal), `None` when neither was seen.
    Exit {
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<ExitStatus>,
    },
    /// A signal was generated for `target_pid`; the event's pid is the sender.
    Signal {
        target_pid: u32,
        signal: i32,
        signal_name: &'static str,
        code: i32,
        result: i32,
    },
    Open {
        syscall: &'static str,
        dfd: i32,
        path: String,
        flags: u64,
        mode: u64,
        #[serde(flatten)]
        result: SysResult,
    },
    Socket {
        family: u64,
        family_name: &'static str,
        sock_type: u64,
        protocol: u64,
        #[serde(flatten)]
        result: SysResult,
    },
    Connect {
        fd: i32,
        address: String,
        #[serde(flatten)]
        result: SysResult,
    },
    Getsockopt {
        fd: i32,
        level: i64,
        optname: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<i32>,
        #[serde(flatten)]
        result: SysResult,
    },
    Chdir {
        path: String,
        #[serde(flatten)]
        result: SysResult,
    },
    Fchdir {
        fd: i32,
        #[serde(flatten)]
        result: SysResult,
    },
    /// setuid/setgid and their re/res variants; `ids` in argument order (-1 = unchanged).
    SetId {
        syscall: &'static str,
        ids: Vec<i64>,
        #[serde(flatten)]
        result: SysResult,
    },
    /// setrlimit/prlimit64; `soft`/`hard` when a new limit was given.
    Rlimit {
        syscall: &'static str,
        target_pid: i32,
        resource: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        soft: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        hard: Option<u64>,
        #[serde(flatten)]
        result: SysResult,
    },
    /// wait4: `result.ret` is the reaped child's pid, `status` how it ended.
    Wait {
        waited_for: i32,
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<ExitStatus>,
        #[serde(flatten)]
        result: SysResult,
    },
    ExitGroup {
        code: i32,
    },
    /// stat of a path by the scheduler itself (e.g. cron looking for sendmail).
    Stat {
        path: String,
        #[serde(flatten)]
        result: SysResult,
    },
    /// A descriptor-making syscall without its own probe failed with EMFILE/ENFILE.
    FdExhausted {
        syscall: String,
        nr: i64,
        #[serde(flatten)]
        result: SysResult,
    },
    /// A process alive when the trace started, read from `/proc`.
    Snapshot {
        root: bool,
        cmdline: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cwd: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        exe: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        nofile: Option<(u64, u64)>,
    },
}

impl Body {
    /// Short stable name of the event kind (as in JSON `event`).
    pub fn name(&self) -> &'static str {
        match self {
            Body::Fork { .. } => "fork",
            Body::ExecAttempt { .. } => "exec_attempt",
            Body::ExecResult { .. } => "exec_result",
            Body::Exec { .. } => "exec",
            Body::Exit { .. } => "exit",
            Body::Signal { .. } => "signal",
            Body::Open { .. } => "open",
            Body::Socket { .. } => "socket",
            Body::Connect { .. } => "connect",
            Body::Getsockopt { .. } => "getsockopt",
            Body::Chdir { .. } => "chdir",
            Body::Fchdir { .. } => "fchdir",
            Body::SetId { .. } => "set_id",
            Body::Rlimit { .. } => "rlimit",
            Body::Wait { .. } => "wait",
            Body::ExitGroup { .. } => "exit_group",
            Body::Stat { .. } => "stat",
            Body::FdExhausted { .. } => "fd_exhausted",
            Body::Snapshot { .. } => "snapshot",
        }
    }

    /// The syscall result, for events that have one.
    pub fn result(&self) -> Option<SysResult> {
        match self {
            Body::ExecAttempt { result, .. } => *result,
            Body::ExecResult { result }
            | Body::Open { result, .. }
            | Body::Socket { result, .. }
            | Body::Connect { result, .. }
            | Body::Getsockopt { result, .. }
            | Body::Chdir { result, .. }
            | Body::Fchdir { result, .. }
            | Body::SetId { result, .. }
            | Body::Rlimit { result, .. }
            | Body::Wait { result, .. }
            | Body::Stat { result, .. }
            | Body::FdExhausted { result, .. } => Some(*result),
            _ => None,
        }
    }
}
