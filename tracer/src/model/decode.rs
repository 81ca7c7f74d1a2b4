//! Raw kernel records (bytes from the ring buffer or a trace file) to [`Event`]s.
//!
//! Length is checked before anything is read; the kind is read as an integer and
//! converted with `TryFrom`, so an unknown or damaged record is an error, never UB.
use std::{
    fmt,
    mem::{offset_of, size_of},
    net::Ipv6Addr,
};

use tracer_common::{
    ExecAttemptPacked, ExecAttemptRecord, ExecSuccessRecord, ExitRecord, ForkRecord, Header,
    RecordKind, SignalRecord, SyscallKind, SyscallRecord, ARGS_LEN, DATA_LEN, ENV_LEN,
    EXEC_ARGS_TRUNC, EXEC_ENV_TRUNC, EXEC_PACKED_FIXED_LEN, EXIT_HAS_CODE, EXIT_HAS_SIGNAL,
    FILENAME_LEN, FLAG_NEW_ROOT, FLAG_READ_FAULT, FLAG_TRUNCATED, SYSCALL_FIXED_LEN,
};

use crate::{
    capture::snapshot::ProcInfo,
    model::event::{Body, Comm, Event, ExitStatus, SysResult},
    model::names::{family_name, rlimit_name, signal_name, syscall_name},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The record is shorter than its kind requires.
    Short {
        kind: &'static str,
        need: usize,
        got: usize,
    },
    UnknownKind(u32),
    UnknownSyscall(u32),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Short { kind, need, got } => {
                write!(f, "{kind} record of {got} bytes, need {need}")
            }
            DecodeError::UnknownKind(k) => write!(f, "unknown record kind {k}"),
            DecodeError::UnknownSyscall(k) => write!(f, "unknown syscall kind {k}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A record copied out of `buf` (a trace file's records may lie unaligned), its length
/// checked first. The large ones, syscall records and exec attempts, are read in place
/// instead (`syscall_view`, `exec_view`).
pub(crate) fn read<T: Copy>(buf: &[u8], kind: &'static str) -> Result<T, DecodeError> {
    if buf.len() < size_of::<T>() {
        return Err(DecodeError::Short {
            kind,
            need: size_of::<T>(),
            got: buf.len(),
        });
    }
    // SAFETY: length checked; T is a #[repr(C)] record of integers and byte arrays,
    // valid for any bit pattern.
    Ok(unsafe { std::ptr::read_unaligned(buf.as_ptr().cast::<T>()) })
}

/// A syscall record's fields, read where they lie, and its data.
struct SyscallView<'a> {
    syscall: u32,
    ret: i64,
    enter_ns: u64,
    args: [u64; 4],
    data: &'a [u8],
}

/// A syscall record as the kernel sends it since trace format 2: up to the used length
/// of its data. Format 1 files hold whole records, as does a record whose data fills
/// the buffer. A record shorter than its own `data_len` says is damaged. Nothing is
/// copied: a short record copied into a whole one cost a tenth of decoding.
fn syscall_view(buf: &[u8]) -> Result<SyscallView<'_>, DecodeError> {
    let short = |need| DecodeError::Short {
        kind: "syscall",
        need,
        got: buf.len(),
    };
    if buf.len() < SYSCALL_FIXED_LEN {
        return Err(short(SYSCALL_FIXED_LEN));
    }
    let u64_at = |off: usize| u64::from_ne_bytes(buf[off..off + 8].try_into().unwrap());
    let u32_at = |off: usize| u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap());
    let args_at = offset_of!(SyscallRecord, args);
    let data_len = (u32_at(offset_of!(SyscallRecord, data_len)) as usize).min(DATA_LEN);
    let need = SYSCALL_FIXED_LEN + data_len;
    if buf.len() < need {
        return Err(short(need));
    }
    Ok(SyscallView {
        syscall: u32_at(offset_of!(SyscallRecord, syscall)),
        ret: u64_at(offset_of!(SyscallRecord, ret)) as i64,
        enter_ns: u64_at(offset_of!(SyscallRecord, enter_ns)),
        args: std::array::from_fn(|i| u64_at(args_at + 8 * i)),
        data: &buf[SYSCALL_FIXED_LEN..need],
    })
}

/// An exec attempt's fields and strings, read where they lie, from either layout.
pub(crate) struct ExecView<'a> {
    pub trunc: u32,
    pub is_execveat: u32,
    pub argc: u32,
    pub envc: u32,
    /// The file name up to its NUL.
    pub filename: &'a [u8],
    /// argv and env, NUL-terminated strings back to back.
    pub args: &'a [u8],
    pub env: &'a [u8],
    /// Bytes of `buf` the record takes.
    pub used: usize,
}

