//! `tracer trigger`: a crontab entry run now as the real cron would run it, traced. The
//! entries are real crontabs installed with `crontab`; nothing waits for a minute.
use std::process::Command;

use serde_json::Value;
use tracer_tests::{require_root, scenarios, tracer_bin, CrontabGuard, HostLock, TempDir};

fn trigger(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(tracer_bin())
        .arg("trigger")
        .args(args)
        .output()
        .expect("run tracer trigger");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(s: &str, err: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}\nstderr: {err}"))
}

#[test]
fn an_entry_runs_as_cron_would_and_is_diagnosed_like_a_scheduled_run() {
    require_root();
    let _lock = HostLock::acquire();
    let _files = scenarios::ScenarioFiles::create();
    let dir = TempDir::new("trigger");
    let out = dir.0.join("stdin-copy");
    let crontab = format!(
        "# trigger tests\n0 5 * * * jt-offpath-tool --run\n0 5 * * * cat > {}%hello from %\n",
        out.display()
    );
    let _root = CrontabGuard::install(&crontab);
    // nobody's home does not exist: cron cannot enter it.
    let _nobody = CrontabGuard::install_for("nobody", "0 5 * * * id -u # jt-nobody\n");

    // What would run: cron's PATH, $HOME, the user, the `%` text on stdin.
    let (code, text, err) = trigger(&["jt-offpath-tool", "--dry-run"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(text.contains("PATH=/usr/bin:/bin"), "{text}");
    assert!(text.contains("in:         /root"), "{text}");
    assert!(
        text.contains("/bin/sh -c \"jt-offpath-tool --run\""),
        "{text}"
    );

    // The classic trap: on root's interactive PATH the tool is found; under cron not.
    assert!(std::path::Path::new(scenarios::TOOL).exists());
    let (code, text, err) = trigger(&["jt-offpath-tool", "--format", "json"]);
    assert_eq!(code, Some(1), "{err}");
    let r = json(&text, &err);
    let jobs = r["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{r:#}");
    let job = &jobs[0];
    assert_eq!(job["command"], "jt-offpath-tool --run");
    assert_eq!(
        job["crontab_entry"]["file"],
        "/var/spool/cron/crontabs/root"
    );
    assert_eq!(job["exit"]["code"], 127);
    let f = &job["findings"][0];
    assert_eq!(f["kind"], "command_not_found", "{job:#}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains(&format!("found at {}", scenarios::TOOL)),
        "{f}"
    );
    assert!(
        err.contains("not found"),
        "the job's output is shown: {err}"
    );

    // `%`: the rest of the line is the job's stdin.
    let (code, _, err) = trigger(&["cat >", "--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "hello from \n");

    // Another user's entry whose home cannot be entered: the chdir fails, nothing runs.
    let (code, text, err) = trigger(&["jt-nobody", "--format", "json"]);
    assert_eq!(code, Some(1), "{err}");
    let r = json(&text, &err);
    let job = &r["jobs"][0];
    let kinds: Vec<&str> = job["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"chdir_failed"), "{job:#}");
    assert!(kinds.contains(&"no_exec"), "{kinds:?}");

    // A pattern that names several entries, or none, is refused.
    let (code, _, err) = trigger(&["jt-", "--dry-run"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("matches 2 entries"), "{err}");
    let (code, _, err) = trigger(&["/var/spool/cron/crontabs/root:99"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("matches no crontab entry"), "{err}");
}
