//! Where secrets sit on a command line and in an environment, as a table of rules
//! (one test per row) and the functions that find them. A rule says which part of a
//! word is secret; the caller replaces that part and keeps the rest (option names,
//! user names, hosts), so a redacted line still tells what ran.
#![allow(clippy::single_range_in_vec_init)] // one secret range per word is the common case
use std::{collections::BTreeMap, ops::Range};

/// Redactions made, per rule id (counts only, never values).
pub type Counts = BTreeMap<&'static str, u64>;

pub struct Rule {
    pub id: &'static str,
    pub what: &'static str,
    /// A shell line before and after redaction (`<R>` stands for the marker).
    pub example: &'static str,
    pub redacted: &'static str,
}

pub const RULES: &[Rule] = &[
    Rule {
        id: "secret_assignment",
        what: "NAME=VALUE words whose name looks secret (env PGPASSWORD=x cmd, sudo VAR=x, crontab env lines)",
        example: "env PGPASSWORD='a b' psql",
        redacted: "env PGPASSWORD=<R> psql",
    },
    Rule {
        id: "secret_option_value",
        what: "--password=X, --api-key=X, -token=X",
        example: "tool --api-key=k1 --user=root",
        redacted: "tool --api-key=<R> --user=root",
    },
    Rule {
        id: "secret_option_next",
        what: "the word after --password, --pass, --token, --secret, --api-key ...",
        example: "mysqldump --password hunter2 db",
        redacted: "mysqldump --password <R> db",
    },
    Rule {
        id: "tool_password_flag",
        what: "-pX / -p X of mysql, mysqldump, mariadb, sshpass; -aX / -a X of redis-cli",
        example: "mysql -phunter2 db; sshpass -p s3cr3t ssh h; redis-cli -a pw ping",
        redacted: "mysql -p<R> db; sshpass -p <R> ssh h; redis-cli -a <R> ping",
    },
    Rule {
        id: "user_password_pair",
        what: "curl -u user:PASS, --user user:PASS, --proxy-user user:PASS",
        example: "curl -u alice:pw https://h/ --user=bob:pw2",
        redacted: "curl -u alice:<R> https://h/ --user=bob:<R>",
    },
    Rule {
        id: "secret_header",
        what: "-H 'Authorization: ...', Cookie:, X-Api-Key: and other secret-named headers",
        example: "curl -H 'Authorization: Bearer abc' -H 'Accept: x' --header 'X-Api-Key: k'",
        redacted: "curl -H 'Authorization: <R>' -H 'Accept: x' --header 'X-Api-Key: <R>'",
    },
    Rule {
        id: "url_userinfo",
        what: "scheme://user:PASS@host in any word or env value (the user and host stay); a long token as the whole user-info",
        example: "pg_dump postgres://app:pw@db:5432/x https://ghp_0123456789abcdefghij@github.com/o/r ssh://git@h",
        redacted: "pg_dump postgres://app:<R>@db:5432/x https://<R>@github.com/o/r ssh://git@h",
    },
    Rule {
        id: "url_query_secret",
        what: "the value of a secret-named query, fragment or path parameter (?api_key=X, &token=X, &sig=X, X-Amz-Signature=X, ;jsessionid=X) in any word or env value, with or without the scheme",
        example: "curl 'https://api.example.com/v1/send?to=ops&api_key=hunter2' https://h/f?sig=s3cr3t#top",
        redacted: "curl 'https://api.example.com/v1/send?to=ops&api_key=<R>' https://h/f?sig=<R>#top",
    },
    Rule {
        id: "webhook_url",
        what: "the token path of a webhook URL: after the first path segment on a hooks.* or hook.* host (Slack, Zapier; Make's one segment), after a /hooks/ or /webhook*/ segment (Discord, Teams, Mattermost)",
        example: "curl -d @m.json https://hooks.slack.com/services/T0/B0/s3cr3t https://discord.com/api/webhooks/1/hunter2",
        redacted: "curl -d @m.json https://hooks.slack.com/services/<R> https://discord.com/api/webhooks/<R>",
    },
    Rule {
        id: "secret_env",
        what: "environment variables whose name looks secret (see is_secret_name)",
        example: "AWS_SECRET_ACCESS_KEY=x MYSQL_PWD=y",
        redacted: "AWS_SECRET_ACCESS_KEY=<R> MYSQL_PWD=<R>",
    },
];

/// Parts of names that mark a secret. `PWD` alone is the working directory, so only
/// `*_PWD` and `*PASSWD` count.
const SECRET_WORDS: [&str; 10] = [
    "PASS",
    "SECRET",
    "TOKEN",
    "KEY",
    "CREDENTIAL",
    "AUTH",
    "PRIVATE",
    "COOKIE",
    "WEBHOOK",
    "SESSION",
];

