//! Words of a shell command line (a crontab command, an `sh -c` string), with where
//! each stands in the line, so a secret can be replaced in place and the rest of the
//! line kept byte for byte.

/// A word: its byte range in the line and its text once quotes and escapes are undone.
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    pub start: usize,
    pub end: usize,
    pub text: String,
    /// For each byte of `text`: the byte of the line it came from, and whether it was
    /// inside quotes there.
    pub map: Vec<(usize, bool)>,
    /// A `;`, `|`, `&`, `(`, `)` or newline came before it: a new simple command starts.
    pub starts_command: bool,
}

/// The words of `line`. Quotes group, a backslash escapes (outside single quotes),
/// separators end a simple command; an unclosed quote runs to the end of the line.
pub fn words(line: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut cur: Option<Word> = None;
    let mut quote: Option<char> = None;
    let mut new_command = true;
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end = i + c.len_utf8();
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                if let Some(w) = cur.as_mut() {
                    w.end = end;
                }
            }
            (Some('"'), '\\') => {
                let w = cur.get_or_insert_with(|| start(i, new_command));
                if let Some(&(j, n)) = chars.peek() {
                    chars.next();
                    w.push(n, j, true);
                    w.end = j + n.len_utf8();
                }
            }
            (Some(_), c) => {
                let w = cur.get_or_insert_with(|| start(i, new_command));
                w.push(c, i, true);
                w.end = end;
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                let w = cur.get_or_insert_with(|| start(i, new_command));
                w.end = end;
            }
            (None, '\\') => {
                let w = cur.get_or_insert_with(|| start(i, new_command));
                w.end = end;
                if let Some(&(j, n)) = chars.peek() {
                    chars.next();
                    w.push(n, j, false);
                    w.end = j + n.len_utf8();
                }
            }
            (None, ';' | '|' | '&' | '(' | ')' | '\n' | '`') => {
                if let Some(w) = cur.take() {
                    out.push(w);
                }
                new_command = true;
            }
            (None, c) if c.is_whitespace() => {
                if let Some(w) = cur.take() {
                    new_command = false;
                    out.push(w);
                }
            }
            (None, c) => {
                let w = cur.get_or_insert_with(|| start(i, new_command));
                w.push(c, i, false);
                w.end = end;
            }
        }
        if cur.is_some() {
            new_command = false;
        }
    }
    out.extend(cur);
    out
}

fn start(i: usize, starts_command: bool) -> Word {
    Word {
        start: i,
        end: i,
        text: String::new(),
        map: Vec::new(),
        starts_command,
    }
}

impl Word {
    fn push(&mut self, c: char, at: usize, quoted: bool) {
        self.text.push(c);
        for k in 0..c.len_utf8() {
            self.map.push((at + k, quoted));
        }
    }
}

/// `text` as one shell word: bare when it is plain, else in single quotes.
pub fn quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str) -> Vec<String> {
        words(line).into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn quotes_and_escapes_group_and_separators_split() {
        assert_eq!(
            texts(r#"PGPASSWORD='a b' pg_dump -H "Authorization: x y" a\ b;ls|wc"#),
            vec![
                "PGPASSWORD=a b",
                "pg_dump",
                "-H",
                "Authorization: x y",
                "a b",
                "ls",
                "wc"
            ]
        );
        let w = words("a 'b c' d");
        assert_eq!((w[1].start, w[1].end), (2, 7));
        assert!(w[0].starts_command && !w[1].starts_command);
        let w = words("x; y && z");
        assert!(w[1].starts_command && w[2].starts_command);
        // An unclosed quote runs to the end; nothing is lost.
        assert_eq!(texts("a 'b c"), vec!["a", "b c"]);
    }

    #[test]
    fn quoting_is_only_added_where_needed() {
        assert_eq!(quote("plain-1.2"), "plain-1.2");
        assert_eq!(quote("<redacted>"), "'<redacted>'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