/// An exec attempt of either layout: [`ExecAttemptPacked`] as the kernel sends it
/// since trace format 3, up to its used length, or the whole [`ExecAttemptRecord`] of
/// older files. A packed record shorter than its lengths say is damaged.
pub(crate) fn exec_view(buf: &[u8], kind: RecordKind) -> Result<ExecView<'_>, DecodeError> {
    fn until_nul(b: &[u8]) -> &[u8] {
        &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]
    }
    let short = |need| DecodeError::Short {
        kind: "exec attempt",
        need,
        got: buf.len(),
    };
    let u32_at = |off: usize| u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap());
    if kind == RecordKind::ExecAttempt {
        if buf.len() < size_of::<ExecAttemptRecord>() {
            return Err(short(size_of::<ExecAttemptRecord>()));
        }
        let at = |off: usize, len: usize| &buf[off..off + len];
        let f = offset_of!(ExecAttemptRecord, filename);
        let args_len = (u32_at(offset_of!(ExecAttemptRecord, args_len)) as usize).min(ARGS_LEN);
        let env_len = (u32_at(offset_of!(ExecAttemptRecord, env_len)) as usize).min(ENV_LEN);
        return Ok(ExecView {
            trunc: u32_at(offset_of!(ExecAttemptRecord, trunc)),
            is_execveat: u32_at(offset_of!(ExecAttemptRecord, is_execveat)),
            argc: u32_at(offset_of!(ExecAttemptRecord, argc)),
            envc: u32_at(offset_of!(ExecAttemptRecord, envc)),
            filename: until_nul(at(f, FILENAME_LEN)),
            args: at(offset_of!(ExecAttemptRecord, args), args_len),
            env: at(offset_of!(ExecAttemptRecord, env), env_len),
            used: size_of::<ExecAttemptRecord>(),
        });
    }
    if buf.len() < EXEC_PACKED_FIXED_LEN {
        return Err(short(EXEC_PACKED_FIXED_LEN));
    }
    let len = |field: usize, max: usize| (u32_at(field) as usize).min(max);
    let name_len = len(offset_of!(ExecAttemptPacked, filename_len), FILENAME_LEN);
    let args_len = len(offset_of!(ExecAttemptPacked, args_len), ARGS_LEN);
    let env_len = len(offset_of!(ExecAttemptPacked, env_len), ENV_LEN);
    let need = EXEC_PACKED_FIXED_LEN + name_len + args_len + env_len;
    if buf.len() < need {
        return Err(short(need));
    }
    let data = &buf[EXEC_PACKED_FIXED_LEN..need];
    let (name, rest) = data.split_at(name_len);
    let (args, env) = rest.split_at(args_len);
    Ok(ExecView {
        trunc: u32_at(offset_of!(ExecAttemptPacked, trunc)),
        is_execveat: u32_at(offset_of!(ExecAttemptPacked, is_execveat)),
        argc: u32_at(offset_of!(ExecAttemptPacked, argc)),
        envc: u32_at(offset_of!(ExecAttemptPacked, envc)),
        filename: until_nul(name),
        args,
        env,
        used: need,
    })
}

/// The bytes of an [`ExecAttemptPacked`] holding `filename`, `argv` and `env`, with
/// `hdr` (its kind set) and `trunc`: how redaction rewrites an exec attempt of either
/// layout, and how tests make one. Strings that do not fit their field's room
/// (`ARGS_LEN`, `ENV_LEN`) are dropped and the field marked cut, as the kernel would.
pub(crate) fn pack_exec_attempt(
    hdr: &Header,
    mut trunc: u32,
    is_execveat: u32,
    filename: &[u8],
    argv: &[String],
    env: &[String],
) -> Vec<u8> {
    let name = &filename[..filename.len().min(FILENAME_LEN - 1)];
    let mut data = Vec::with_capacity(name.len() + 1 + 512);
    data.extend_from_slice(name);
    data.push(0);
    let mut strings = |list: &[String], room: usize, cut: u32| {
        let start = data.len();
        let mut n = 0u32;
        for s in list {
            if data.len() - start + s.len() + 1 > room {
                trunc |= cut;
                break;
            }
            data.extend_from_slice(s.as_bytes());
            data.push(0);
            n += 1;
        }
        ((data.len() - start) as u32, n)
    };
    let (args_len, argc) = strings(argv, ARGS_LEN, EXEC_ARGS_TRUNC);
    let (env_len, envc) = strings(env, ENV_LEN, EXEC_ENV_TRUNC);
    let mut h = *hdr;
    h.kind = RecordKind::ExecAttemptPacked as u32;
    if trunc != 0 {
        h.flags |= FLAG_TRUNCATED;
    }
    let mut out = Vec::with_capacity(EXEC_PACKED_FIXED_LEN + data.len());
    // SAFETY: Header is #[repr(C)] integers and bytes with explicit padding.
    out.extend_from_slice(unsafe {
        std::slice::from_raw_parts((&raw const h).cast::<u8>(), size_of::<Header>())
    });
    let fields = [
        (name.len() + 1) as u32,
        args_len,
        env_len,
        argc,
        envc,
        trunc,
        is_execveat,
        0,
    ];
    for v in fields {
        out.extend_from_slice(&v.to_ne_bytes());
    }
    debug_assert_eq!(out.len(), EXEC_PACKED_FIXED_LEN);
    out.extend_from_slice(&data);
    out
}

