//! Redaction of secrets before events reach the screen or a file.
//!
//! Env values whose names look secret are replaced; so are the values of
//! `--password=...`-style arguments. `--capture-secrets` turns this off.
use std::mem::size_of;

use tracer_common::{
    ExecAttemptRecord, RecordKind, EXEC_ARGS_TRUNC, EXEC_ENV_TRUNC, FLAG_TRUNCATED,
};

use crate::model::decode::cstrs;

pub const REDACTED: &str = "<redacted>";

const SECRET_WORDS: [&str; 8] = [
    "PASS",
    "SECRET",
    "TOKEN",
    "KEY",
    "CREDENTIAL",
    "AUTH",
    "PRIVATE",
    "COOKIE",
];

/// Whether a variable or option name looks like it holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w))
}

fn redact_assignment(s: &str) -> Option<String> {
    let (name, value) = s.split_once('=')?;
    (is_secret_name(name) && !value.is_empty()).then(|| format!("{name}={REDACTED}"))
}

fn redact_env(env: &mut [String]) -> bool {
    let mut changed = false;
    for v in env.iter_mut() {
        if let Some(r) = redact_assignment(v) {
            *v = r;
            changed = true;
        }
    }
    changed
}

/// `--password=x`, `--api-key=x`; the value of `--password x` is left alone because
/// we cannot tell it from a positional argument.
pub fn redact_argv(argv: &mut [String]) -> bool {
    let mut changed = false;
    for a in argv.iter_mut() {
        let r = if a.contains(char::is_whitespace) {
            // A command line inside one argument (`sh -c "..."`).
            redact_words(a)
        } else if a.starts_with('-') {
            redact_assignment(a)
        } else {
            None
        };
        if let Some(r) = r {
            *a = r;
            changed = true;
        }
    }
    changed
}

