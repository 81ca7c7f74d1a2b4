//! The readers against tables of lines, per daemon.
use super::*;
use crate::schedules::crontab::schedule::{civil_of, minute_of, CivilMinute};
use crate::schedules::Daemon::{BusyboxCrond as BB, Cronie as CR, DebianCron as DEB};

fn read(daemon: Daemon, system: bool, text: &str) -> Parsed {
    read_as(daemon, system, None, text)
}

fn read_as(daemon: Daemon, system: bool, spool_user: Option<&str>, text: &str) -> Parsed {
    let exists = |u: &str| matches!(u, "root" | "alice");
    let cx = Context {
        daemon,
        system,
        spool_user,
        user_exists: &exists,
    };
    parse(text, &cx)
}

fn entries(p: &Parsed) -> Vec<&ParsedEntry> {
    p.items
        .iter()
        .filter_map(|i| match i {
            Item::Entry(e) => Some(e),
            Item::Env { .. } => None,
        })
        .collect()
}

fn envs(p: &Parsed) -> Vec<(String, String)> {
    p.items
        .iter()
        .filter_map(|i| match i {
            Item::Env { name, value, .. } => Some((name.clone(), value.clone())),
            Item::Entry(_) => None,
        })
        .collect()
}

fn rules_of(p: &Parsed) -> Vec<&'static str> {
    p.issues.iter().map(|i| i.rule).collect()
}

/// The first `n` matching wall-clock minutes from 2026-01-01, as text.
fn times(s: &Schedule, n: usize) -> Vec<String> {
    let start: CivilMinute = minute_of("2026-01-01T00:00".parse().unwrap()).unwrap();
    s.matches_in(start, start + 800 * 1440)
        .take(n)
        .map(|l| {
            civil_of(l)
                .unwrap()
                .strftime("%Y-%m-%d %a %H:%M")
                .to_string()
        })
        .collect()
}

fn only_entry(daemon: Daemon, text: &str) -> ParsedEntry {
    let p = read(daemon, false, text);
    assert!(p.issues.is_empty(), "{daemon:?} {text:?}: {:?}", p.issues);
    let e = entries(&p);
    assert_eq!(e.len(), 1, "{daemon:?} {text:?}");
    e[0].clone()
}

fn bits(v: u64) -> Vec<u32> {
    (0..64).filter(|i| v & (1 << i) != 0).collect()
}

#[test]
fn fields_table_for_all_daemons() {
    // (line, minutes, hours, doms, months, weekdays)
    type Row<'a> = (
        &'a str,
        &'a [u32],
        &'a [u32],
        &'a [u32],
        &'a [u32],
        &'a [u32],
    );
    let rows: &[Row] = &[
        ("*/15 * * * * c\n", &[0, 15, 30, 45], &[], &[], &[], &[]),
        ("0-30/10 2 * * * c\n", &[0, 10, 20, 30], &[2], &[], &[], &[]),
        ("1,2,5-7 0 * * * c\n", &[1, 2, 5, 6, 7], &[0], &[], &[], &[]),
        (
            "0 0 * jan,DEC Mon-fri c\n",
            &[0],
            &[0],
            &[],
            &[1, 12],
            &[1, 2, 3, 4, 5],
        ),
        ("0 0 * * 7 c\n", &[0], &[0], &[], &[], &[0]),
        ("0 0 * * sun,SAT c\n", &[0], &[0], &[], &[], &[0, 6]),
        (
            "0 0 1-31/10 * * c\n",
            &[0],
            &[0],
            &[1, 11, 21, 31],
            &[],
            &[],
        ),
        ("0\t0\t*\t*\t*\tc\n", &[0], &[0], &[], &[], &[]),
        ("   59 23 31 12 6 c\n", &[59], &[23], &[31], &[12], &[6]),
    ];
    for daemon in [DEB, CR, BB] {
        for (line, min, hour, dom, month, dow) in rows {
            // busybox has no 7 for Sunday (see busybox_quirks).
            if daemon == BB && line.contains("* 7 ") {
                continue;
            }
            let e = only_entry(daemon, line);
            let s = &e.spec;
            assert_eq!(bits(s.minutes), *min, "{daemon:?} minutes of {line:?}");
            if !hour.is_empty() {
                assert_eq!(
                    bits(u64::from(s.hours)),
                    *hour,
                    "{daemon:?} hours of {line:?}"
                );
            }
            if !dom.is_empty() {
                assert_eq!(bits(u64::from(s.doms)), *dom, "{daemon:?} doms of {line:?}");
            }
            if !month.is_empty() {
                assert_eq!(
                    bits(u64::from(s.months)),
                    *month,
                    "{daemon:?} months of {line:?}"
                );
            }
            if !dow.is_empty() {
                assert_eq!(bits(u64::from(s.dows)), *dow, "{daemon:?} dows of {line:?}");
            }
            assert_eq!(e.raw_command, "c");
        }
    }
}