/// Bytes up to the first NUL (or `max`), lossily as UTF-8.
fn cstr(bytes: &[u8], max: usize) -> String {
    let b = &bytes[..bytes.len().min(max)];
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    text(&b[..end])
}

/// Bytes as text, an invalid sequence replaced. Kernel strings are nearly always valid
/// UTF-8, which `str::from_utf8` checks several times faster than the lossy scan does
/// (that scan was a twentieth of a replay).
fn text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// A header's comm, held inline (see [`Comm`]).
fn comm(bytes: &[u8; 16]) -> Comm {
    let end = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
    let b = &bytes[..end];
    // Nearly always ASCII: one test of the high bits of all 16 bytes (the padding past
    // the NUL too; a stray byte there only sends this comm the longer way).
    if u128::from_ne_bytes(*bytes) & 0x8080_8080_8080_8080_8080_8080_8080_8080 == 0 {
        // SAFETY: ASCII is UTF-8.
        return Comm::new(unsafe { std::str::from_utf8_unchecked(b) });
    }
    match std::str::from_utf8(b) {
        Ok(s) => Comm::new(s),
        Err(_) => Comm::from(String::from_utf8_lossy(b)),
    }
}

/// NUL-terminated strings packed back to back in the first `len` bytes.
pub(crate) fn cstrs(bytes: &[u8], len: u32, count: u32) -> Vec<String> {
    let b = &bytes[..(len as usize).min(bytes.len())];
    b.split(|&c| c == 0)
        .take(count as usize)
        .map(text)
        .collect()
}

fn base(h: &Header, body: Body) -> Event {
    Event {
        ts_ns: h.ts_ns,
        pid: h.pid,
        tid: h.tid,
        ppid: h.ppid,
        uid: h.uid,
        gid: h.gid,
        comm: comm(&h.comm),
        truncated: h.flags & FLAG_TRUNCATED != 0,
        read_fault: h.flags & FLAG_READ_FAULT != 0,
        dur_ns: None,
        body,
    }
}

/// A copy of a kernel record with every byte past the used length of its strings set
/// to zero. Ring-buffer slots are not cleared by the kernel: without this, a short
/// record would carry the tail of whatever record used the slot before (another
/// process's env, unredacted) into a trace file.
pub fn canonical(raw: &[u8]) -> Vec<u8> {
    let mut v = raw.to_vec();
    let Ok(h) = read::<Header>(raw, "header") else {
        return v;
    };
    let mut clear = |field_off: usize, field_len: usize, used: usize| {
        let start = field_off + used.min(field_len);
        let end = (field_off + field_len).min(v.len());
        if start < end {
            v[start..end].fill(0);
        }
    };
    match RecordKind::try_from(h.kind) {
        Ok(RecordKind::ExecAttempt) => {
            if let Ok(r) = exec_view(raw, RecordKind::ExecAttempt) {
                // The name keeps its NUL.
                clear(
                    std::mem::offset_of!(ExecAttemptRecord, filename),
                    FILENAME_LEN,
                    r.filename.len() + 1,
                );
                clear(
                    std::mem::offset_of!(ExecAttemptRecord, args),
                    ARGS_LEN,
                    r.args.len(),
                );
                clear(
                    std::mem::offset_of!(ExecAttemptRecord, env),
                    ENV_LEN,
                    r.env.len(),
                );
            }
        }
        Ok(RecordKind::ExecAttemptPacked) => {
            // Sent up to its used length: anything past it is not the record's.
            if let Ok(r) = exec_view(raw, RecordKind::ExecAttemptPacked) {
                v.truncate(r.used);
            }
        }
        Ok(RecordKind::ExecSuccess) => {
            if let Ok(r) = read::<ExecSuccessRecord>(raw, "exec") {
                clear(
                    std::mem::offset_of!(ExecSuccessRecord, filename),
                    FILENAME_LEN,
                    r.filename_len as usize + 1,
                );
            }
        }
        Ok(RecordKind::Syscall) => {
            if let Ok(r) = read::<SyscallRecord>(raw, "syscall") {
                // Paths keep their NUL.
                clear(
                    std::mem::offset_of!(SyscallRecord, data),
                    DATA_LEN,
                    r.data_len as usize + 1,
                );
            }
        }
        _ => {}
    }
    v
}

