//! What can be seen to be wrong with a scheduled command before it runs, from the host
//! alone: a command word not on the job's PATH, a script that is missing, lacks its
//! exec bit, or names a `#!` interpreter that does not exist (or ends in CR). The
//! messages are the live rules' own (`exec::exec_failure`, `exec::not_in_path`), so
//! `tracer crontab` and a traced run say the same thing.
use std::collections::BTreeMap;

use super::{
    exec::{command_words, exec_failure, not_in_path, ExecContext, SHELL_BUILTINS},
    Finding, Kind,
};
use crate::{facts::HostFacts, model::process::resolve};

/// Command words checked per command line: the rest of a long pipeline adds noise.
const MAX_WORDS: usize = 8;

/// The environment a scheduled command will run with.
pub struct RunEnv<'a> {
    pub env: &'a BTreeMap<String, String>,
    /// The scheduler's name for messages (`cron`).
    pub scheduler: &'a str,
    pub uid: u32,
}

/// Findings (kind, message; no pid or evidence: nothing ran) for `command`.
pub fn check_command(command: &str, run: &RunEnv, facts: &mut dyn HostFacts) -> Vec<Finding> {
    let path = run
        .env
        .get("PATH")
        .cloned()
        .unwrap_or_else(|| "/usr/bin:/bin".into());
    let home = run.env.get("HOME").map(String::as_str);
    let mut out = Vec::new();
    // After a `cd`, relative paths are taken from somewhere only running it can tell.
    let mut moved = false;
    for word in command_words(command).into_iter().take(MAX_WORDS) {
        if word == "cd" || word == "pushd" {
            moved = true;
        }
        if word.is_empty()
            || word.starts_with('$')
            || word.contains('`')
            || word.contains('*')
            || SHELL_BUILTINS.contains(&word.as_str())
        {
            continue;
        }
        let how = ExecContext {
            cwd: home,
            scheduler: run.scheduler,
            shown: &word,
            uid: run.uid,
            near: Vec::new(),
        };
        let found = if word.contains('/') {
            if word.starts_with('/') {
                Some(word.clone())
            } else if moved {
                continue;
            } else {
                // cron starts jobs in $HOME: a relative path is taken from there.
                let at = resolve(home, &word);
                match at {
                    Some(p) if facts.file(&p).exists => Some(p),
                    _ => {
                        push(&mut out, exec_failure(&word, 2, &how, facts));
                        continue;
                    }
                }
            }
        } else {
            let hit = path.split(':').filter(|d| !d.is_empty()).find_map(|d| {
                let p = format!("{}/{word}", d.trim_end_matches('/'));
                let f = facts.file(&p);
                (f.exists && !f.is_dir && f.mode & 0o111 != 0).then_some(p)
            });
            if hit.is_none() {
                out.push(Finding {
                    kind: Kind::CommandNotFound.as_str().into(),
                    message: not_in_path(&word, &path, facts),
                    ..Default::default()
                });
                continue;
            }
            hit
        };
        if let Some(file) = found {
            if let Some(errno) = predicted_errno(&file, facts) {
                push(&mut out, exec_failure(&file, errno, &how, facts));
            }
        }
    }
    out
}

fn push(out: &mut Vec<Finding>, (kind, message): (Kind, String)) {
    out.push(Finding {
        kind: kind.as_str().into(),
        message,
        ..Default::default()
    });
}