#[test]
fn step_without_range_per_daemon() {
    let p = read(DEB, false, "5/10 * * * * c\n* * * * * d\n");
    assert_eq!(rules_of(&p), ["syntax_error"]);
    assert!(p.file_ignored.is_some(), "Debian drops the whole file");
    assert!(
        p.issues[0].detail.contains("only after * or a range"),
        "{}",
        p.issues[0].detail
    );
    let p = read(CR, false, "5/10 * * * * c\n* * * * * d\n");
    assert_eq!(rules_of(&p), ["syntax_error"]);
    assert!(p.file_ignored.is_none(), "cronie skips the line only");
    assert_eq!(entries(&p).len(), 1);
    let e = only_entry(BB, "5/10 * * * * c\n");
    assert_eq!(bits(e.spec.minutes), [5], "busybox reads A/N as A");
}

#[test]
fn day_of_month_and_week_rules() {
    // Both restricted: either matches (Vixie and busybox alike).
    for d in [DEB, CR, BB] {
        let e = only_entry(d, "30 4 1,15 * 5 c\n");
        assert_eq!(
            times(&e.spec, 3),
            [
                "2026-01-01 Thu 04:30",
                "2026-01-02 Fri 04:30",
                "2026-01-09 Fri 04:30"
            ],
            "{d:?}"
        );
    }
    // `*/2` starts with a star: Vixie treats the day field as unrestricted, so both
    // must match; busybox looks at the table, sees a restriction, and ORs.
    for d in [DEB, CR] {
        let e = only_entry(d, "0 0 */2 * mon c\n");
        assert_eq!(
            times(&e.spec, 2),
            ["2026-01-05 Mon 00:00", "2026-01-19 Mon 00:00"],
            "{d:?}"
        );
    }
    // (busybox's `*` in the day field starts at 0, so `*/2` means even days.)
    let e = only_entry(BB, "0 0 */2 * mon c\n");
    assert_eq!(
        times(&e.spec, 3),
        [
            "2026-01-02 Fri 00:00",
            "2026-01-04 Sun 00:00",
            "2026-01-05 Mon 00:00"
        ]
    );
    // Only the weekday restricted: only it counts.
    for d in [DEB, CR, BB] {
        let e = only_entry(d, "0 0 * * sun c\n");
        assert_eq!(times(&e.spec, 1), ["2026-01-04 Sun 00:00"], "{d:?}");
    }
}

#[test]
fn every_macro() {
    let table = [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ];
    for d in [DEB, CR, BB] {
        for (mac, fields) in table {
            let p = read(d, false, &format!("{mac} c\n{fields} c\n"));
            let e = entries(&p);
            assert_eq!(e.len(), 2, "{d:?} {mac}: {:?}", p.issues);
            assert_eq!(e[0].schedule, mac);
            assert_eq!(
                times(&e[0].spec, 5),
                times(&e[1].spec, 5),
                "{d:?} {mac} = {fields}"
            );
            assert_eq!(e[0].spec.is_wildcard(), mac == "@hourly", "{d:?} {mac}");
            assert_eq!(e[0].raw_command, "c");
        }
        let p = read(d, false, "@reboot /usr/bin/x\n");
        assert!(entries(&p)[0].spec.is_reboot(), "{d:?}");
    }
    // Names are exact and lower case.
    for d in [DEB, CR] {
        let p = read(d, false, "@Daily c\n");
        assert_eq!(rules_of(&p), ["syntax_error"], "{d:?}");
        assert!(p.issues[0].detail.contains("unknown time specifier @Daily"));
    }
    let p = read(CR, false, "@daily\n");
    assert_eq!(
        rules_of(&p),
        ["syntax_error"],
        "cronie wants a command after @daily"
    );
    let p = read(BB, false, "@daily c\n");
    assert_eq!(rules_of(&p), ["busybox_special_crash"]);
}

