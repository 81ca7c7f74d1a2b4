//! Redaction of secrets before events reach the screen, the JSON or a file: exec
//! records (argv, env), argv of processes found in `/proc`, crontab copies and the
//! host facts kept in a trace. Where secrets sit is a table of rules (`rules`); the
//! words of shell lines come from `shell`. `--capture-secrets` turns all of it off.
mod rules;
mod shell;

use std::ops::Range;

use tracer_common::{Header, RecordKind};

use crate::model::decode::{cstrs, exec_view, pack_exec_attempt};

pub const REDACTED: &str = "<redacted>";

pub use rules::{is_secret_name, Counts, RULES};

/// Replace `ranges` of `text` by the marker (argv and env: no shell quoting).
fn replace_plain(text: &str, ranges: &[Range<usize>]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in ranges {
        if r.start < at || r.end > text.len() {
            continue;
        }
        out.push_str(&text[at..r.start]);
        out.push_str(REDACTED);
        at = r.end;
    }
    out.push_str(&text[at..]);
    out
}

fn count(counts: &mut Counts, hits: &[(&'static str, Range<usize>)]) {
    for (id, _) in hits {
        *counts.entry(id).or_default() += 1;
    }
}

/// Secret-looking env values, and passwords of URLs in any value.
pub fn redact_env(env: &mut [String], counts: &mut Counts) -> bool {
    let mut changed = false;
    for v in env.iter_mut() {
        let hits = rules::env_secret_ranges(v);
        if !hits.is_empty() {
            count(counts, &hits);
            let ranges: Vec<Range<usize>> = hits.into_iter().map(|(_, r)| r).collect();
            *v = replace_plain(v, &ranges);
            changed = true;
        }
    }
    changed
}

/// An argv: each word by the rules (with the word before it and the tool it runs as
/// context); a word that is a command line itself (`sh -c "..."`) as a shell line.
pub fn redact_argv(argv: &mut [String], counts: &mut Counts) -> bool {
    let mut changed = false;
    let mut tool: Option<&'static str> = None;
    for i in 0..argv.len() {
        let prev = i.checked_sub(1).map(|j| argv[j].clone());
        // `sh -c "..."`, `bash -lc "..."`, `su -c "..."`: the word is a command line.
        let after_c = prev
            .as_deref()
            .is_some_and(|p| p.starts_with('-') && !p.starts_with("--") && p.ends_with('c'));
        if after_c {
            if let Some(r) = redact_line(&argv[i], counts) {
                argv[i] = r;
                changed = true;
            }
            continue;
        }
        let hits = whole_word_hits(&argv[i], prev.as_deref(), tool);
        if !hits.is_empty() {
            count(counts, &hits);
            let ranges: Vec<Range<usize>> = hits.into_iter().map(|(_, r)| r).collect();
            argv[i] = replace_plain(&argv[i], &ranges);
            changed = true;
        } else if argv[i].contains(char::is_whitespace) {
            // One argument holding several words (`psql "host=h password=x"`).
            if let Some(r) = redact_inner(&argv[i], counts) {
                argv[i] = r;
                changed = true;
            }
        }
        if let Some(t) = rules::known_tool(&argv[i]) {
            tool = Some(t);
        }
    }
    changed
}

/// A shell command line: every word by the rules, replaced where it stands. A secret
/// wholly inside quotes becomes `<redacted>` there; elsewhere `'<redacted>'`, so the
/// line still parses as the same words (the marker is no redirection).
pub fn redact_line(line: &str, counts: &mut Counts) -> Option<String> {
    let words = shell::words(line);
    let mut out = String::with_capacity(line.len());
    let mut at = 0;
    let mut tool: Option<&'static str> = None;
    let mut prev: Option<String> = None;
    for w in &words {
        if w.starts_command {
            tool = None;
            prev = None;
        }
        let hits = whole_word_hits(&w.text, prev.as_deref(), tool);
        if !hits.is_empty() {
            count(counts, &hits);
            out.push_str(&line[at..w.start]);
            out.push_str(&rewrite_word(line, w, &hits));
            at = w.end;
        } else if w.text.contains(char::is_whitespace) {
            // A quoted word holding words (`psql "host=h password=x"`).
            if let Some(inner) = redact_inner(&w.text, counts) {
                out.push_str(&line[at..w.start]);
                out.push_str(&shell::quote(&inner));
                at = w.end;
            }
        }
        if let Some(t) = rules::known_tool(&w.text) {
            tool = Some(t);
        }
        // A word that held a secret names no option for the next one.
        prev = hits.is_empty().then(|| w.text.clone());
    }
    if at == 0 {
        return None;
    }
    out.push_str(&line[at..]);
    Some(out)
}

/// The secrets of `word`. A word holding words (`ssh h "mysql -pX && curl
/// https://h/?token=Y"`) whose whole gives only URL parts gets its words' secrets
/// too: a URL hit alone would keep it from the word-by-word pass. The URL parts are
/// still taken from the whole, where `;` and `&` do not cut them.
fn whole_word_hits(
    word: &str,
    prev: Option<&str>,
    tool: Option<&'static str>,
) -> Vec<(&'static str, Range<usize>)> {
    let mut hits = rules::secret_ranges(word, prev, tool);
    if hits.is_empty()
        || !word.contains(char::is_whitespace)
        || !hits.iter().all(|(id, _)| rules::is_url_rule(id))
    {
        return hits;
    }
    hits.extend(inner_hits(word));
    rules::merge(hits)
}

/// The secrets of the words inside one word, in its coordinates.
fn inner_hits(text: &str) -> Vec<(&'static str, Range<usize>)> {
    let mut out = Vec::new();
    let mut prev: Option<String> = None;
    let mut tool: Option<&'static str> = None;
    for w in shell::words(text) {
        let hits = rules::secret_ranges(&w.text, prev.as_deref(), tool);
        let held = !hits.is_empty();
        for (id, r) in hits {
            if r.is_empty() || r.end > w.map.len() {
                continue;
            }
            out.push((id, w.map[r.start].0..w.map[r.end - 1].0 + 1));
        }
        if let Some(t) = rules::known_tool(&w.text) {
            tool = Some(t);
        }
        prev = (!held).then_some(w.text);
    }
    out.retain(|(_, r)| text.is_char_boundary(r.start) && text.is_char_boundary(r.end));
    out
}

/// The words inside one word, each by the rules, with the plain marker (no quoting:
/// the caller quotes the whole word again if it must).
fn redact_inner(text: &str, counts: &mut Counts) -> Option<String> {
    let hits = inner_hits(text);
    count(counts, &hits);
    let ranges: Vec<Range<usize>> = hits.into_iter().map(|(_, r)| r).collect();
    (!ranges.is_empty()).then(|| replace_plain(text, &ranges))
}

/// The word with its secret parts replaced, in place where the part is one plain or
/// one quoted stretch of the line, else the whole word requoted.
fn rewrite_word(line: &str, w: &shell::Word, hits: &[(&'static str, Range<usize>)]) -> String {
    let mut pieces: Vec<(Range<usize>, &str)> = Vec::new();
    for (_, r) in hits {
        if r.is_empty() || r.end > w.map.len() {
            continue;
        }
        let (mut first, q0) = w.map[r.start];
        // `map` is per byte: the last byte of the secret ends its last character.
        let (last, q1) = w.map[r.end - 1];
        let last_end = last + 1;
        // A backslash that escaped the first character goes with it, else it would
        // escape the quote of the marker.
        if !q0 && first > w.start && line.as_bytes()[first - 1] == b'\\' {
            first -= 1;
        }
        if !line.is_char_boundary(first) || !line.is_char_boundary(last_end) {
            let ranges: Vec<Range<usize>> = hits.iter().map(|(_, r)| r.clone()).collect();
            return shell::quote(&replace_plain(&w.text, &ranges));
        }
        let span = &line[first..last_end];
        // Escapes inside the secret go with it; quotes would change the word.
        let one_stretch = !span.contains(['\'', '"']);
        let all_quoted = w.map[r.clone()].iter().all(|(_, q)| *q);
        let none_quoted = w.map[r.clone()].iter().all(|(_, q)| !*q);
        if !one_stretch || !(all_quoted || none_quoted) || q0 != q1 {
            // Mixed quoting: give up on in-place and requote the whole word.
            let ranges: Vec<Range<usize>> = hits.iter().map(|(_, r)| r.clone()).collect();
            return shell::quote(&replace_plain(&w.text, &ranges));
        }
        pieces.push((
            first..last_end,
            if all_quoted { REDACTED } else { "'<redacted>'" },
        ));
    }
    let mut out = String::new();
    let mut at = w.start;
    for (r, marker) in pieces {
        if r.start < at {
            continue;
        }
        out.push_str(&line[at..r.start]);
        out.push_str(marker);
        at = r.end;
    }
    out.push_str(&line[at..w.end]);
    out
}

/// A crontab: env lines (`NAME=value`) by the env rules, commands and comments as shell
/// lines. Line ends (LF, CRLF, none on the last line) are kept exactly: the daemons'
/// rules depend on them.
pub fn redact_crontab(text: &str, has_user: bool, counts: &mut Counts) -> String {
    redact_table(text, counts, |l| command_start(l, has_user))
}

/// An anacrontab: env lines as in a crontab; a job line's command follows its period,
/// delay and job identifier.
pub fn redact_anacrontab(text: &str, counts: &mut Counts) -> String {
    redact_table(text, counts, |l| start_after_fields(l, 3))
}

/// A script (an at job): its `NAME=value; export NAME` lines by the env rules, every
/// other line as a shell line.
pub fn redact_script(text: &str, counts: &mut Counts) -> String {
    redact_table(text, counts, |_| 0)
}

/// A systemd unit file: every value (`ExecStart=`, `Environment=A=1 "B=2"`...) as a
/// shell line, so assignments, tool options and URL passwords are caught where they
/// stand; keys, sections and line ends are kept.
pub fn redact_unit(text: &str, counts: &mut Counts) -> String {
    let mut out = String::with_capacity(text.len());
    for raw in text.split_inclusive('\n') {
        let body = raw.trim_end_matches('\n');
        let redacted = match body.split_once('=') {
            Some((key, value)) if !body.trim_start().starts_with(['#', ';', '[']) => {
                redact_line(value, counts).map(|v| format!("{key}={v}"))
            }
            _ => redact_line(body, counts).filter(|_| body.trim_start().starts_with(['#', ';'])),
        };
        out.push_str(redacted.as_deref().unwrap_or(body));
        out.push_str(&raw[body.len()..]);
    }
    out
}

/// Lines of a scheduler's table: env lines (`NAME=value`) by the env rules, comments as
/// shell lines, and each entry's command (from `command_start`) as a shell line.
fn redact_table(text: &str, counts: &mut Counts, command_start: impl Fn(&str) -> usize) -> String {
    let mut out = String::with_capacity(text.len());
    for raw in text.split_inclusive('\n') {
        let body = raw.trim_end_matches('\n');
        let body = body.strip_suffix('\r').unwrap_or(body);
        let ending = &raw[body.len()..];
        let t = body.trim_start();
        let env_name = (!t.starts_with('#'))
            .then(|| t.split_once('='))
            .flatten()
            .map(|(n, _)| n.trim())
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        let redacted = match env_name {
            Some(name) => {
                let eq = body.find('=').unwrap_or(0);
                let value = &body[eq + 1..];
                let hits = if is_secret_name(name) && !value.trim().is_empty() {
                    vec![("secret_env", eq + 1..body.len())]
                } else {
                    rules::url_secrets(value)
                        .into_iter()
                        .map(|(id, r)| (id, eq + 1 + r.start..eq + 1 + r.end))
                        .collect()
                };
                count(counts, &hits);
                let ranges: Vec<Range<usize>> = hits.into_iter().map(|(_, r)| r).collect();
                (!ranges.is_empty()).then(|| replace_plain(body, &ranges))
            }
            None if t.starts_with('#') => redact_line(body, counts),
            // An entry: only its command is a shell line, redacted as the `sh -c` string
            // cron will run (the schedule and user fields must not lend it a context).
            None => {
                let at = command_start(body);
                redact_line(&body[at..], counts).map(|c| format!("{}{c}", &body[..at]))
            }
        };
        out.push_str(redacted.as_deref().unwrap_or(body));
        out.push_str(ending);
    }
    out
}

/// Where an entry's command starts: after five time fields (or one `@` macro) and,
/// in system crontabs, the user field. A line too short keeps nothing back.
fn command_start(line: &str, has_user: bool) -> usize {
    let t = line.trim_start();
    let fields = if t.starts_with('@') { 1 } else { 5 } + usize::from(has_user);
    start_after_fields(line, fields)
}

/// Where the text after `fields` blank-separated fields starts (0 if there are fewer).
fn start_after_fields(line: &str, fields: usize) -> usize {
    let t = line.trim_start();
    let mut at = line.len() - t.len();
    for _ in 0..fields {
        let rest = &line[at..];
        let Some(end) = rest.find(char::is_whitespace) else {
            return 0;
        };
        let after = &rest[end..];
        at += end + (after.len() - after.trim_start().len());
    }
    at
}

/// A script's `#!` line as the trace keeps it (`#!/usr/bin/env TOKEN=x python`).
pub fn redact_shebang(line: &str, counts: &mut Counts) -> String {
    redact_line(line, counts).unwrap_or_else(|| line.to_string())
}

/// Redact a raw kernel record before it is decoded or written to a file, so the
/// screen, the JSON and the trace file all see the same redacted record.
/// Returns the rewritten record when something was redacted: an exec attempt of
/// either layout comes back packed (`ExecAttemptPacked`), the layout the kernel sends.
pub fn redact_record(raw: &[u8], counts: &mut Counts) -> Option<Vec<u8>> {
    let kind = RecordKind::try_from(u32::from_ne_bytes(raw.get(..4)?.try_into().ok()?)).ok()?;
    if kind != RecordKind::ExecAttempt && kind != RecordKind::ExecAttemptPacked {
        return None;
    }
    let seen = exec_view(raw, kind).ok()?;
    let mut argv = cstrs(seen.args, seen.args.len() as u32, seen.argc);
    let mut env = cstrs(seen.env, seen.env.len() as u32, seen.envc);
    let a = redact_argv(&mut argv, counts);
    let e = redact_env(&mut env, counts);
    if !a && !e {
        return None;
    }
    let hdr: Header = crate::model::decode::read(raw, "header").ok()?;
    Some(pack_exec_attempt(
        &hdr,
        seen.trunc,
        seen.is_execveat,
        seen.filename,
        &argv,
        &env,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::event::Body, testutil::record_bytes};
    use tracer_common::ExecAttemptRecord;

    #[test]
    fn secret_names_are_told_in_any_case_and_the_working_directory_is_not_one() {
        for name in [
            "AWS_SECRET_ACCESS_KEY",
            "db_password",
            "api_Token",
            "MYSQL_PWD",
            "mysql_pwd",
            "GITHUB_PASSWD",
            "session",
            "x_webhook_url",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "PATH", "HOME", "PWD", "OLDPWD", "LOGNAME", "SHELL", "clé", "", "_PW",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    fn line(l: &str) -> String {
        redact_line(l, &mut Counts::new()).unwrap_or_else(|| l.to_string())
    }

    fn argv(words: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        redact_argv(&mut v, &mut Counts::new());
        v
    }

    /// One test per row of the rules table: its example as a shell line. `<R>` is the
    /// marker, quoted where it stands outside quotes.
    #[test]
    fn every_rule_redacts_its_example() {
        for r in RULES {
            let got = line(r.example);
            let want_plain = r.redacted.replace("<R>", "'<redacted>'");
            let want_in_quotes = r.redacted.replace("<R>", "<redacted>");
            let mut counts = Counts::new();
            redact_line(r.example, &mut counts);
            if r.id != "secret_env" {
                assert!(
                    counts.get(r.id).copied().unwrap_or(0) > 0,
                    "{}: rule not counted: {counts:?}",
                    r.id
                );
            }
            assert!(
                got == want_plain || got == want_in_quotes || same_words(&got, r.redacted),
                "{}: {:?}\n  got  {got:?}\n  want {want_plain:?}",
                r.id,
                r.example
            );
            // No byte of any secret is left.
            for secret in [
                "hunter2", "s3cr3t", "abc'", "pw2", "ghp_0123", ":pw@", "k1 ", "a b",
            ] {
                if r.example.contains(secret) {
                    assert!(
                        !got.contains(secret),
                        "{}: {secret:?} left in {got:?}",
                        r.id
                    );
                }
            }
        }
    }

    /// Compare word by word, so quoting styles of the marker do not matter.
    fn same_words(got: &str, want: &str) -> bool {
        let g: Vec<String> = shell::words(got).into_iter().map(|w| w.text).collect();
        let w: Vec<String> = shell::words(&want.replace("<R>", "<redacted>"))
            .into_iter()
            .map(|w| w.text)
            .collect();
        g == w
    }

    #[test]
    fn secret_env_values_are_redacted_and_others_kept() {
        let mut env = vec![
            "PATH=/usr/bin:/bin".to_string(),
            "DB_PASSWORD=hunter2".to_string(),
            "GITHUB_TOKEN=abc".to_string(),
            "aws_secret_access_key=x".to_string(),
            "MYSQL_PWD=x".to_string(),
            "PWD=/root".to_string(),
            "DATABASE_URL=postgres://app:pw@db/x".to_string(),
            "SLACK_WEBHOOK=https://hooks/x".to_string(),
            "HOME=/root".to_string(),
            "EMPTY_TOKEN=".to_string(),
        ];
        let mut c = Counts::new();
        redact_env(&mut env, &mut c);
        assert_eq!(
            env,
            vec![
                "PATH=/usr/bin:/bin",
                "DB_PASSWORD=<redacted>",
                "GITHUB_TOKEN=<redacted>",
                "aws_secret_access_key=<redacted>",
                "MYSQL_PWD=<redacted>",
                "PWD=/root",
                "DATABASE_URL=postgres://app:<redacted>@db/x",
                "SLACK_WEBHOOK=<redacted>",
                "HOME=/root",
                "EMPTY_TOKEN=",
            ]
        );
        assert_eq!(c.get("secret_env"), Some(&5));
        assert_eq!(c.get("url_userinfo"), Some(&1));
    }

    #[test]
    fn argv_words_in_every_shape() {
        assert_eq!(
            argv(&[
                "mysqldump",
                "-phunter2",
                "--password",
                "s3cr3t",
                "PGPASSWORD=x",
                "db"
            ]),
            vec![
                "mysqldump",
                "-p<redacted>",
                "--password",
                "<redacted>",
                "PGPASSWORD=<redacted>",
                "db"
            ]
        );
        assert_eq!(
            argv(&[
                "curl",
                "-u",
                "alice:pw",
                "-H",
                "Authorization: Bearer t",
                "https://u:p@h/x"
            ]),
            vec![
                "curl",
                "-u",
                "alice:<redacted>",
                "-H",
                "Authorization: <redacted>",
                "https://u:<redacted>@h/x"
            ]
        );
        // -p of other tools, and -u without a password, are not secrets.
        assert_eq!(
            argv(&["ssh", "-p", "2222", "h"]),
            vec!["ssh", "-p", "2222", "h"]
        );
        assert_eq!(
            argv(&["crontab", "-u", "root", "-l"]),
            vec!["crontab", "-u", "root", "-l"]
        );
        assert_eq!(
            argv(&["docker", "login", "--password-stdin", "-u", "me"]),
            vec!["docker", "login", "--password-stdin", "-u", "me"]
        );
    }

    /// An exec attempt as tracers before format 3 sent it, whole.
    fn whole_exec(args: &[u8], argc: u32, env: &[u8], envc: u32) -> Vec<u8> {
        let mut r: ExecAttemptRecord = unsafe { std::mem::zeroed() };
        r.hdr.kind = RecordKind::ExecAttempt as u32;
        r.hdr.pid = 10;
        r.filename[..9].copy_from_slice(b"/bin/curl");
        r.env[..env.len()].copy_from_slice(env);
        r.env_len = env.len() as u32;
        r.envc = envc;
        r.args[..args.len()].copy_from_slice(args);
        r.args_len = args.len() as u32;
        r.argc = argc;
        record_bytes(&r)
    }

    /// The same, as the kernel sends it now.
    fn packed_exec(argv: &[&str], env: &[&str]) -> Vec<u8> {
        let mut h: Header = unsafe { std::mem::zeroed() };
        h.pid = 10;
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        pack_exec_attempt(&h, 0, 0, b"/bin/curl", &strings(argv), &strings(env))
    }

    #[test]
    fn raw_exec_records_are_redacted_and_sent_on_packed() {
        let whole = whole_exec(
            b"curl\0--password=hunter2\0",
            2,
            b"PATH=/bin\0API_TOKEN=s3cr3t\0",
            2,
        );
        let packed = packed_exec(
            &["curl", "--password=hunter2"],
            &["PATH=/bin", "API_TOKEN=s3cr3t"],
        );
        for raw in [&whole[..], &packed[..]] {
            let mut c = Counts::new();
            let out = redact_record(raw, &mut c).expect("redacted");
            assert!(!out.windows(6).any(|w| w == b"s3cr3t"));
            assert!(!out.windows(7).any(|w| w == b"hunter2"));
            assert_eq!(
                u32::from_ne_bytes(out[..4].try_into().unwrap()),
                RecordKind::ExecAttemptPacked as u32
            );
            let e = crate::model::decode::decode(&out).unwrap();
            assert_eq!((e.pid, e.truncated), (10, false));
            match e.body {
                Body::ExecAttempt {
                    filename,
                    argv,
                    env,
                    argv_truncated,
                    ..
                } => {
                    assert_eq!(filename, "/bin/curl");
                    assert_eq!(env, vec!["PATH=/bin", "API_TOKEN=<redacted>"]);
                    assert_eq!(argv, vec!["curl", "--password=<redacted>"]);
                    assert!(!argv_truncated);
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(c.values().sum::<u64>(), 2);
        }
        // Nothing secret: no copy.
        let plain = whole_exec(b"curl\0", 1, b"PATH=/bin\0", 1);
        assert!(redact_record(&plain, &mut Counts::new()).is_none());
        let plain = packed_exec(&["curl"], &["PATH=/bin"]);
        assert!(redact_record(&plain, &mut Counts::new()).is_none());
        // Not an exec attempt, or too short to be one: left as it is.
        assert!(redact_record(&plain[..40], &mut Counts::new()).is_none());
        assert!(redact_record(&plain[..2], &mut Counts::new()).is_none());
    }

    #[test]
    fn a_redaction_that_no_longer_fits_is_cut_and_says_so() {
        // A secret shorter than the marker grows the strings: past the room of the
        // env field, the variables that no longer fit are dropped and flagged. 583
        // variables of 7 bytes and the token's 12 fill 4,093 of the 4,096 bytes.
        let mut env = vec!["API_TOKEN=a".to_string()];
        env.extend((0..583).map(|i| format!("V{i:03}=1")));
        let env: Vec<&str> = env.iter().map(String::as_str).collect();
        let raw = packed_exec(&["x"], &env);
        assert!(!crate::model::decode::decode(&raw).unwrap().truncated);
        let out = redact_record(&raw, &mut Counts::new()).unwrap();
        let e = crate::model::decode::decode(&out).unwrap();
        assert!(e.truncated);
        match e.body {
            Body::ExecAttempt {
                env: got,
                env_truncated,
                ..
            } => {
                assert!(env_truncated);
                assert_eq!(got.len(), env.len() - 1);
                assert_eq!(got[0], "API_TOKEN=<redacted>");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secrets_inside_shell_command_strings_are_redacted_and_the_line_still_parses() {
        let v = argv(&[
            "/bin/sh",
            "-c",
            "PGPASSWORD='a b' pg_dump --password=s3cr3tvalue db  > /x; mysql -phunter2 -e 'x'",
        ]);
        assert_eq!(
            v[2],
            "PGPASSWORD='<redacted>' pg_dump --password='<redacted>' db  > /x; mysql -p'<redacted>' -e 'x'"
        );
        // The redacted line has the same words in command position.
        let words: Vec<String> = shell::words(&v[2]).into_iter().map(|w| w.text).collect();
        assert!(words.contains(&"pg_dump".to_string()) && words.contains(&"mysql".to_string()));
        assert_eq!(
            line(r#"curl -H "Cookie: sid=abc" http://x"#),
            r#"curl -H "Cookie: <redacted>" http://x"#
        );
    }

    #[test]
    fn a_long_secret_leaves_no_tail_in_the_record() {
        let raw = whole_exec(b"", 0, b"A=1\0API_TOKEN=abcdefghijklmnopqrstuvwxyz\0", 2);
        let out = redact_record(&raw, &mut Counts::new()).unwrap();
        assert!(
            !out.windows(5).any(|w| w == b"uvwxy"),
            "tail of the secret left behind"
        );
    }

    #[test]
    fn crontab_redaction_keeps_line_ends_and_a_missing_final_newline() {
        let mut c = Counts::new();
        let t = "A_TOKEN=abc\r\n* * * * * x --password=p\n0 1 * * * y";
        assert_eq!(
            redact_crontab(t, false, &mut c),
            "A_TOKEN=<redacted>\r\n* * * * * x --password='<redacted>'\n0 1 * * * y"
        );
        assert_eq!(redact_crontab("plain\n\n", false, &mut c), "plain\n\n");
    }

    #[test]
    fn crontab_env_lines_commands_and_comments_are_redacted() {
        let mut c = Counts::new();
        let t = "SHELL=/bin/sh\nDB_PASSWORD = \"hunter2\"\nDATABASE_URL=mysql://u:pw@db/x\n# old: API_KEY=x mysql -pold\n0 3 * * * root mysqldump -phunter2 db\n";
        assert_eq!(
            redact_crontab(t, true, &mut c),
            "SHELL=/bin/sh\nDB_PASSWORD =<redacted>\nDATABASE_URL=mysql://u:<redacted>@db/x\n# old: API_KEY='<redacted>' mysql -p'<redacted>'\n0 3 * * * root mysqldump -p'<redacted>' db\n"
        );
        assert_eq!(c.values().sum::<u64>(), 5, "{c:?}");
    }

    #[test]
    fn the_same_command_redacts_the_same_in_a_crontab_and_in_argv() {
        // Jobs are matched to their crontab line by the (redacted) command.
        let cmd = "PGPASSWORD=x mysqldump -phunter2 --password s3 https://u:p@h db";
        let from_argv = argv(&["/bin/sh", "-c", cmd])[2].clone();
        let tab = redact_crontab(&format!("0 3 * * * {cmd}\n"), false, &mut Counts::new());
        assert_eq!(tab, format!("0 3 * * * {from_argv}\n"));
    }

    #[test]
    fn multibyte_secrets_neither_panic_nor_leak() {
        // Blanks of more than one byte between URLs without a scheme.
        let mut env = vec!["X=wget\u{a0}a.com/c?key=é\u{3000}b.com/?token=€ kept".to_string()];
        redact_env(&mut env, &mut Counts::new());
        assert_eq!(
            env[0],
            "X=wget\u{a0}a.com/c?key=<redacted>\u{3000}b.com/?token=<redacted> kept"
        );
        for l in [
            "mysql -phunteré db",
            "curl -u a:pässwö https://h/",
            "true https://u:pwé@h/x",
            "curl https://hü.example.com/x?token=é9 https://hoükä.x/webhooks/é",
            "curl -H 'Authorization: Bearer €'",
            "TOKEN=€€€ run",
        ] {
            let got = line(l);
            assert!(
                !got.contains('é') && !got.contains('€') && !got.contains("pässwö"),
                "{l:?} -> {got:?}"
            );
            let v = argv(&["/bin/sh", "-c", l]);
            assert_eq!(v[2], got, "argv and line differ for {l:?}");
            let tab = redact_crontab(&format!("0 3 * * * {l}\n"), false, &mut Counts::new());
            assert_eq!(tab, format!("0 3 * * * {got}\n"));
        }
    }

    #[test]
    fn more_shapes_reviewers_asked_for() {
        let cases = [
            ("curl -sH 'Authorization: Bearer t0k' h", "t0k"),
            ("curl -su a:pw9 h", "pw9"),
            ("keytool -storepass sp9 -keystore k", "sp9"),
            ("openssl pkcs12 -passin pass:pp9 -in x", "pp9"),
            ("java -Dspring.datasource.password=jp9 -jar x", "jp9"),
            ("psql 'host=h password=ps9 dbname=d'", "ps9"),
            ("ldapsearch -x -w lw9 -D cn=a", "lw9"),
            ("mysql -p\\xq9 db", "xq9"),
            ("sh -c 'TOKEN=a9;run'", "a9"),
        ];
        // A secret that looks like an option name lends nothing to the next word.
        assert_eq!(
            line("mysql -pMYSECRET1 dbname"),
            "mysql -p'<redacted>' dbname"
        );
        for (l, secret) in cases {
            let got = line(l);
            assert!(!got.contains(secret), "{l:?} -> {got:?}");
            // Still one line of the same shape: no quote left open.
            assert_eq!(got.matches('\'').count() % 2, 0, "{got:?}");
        }
        // A one-word -c string is a command line too.
        assert_eq!(
            argv(&["sh", "-c", "TOKEN=a;run"])[2],
            "TOKEN='<redacted>';run"
        );
        // The user field of a system crontab lends no tool context.
        assert_eq!(
            redact_crontab(
                "0 3 * * * mysql mkdir -p /var/backups\n",
                true,
                &mut Counts::new()
            ),
            "0 3 * * * mysql mkdir -p /var/backups\n"
        );
        // An escaped % in a crontab URL redacts as its unescaped argv does.
        let tab = redact_crontab(
            "0 3 * * * curl https://u:p\\%40ss@h\n",
            false,
            &mut Counts::new(),
        );
        let v = argv(&["/bin/sh", "-c", "curl https://u:p%40ss@h"]);
        assert_eq!(tab, format!("0 3 * * * {}\n", v[2]));
    }

    /// Keys in query strings and webhook tokens in paths: the URL a cron job pings.
    #[test]
    fn url_query_secrets_and_webhook_tokens_go_and_the_rest_of_the_url_stays() {
        let cases = [
            (
                "curl -fsS https://api.example.com/ping?token=t0k1&to=ops",
                "curl -fsS https://api.example.com/ping?token='<redacted>'&to=ops",
            ),
            // Any case; a fragment too (OAuth's implicit flow); an empty value is no secret.
            (
                "curl 'https://h/cb#access_token=t0k2&state=1' 'https://h/x?API_KEY=&q=1'",
                "curl 'https://h/cb#access_token=<redacted>&state=1' 'https://h/x?API_KEY=&q=1'",
            ),
            // A presigned S3 URL: the credential and the signature, not the date. Left
            // unquoted, its `&`s make the parameters words of their own: the same.
            (
                "wget https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA1&X-Amz-Date=20261207&X-Amz-Signature=5ig3",
                "wget https://b.s3.amazonaws.com/k?X-Amz-Credential='<redacted>'&X-Amz-Date=20261207&X-Amz-Signature='<redacted>'",
            ),
            // Azure SAS: `sig`, and only a parameter named so.
            (
                "azcopy copy x 'https://a.blob.core.windows.net/c?sv=2022&sig=s1g9'",
                "azcopy copy x 'https://a.blob.core.windows.net/c?sv=2022&sig=<redacted>'",
            ),
            (
                "curl https://hooks.slack.com/services/T0/B0/x9y8z7 -d @m",
                "curl https://hooks.slack.com/services/'<redacted>' -d @m",
            ),
            (
                "curl https://discord.com/api/webhooks/123/d1sc0rd?wait=true",
                "curl https://discord.com/api/webhooks/'<redacted>'?wait=true",
            ),
            // A user-info password, a webhook path and a query key in one URL.
            (
                "curl https://u:pw7@hooks.example.com/catch/abc?key=k7",
                "curl https://u:'<redacted>'@hooks.example.com/catch/'<redacted>'?key='<redacted>'",
            ),
            // A URL inside another's query: its password too, once.
            (
                "curl 'https://h/login?next=https://u:pw8@i/x&q=1'",
                "curl 'https://h/login?next=https://u:<redacted>@i/x&q=1'",
            ),
            (
                "curl 'https://h/login?token=https://u:pw9@i/x'",
                "curl 'https://h/login?token=<redacted>'",
            ),
        ];
        for (l, want) in cases {
            assert_eq!(line(l), want, "{l:?}");
        }
        // Nothing secret-named, nothing taken: a search, a path with "hooks" in it, a
        // hooks host with no token, a slack URL that is not a hook.
        for l in [
            "curl 'https://h/search?q=keyless&page=2'",
            "curl https://api.github.com/repos/o/r/hooks",
            "curl https://hooks.slack.com/",
            "curl https://hooks.slack.com/services/",
            "curl https://slack.com/services/T0",
            "curl https://u:@h/x",
        ] {
            assert_eq!(line(l), l);
            // argv's words are replaced by range: an empty one would still get the marker.
            let words: Vec<&str> = l.split(' ').collect();
            assert_eq!(argv(&words).join(" "), l);
        }
        let mut c = Counts::new();
        // A URL ends at a blank or a quote: what follows it is not its secret.
        let mut env = vec![
            "HC_URL=https://hc.example.com/ping?apikey=k8".to_string(),
            "NOTIFY=https://hooks.slack.com/services/T/B/s3".to_string(),
            "PING=curl https://h/p?token=k9 -d x https://hooks.x/a/b\tkept".to_string(),
            "QUOTED=\"https://h/p?key=k10\" 'https://h/webhook/t10' \"kept\"".to_string(),
            "BARE=wget -q example.com/cron?key=k11&a=1 -O- kept".to_string(),
            "CMD=curl -s https://a/ping && wget a.com/x?y=1 b.com/c?key=k12".to_string(),
        ];
        redact_env(&mut env, &mut c);
        assert_eq!(
            env,
            vec![
                "HC_URL=https://hc.example.com/ping?apikey=<redacted>",
                "NOTIFY=https://hooks.slack.com/services/<redacted>",
                "PING=curl https://h/p?token=<redacted> -d x https://hooks.x/a/<redacted>\tkept",
                "QUOTED=\"https://h/p?key=<redacted>\" 'https://h/webhook/<redacted>' \"kept\"",
                "BARE=wget -q example.com/cron?key=<redacted>&a=1 -O- kept",
                "CMD=curl -s https://a/ping && wget a.com/x?y=1 b.com/c?key=<redacted>",
            ]
        );
        let tab = redact_crontab(
            "NOTIFY=https://discord.com/api/webhooks/1/t\n*/5 * * * * curl -s \"https://h/p?token=t5\" >/dev/null\n",
            false,
            &mut c,
        );
        assert_eq!(
            tab,
            "NOTIFY=https://discord.com/api/webhooks/<redacted>\n*/5 * * * * curl -s \"https://h/p?token=<redacted>\" >/dev/null\n"
        );
        assert_eq!(c.get("url_query_secret"), Some(&6), "{c:?}");
        assert_eq!(c.get("webhook_url"), Some(&4), "{c:?}");
        // A job's argv redacts as its crontab line does.
        assert_eq!(
            argv(&["curl", "https://h/p?token=t6&a=1"])[1],
            "https://h/p?token=<redacted>&a=1"
        );
    }

    /// Shapes a review of the URL rules found.
    #[test]
    fn url_secrets_a_review_found() {
        let gone = [
            // A word holding words: its URL key and the other secrets beside it.
            (
                "ssh h \"mysqldump -phunter2 db && curl -H 'Authorization: Bearer abc9' https://h/up?token=t0k3\"",
                &["hunter2", "abc9", "t0k3"][..],
            ),
            ("curl 'https://h/app;jsessionid=ABC123?x=1'", &["ABC123"]),
            (
                "curl https://x.webhook.office.com/webhookb2/G1@G2/IncomingWebhook/ID3/G4",
                &["G1", "G2", "ID3", "G4"],
            ),
            ("curl https://hook.eu1.make.com/mk7tok", &["mk7tok"]),
            ("curl https://hook.eu1.make.com/mk9tok/", &["mk9tok"]),
            ("curl https://mm.example.com/hooks/mm8tok", &["mm8tok"]),
            ("wget -qO- example.com/cron?key=nosch3me", &["nosch3me"]),
            (
                "curl -u sk_live_0123456789abcdefghij: https://api.stripe.com",
                &["sk_live_0123"],
            ),
            (
                "curl https://sk_live_0123456789abcdefghij:@api.stripe.com/v1",
                &["sk_live_0123"],
            ),
            ("curl 'https://h/r?token=https://u:pw;tail@i/'", &["pw", "tail"]),
            ("true X-Amz-Signature=s1gn", &["s1gn"]),
        ];
        for (l, secrets) in gone {
            let got = line(l);
            for secret in secrets {
                assert!(!got.contains(secret), "{secret} left: {l:?} -> {got:?}");
            }
            assert_eq!(got.matches('\'').count() % 2, 0, "{got:?}");
            let tab = redact_crontab(&format!("0 3 * * * {l}\n"), false, &mut Counts::new());
            assert_eq!(tab, format!("0 3 * * * {got}\n"), "crontab and line differ");
        }
        assert_eq!(
            line("curl 'https://h/r?token=https://u:pw;tail@i/'"),
            "curl 'https://h/r?token=<redacted>@i/'"
        );
        // The URL parts of a word holding words are taken from the whole, where `;`
        // and `&` (shell separators inside it) do not cut them; its other secrets too.
        for (l, secret) in [
            ("ssh h \"pg_dump postgres://u:pa;ss@h/db\"", "ss@"),
            (
                "ssh h \"wget -q http://h/c?a=1&auth[token]=SEKRIT\"",
                "SEKRIT",
            ),
            (
                "ssh h \"mysql -phunter2; curl https://h/?token=t\"",
                "hunter2",
            ),
        ] {
            let got = line(l);
            assert!(!got.contains(secret), "{l:?} -> {got:?}");
            let words: Vec<String> = shell::words(l).into_iter().map(|w| w.text).collect();
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            assert!(!argv(&words)[2].contains(secret), "argv of {l:?}");
        }
        // An escaped % in a quoted word holding a URL stays escaped (the word is
        // rewritten in place, not requoted from its parsed text).
        assert_eq!(
            line("ssh h \"date +\\%F; curl https://h/?token=S\""),
            "ssh h \"date +\\%F; curl https://h/?token=<redacted>\""
        );
        // Without a URL, a word holding words is redacted word by word and quoted again
        // whole, as before the URL rules.
        assert_eq!(
            line("psql \"host=h password=ps8 dbname=d\""),
            "psql 'host=h password=<redacted> dbname=d'"
        );
        // A word holding words as one argv element too.
        let v = argv(&["ssh", "h", "mysql -phunter2 && curl https://h/?token=t0k4"]);
        assert_eq!(
            v[2],
            "mysql -p<redacted> && curl https://h/?token=<redacted>"
        );
        // Options that take no value lend none to the next word.
        for l in [
            "rpm -Uvh --nosignature pkg.rpm",
            "make SIG=1 all",
            "git log --show-signature HEAD",
        ] {
            assert_eq!(line(l), l);
        }
    }

    /// A crontab command is redacted whole: a secret holding a `%` (percent-encoded,
    /// where cron would cut the command) loses every byte on both sides of it.
    #[test]
    fn a_secret_holding_a_percent_in_a_crontab_loses_both_sides() {
        for (l, secrets) in [
            (
                "azcopy copy x 'https://a.blob.core.windows.net/c?sv=1&sig=ab%2Bcd'",
                &["ab", "2Bcd"][..],
            ),
            ("mysql -u root -p%hunter2 db", &["hunter2"]),
            ("curl https://h/?token=%2Fabc", &["abc"]),
            ("PASSWORD='ab%cd ef' run", &["cd", "ef"]),
            ("ssh h \"mysql -phun%ter2\"", &["hun", "ter2"]),
            ("curl -u 'user:p%ss word' h", &["ss", "word"]),
        ] {
            let tab = redact_crontab(&format!("0 3 * * * {l}\n"), false, &mut Counts::new());
            for secret in secrets {
                assert!(!tab.contains(secret), "{secret} left: {l:?} -> {tab:?}");
            }
            assert_eq!(tab, format!("0 3 * * * {}\n", line(l)));
        }
    }

    #[test]
    fn unit_files_anacrontabs_and_at_scripts_lose_their_secrets_and_keep_their_shape() {
        let mut c = Counts::new();
        let unit = "[Service]\n# token=abc\nEnvironment=A=1 \"DB_PASSWORD=hunter2 x\" MODE=fast\nExecStart=/usr/bin/curl -u bob:pw1 https://u:pw2@h/x\nUser=bob\n";
        let r = redact_unit(unit, &mut c);
        for s in ["hunter2", "pw1", "pw2"] {
            assert!(!r.contains(s), "{s} left in {r}");
        }
        assert!(
            r.contains("Environment=A=1") && r.contains("MODE=fast") && r.contains("User=bob\n"),
            "{r}"
        );
        assert!(r.starts_with("[Service]\n") && r.ends_with('\n'));
        let tab = "API_TOKEN=t0ps3cret\nPATH=/usr/bin:/bin\n1 5 backup.daily mysqldump --password=dbpw1 db\n";
        let r = redact_anacrontab(tab, &mut c);
        assert!(!r.contains("t0ps3cret") && !r.contains("dbpw1"), "{r}");
        assert!(
            r.contains("PATH=/usr/bin:/bin\n") && r.contains("1 5 backup.daily mysqldump"),
            "{r}"
        );
        let script = "#!/bin/sh\nDB_PASSWORD=s3cr\\et; export DB_PASSWORD\nPATH=/usr/bin; export PATH\ncd /root || {\n\t exit 1\n}\ncurl https://a:pw3@h/\n";
        let r = redact_script(script, &mut c);
        assert!(!r.contains("s3cr") && !r.contains("pw3"), "{r}");
        assert!(
            r.contains("PATH=/usr/bin; export PATH\n") && r.contains("cd /root || {\n"),
            "{r}"
        );
        assert!(c.values().sum::<u64>() >= 7, "{c:?}");
    }
}
