//! Redaction of secrets before events reach the screen or a file.
//!
//! Env values whose names look secret are replaced; so are the values of
//! `--password=...`-style arguments. `--capture-secrets` turns this off.
use crate::event::{Body, Event};

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

fn redact_env(env: &mut [String]) {
    for v in env.iter_mut() {
        if let Some(r) = redact_assignment(v) {
            *v = r;
        }
    }
}

/// `--password=x`, `--api-key=x`; the value of `--password x` is left alone because
/// we cannot tell it from a positional argument.
fn redact_argv(argv: &mut [String]) {
    for a in argv.iter_mut() {
        if a.starts_with('-') {
            if let Some(r) = redact_assignment(a) {
                *a = r;
            }
        }
    }
}

pub fn redact(ev: &mut Event) {
    match &mut ev.body {
        Body::ExecAttempt { argv, env, .. } => {
            redact_env(env);
            redact_argv(argv);
        }
        Body::Snapshot { cmdline, .. } => redact_argv(cmdline),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