pub fn decode(buf: &[u8]) -> Result<Event, DecodeError> {
    let h: Header = read(buf, "header")?;
    let kind = RecordKind::try_from(h.kind).map_err(DecodeError::UnknownKind)?;
    Ok(match kind {
        RecordKind::Fork => {
            let r: ForkRecord = read(buf, "fork")?;
            base(
                &h,
                Body::Fork {
                    child_pid: r.child_pid,
                    clone_flags: r.clone_flags,
                },
            )
        }
        RecordKind::ExecAttempt | RecordKind::ExecAttemptPacked => {
            let r = exec_view(buf, kind)?;
            base(
                &h,
                Body::ExecAttempt {
                    filename: text(r.filename),
                    argv: cstrs(r.args, r.args.len() as u32, r.argc),
                    env: cstrs(r.env, r.env.len() as u32, r.envc),
                    result: None,
                    argv_truncated: r.trunc & EXEC_ARGS_TRUNC != 0,
                    env_truncated: r.trunc & EXEC_ENV_TRUNC != 0,
                    execveat: r.is_execveat != 0,
                },
            )
        }
        RecordKind::ExecSuccess => {
            let r: ExecSuccessRecord = read(buf, "exec")?;
            base(
                &h,
                Body::Exec {
                    filename: cstr(&r.filename, (r.filename_len as usize).min(FILENAME_LEN)),
                    old_tid: r.old_tid,
                    new_root: h.flags & FLAG_NEW_ROOT != 0,
                },
            )
        }
        RecordKind::Exit => {
            let r: ExitRecord = read(buf, "exit")?;
            let status = if r.status_flags & EXIT_HAS_CODE != 0 {
                Some(ExitStatus::code(r.code & 0xff))
            } else if r.status_flags & EXIT_HAS_SIGNAL != 0 {
                Some(ExitStatus::signal(r.signal, false))
            } else {
                None
            };
            base(&h, Body::Exit { status })
        }
        RecordKind::Signal => {
            let r: SignalRecord = read(buf, "signal")?;
            base(
                &h,
                Body::Signal {
                    target_pid: r.target_pid,
                    signal: r.sig,
                    signal_name: signal_name(r.sig),
                    code: r.code,
                    result: r.result,
                },
            )
        }
        RecordKind::Syscall => {
            let r = syscall_view(buf)?;
            let mut ev = base(&h, syscall_body(&r)?);
            ev.dur_ns = (r.enter_ns > 0 && r.enter_ns < h.ts_ns).then(|| h.ts_ns - r.enter_ns);
            ev
        }
    })
}

fn syscall_body(r: &SyscallView) -> Result<Body, DecodeError> {
    let kind = SyscallKind::try_from(r.syscall).map_err(DecodeError::UnknownSyscall)?;
    let data = r.data;
    let result = SysResult::new(r.ret);
    let a = r.args;
    let path = || cstr(data, DATA_LEN);
    use SyscallKind as K;
    Ok(match kind {
        K::Open | K::Openat | K::Openat2 | K::Creat => Body::Open {
            syscall: match kind {
                K::Open => "open",
                K::Openat => "openat",
                K::Openat2 => "openat2",
                _ => "creat",
            },
            dfd: a[0] as i32,
            path: path(),
            flags: a[1],
            mode: a[2],
            result,
        },
        K::Socket => Body::Socket {
            family: a[0],
            family_name: family_name(a[0]),
            sock_type: a[1],
            protocol: a[2],
            result,
        },
        K::Connect => Body::Connect {
            fd: a[0] as i32,
            address: sockaddr(data),
            result,
        },
        K::Getsockopt => Body::Getsockopt {
            fd: a[0] as i32,
            level: a[1] as i64,
            optname: a[2] as i64,
            value: (data.len() >= 4).then(|| i32::from_ne_bytes(data[..4].try_into().unwrap())),
            result,
        },
        K::Chdir => Body::Chdir {
            path: path(),
            result,
        },
        K::Fchdir => Body::Fchdir {
            fd: a[0] as i32,
            result,
        },
        K::Setuid | K::Setgid => Body::SetId {
            syscall: if kind == K::Setuid {
                "setuid"
            } else {
                "setgid"
            },
            ids: vec![a[0] as u32 as i32 as i64],
            result,
        },
        K::Setreuid | K::Setregid => Body::SetId {
            syscall: if kind == K::Setreuid {
                "setreuid"
            } else {
                "setregid"
            },
            ids: vec![a[0] as u32 as i32 as i64, a[1] as u32 as i32 as i64],
            result,
        },
        K::Setresuid | K::Setresgid => Body::SetId {
            syscall: if kind == K::Setresuid {
                "setresuid"
            } else {
                "setresgid"
            },
            ids: a[..3].iter().map(|&v| v as u32 as i32 as i64).collect(),
            result,
        },
        K::Setrlimit | K::Prlimit64 => {
            let (pid, res) = if kind == K::Setrlimit {
                (0, a[0])
            } else {
                (a[0] as i32, a[1])
            };
            let lim = |i: usize| {
                data.get(i * 8..i * 8 + 8)
                    .map(|b| u64::from_ne_bytes(b.try_into().unwrap()))
            };
            Body::Rlimit {
                syscall: if kind == K::Setrlimit {
                    "setrlimit"
                } else {
                    "prlimit64"
                },
                target_pid: pid,
                resource: rlimit_name(res),
                soft: lim(0),
                hard: lim(1),
                result,
            }
        }
        K::Wait4 => Body::Wait {
            waited_for: a[0] as i32,
            status: (a[2] == 1 && data.len() >= 4).then(|| {
                ExitStatus::from_wait_status(i32::from_ne_bytes(data[..4].try_into().unwrap()))
            }),
            result,
        },
        K::ExitGroup => Body::ExitGroup { code: a[0] as i32 },
        K::Stat => Body::Stat {
            path: path(),
            result,
        },
        K::Execve | K::Execveat => Body::ExecResult { result },
        K::FdExhausted => Body::FdExhausted {
            syscall: syscall_name(a[0] as i64),
            nr: a[0] as i64,
            result,
        },
        K::Clone => return Err(DecodeError::UnknownSyscall(r.syscall)),
    })
}