/// The errno an exec of `file` would get, judged from the file and its `#!` line.
fn predicted_errno(file: &str, facts: &mut dyn HostFacts) -> Option<i64> {
    let f = facts.file(file);
    if !f.exists {
        return Some(libc::ENOENT as i64);
    }
    if f.is_dir || f.mode & 0o111 == 0 || f.noexec_mount {
        return Some(libc::EACCES as i64);
    }
    let sb = f.shebang?;
    let interp = sb.trim_start_matches("#!").trim_start();
    let interp_path = interp.split([' ', '\t']).next().unwrap_or(interp);
    if interp_path.ends_with('\r') || !interp_path.starts_with('/') {
        return Some(libc::ENOENT as i64);
    }
    (!facts.file(interp_path).exists).then_some(libc::ENOENT as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{Fact, FileFact, RecordedFacts};

    fn file(path: &str, mode: u32, shebang: Option<&str>) -> Fact {
        Fact::File {
            path: path.into(),
            fact: FileFact {
                exists: true,
                is_dir: false,
                mode,
                noexec_mount: false,
                shebang: shebang.map(str::to_string),
            },
        }
    }

    fn host() -> RecordedFacts {
        let mut f = RecordedFacts::default();
        for fact in [
            file("/usr/bin/tar", 0o755, None),
            file("/bin/sh", 0o755, None),
            file("/opt/app/noexec.sh", 0o644, Some("#!/bin/sh")),
            file("/opt/app/crlf.sh", 0o755, Some("#!/bin/sh\r")),
            file("/opt/app/py.sh", 0o755, Some("#!/usr/bin/jt-python9 -u")),
            file("/opt/app/ok.sh", 0o755, Some("#!/bin/sh")),
            file("/root/rel.sh", 0o755, Some("#!/bin/sh")),
            Fact::Locate {
                name: "backup-tool".into(),
                found: Some("/usr/local/bin/backup-tool".into()),
            },
            Fact::Relative {
                rel: "./elsewhere.sh".into(),
                near: Vec::new(),
                found: Some("/opt/app/elsewhere.sh".into()),
            },
        ] {
            f.add(&fact);
        }
        f
    }

    fn kinds_and_messages(cmd: &str) -> Vec<(String, String)> {
        let env = BTreeMap::from([
            ("PATH".to_string(), "/usr/bin:/bin".to_string()),
            ("HOME".to_string(), "/root".to_string()),
        ]);
        let run = RunEnv {
            env: &env,
            scheduler: "cron",
            uid: 0,
        };
        check_command(cmd, &run, &mut host())
            .into_iter()
            .map(|f| (f.kind, f.message))
            .collect()
    }

    #[test]
    fn a_command_off_cron_path_is_named_with_where_it_really_is() {
        let got = kinds_and_messages("backup-tool --all > /dev/null 2>&1");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, "command_not_found");
        assert!(got[0]
            .1
            .contains("\"backup-tool\" not found in PATH=/usr/bin:/bin"));
        assert!(got[0].1.contains("found at /usr/local/bin/backup-tool"));
    }

    #[test]
    fn scripts_that_cannot_run_say_why_as_the_live_rules_do() {
        let k = |c: &str| kinds_and_messages(c).into_iter().next();
        let (kind, msg) = k("/opt/app/noexec.sh").unwrap();
        assert_eq!(kind, "not_executable");
        assert!(msg.contains("lacks the exec bit (mode 0644)"), "{msg}");
        let (kind, msg) = k("/opt/app/crlf.sh").unwrap();
        assert_eq!(kind, "bad_interpreter");
        assert!(msg.contains("CRLF") && msg.contains("dos2unix /opt/app/crlf.sh"));
        let (kind, msg) = k("/opt/app/py.sh").unwrap();
        assert_eq!(kind, "bad_interpreter");
        assert!(msg.contains("/usr/bin/jt-python9 does not exist"), "{msg}");
        let (kind, msg) = k("/opt/app/missing.sh").unwrap();
        assert_eq!(kind, "exec_failed");
        assert!(msg.contains("no such file"), "{msg}");
        let (kind, msg) = k("./elsewhere.sh").unwrap();
        assert_eq!(kind, "relative_path");
        assert!(
            msg.contains("cwd=/root") && msg.contains("/opt/app/elsewhere.sh"),
            "{msg}"
        );
        // Nowhere else either: not the cwd's fault, just missing.
        let (kind, _) = k("./nowhere.sh").unwrap();
        assert_eq!(kind, "exec_failed");
    }

    #[test]
    fn a_healthy_command_line_has_no_finding() {
        assert!(kinds_and_messages(
            "tar czf /tmp/x.tgz /etc && /opt/app/ok.sh; ./rel.sh; cd /srv && ./x.sh; echo done"
        )
        .is_empty());
    }
}
