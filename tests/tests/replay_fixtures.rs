//! The checked-in trace, recorded from the real cron scenarios, replayed without root:
//! the whole analysis on any machine, and the reader's behaviour on damaged files.
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use serde_json::Value;
use tracer_tests::{
    scenarios::{self, check_scenarios},
    tracer_bin, TempDir,
};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cron-scenarios.jtrace")
}

fn replay(path: &Path, extra: &[&str]) -> Output {
    Command::new(tracer_bin())
        .arg("replay")
        .arg(path)
        .arg("--timelines")
        .args(extra)
        .output()
        .expect("run tracer replay")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn the_recorded_cron_scenarios_are_diagnosed_on_replay() {
    let out = replay(&fixture(), &["--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(report["version"], 1);
    let (failing_mta, no_mta) = scenarios::cron_pids(&report);
    check_scenarios(
        &report,
        Some(failing_mta.expect("the sendmail-is-false cron's runs")),
    );
    let failing_mta = failing_mta.unwrap();
    scenarios::check_no_mta(&report, no_mta.expect("the no-MTA cron's runs"));
    scenarios::check_entries(&report, failing_mta);
    scenarios::check_left_behind(&report, failing_mta);
    scenarios::check_rule_files(&report);
    scenarios::check_doomed(&report, None, None);
    scenarios::check_stale(&report);
    let mailing = report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["command"] == scenarios::MAILED_COMMAND)
        .expect("the working-MTA cron's mailed job")["scheduler_pid"]
        .as_u64()
        .unwrap();
    scenarios::check_mailing(&report, mailing as u32);
    assert_eq!(report["stats"]["lost_events"], 0);
    scenarios::check_no_secrets(
        "the fixture trace",
        &std::fs::read(fixture()).unwrap(),
        true,
    );
    scenarios::check_no_secrets("its replay", &out.stdout, true);
}

/// A trace of format 1.1 (blocks not compressed, no loss records, no scheduler
/// files), recorded from
/// the same scenarios before the killed-child scenario printed its output for sure,
/// still replays to the same diagnosis of every scenario that did not change.
#[test]
fn a_format_1_1_trace_still_replays() {
    let old = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cron-scenarios-1.1.jtrace");
    let bytes = std::fs::read(&old).unwrap();
    assert!(
        bytes.windows(17).any(|w| w == b"\"format_minor\":1,"),
        "the compat fixture is not format 1.1"
    );
    let out = replay(&old, &["--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    let (failing_mta, no_mta) = scenarios::cron_pids(&report);
    let failing_mta = failing_mta.expect("the sendmail-is-false cron's runs");
    scenarios::check_no_mta(&report, no_mta.expect("the no-MTA cron's runs"));
    scenarios::check_left_behind(&report, failing_mta);
    scenarios::check_rule_files(&report);
    scenarios::check_doomed(&report, None, None);
    scenarios::check_stale(&report);
    assert_eq!(report["stats"]["lost_events"], 0);
}

/// Without --timelines a job with no finding is its summary and event count; a job
/// with findings keeps its timeline (the evidence points into it); nothing else
/// changes.
#[test]
fn json_keeps_the_timelines_of_jobs_with_findings_only_unless_asked() {
    let whole = json(&replay(&fixture(), &["--format", "json"]));
    let out = Command::new(tracer_bin())
        .arg("replay")
        .arg(fixture())
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let brief = json(&out);
    let (jw, jb) = (
        whole["jobs"].as_array().unwrap(),
        brief["jobs"].as_array().unwrap(),
    );
    assert_eq!(jw.len(), jb.len());
    let mut clean = 0;
    for (w, b) in jw.iter().zip(jb) {
        assert_eq!(w["findings"], b["findings"]);
        assert_eq!(w["command"], b["command"]);
        let n = w["timeline"].as_array().map_or(0, Vec::len) as u64;
        assert_eq!(w["events"], n, "{}", w["command"]);
        assert_eq!(b["events"], n, "{}", b["command"]);
        if b["findings"].as_array().unwrap().is_empty() && b["state"] == "finished" {
            clean += 1;
            assert!(b.get("timeline").is_none(), "{}", b["command"]);
        } else {
            assert_eq!(b["timeline"], w["timeline"], "{}", b["command"]);
        }
    }
    assert!(clean > 10, "the fixture has healthy jobs: {clean}");
    assert!(
        out.stdout.len() < serde_json::to_vec_pretty(&whole).unwrap().len(),
        "summarised: {} bytes",
        out.stdout.len()
    );
}

#[test]
fn text_replay_shows_findings_before_the_timeline_and_no_colour_when_piped() {
    let out = replay(&fixture(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains('\x1b'), "colour codes in piped output");
    let emfile = text
        .split("\n\n")
        .find(|block| block.contains("command: /opt/jt-scenarios/emfile.sh"))
        .expect("the emfile job in the text report");
    let finding = emfile.find("fd_exhausted:").expect("finding shown");
    let first_event = emfile.find(" ms ").expect("timeline shown");
    assert!(finding < first_event, "findings come first:\n{emfile}");
    assert!(text.contains("summary"), "{text}");
}

#[test]
fn one_job_can_be_selected() {
    let all = json(&replay(&fixture(), &["--format", "json"]));
    let id = all["jobs"][2]["id"].as_u64().unwrap();
    let out = replay(&fixture(), &["--format", "json", "--job", &id.to_string()]);
    let one = json(&out);
    assert_eq!(one["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(one["jobs"][0], all["jobs"][2]);
    let out = replay(&fixture(), &["--job", "9999"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no job 9999"));
}

#[test]
fn damaged_files_are_read_up_to_the_damage_with_exit_3() {
    let data = std::fs::read(fixture()).unwrap();
    let dir = TempDir::new("damage");
    let whole = json(&replay(&fixture(), &["--format", "json"]));
    let whole_events = whole["stats"]["events"].as_u64().unwrap();

    // Cut in the middle: everything before the cut is analysed, the warning says where.
    let cut = dir.0.join("cut.jtrace");
    std::fs::write(&cut, &data[..data.len() / 2]).unwrap();
    let out = replay(&cut, &["--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("damaged") && err.contains("at byte"), "{err}");
    assert!(err.contains("no trailer"), "{err}");
    let part = json(&out);
    let events = part["stats"]["events"].as_u64().unwrap();
    assert!(
        events > 0 && events < whole_events,
        "{events} of {whole_events}"
    );

    // A flipped byte in the middle: one block lost, the rest (and the trailer) kept.
    let flip = dir.0.join("flip.jtrace");
    let mut bad = data.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&flip, &bad).unwrap();
    let out = replay(&flip, &["--format", "json"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(
        !err.contains("no trailer"),
        "resync should reach the trailer: {err}"
    );
    let flipped = json(&out);
    assert!(flipped["stats"]["events"].as_u64().unwrap() < whole_events);

    // Unusable files: exit 2 with a message naming the file.
    for (name, bytes, says) in [
        ("empty.jtrace", Vec::new(), "empty"),
        (
            "garbage.jtrace",
            b"this is not a trace at all\n".repeat(10),
            "not a tracer trace file",
        ),
        (
            "header-cut.jtrace",
            data[..20].to_vec(),
            "header is damaged",
        ),
    ] {
        let p = dir.0.join(name);
        std::fs::write(&p, &bytes).unwrap();
        let out = replay(&p, &[]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says) && err.contains(name), "{name}: {err}");
    }
    let out = replay(&dir.0.join("missing.jtrace"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.jtrace"));
}

#[test]
fn every_cut_of_the_first_frames_is_handled_without_panic() {
    let data = std::fs::read(fixture()).unwrap();
    let dir = TempDir::new("cuts");
    let p = dir.0.join("c.jtrace");
    // Every byte through the header and into the first event block, then a stride.
    let mut cuts: Vec<usize> = (0..3000.min(data.len())).step_by(13).collect();
    cuts.extend((3000..data.len()).step_by(data.len() / 40 + 1));
    for cut in cuts {
        std::fs::write(&p, &data[..cut]).unwrap();
        let out = replay(&p, &["--format", "json"]);
        let code = out.status.code();
        assert!(
            code == Some(2) || code == Some(3),
            "cut at {cut}: exit {code:?}, stderr {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if code == Some(3) {
            json(&out);
        }
    }
}

/// `--crontab LOCAL=PATH` analyses the recording with this machine's copy of a file:
/// the fixed group-writable file is no longer skipped, so its run is now missed for
/// another reason (the daemon really skipped the file it had).
#[test]
fn a_crontab_given_on_replay_replaces_the_recorded_one() {
    let dir = TempDir::new("replay-crontab");
    let fixed = dir.0.join("jt-groupw");
    std::fs::write(
        &fixed,
        "* * * * * root touch /opt/jt-scenarios/markers/groupw\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fixed, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = json(&replay(&fixture(), &["--format", "json"]));
    let spec = format!("{}=/etc/cron.d/jt-groupw", fixed.display());
    let out = replay(&fixture(), &["--format", "json", "--crontab", &spec]);
    let after = json(&out);
    let about = |r: &Value, kind: &str| -> Vec<String> {
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["kind"] == kind && f["file"] == "/etc/cron.d/jt-groupw")
            .map(|f| f["message"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(about(&before, "crontab_ignored").len(), 1);
    assert!(
        about(&after, "crontab_ignored").is_empty(),
        "{:#}",
        after["findings"]
    );
    let missed = about(&after, "missed_schedule");
    assert_eq!(missed.len(), 1, "{:#}", after["findings"]);
    assert!(
        missed[0].contains("was running but did not start it"),
        "{}",
        missed[0]
    );
    // Jobs are the recording's, unchanged.
    assert_eq!(before["jobs"], after["jobs"]);

    let bad = replay(&fixture(), &["--crontab", "relative-name"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("LOCAL=/etc/cron.d/NAME"));
}

/// The text a person reads at 3 a.m.: a healthy job is its trigger path in a handful
/// of lines (fork, set*id, chdir, exec, exit), the routine lookups counted, not shown.
#[test]
fn a_healthy_job_reads_in_a_handful_of_lines() {
    let out = replay(&fixture(), &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    let block = text
        .split("\n\n")
        .find(|b| b.contains("command: true jt-clean"))
        .expect("the clean job in the text report");
    let lines = block.lines().count();
    assert!(lines <= 20, "{lines} lines:\n{block}");
    for step in [
        "fork -> pid",
        "setuid(0) = 0",
        "chdir(\"/root\") = 0",
        "execve(\"/bin/sh\"",
        "exited (exit 0)",
    ] {
        assert!(block.contains(step), "{step:?} missing:\n{block}");
    }
    assert!(
        !block.contains("stat("),
        "successful stats are routine:\n{block}"
    );
}

/// A trace written by this tracer carries the host's answers in its trailer too, and
/// is replayed in one pass; a format 1.4 file (the fixture) takes two. The fixture
/// copied entry by entry through the writer must replay to the same report.
#[test]
fn a_trace_replayed_in_one_pass_gives_the_report_of_two() {
    use tracer::tracefile::{self, Entry};
    let bytes = std::fs::read(fixture()).unwrap();
    let c = tracefile::read(bytes::Bytes::from(bytes)).unwrap();
    assert!(
        c.trailer.as_ref().is_some_and(|t| t.facts.is_none()),
        "the fixture is meant to be a two-pass (format 1.4) file"
    );
    let dir = TempDir::new("one-pass");
    let copy = dir.0.join("copy.jtrace");
    let file = tracefile::create_file(&copy, false).unwrap();
    let mut w = tracefile::TraceWriter::new(&copy, file, &c.header);
    let mut facts = 0;
    for e in &c.entries {
        match e {
            Entry::Kernel(raw) => w.kernel_record(raw),
            Entry::Synthetic(s) => w.synthetic(s),
            Entry::Fact(f) => {
                facts += 1;
                w.fact(f)
            }
            Entry::Schedules(l) => w.schedules(&l.view, l.ts_ns),
            Entry::Lost(l) => w.lost(l),
            Entry::SchedulerFiles(l) => w.scheduler_files(l),
        }
    }
    assert!(facts > 0, "the fixture's diagnosis asked the host nothing");
    assert!(w.finish(c.trailer.as_ref().unwrap()).is_none());

    let mut probe = tracefile::Source::Memory(std::fs::read(&copy).unwrap().into());
    assert!(
        tracefile::trailer_at_end(&mut probe).is_some_and(|t| t.facts.is_some()),
        "the copy's trailer has no answers: it would take two passes too"
    );
    let two = replay(&fixture(), &["--format", "json"]);
    let one = replay(&copy, &["--format", "json"]);
    assert_eq!(json(&one), json(&two));
    assert_eq!(one.stderr, two.stderr);
}