/// `127.0.0.1:5432`, `[::1]:80`, `unix:/run/x.sock`, `unix:@abstract`.
pub fn sockaddr(d: &[u8]) -> String {
    if d.len() < 2 {
        return "?".into();
    }
    let family = u16::from_ne_bytes([d[0], d[1]]);
    match family {
        1 => {
            let p = &d[2..];
            if p.first() == Some(&0) && p.len() > 1 {
                format!("unix:@{}", cstr(&p[1..], p.len() - 1))
            } else {
                format!("unix:{}", cstr(p, p.len()))
            }
        }
        2 if d.len() >= 8 => {
            // By hand: through `Display` this was 1,750 instructions a connect, a
            // fortieth of what a followed workload's records cost the tracer.
            let mut s = String::with_capacity(21);
            for (i, &octet) in d[4..8].iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                push_decimal(&mut s, octet.into());
            }
            s.push(':');
            push_decimal(&mut s, u16::from_be_bytes([d[2], d[3]]));
            s
        }
        10 if d.len() >= 24 => {
            let port = u16::from_be_bytes([d[2], d[3]]);
            let a: [u8; 16] = d[8..24].try_into().unwrap();
            format!("[{}]:{port}", Ipv6Addr::from(a))
        }
        0 => "AF_UNSPEC".into(),
        f => format!("family {f}"),
    }
}

fn push_decimal(s: &mut String, mut v: u16) {
    let mut digits = [0u8; 5];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &c in &digits[at..] {
        s.push(c as char);
    }
}