/// Whether a variable, option or header name looks like it holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    // Compared in place, ignoring ASCII case: every name of every exec's environment
    // comes here, and an upper-cased copy searched ten times was most of a followed
    // exec's redaction.
    let b = name.as_bytes();
    SECRET_WORDS.iter().any(|w| has_word(b, w.as_bytes()))
        || b.len() >= 4 && b[b.len() - 4..].eq_ignore_ascii_case(b"_PWD")
}

/// Whether `word` stands anywhere in `name`, ignoring ASCII case.
fn has_word(name: &[u8], word: &[u8]) -> bool {
    name.windows(word.len())
        .any(|w| w.eq_ignore_ascii_case(word))
}

/// Tools whose `-p` is a password.
const P_IS_PASSWORD: [&str; 8] = [
    "mysql",
    "mysqldump",
    "mysqladmin",
    "mysqlimport",
    "mysqlcheck",
    "mariadb",
    "mariadb-dump",
    "sshpass",
];

/// Tools whose `-w` is a password (OpenLDAP clients).
const W_IS_PASSWORD: [&str; 6] = [
    "ldapsearch",
    "ldapmodify",
    "ldapadd",
    "ldapdelete",
    "ldappasswd",
    "ldapwhoami",
];

/// Tools whose user options take `user:password`.
const USER_PASS_TOOLS: [&str; 1] = ["curl"];

/// The tools a line runs that change what their options mean.
pub fn known_tool(word: &str) -> Option<&'static str> {
    let base = word.rsplit('/').next().unwrap_or(word);
    P_IS_PASSWORD
        .iter()
        .chain(W_IS_PASSWORD.iter())
        .chain(USER_PASS_TOOLS.iter())
        .chain(["redis-cli"].iter())
        .find(|t| **t == base)
        .copied()
}