#[test]
fn env_lines_and_quotes() {
    // (line, Debian's reading, cronie's reading); None = not a setting.
    type Setting<'a> = Option<(&'a str, &'a str)>;
    let table: &[(&str, Setting, Setting)] = &[
        ("A=b", Some(("A", "b")), Some(("A", "b"))),
        ("A = b c ", Some(("A", "b c")), Some(("A", "b c"))),
        ("  A=  b", Some(("A", "b")), Some(("A", "b"))),
        ("A='x y'", Some(("A", "x y")), Some(("A", "x y"))),
        ("A=\"  x  \"", Some(("A", "  x")), Some(("A", "  x  "))),
        ("A=\"'x'\"", Some(("A", "x")), Some(("A", "'x'"))),
        ("A=\"\"", Some(("A", "")), Some(("A", ""))),
        ("\"A B\"=c", Some(("A B", "c")), Some(("A B", "c"))),
        ("A=\"x\" junk", None, None),
        ("A", None, None),
        ("A=b\r", Some(("A", "b")), Some(("A", "b"))),
    ];
    for (line, deb, cr) in table {
        for (daemon, want) in [(DEB, deb), (CR, cr)] {
            let p = read(daemon, false, &format!("{line}\n"));
            let got = envs(&p);
            match want {
                Some((n, v)) => {
                    assert_eq!(got, [(n.to_string(), v.to_string())], "{daemon:?} {line:?}")
                }
                None => assert!(
                    got.is_empty() && !p.issues.is_empty(),
                    "{daemon:?} {line:?}: {got:?}"
                ),
            }
        }
    }
    // `NAME=`: cronie sets it empty; Debian reads it as a job line and drops the file.
    let p = read(CR, false, "MAILTO=\n* * * * * c\n");
    assert_eq!(envs(&p), [("MAILTO".to_string(), String::new())]);
    let p = read(DEB, false, "MAILTO=\n* * * * * c\n");
    assert_eq!(rules_of(&p), ["empty_env_unquoted"]);
    assert!(p.file_ignored.is_some());
    assert!(
        p.issues[0].detail.contains("MAILTO=\"\""),
        "{}",
        p.issues[0].detail
    );
    // busybox: MAILTO= and SHELL= only.
    let p = read(
        BB,
        false,
        "MAILTO=ops\nSHELL=/bin/ash\nPATH=/usr/local/bin\nHOME = /x\n",
    );
    assert_eq!(
        envs(&p),
        [
            ("MAILTO".to_string(), "ops".to_string()),
            ("SHELL".to_string(), "/bin/ash".to_string())
        ]
    );
    assert_eq!(rules_of(&p), ["busybox_env_ignored", "busybox_env_ignored"]);
}

#[test]
fn cron_tz_in_debian_is_only_a_variable() {
    let p = read(DEB, false, "CRON_TZ=Asia/Tokyo\n0 9 * * * c\n");
    assert_eq!(rules_of(&p), ["cron_tz_unsupported"]);
    assert_eq!(entries(&p).len(), 1);
    assert!(read(CR, false, "CRON_TZ=Asia/Tokyo\n0 9 * * * c\n")
        .issues
        .is_empty());
}