/// A process found in `/proc` (at start or by a rescan), as an event of the same
/// stream as the kernel's.
pub fn decode_snapshot(p: &ProcInfo, root: bool, ts_ns: u64) -> Event {
    Event {
        ts_ns,
        pid: p.pid,
        tid: p.pid,
        ppid: p.ppid,
        uid: p.uid,
        gid: p.gid,
        comm: p.comm.as_str().into(),
        truncated: false,
        read_fault: false,
        dur_ns: None,
        body: Body::Snapshot {
            root,
            cmdline: p.cmdline.clone(),
            cwd: p.cwd.clone(),
            exe: p.exe.clone(),
            nofile: p.nofile,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::record_bytes;

    #[test]
    fn strings_that_are_not_utf8_keep_their_valid_parts() {
        // A path with a Latin-1 byte, as a job on a misconfigured host may open.
        assert_eq!(cstr(b"/tmp/caf\xe9.txt\0junk", 64), "/tmp/caf\u{FFFD}.txt");
        assert_eq!(cstr(b"/etc/hostname\0", 64), "/etc/hostname");
        assert_eq!(cstr(b"/no/nul/within/max", 7), "/no/nul");
        assert_eq!(comm(b"caf\xe9\0junk\0\0\0\0\0\0\0"), "caf\u{FFFD}");
        assert_eq!(comm(b"0123456789abcdef"), "0123456789abcdef");
        assert_eq!(comm(b"cron\0\0\0\0\0\0\0\0\0\0\0\0"), "cron");
        assert_eq!(
            cstrs(b"ls\0-l\0\xff\0", 8, 3),
            vec!["ls".to_string(), "-l".into(), "\u{FFFD}".into()]
        );
    }

    fn header(kind: RecordKind) -> Header {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"cron");
        Header {
            kind: kind as u32,
            flags: 0,
            ts_ns: 42,
            pid: 10,
            tid: 11,
            ppid: 1,
            uid: 0,
            gid: 0,
            _pad: 0,
            comm,
        }
    }

    #[test]
    fn decodes_a_fork() {
        let r = ForkRecord {
            hdr: header(RecordKind::Fork),
            child_pid: 99,
            _pad: 0,
            clone_flags: 17,
        };
        let e = decode(&record_bytes(&r)).unwrap();
        assert_eq!(e.pid, 10);
        assert_eq!(e.comm, "cron");
        assert_eq!(
            e.body,
            Body::Fork {
                child_pid: 99,
                clone_flags: 17
            }
        );
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        let r = ForkRecord {
            hdr: header(RecordKind::Fork),
            child_pid: 99,
            _pad: 0,
            clone_flags: 0,
        };
        let b = record_bytes(&r);
        assert!(matches!(
            decode(&b[..60]),
            Err(DecodeError::Short { kind: "fork", .. })
        ));
        assert!(matches!(decode(&b[..3]), Err(DecodeError::Short { .. })));
        let mut bad = b.clone();
        bad[0] = 200;
        assert_eq!(decode(&bad), Err(DecodeError::UnknownKind(200)));
    }

    #[test]
    fn decodes_exec_attempt_strings() {
        let mut r: ExecAttemptRecord = unsafe { std::mem::zeroed() };
        r.hdr = header(RecordKind::ExecAttempt);
        r.filename[..7].copy_from_slice(b"/bin/sh");
        let args = b"/bin/sh\0-c\0echo hi\0";
        r.args[..args.len()].copy_from_slice(args);
        r.args_len = args.len() as u32;
        r.argc = 3;
        let env = b"PATH=/usr/bin:/bin\0";
        r.env[..env.len()].copy_from_slice(env);
        r.env_len = env.len() as u32;
        r.envc = 1;
        r.trunc = EXEC_ENV_TRUNC;
        let e = decode(&record_bytes(&r)).unwrap();
        // The same event from an aligned buffer and a misaligned one.
        let bytes = record_bytes(&r);
        let mut room = vec![0u8; bytes.len() + 16];
        let at = room.as_ptr().align_offset(8) + 1;
        room[at..at + bytes.len()].copy_from_slice(&bytes);
        let odd = &room[at..at + bytes.len()];
        assert_eq!(format!("{:?}", decode(odd).unwrap()), format!("{e:?}"));
        assert!(matches!(
            read::<ExecAttemptRecord>(&bytes[..100], "t"),
            Err(DecodeError::Short { .. })
        ));
        assert_eq!(
            decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Short {
                kind: "exec attempt",
                need: bytes.len(),
                got: bytes.len() - 1
            })
        );
        match e.body {
            Body::ExecAttempt {
                filename,
                argv,
                env,
                argv_truncated,
                env_truncated,
                ..
            } => {
                assert_eq!(filename, "/bin/sh");
                assert_eq!(argv, vec!["/bin/sh", "-c", "echo hi"]);
                assert_eq!(env, vec!["PATH=/usr/bin:/bin"]);
                assert!(!argv_truncated);
                assert!(env_truncated);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn decodes_wait_status_and_errno() {
        let mut r: SyscallRecord = unsafe { std::mem::zeroed() };
        r.hdr = header(RecordKind::Syscall);
        r.syscall = SyscallKind::Wait4 as u32;
        r.ret = 1234;
        r.args = [u64::MAX, 0, 1, 0];
        r.data[..4].copy_from_slice(&(3i32 << 8).to_ne_bytes());
        r.data_len = 4;
        let e = decode(&record_bytes(&r)).unwrap();
        assert_eq!(
            e.body,
            Body::Wait {
                waited_for: -1,
                status: Some(ExitStatus::code(3)),
                result: SysResult::new(1234)
            }
        );
        r.syscall = SyscallKind::Openat as u32;
        r.ret = -24;
        r.data[..9].copy_from_slice(b"/etc/x\0\0\0");
        r.data_len = 6;
        match decode(&record_bytes(&r)).unwrap().body {
            Body::Open { path, result, .. } => {
                assert_eq!(path, "/etc/x");
                assert_eq!(result.error, Some("EMFILE"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_syscall_record_cut_after_its_data_reads_as_the_whole_one() {
        let mut r: SyscallRecord = unsafe { std::mem::zeroed() };
        r.hdr = header(RecordKind::Syscall);
        r.syscall = SyscallKind::Openat as u32;
        r.ret = -2;
        r.data[..20].copy_from_slice(b"/etc/x\0STALE-SECRET!");
        r.data_len = 6;
        let whole = record_bytes(&r);
        let sent = &whole[..SYSCALL_FIXED_LEN + 6];
        assert_eq!(decode(sent).unwrap(), decode(&whole).unwrap());
        // The path is whatever the record holds, nothing past it.
        match decode(sent).unwrap().body {
            Body::Open { path, .. } => assert_eq!(path, "/etc/x"),
            other => panic!("{other:?}"),
        }
        // No data at all (exit_group's record).
        r.data_len = 0;
        r.syscall = SyscallKind::ExitGroup as u32;
        r.args[0] = 3;
        let bare = record_bytes(&r);
        assert_eq!(
            decode(&bare[..SYSCALL_FIXED_LEN]).unwrap().body,
            Body::ExitGroup { code: 3 }
        );
        // Shorter than its data_len says, or than the fixed part: damage.
        r.data_len = 6;
        let cut = record_bytes(&r);
        assert_eq!(
            decode(&cut[..SYSCALL_FIXED_LEN + 5]),
            Err(DecodeError::Short {
                kind: "syscall",
                need: SYSCALL_FIXED_LEN + 6,
                got: SYSCALL_FIXED_LEN + 5
            })
        );
        assert!(matches!(
            decode(&cut[..SYSCALL_FIXED_LEN - 1]),
            Err(DecodeError::Short { kind: "syscall", need, .. }) if need == SYSCALL_FIXED_LEN
        ));
        // Copied as sent into a trace file (canonical changes nothing).
        assert_eq!(canonical(sent), sent);
    }

    #[test]
    fn decodes_packed_exec_attempts_sent_up_to_their_used_length() {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut h = header(RecordKind::ExecAttemptPacked);
        h.flags = FLAG_READ_FAULT;
        let sent = pack_exec_attempt(
            &h,
            EXEC_ENV_TRUNC,
            1,
            b"/bin/sh",
            &strings(&["/bin/sh", "-c", "echo hi"]),
            &strings(&["PATH=/usr/bin:/bin", ""]),
        );
        // 88 + "/bin/sh\0" + the argv's 19 bytes + the env's 20.
        assert_eq!(sent.len(), EXEC_PACKED_FIXED_LEN + 8 + 19 + 20);
        let e = decode(&sent).unwrap();
        assert_eq!((e.pid, e.tid, e.ts_ns, &*e.comm), (10, 11, 42, "cron"));
        // The layout's cut flag is the header's too; a fault stays a fault.
        assert!(e.truncated && e.read_fault);
        match &e.body {
            Body::ExecAttempt {
                filename,
                argv,
                env,
                argv_truncated,
                env_truncated,
                execveat,
                ..
            } => {
                assert_eq!(filename, "/bin/sh");
                assert_eq!(argv, &vec!["/bin/sh", "-c", "echo hi"]);
                assert_eq!(env, &vec!["PATH=/usr/bin:/bin", ""]);
                assert!(!argv_truncated && *env_truncated && *execveat);
            }
            other => panic!("{other:?}"),
        }
        // The same event whether the record lies aligned or not.
        let mut room = vec![0u8; sent.len() + 1];
        room[1..].copy_from_slice(&sent);
        assert_eq!(decode(&room[1..]).unwrap(), e);
        // A record shorter than its lengths say is damaged; a longer one (a trace
        // file's whole record) decodes the same, and keeps only its used bytes there.
        assert_eq!(
            decode(&sent[..sent.len() - 1]),
            Err(DecodeError::Short {
                kind: "exec attempt",
                need: sent.len(),
                got: sent.len() - 1
            })
        );
        assert!(matches!(
            decode(&sent[..EXEC_PACKED_FIXED_LEN - 1]),
            Err(DecodeError::Short { kind: "exec attempt", need, .. }) if need == EXEC_PACKED_FIXED_LEN
        ));
        let mut long = sent.clone();
        long.extend_from_slice(b"STALE-SECRET");
        assert_eq!(decode(&long).unwrap(), e);
        assert_eq!(canonical(&long), sent);
        assert_eq!(canonical(&sent), sent);
        // Lengths past their field's room are read as the room, not trusted.
        let mut huge = sent.clone();
        let at = offset_of!(ExecAttemptPacked, env_len);
        huge[at..at + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(matches!(
            decode(&huge),
            Err(DecodeError::Short { need, .. }) if need == EXEC_PACKED_FIXED_LEN + 8 + 19 + ENV_LEN
        ));
        // An empty name (the kernel could not read it) and no strings.
        let bare = pack_exec_attempt(&h, 0, 0, b"", &[], &[]);
        let at = offset_of!(ExecAttemptPacked, filename_len);
        let mut unread = bare.clone();
        unread[at..at + 4].copy_from_slice(&0u32.to_ne_bytes());
        unread.pop();
        for b in [&bare, &unread] {
            match decode(b).unwrap().body {
                Body::ExecAttempt {
                    filename,
                    argv,
                    env,
                    ..
                } => {
                    assert_eq!((filename.as_str(), argv.len(), env.len()), ("", 0, 0))
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn packing_an_exec_attempt_keeps_what_fits_and_flags_the_rest() {
        let h = header(RecordKind::ExecAttemptPacked);
        let body = |b: &[u8]| match decode(b).unwrap().body {
            Body::ExecAttempt {
                filename,
                argv,
                argv_truncated,
                ..
            } => (filename, argv, argv_truncated),
            other => panic!("{other:?}"),
        };
        // A name longer than the field keeps its first 255 bytes and its NUL.
        let long = vec![b'n'; FILENAME_LEN + 10];
        let (name, _, _) = body(&pack_exec_attempt(&h, 0, 0, &long, &[], &[]));
        assert_eq!(name.len(), FILENAME_LEN - 1);
        // A string that fills the room to its last byte, NUL included, is kept; one
        // byte more and it is dropped and flagged.
        let fits = "a".repeat(ARGS_LEN - 1);
        let (_, argv, cut) = body(&pack_exec_attempt(
            &h,
            0,
            0,
            b"x",
            std::slice::from_ref(&fits),
            &[],
        ));
        assert_eq!((argv, cut), (vec![fits], false));
        let over = "a".repeat(ARGS_LEN);
        let (_, argv, cut) = body(&pack_exec_attempt(&h, 0, 0, b"x", &[over], &[]));
        assert_eq!((argv.len(), cut), (0, true));
    }

    #[test]
    fn canonical_whole_exec_attempts_keep_every_field_and_lose_stale_bytes() {
        let mut r: ExecAttemptRecord = unsafe { std::mem::zeroed() };
        r.hdr = header(RecordKind::ExecAttempt);
        let name = b"/bin/sh\0STALE-NAME!";
        r.filename[..name.len()].copy_from_slice(name);
        let args = b"sh\0-c\0STALE-ARG";
        r.args[..args.len()].copy_from_slice(args);
        r.args_len = 6;
        r.argc = 2;
        let env = b"A=1\0STALE-ENV!";
        r.env[..env.len()].copy_from_slice(env);
        r.env_len = 4;
        r.envc = 1;
        let raw = record_bytes(&r);
        let c = canonical(&raw);
        assert_eq!(c.len(), raw.len());
        assert!(!c.windows(5).any(|w| w == b"STALE"));
        assert_eq!(decode(&c).unwrap(), decode(&raw).unwrap());
        // And the image a process became.
        let mut x: ExecSuccessRecord = unsafe { std::mem::zeroed() };
        x.hdr = header(RecordKind::ExecSuccess);
        x.filename[..name.len()].copy_from_slice(name);
        x.filename_len = 7;
        let raw = record_bytes(&x);
        let c = canonical(&raw);
        assert!(!c.windows(5).any(|w| w == b"STALE"));
        assert_eq!(decode(&c).unwrap(), decode(&raw).unwrap());
    }

    #[test]
    fn canonical_records_carry_no_stale_bytes() {
        let mut r: SyscallRecord = unsafe { std::mem::zeroed() };
        r.hdr = header(RecordKind::Syscall);
        r.syscall = SyscallKind::Openat as u32;
        r.data[..20].copy_from_slice(b"/etc/x\0STALE-SECRET!");
        r.data_len = 6;
        let c = canonical(&record_bytes(&r));
        assert!(!c.windows(5).any(|w| w == b"STALE"));
        assert_eq!(decode(&c).unwrap(), decode(&record_bytes(&r)).unwrap());
        assert_eq!(canonical(&[1, 2, 3]), vec![1, 2, 3]);
    }

    #[test]
    fn formats_socket_addresses() {
        let mut v4 = vec![2, 0, 0x1f, 0x90, 127, 0, 0, 1];
        v4.extend([0u8; 8]);
        assert_eq!(sockaddr(&v4), "127.0.0.1:8080");
        let v4 = [2, 0, 0xff, 0xff, 255, 10, 0, 199, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(sockaddr(&v4), "255.10.0.199:65535");
        assert_eq!(sockaddr(&[2, 0, 0, 0, 0, 0, 0, 0]), "0.0.0.0:0");
        let mut v6 = vec![10, 0, 0, 80, 0, 0, 0, 0];
        let mut a = [0u8; 16];
        a[15] = 1;
        v6.extend(a);
        assert_eq!(sockaddr(&v6), "[::1]:80");
        assert_eq!(sockaddr(b"\x01\x00/run/x.sock\0"), "unix:/run/x.sock");
        assert_eq!(sockaddr(b"\x01\x00\0abs"), "unix:@abs");
        assert_eq!(sockaddr(&[1]), "?");
        // Too short for its family's address: named by the family alone.
        assert_eq!(sockaddr(&[2, 0]), "family 2");
        assert_eq!(sockaddr(&[2, 0, 0, 80, 127, 0, 0]), "family 2");
        assert_eq!(sockaddr(&[10, 0, 0, 80, 0, 0, 0, 0, 0]), "family 10");
        // An abstract name needs a byte after its NUL.
        assert_eq!(sockaddr(b"\x01\x00\0"), "unix:");
    }

    #[test]
    fn wait_status_words() {
        assert_eq!(ExitStatus::from_wait_status(0), ExitStatus::code(0));
        assert_eq!(
            ExitStatus::from_wait_status(9),
            ExitStatus::signal(9, false)
        );
        assert_eq!(
            ExitStatus::from_wait_status(11 | 0x80),
            ExitStatus::signal(11, true)
        );
    }
}