/// The secret parts of `word`, given the word before it in the same command and the
/// tool the command runs; each with the rule that found it.
pub fn secret_ranges(
    word: &str,
    prev: Option<&str>,
    tool: Option<&str>,
) -> Vec<(&'static str, Range<usize>)> {
    let whole = || vec![0..word.len()];
    let mut hits: Vec<(&'static str, Range<usize>)> = Vec::new();
    let mut add = |id, rs: Vec<Range<usize>>| {
        hits.extend(rs.into_iter().filter(|r| !r.is_empty()).map(|r| (id, r)))
    };
    let is_value = !word.starts_with('-') && !word.is_empty();
    let prev = prev.unwrap_or("");

    // Values that follow their option as the next word: `--password X`, and the
    // single-dash long options of Java and OpenSSL tools (`-storepass X`, `-pass X`).
    if is_value {
        let name = prev.trim_start_matches('-');
        let dashes = prev.len() - name.len();
        let long_option = dashes == 2 || (dashes == 1 && name.len() >= 3);
        if long_option && !prev.contains('=') && is_secret_name(name) {
            add("secret_option_next", whole());
            return hits;
        }
        let flag_is_password = match tool {
            Some("redis-cli") => prev == "-a",
            Some(t) if P_IS_PASSWORD.contains(&t) => prev == "-p",
            Some(t) if W_IS_PASSWORD.contains(&t) => prev == "-w",
            _ => false,
        };
        if flag_is_password {
            add("tool_password_flag", whole());
            return hits;
        }
        // Short options may come bundled: `curl -sH 'Authorization: x'`, `-su u:p`.
        let short_cluster = |last: char| {
            dashes == 1 && name.ends_with(last) && name.chars().all(|c| c.is_ascii_alphabetic())
        };
        if tool.is_some_and(|t| USER_PASS_TOOLS.contains(&t))
            && (matches!(prev, "--user" | "--proxy-user")
                || short_cluster('u')
                || short_cluster('U'))
        {
            add("user_password_pair", after_colon(word, 0));
            return hits;
        }
        if matches!(prev, "--header" | "--proxy-header") || short_cluster('H') {
            add("secret_header", header_value(word, 0));
            return hits;
        }
    }
    // Options that carry their value.
    if let Some(rest) = word.strip_prefix("-H").filter(|r| !r.is_empty()) {
        add("secret_header", header_value(rest, 2));
        return hits;
    }
    for opt in ["--header=", "--proxy-header="] {
        if let Some(rest) = word.strip_prefix(opt) {
            add("secret_header", header_value(rest, opt.len()));
            return hits;
        }
    }
    if tool.is_some_and(|t| USER_PASS_TOOLS.contains(&t)) {
        for opt in ["--user=", "--proxy-user=", "-u", "-U"] {
            if let Some(rest) = word.strip_prefix(opt).filter(|r| !r.is_empty()) {
                add("user_password_pair", after_colon(rest, opt.len()));
                return hits;
            }
        }
    }
    let short = match tool {
        Some("redis-cli") => Some("-a"),
        Some(t) if P_IS_PASSWORD.contains(&t) => Some("-p"),
        Some(t) if W_IS_PASSWORD.contains(&t) => Some("-w"),
        _ => None,
    };
    if let Some(flag) = short {
        if word.len() > 2 && word.starts_with(flag) && !word.starts_with("--") {
            add("tool_password_flag", vec![2..word.len()]);
            return hits;
        }
    }
    if let Some((name, value)) = word.split_once('=') {
        let bare = name.trim_start_matches('-');
        let dashes = name.len() - bare.len();
        // Dotted names too: `-Dspring.datasource.password=x`.
        let ok_name = !bare.is_empty()
            && bare
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if ok_name && !value.is_empty() && is_secret_assignment(bare) {
            let id = if dashes > 0 {
                "secret_option_value"
            } else {
                "secret_assignment"
            };
            add(id, vec![name.len() + 1..word.len()]);
            return hits;
        }
    }
    hits.extend(url_secrets(word));
    hits
}

/// `user:secret` -> the secret (offset by `base` into the whole word); with no secret
/// after the colon, a user long enough to be a token (`curl -u sk_live_...:`).
fn after_colon(s: &str, base: usize) -> Vec<Range<usize>> {
    match s.find(':') {
        Some(i) if i + 1 == s.len() && i >= TOKEN_AS_USER => vec![base..base + i],
        Some(i) => vec![base + i + 1..base + s.len()],
        None => Vec::new(),
    }
}

/// `Name: value` of a secret-named header -> the value.
fn header_value(s: &str, base: usize) -> Vec<Range<usize>> {
    let Some(colon) = s.find(':') else {
        return Vec::new();
    };
    let name = s[..colon].trim();
    let secret = matches!(
        name.to_ascii_lowercase().as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
    ) || is_secret_name(name);
    if !secret {
        return Vec::new();
    }
    let value_start = colon + 1 + (s.len() - colon - 1 - s[colon + 1..].trim_start().len());
    vec![base + value_start..base + s.len()]
}

/// User-infos are short names; a long one without a password is a token.
const TOKEN_AS_USER: usize = 20;

/// The secret parts of the URLs in `s`, in order, each with its rule: user-info
/// passwords, the token path of webhook URLs, the values of secret-named query
/// parameters. A job that pings a service from cron carries its key in the URL more
/// often than in an option.
pub fn url_secrets(s: &str) -> Vec<(&'static str, Range<usize>)> {
    let mut out: Vec<(&'static str, Range<usize>)> = Vec::new();
    let ends_url = |c: char| c.is_whitespace() || c == '\'' || c == '"';
    let mut from = 0;
    while let Some(i) = s[from..].find("://") {
        let auth_start = from + i + 3;
        let auth_end = s[auth_start..]
            .find(|c: char| matches!(c, '/' | '?' | '#') || ends_url(c))
            .map(|e| auth_start + e)
            .unwrap_or(s.len());
        let authority = &s[auth_start..auth_end];
        let host = match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                out.extend(
                    after_colon(userinfo, auth_start)
                        .into_iter()
                        .chain(
                            (!userinfo.contains(':') && userinfo.len() >= TOKEN_AS_USER)
                                .then_some(auth_start..auth_start + at),
                        )
                        .map(|r| ("url_userinfo", r)),
                );
                &authority[at + 1..]
            }
            None => authority,
        };
        let url_end = s[auth_end..]
            .find(ends_url)
            .map(|e| auth_end + e)
            .unwrap_or(s.len());
        let rest = &s[auth_end..url_end];
        let path_end = rest.find(['?', '#']).unwrap_or(rest.len());
        if let Some(r) = webhook_token(host, &rest[..path_end]) {
            out.push(("webhook_url", auth_end + r.start..auth_end + r.end));
        }
        // Parameters start at the query, or at a path's `;jsessionid=`.
        let params = rest[..path_end].find(';').unwrap_or(path_end);
        query_secrets(s, auth_end + params, url_end, &mut out);
        // A URL inside this one's query (`?next=https://u:p@h`) is looked at too.
        from = auth_end.max(auth_start);
    }
    // URLs without their scheme (`wget -qO- example.com/cron?key=X`): the query of
    // each blank-separated part that has no `://` of its own. Every env value and argv
    // word comes here; most have no `?` at all.
    if s.contains('?') {
        let mut start = 0;
        let ends = s.match_indices(ends_url).map(|(i, m)| (i, i + m.len()));
        for (end, next) in ends.chain(std::iter::once((s.len(), s.len()))) {
            let part = &s[start..end];
            if !part.contains("://") {
                if let Some(q) = part.find('?') {
                    query_secrets(s, start + q, end, &mut out);
                }
            }
            start = next;
        }
    }
    // An inner URL's parts can overlap a range already taken (`?token=https://u:p;x@h`):
    // one range covers both. `u:@h` has an empty password, nothing to take.
    out.retain(|(_, r)| !r.is_empty());
    merge(out)
}