#[test]
fn comments_blank_lines_tabs_trailing_spaces() {
    let text = "# a comment\n\n   \t\n  # indented comment\n* * * * * echo hi   \n";
    for d in [DEB, CR, BB] {
        let p = read(d, false, text);
        assert!(p.issues.is_empty(), "{d:?} {:?}", p.issues);
        let e = entries(&p);
        assert_eq!(e[0].line, 5);
        // Vixie keeps trailing blanks in the command; busybox trims them.
        let want = if d == BB { "echo hi" } else { "echo hi   " };
        assert_eq!(e[0].raw_command, want, "{d:?}");
    }
    // A comment after a command is part of the command, except for busybox.
    let p = read(DEB, false, "* * * * * echo a # b\n");
    assert_eq!(entries(&p)[0].raw_command, "echo a # b");
    let p = read(BB, false, "* * * * * echo a # b\n");
    assert_eq!(entries(&p)[0].raw_command, "echo a");
    assert_eq!(rules_of(&p), ["busybox_hash_truncates"]);
}

#[test]
fn crlf_line_ends() {
    for d in [DEB, CR, BB] {
        let p = read(d, false, "* * * * * /bin/job\r\n");
        assert_eq!(entries(&p)[0].raw_command, "/bin/job\r", "{d:?}");
        assert_eq!(rules_of(&p), ["crlf_line_end"], "{d:?}");
    }
    // A blank line of CRLF is a bad job line: the whole file goes in Debian.
    let p = read(DEB, false, "* * * * * /bin/job\r\n\r\n");
    assert!(p.file_ignored.is_some());
    assert!(
        p.issues
            .iter()
            .any(|i| i.rule == "syntax_error" && i.detail.contains("CRLF")),
        "{:?}",
        p.issues
    );
}

#[test]
fn missing_final_newline() {
    let text = "* * * * * good\n*/5 * * * * last";
    let p = read(DEB, false, text);
    assert_eq!(
        p.file_ignored.as_ref().map(|i| i.rule),
        Some("missing_final_newline")
    );
    assert_eq!(
        entries(&p).len(),
        2,
        "both lines are still listed for the report"
    );
    let p = read(CR, false, text);
    assert!(p.file_ignored.is_none());
    assert_eq!(rules_of(&p), ["missing_final_newline"]);
    assert_eq!(p.issues[0].effect, Effect::SkipsLine);
    let p = read(BB, false, text);
    assert!(
        p.issues.is_empty(),
        "busybox reads an unterminated last line"
    );
    // A comment or blanks without a newline at the end are fine everywhere.
    for d in [DEB, CR] {
        assert!(
            read(d, false, "* * * * * c\n# end").issues.is_empty(),
            "{d:?}"
        );
        assert!(
            read(d, false, "* * * * * c\n   ").issues.is_empty(),
            "{d:?}"
        );
    }
}

#[test]
fn debian_reads_on_after_an_error_for_the_report() {
    let p = read(
        DEB,
        false,
        "* * * * * one\n61 * * * * two\n* * * * * three\n",
    );
    assert_eq!(rules_of(&p), ["syntax_error"]);
    assert_eq!(p.issues[0].line, Some(2));
    assert!(
        p.issues[0].detail.contains("61 is out of range"),
        "{}",
        p.issues[0].detail
    );
    let cmds: Vec<&str> = entries(&p).iter().map(|e| e.raw_command.as_str()).collect();
    assert_eq!(cmds, ["one", "three"]);
}

#[test]
fn system_format_and_users() {
    let p = read(
        DEB,
        true,
        "SHELL=/bin/bash\n17 * * * * root cd / && run-parts --report /etc/cron.hourly\n",
    );
    let e = entries(&p);
    assert_eq!(e[0].user.as_deref(), Some("root"));
    assert_eq!(
        e[0].raw_command,
        "cd / && run-parts --report /etc/cron.hourly"
    );
    let p = read(DEB, true, "* * * * * root ok\n* * * * * bob job\n");
    assert_eq!(rules_of(&p), ["unknown_user"]);
    assert!(
        p.file_ignored.is_some(),
        "Debian: an unknown user is a syntax error"
    );
    let p = read(CR, true, "* * * * * bob job\n");
    assert!(
        p.issues.is_empty(),
        "cronie keeps the line (and refuses it when due)"
    );
    assert_eq!(entries(&p)[0].user.as_deref(), Some("bob"));
    for d in [DEB, CR] {
        let p = read(d, true, "* * * * * root\n");
        assert!(!p.issues.is_empty(), "{d:?}: a user but no command");
        // A user field in a user crontab.
        let p = read(d, false, "* * * * * * job\n");
        assert_eq!(rules_of(&p), ["syntax_error"], "{d:?}");
    }
}