/// In a shell command line: `--password=x`, `-p=x` and `DB_PASSWORD=x cmd` words.
pub fn redact_words(line: &str) -> Option<String> {
    let mut changed = false;
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while !rest.is_empty() {
        let ws = rest.len() - rest.trim_start().len();
        out.push_str(&rest[..ws]);
        rest = &rest[ws..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        let bare = word.trim_start_matches('-');
        let is_assignment = bare.split_once('=').is_some_and(|(n, _)| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
        match is_assignment.then(|| redact_assignment(word)).flatten() {
            Some(r) => {
                out.push_str(&r);
                changed = true;
            }
            None => out.push_str(word),
        }
        rest = &rest[end..];
    }
    changed.then_some(out)
}

/// `NAME=value` lines of a crontab whose name looks secret, and secret-looking words
/// of its commands. Line ends (LF, CRLF, none on the last line) are kept exactly: the
/// daemons' rules depend on them.
pub fn redact_crontab(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for raw in text.split_inclusive('\n') {
        let body = raw.trim_end_matches('\n');
        let body = body.strip_suffix('\r').unwrap_or(body);
        let ending = &raw[body.len()..];
        let t = body.trim_start();
        let is_env = !t.starts_with('#')
            && t.split_once('=').is_some_and(|(n, _)| {
                let n = n.trim();
                !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        let redacted = if t.starts_with('#') {
            None
        } else if is_env {
            redact_assignment(t)
        } else {
            redact_words(body)
        };
        out.push_str(redacted.as_deref().unwrap_or(body));
        out.push_str(ending);
    }
    out
}

/// Strings packed NUL-terminated into `buf`; strings that do not fit are dropped.
/// Returns (bytes used, strings kept, whether some were dropped).
fn pack(strings: &[String], buf: &mut [u8]) -> (u32, u32, bool) {
    let mut off = 0;
    let mut n = 0;
    for s in strings {
        let b = s.as_bytes();
        if off + b.len() + 1 > buf.len() {
            buf[off..].fill(0);
            return (off as u32, n, true);
        }
        buf[off..off + b.len()].copy_from_slice(b);
        buf[off + b.len()] = 0;
        off += b.len() + 1;
        n += 1;
    }
    // Nothing of the longer original may survive past the new end.
    buf[off..].fill(0);
    (off as u32, n, false)
}

/// Redact a raw kernel record before it is decoded or written to a file, so the
/// screen, the JSON and the trace file all see the same redacted record.
/// Returns the rewritten record when something was redacted.
pub fn redact_record(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() < size_of::<ExecAttemptRecord>()
        || u32::from_ne_bytes(raw[..4].try_into().ok()?) != RecordKind::ExecAttempt as u32
    {
        return None;
    }
    // SAFETY: length checked; the record is plain integers and byte arrays.
    let mut r: ExecAttemptRecord = unsafe { std::ptr::read_unaligned(raw.as_ptr().cast()) };
    let mut argv = cstrs(&r.args, r.args_len, r.argc);
    let mut env = cstrs(&r.env, r.env_len, r.envc);
    let a = redact_argv(&mut argv);
    let e = redact_env(&mut env);
    if !a && !e {
        return None;
    }
    let (len, n, cut) = pack(&argv, &mut r.args);
    (r.args_len, r.argc) = (len, n);
    if cut {
        r.trunc |= EXEC_ARGS_TRUNC;
    }
    let (len, n, cut) = pack(&env, &mut r.env);
    (r.env_len, r.envc) = (len, n);
    if cut {
        r.trunc |= EXEC_ENV_TRUNC;
    }
    if r.trunc != 0 {
        r.hdr.flags |= FLAG_TRUNCATED;
    }
    let mut out = raw.to_vec();
    // SAFETY: out is at least size_of::<ExecAttemptRecord>() bytes.
    unsafe { std::ptr::write_unaligned(out.as_mut_ptr().cast(), r) };
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::event::Body, testutil::record_bytes};

    #[test]
    fn secret_env_values_are_redacted_and_others_kept() {
        let mut env = vec![
            "PATH=/usr/bin:/bin".to_string(),
            "DB_PASSWORD=hunter2".to_string(),
            "GITHUB_TOKEN=abc".to_string(),
            "aws_secret_access_key=x".to_string(),
            "HOME=/root".to_string(),
            "EMPTY_TOKEN=".to_string(),
        ];
        redact_env(&mut env);
        assert_eq!(
            env,
            vec![
                "PATH=/usr/bin:/bin",
                "DB_PASSWORD=<redacted>",
                "GITHUB_TOKEN=<redacted>",
                "aws_secret_access_key=<redacted>",
                "HOME=/root",
                "EMPTY_TOKEN=",
            ]
        );
    }

    #[test]
    fn raw_exec_records_are_redacted_in_place() {
        let mut r: ExecAttemptRecord = unsafe { std::mem::zeroed() };
        r.hdr.kind = RecordKind::ExecAttempt as u32;
        let env = b"PATH=/bin\0API_TOKEN=s3cr3t\0";
        r.env[..env.len()].copy_from_slice(env);
        r.env_len = env.len() as u32;
        r.envc = 2;
        let args = b"curl\0--password=hunter2\0";
        r.args[..args.len()].copy_from_slice(args);
        r.args_len = args.len() as u32;
        r.argc = 2;
        let raw = &record_bytes(&r)[..];
        let out = redact_record(raw).expect("redacted");
        assert!(!out.windows(6).any(|w| w == b"s3cr3t"));
        assert!(!out.windows(7).any(|w| w == b"hunter2"));
        match crate::model::decode::decode(&out).unwrap().body {
            Body::ExecAttempt { argv, env, .. } => {
                assert_eq!(env, vec!["PATH=/bin", "API_TOKEN=<redacted>"]);
                assert_eq!(argv, vec!["curl", "--password=<redacted>"]);
            }
            other => panic!("{other:?}"),
        }
        // Nothing secret: no copy.
        r.envc = 1;
        r.env_len = 10;
        r.argc = 1;
        r.args_len = 5;
        let raw = &record_bytes(&r)[..];
        assert!(redact_record(raw).is_none());
    }

    #[test]
    fn secrets_inside_shell_command_strings_are_redacted() {
        let mut argv = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            "PGPASSWORD=hunter2 pg_dump --password=s3cr3tvalue-long-enough db  > /x".to_string(),
        ];
        assert!(redact_argv(&mut argv));
        assert_eq!(
            argv[2],
            "PGPASSWORD=<redacted> pg_dump --password=<redacted> db  > /x"
        );
        assert_eq!(
            redact_crontab("0 * * * * mysqldump --password=hunter2 db\n"),
            "0 * * * * mysqldump --password=<redacted> db\n"
        );
    }

    #[test]
    fn a_long_secret_leaves_no_tail_in_the_record() {
        let mut r: ExecAttemptRecord = unsafe { std::mem::zeroed() };
        r.hdr.kind = RecordKind::ExecAttempt as u32;
        let env = b"A=1\0API_TOKEN=abcdefghijklmnopqrstuvwxyz\0";
        r.env[..env.len()].copy_from_slice(env);
        r.env_len = env.len() as u32;
        r.envc = 2;
        let raw = &record_bytes(&r)[..];
        let out = redact_record(raw).unwrap();
        assert!(
            !out.windows(5).any(|w| w == b"uvwxy"),
            "tail of the secret left behind"
        );
    }

    #[test]
    fn crontab_redaction_keeps_line_ends_and_a_missing_final_newline() {
        let t = "A_TOKEN=abc\r\n* * * * * x --password=p\n0 1 * * * y";
        assert_eq!(
            redact_crontab(t),
            "A_TOKEN=<redacted>\r\n* * * * * x --password=<redacted>\n0 1 * * * y"
        );
        assert_eq!(redact_crontab("plain\n\n"), "plain\n\n");
    }

    #[test]
    fn crontab_env_lines_are_redacted() {
        let t = "SHELL=/bin/sh\nDB_PASSWORD=hunter2\n# API_KEY=x in a comment stays\n* * * * * echo TOKEN=x\n";
        assert_eq!(
            redact_crontab(t),
            "SHELL=/bin/sh\nDB_PASSWORD=<redacted>\n# API_KEY=x in a comment stays\n* * * * * echo TOKEN=<redacted>\n"
        );
    }

    #[test]
    fn option_style_secrets_in_argv_are_redacted() {
        let mut argv = vec![
            "mysqldump".to_string(),
            "--password=hunter2".to_string(),
            "--user=root".to_string(),
            "PASSWORD=notanoption".to_string(),
        ];
        redact_argv(&mut argv);
        assert_eq!(
            argv,
            vec![
                "mysqldump",
                "--password=<redacted>",
                "--user=root",
                "PASSWORD=notanoption"
            ]
        );
    }
}