/// Hits in order of their start, overlapping ones made one (under the first's rule).
pub fn merge(mut hits: Vec<(&'static str, Range<usize>)>) -> Vec<(&'static str, Range<usize>)> {
    hits.sort_by_key(|(_, r)| r.start);
    let mut merged: Vec<(&'static str, Range<usize>)> = Vec::with_capacity(hits.len());
    for (id, r) in hits {
        match merged.last_mut() {
            Some((_, last)) if r.start < last.end => last.end = last.end.max(r.end),
            _ => merged.push((id, r)),
        }
    }
    merged
}

/// The values of secret-named parameters in `s[from..to]`, which starts at a separator
/// (`?`, `#` or `;`): one separator before each parameter.
fn query_secrets(s: &str, from: usize, to: usize, out: &mut Vec<(&'static str, Range<usize>)>) {
    let mut start = from;
    for param in s[from..to].split(['?', '&', '#', ';']) {
        if let Some((name, value)) = param.split_once('=') {
            if !value.is_empty() && is_secret_parameter(name) {
                out.push((
                    "url_query_secret",
                    start + name.len() + 1..start + param.len(),
                ));
            }
        }
        start += param.len() + 1;
    }
}

/// The rules that find secrets inside a URL: a word holding several words whose whole
/// gives only these is also looked at word by word, for the other rules.
pub fn is_url_rule(id: &str) -> bool {
    matches!(id, "url_userinfo" | "url_query_secret" | "webhook_url")
}

/// A `NAME=VALUE` word named like a secret, or a signature (an unquoted presigned
/// S3 URL's `&` makes `X-Amz-Signature=...` a word of its own). Not among the name
/// words: a `--nosignature` option takes no value.
fn is_secret_assignment(name: &str) -> bool {
    is_secret_name(name) || has_word(name.as_bytes(), b"SIGNATURE")
}

/// A query parameter named like a secret, a signature, or Azure SAS's `sig` (which,
/// as a word of its own, `make SIG=1` is not).
fn is_secret_parameter(name: &str) -> bool {
    is_secret_assignment(name) || name.eq_ignore_ascii_case("sig")
}

/// Where the token sits in a webhook URL's path (relative to the path), keeping the
/// service and the kind of hook readable: on a `hooks.` or `hook.` host, after the first
/// segment (`hooks.slack.com/services/T/B/X`), or the only one
/// (`hook.eu1.make.com/X`); elsewhere after a `hooks` segment or one that starts with
/// `webhook` (`discord.com/api/webhooks/ID/X`, Teams' `/webhookb2/X`, Mattermost's
/// `/hooks/X`).
fn webhook_token(host: &str, path: &str) -> Option<Range<usize>> {
    let starts = |b: &[u8], p: &[u8]| b.len() >= p.len() && b[..p.len()].eq_ignore_ascii_case(p);
    let make = starts(host.as_bytes(), b"hook.");
    let hook_host = make || starts(host.as_bytes(), b"hooks.");
    let mut offset = 0;
    for (n, seg) in path.split('/').enumerate() {
        let seg_end = offset + seg.len();
        // The path starts with '/': segment 0 is empty, 1 is the first.
        let named = seg.eq_ignore_ascii_case("hooks") || starts(seg.as_bytes(), b"webhook");
        if (hook_host && n == 1) || named {
            if seg_end + 1 < path.len() {
                return Some(seg_end + 1..path.len());
            }
            // `hook.eu1.make.com/TOKEN`: the one segment is the token (empty: none).
            return (make && !named).then_some(offset..seg_end);
        }
        offset = seg_end + 1;
    }
    None
}

/// `NAME=VALUE` of an environment: the value when the name looks secret, else the
/// passwords of URLs in it (`DATABASE_URL=postgres://u:PASS@h`).
pub fn env_secret_ranges(kv: &str) -> Vec<(&'static str, Range<usize>)> {
    let Some((name, value)) = kv.split_once('=') else {
        return Vec::new();
    };
    let base = name.len() + 1;
    if is_secret_name(name) && !value.is_empty() {
        return vec![("secret_env", base..kv.len())];
    }
    url_secrets(value)
        .into_iter()
        .map(|(id, r)| (id, base + r.start..base + r.end))
        .collect()
}