#[test]
fn missing_command_and_odd_fields() {
    // Debian accepts an empty command; cronie does not.
    assert_eq!(entries(&read(DEB, false, "* * * * *\n"))[0].raw_command, "");
    assert_eq!(rules_of(&read(CR, false, "* * * * *\n")), ["syntax_error"]);
    for d in [DEB, CR] {
        let p = read(d, false, "* * * *\n");
        assert_eq!(rules_of(&p), ["syntax_error"], "{d:?}");
        assert!(
            p.issues[0].detail.contains("day-of-week"),
            "{d:?}: {}",
            p.issues[0].detail
        );
        assert_eq!(
            rules_of(&read(d, false, "*/0 * * * * c\n")),
            ["syntax_error"],
            "{d:?}"
        );
        assert_eq!(
            rules_of(&read(d, false, "0 24 * * * c\n")),
            ["syntax_error"],
            "{d:?}"
        );
        assert_eq!(
            rules_of(&read(d, false, "0 0 0 * * c\n")),
            ["syntax_error"],
            "{d:?}"
        );
        assert_eq!(
            rules_of(&read(d, false, "0 0 * 13 * c\n")),
            ["syntax_error"],
            "{d:?}"
        );
        assert_eq!(
            rules_of(&read(d, false, "0 0 * foo * c\n")),
            ["syntax_error"],
            "{d:?}"
        );
    }
    // Debian skips junk after a number, cronie does not.
    assert!(read(DEB, false, "5;x * * * * c\n").issues.is_empty());
    assert_eq!(
        rules_of(&read(CR, false, "5;x * * * * c\n")),
        ["syntax_error"]
    );
    // A reversed range is empty in Debian; cronie maps N-0 to N-7.
    assert_eq!(only_entry(DEB, "5-1 * * * * c\n").spec.minutes, 0);
    assert_eq!(
        bits(u64::from(only_entry(CR, "0 0 * * 5-0 c\n").spec.dows)),
        [0, 5, 6]
    );
}

#[test]
fn cronie_options_and_random_ranges() {
    let p = read_as(CR, false, Some("alice"), "-* * * * * c\n");
    assert_eq!(
        rules_of(&p),
        ["syntax_error"],
        "only root may turn off logging"
    );
    let p = read_as(CR, false, Some("root"), "-* * * * * c\n");
    assert!(p.issues.is_empty());
    let e = only_entry(CR, "* * * * * -n  mail-on-error\n");
    assert_eq!(e.raw_command, "mail-on-error");
    let p = read(CR, false, "0~30 * * * * c\n");
    assert_eq!(rules_of(&p), ["random_range"]);
    assert_eq!(
        bits(entries(&p)[0].spec.minutes),
        (0..=30).collect::<Vec<u32>>()
    );
}

