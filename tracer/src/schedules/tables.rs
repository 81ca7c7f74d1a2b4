//! The tables of the schedulers that are not cron: anacron's `anacrontab` and atd's
//! spool of job scripts. Each file is kept as read (`TableFile`, into the trace) and
//! parsed here, without I/O.
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Where Debian's atd keeps its queue (and runs from).
pub const AT_SPOOL_DIR: &str = "/var/spool/cron/atjobs";

/// A scheduler's file as read: an anacrontab, or one at job in atd's spool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TableFile {
    /// `anacron` or `at`.
    pub scheduler: String,
    /// The daemons reading it when it was read.
    pub pids: Vec<u32>,
    pub path: String,
    pub text: String,
}

/// One job line of an anacrontab: `period delay job-identifier command`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AnacronEntry {
    pub file: String,
    pub line: u32,
    /// Days, or `@monthly`/`@yearly` as written.
    pub period: String,
    /// Minutes.
    pub delay: String,
    pub ident: String,
    pub command: String,
    /// Assignments above the line (`PATH=...`), applied to its job.
    pub env: Vec<String>,
}

/// The job lines of an anacrontab, and the lines anacron would refuse (`line: why`).
pub fn parse_anacrontab(file: &str, text: &str) -> (Vec<AnacronEntry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let mut env: Vec<String> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i as u32 + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // readtab.c tries an assignment first: a name without blanks, then `=`.
        if let Some((name, value)) = line.split_once('=') {
            let name = name.trim();
            if !name.is_empty() && !name.contains(char::is_whitespace) {
                env.retain(|kv| kv.split_once('=').map(|(k, _)| k) != Some(name));
                env.push(format!("{name}={value}"));
                continue;
            }
        }
        let mut fields: Vec<&str> = Vec::new();
        let mut rest = line;
        for _ in 0..3 {
            rest = rest.trim_start();
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            fields.push(&rest[..end]);
            rest = &rest[end..];
        }
        let command = rest.trim();
        let [period, delay, ident] = [fields[0], fields[1], fields[2]];
        let period_ok = period.parse::<u32>().is_ok() || matches!(period, "@monthly" | "@yearly");
        let why = if command.is_empty() || ident.is_empty() {
            Some("not `period delay job-identifier command`")
        } else if !period_ok {
            Some("the period is not a number of days, @monthly or @yearly")
        } else if delay.parse::<u32>().is_err() {
            Some("the delay is not a number of minutes")
        } else if ident.contains('/') {
            Some("the job identifier contains `/`")
        } else {
            None
        };
        if let Some(why) = why {
            problems.push(format!("{file}:{n}: {why}: {line}"));
            continue;
        }
        entries.push(AnacronEntry {
            file: file.to_string(),
            line: n,
            period: period.to_string(),
            delay: delay.to_string(),
            ident: ident.to_string(),
            command: command.to_string(),
            env: env.clone(),
        });
    }
    (entries, problems)
}

/// An at job as its spool file says: `a0000201c8bcf2` is queue `a`, job 2, due at
/// minute 0x1c8bcf2 since the epoch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AtJob {
    pub file: String,
    pub queue: char,
    pub number: u32,
    /// When it is due (atd runs it then, or later for a batch queue).
    pub due: Timestamp,
    /// The user's commands: the script after at's prelude (environment, umask, cd).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commands: Option<String>,
    /// The directory the script enters first (`cd DIR || { ... }`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The PATH the script exports (at copies the submitter's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The name atd gives a spool file (`%c%5lx%8lx`), parsed; `None` for other names.
pub fn parse_at_name(path: &str) -> Option<(char, u32, Timestamp)> {
    let name = path.rsplit('/').next()?;
    if name.len() != 14 || !name.is_ascii() {
        return None;
    }
    let queue = name.chars().next()?;
    if !queue.is_ascii_alphabetic() {
        return None;
    }
    let number = u32::from_str_radix(&name[1..6], 16).ok()?;
    let minutes = i64::from_str_radix(&name[6..], 16).ok()?;
    let due = Timestamp::from_second(minutes.checked_mul(60)?).ok()?;
    Some((queue, number, due))
}