#[test]
fn limits_and_long_lines() {
    // A 1 MB line: Debian refuses it (command too long), cronie keeps 128 KiB of it,
    // busybox takes it whole; none of them takes long.
    let long = format!("* * * * * echo {}\n", "x".repeat(1 << 20));
    let p = read(DEB, false, &long);
    assert_eq!(rules_of(&p), ["command_too_long"]);
    let p = read(CR, false, &long);
    assert_eq!(rules_of(&p), ["command_too_long"]);
    assert_eq!(entries(&p)[0].raw_command.len(), 131_071);
    assert_eq!(
        entries(&read(BB, false, &long))[0].raw_command.len(),
        (1 << 20) + 5
    );
    // 998 bytes of command is fine for Debian, 999 is not.
    let ok = format!("* * * * * {}\n", "y".repeat(998));
    assert!(read(DEB, false, &ok).issues.is_empty());
    let bad = format!("* * * * * {}\n", "y".repeat(999));
    assert_eq!(rules_of(&read(DEB, false, &bad)), ["command_too_long"]);
    // A long setting is cut by Debian.
    let env = format!("LONG={}\n* * * * * c\n", "v".repeat(1200));
    let p = read(DEB, false, &env);
    assert_eq!(rules_of(&p), ["env_line_too_long"]);
    assert_eq!(envs(&p)[0].1.len(), 998 - "LONG=".len());
    assert_eq!(entries(&p).len(), 1);
    // Line counts.
    let many: String = (0..10_010).map(|_| "* * * * * c\n").collect();
    assert!(rules_of(&read(DEB, false, &many)).contains(&"too_many_lines"));
    let bb: String = (0..300).map(|_| "* * * * * c\n").collect();
    let p = read_as(BB, false, Some("alice"), &bb);
    assert_eq!(rules_of(&p), ["too_many_lines"]);
    assert_eq!(entries(&p).len(), 255);
    assert!(read_as(BB, false, Some("root"), &bb).issues.is_empty());
}

#[test]
fn garbage_never_panics() {
    // Deterministic pseudo-random bytes, lossily decoded as host.rs does.
    let mut x: u32 = 0x1234_5678;
    let bytes: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let text = String::from_utf8_lossy(&bytes);
    for d in [DEB, CR, BB] {
        for system in [false, true] {
            let p = read(d, system, &text);
            assert!(d == BB || !p.issues.is_empty(), "{d:?}");
        }
    }
    // Huge numbers and steps.
    for line in [
        "*/99999999999999999999 * * * * c",
        "0-59/9223372036854775807 * * * * c",
        "99999999999999999999 * * * * c",
    ] {
        for d in [DEB, CR, BB] {
            let _ = read(d, false, &format!("{line}\n"));
        }
    }
    assert_eq!(
        bits(
            only_entry(DEB, "0-59/9223372036854775807 * * * * c\n")
                .spec
                .minutes
        ),
        [0]
    );
    // Odd corner cases of the env parser (unterminated quotes, lone quotes).
    for line in ["\"", "'", "A=\"", "\"A", "=", "=x", "\u{fffd}=\u{fffd}"] {
        for d in [DEB, CR, BB] {
            let _ = read(d, false, &format!("{line}\n"));
        }
    }
}

#[test]
fn busybox_quirks() {
    // 7 is not Sunday: busybox logs an error and then runs the line every day.
    let p = read(BB, false, "0 0 * * 7 c\n");
    assert_eq!(rules_of(&p), ["syntax_error"]);
    assert_eq!(p.issues[0].effect, Effect::Advisory);
    assert_eq!(entries(&p)[0].spec.dows, 0x7f);
    // Short lines vanish.
    let p = read(BB, false, "* * * * *\n");
    assert_eq!(rules_of(&p), ["busybox_short_line"]);
    assert!(entries(&p).is_empty());
    // Backslash continues a line.
    let p = read(BB, false, "* * * * * echo a \\\nb\n");
    assert_eq!(entries(&p)[0].raw_command, "echo a b");
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: crate::testutil::proptest_cases(300), ..ProptestConfig::default() })]

        /// Crontab-like noise through every reader: no panic, and every entry's
        /// schedule answers a next-match query.
        #[test]
        fn readers_never_panic(text in "[-*/,0-9a-zA-Z@ \t\r\n=\"'%\\\\#~;]{0,300}", system in any::<bool>()) {
            for d in [DEB, CR, BB] {
                let p = read(d, system, &text);
                for e in entries(&p) {
                    let _ = e.spec.next_match(0, 60 * 24 * 400);
                    let _ = split_command(&e.raw_command, d);
                }
            }
        }

        #[test]
        fn bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let text = String::from_utf8_lossy(&bytes);
            for d in [DEB, CR, BB] {
                let _ = read(d, false, &text);
                let _ = read(d, true, &text);
            }
        }
    }
}