/// What the job file says, when it was read; its name alone otherwise.
pub fn at_job(path: &str, text: Option<&str>) -> Option<AtJob> {
    let (queue, number, due) = parse_at_name(path)?;
    let mut job = AtJob {
        file: path.to_string(),
        queue,
        number,
        due,
        commands: None,
        directory: None,
        uid: None,
        path: None,
    };
    if let Some(text) = text {
        job.uid = text
            .lines()
            .find_map(|l| l.strip_prefix("# atrun uid="))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|u| u.parse().ok());
        job.path = text
            .lines()
            .find_map(|l| l.strip_prefix("PATH="))
            .and_then(|l| l.strip_suffix("; export PATH"))
            .map(|p| p.replace('\\', ""));
        // at.c writes `cd DIR || {`, its three-line block, then the user's input.
        let lines: Vec<&str> = text.lines().collect();
        if let Some(i) = lines
            .iter()
            .position(|l| l.starts_with("cd ") && l.trim_end().ends_with("|| {"))
        {
            job.directory = lines[i]
                .strip_prefix("cd ")
                .and_then(|l| l.rsplit_once("||"))
                .map(|(d, _)| d.trim().replace('\\', ""));
            let end = lines[i..]
                .iter()
                .position(|l| l.trim() == "}")
                .map(|e| i + e + 1);
            if let Some(end) = end {
                let body = lines[end..].join("\n");
                let body = body.trim();
                job.commands = Some(body.to_string()).filter(|b| !b.is_empty());
            }
        }
    }
    Some(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anacrontab_gives_its_jobs_with_the_environment_above_them() {
        let text = "# comment\nSHELL=/bin/sh\nPATH=/usr/bin:/bin\n1\t5\tcron.daily\trun-parts --report /etc/cron.daily\n@monthly 15 cron.monthly nice run-parts /etc/cron.monthly\nPATH = /x\n7 x bad.delay true\n1 0 a/b true\n3 2\n";
        let (e, p) = parse_anacrontab("/etc/anacrontab", text);
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0].ident, "cron.daily");
        assert_eq!(e[0].command, "run-parts --report /etc/cron.daily");
        assert_eq!((e[0].line, e[0].delay.as_str()), (4, "5"));
        assert_eq!(e[0].env, vec!["SHELL=/bin/sh", "PATH=/usr/bin:/bin"]);
        assert_eq!(e[1].period, "@monthly");
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("/etc/anacrontab:7: the delay"));
        assert!(p[1].contains("contains `/`"));
        assert!(p[2].contains("not `period delay"));
    }

    #[test]
    fn an_at_spool_file_names_its_queue_number_due_time_and_commands() {
        let text = "#!/bin/sh\n# atrun uid=1000 gid=1000\n# mail alice 0\numask 22\nHOME=/home/alice; export HOME\ncd /home/alice/my\\ dir || {\n\t echo 'Execution directory inaccessible' >&2\n\t exit 1\n}\nbackup-db --full\necho done\n\n";
        let j = at_job("/var/spool/cron/atjobs/a0000201c8bcf2", Some(text)).unwrap();
        assert_eq!((j.queue, j.number), ('a', 2));
        assert_eq!(j.due.as_second(), 0x1c8bcf2 * 60);
        assert_eq!(j.commands.as_deref(), Some("backup-db --full\necho done"));
        assert_eq!(j.directory.as_deref(), Some("/home/alice/my dir"));
        assert_eq!(j.uid, Some(1000));
        assert_eq!(j.path, None);
        let j = at_job(
            "a0000201c8bcf2",
            Some("PATH=/usr/local/bin:/usr/bin; export PATH\n"),
        )
        .unwrap();
        assert_eq!(j.path.as_deref(), Some("/usr/local/bin:/usr/bin"));
        assert_eq!(
            parse_at_name("=0000201c8bcf2"),
            None,
            "the lock link lost its queue letter"
        );
        assert!(parse_at_name("b00003abcdef01").is_some());
        assert_eq!(parse_at_name(".SEQ"), None);
        assert_eq!(parse_at_name("/etc/passwd"), None);
    }
}
