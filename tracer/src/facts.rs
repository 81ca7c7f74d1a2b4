//! What the diagnosis asks of the host beyond the events: where a command really is,
//! whether a script exists and what its `#!` line says. A live run asks the filesystem
//! and records every answer in the trace; a replay answers from those records, so the
//! same findings come out on another machine.
use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct FileFact {
    pub exists: bool,
    pub is_dir: bool,
    /// Permission bits.
    pub mode: u32,
    /// On a filesystem mounted noexec.
    pub noexec_mount: bool,
    /// The first line, up to 200 bytes, when it starts with `#!` (kept raw: a CRLF
    /// line end shows as a trailing `\r`).
    pub shebang: Option<String>,
}

/// One answer, as stored in a trace.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "question", rename_all = "snake_case")]
pub enum Fact {
    Locate {
        name: String,
        found: Option<String>,
    },
    File {
        path: String,
        fact: FileFact,
    },
    /// Where a relative path that failed from the job's cwd does exist: under one of
    /// `near` (the job's script directories, its home) or a usual place for apps.
    Relative {
        rel: String,
        near: Vec<String>,
        found: Option<String>,
    },
}

impl Fact {
    /// What was asked: a later answer to the same question replaces an earlier one.
    /// The key the live cache, the recorded answers and the trace's trailer use.
    pub fn question(&self) -> String {
        match self {
            Fact::Locate { name, .. } => Self::locate_question(name),
            Fact::File { path, .. } => Self::file_question(path),
            Fact::Relative { rel, near, .. } => Self::relative_question(rel, near),
        }
    }

    fn locate_question(name: &str) -> String {
        format!("locate:{name}")
    }

    fn file_question(path: &str) -> String {
        format!("file:{path}")
    }

    fn relative_question(rel: &str, near: &[String]) -> String {
        format!("relative:{rel}|{}", near.join(":"))
    }
}

pub trait HostFacts {
    /// Where an executable named `name` is on this host, outside any job's PATH.
    fn locate(&mut self, name: &str) -> Option<String>;
    fn file(&mut self, path: &str) -> FileFact;
    /// Where `rel` exists relative to another directory than the one it failed from.
    fn locate_relative(&mut self, rel: &str, near: &[String]) -> Option<String>;
    /// Answers given since the last call (for the trace file).
    fn take_new(&mut self) -> Vec<Fact> {
        Vec::new()
    }
}

/// Places commands live that a job's PATH (cron's is /usr/bin:/bin) often lacks.
const SEARCH_DIRS: [&str; 11] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/local/go/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
    "/snap/bin",
    "/usr/games",
    "/root/bin",
    "/root/.local/bin",
];

fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Answers of the live host kept for the next job that asks: at most this many.
const FACTS_CACHED: usize = 10_000;

/// The live host.
#[derive(Default)]
pub struct LiveFacts {
    cache: BTreeMap<String, Fact>,
    new: Vec<Fact>,
}

impl LiveFacts {
    fn remember(&mut self, key: String, f: Fact) {
        self.new.push(f.clone());
        // Paths without end (dated file names) must not grow a day-long attach: past
        // the limit the answers are asked again.
        if self.cache.len() >= FACTS_CACHED {
            self.cache.clear();
        }
        self.cache.insert(key, f);
    }

    fn search_dirs() -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = SEARCH_DIRS.iter().map(PathBuf::from).collect();
        // /opt/*/bin and /home/*/bin, /home/*/.local/bin
        for (base, subs) in [
            ("/opt", &["bin"][..]),
            ("/home", &["bin", ".local/bin"][..]),
        ] {
            if let Ok(rd) = std::fs::read_dir(base) {
                let mut found: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
                found.sort();
                for d in found {
                    for s in subs {
                        dirs.push(d.join(s));
                    }
                }
            }
        }
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
        dirs
    }
}

fn noexec(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().to_string_lossy().as_bytes()) else {
        return false;
    };
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_flag & libc::ST_NOEXEC != 0
}

impl HostFacts for LiveFacts {
    fn locate(&mut self, name: &str) -> Option<String> {
        let key = Fact::locate_question(name);
        if let Some(Fact::Locate { found, .. }) = self.cache.get(&key) {
            return found.clone();
        }
        let found = if name.contains('/') || name.is_empty() {
            None
        } else {
            Self::search_dirs()
                .into_iter()
                .map(|d| d.join(name))
                .find(|p| is_executable_file(p))
                .map(|p| p.display().to_string())
        };
        self.remember(
            key,
            Fact::Locate {
                name: name.to_string(),
                found: found.clone(),
            },
        );
        found
    }

    fn locate_relative(&mut self, rel: &str, near: &[String]) -> Option<String> {
        let key = Fact::relative_question(rel, near);
        if let Some(Fact::Relative { found, .. }) = self.cache.get(&key) {
            return found.clone();
        }
        let mut dirs: Vec<PathBuf> = near.iter().map(PathBuf::from).collect();
        // Where applications and their scripts usually live, one level down.
        for base in ["/opt", "/srv", "/home", "/usr/local", "/var/www"] {
            if let Ok(rd) = std::fs::read_dir(base) {
                let mut found: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
                found.sort();
                dirs.extend(found.into_iter().filter(|p| p.is_dir()).take(200));
            }
        }
        let found = dirs
            .iter()
            .map(|d| {
                crate::model::process::resolve(Some(&d.display().to_string()), rel)
                    .unwrap_or_default()
            })
            .find(|p| !p.is_empty() && Path::new(p).is_file());
        self.remember(
            key,
            Fact::Relative {
                rel: rel.to_string(),
                near: near.to_vec(),
                found: found.clone(),
            },
        );
        found
    }

    fn file(&mut self, path: &str) -> FileFact {
        let key = Fact::file_question(path);
        if let Some(Fact::File { fact, .. }) = self.cache.get(&key) {
            return fact.clone();
        }
        let p = Path::new(path);
        let fact = match std::fs::metadata(p) {
            Ok(m) => {
                let shebang = if m.is_file() {
                    std::fs::File::open(p).ok().and_then(|mut f| {
                        use std::io::Read;
                        let mut buf = [0u8; 200];
                        let n = f.read(&mut buf).ok()?;
                        let head = &buf[..n];
                        head.starts_with(b"#!").then(|| {
                            let end = head.iter().position(|&c| c == b'\n').unwrap_or(head.len());
                            // The trace keeps it: a `#!/usr/bin/env TOKEN=x ...` line
                            // must not carry its secret there.
                            crate::secrets::redact_shebang(
                                &String::from_utf8_lossy(&head[..end]),
                                &mut crate::secrets::Counts::new(),
                            )
                        })
                    })
                } else {
                    None
                };
                FileFact {
                    exists: true,
                    is_dir: m.is_dir(),
                    mode: m.permissions().mode() & 0o7777,
                    noexec_mount: noexec(p),
                    shebang,
                }
            }
            Err(_) => FileFact::default(),
        };
        self.remember(
            key,
            Fact::File {
                path: path.to_string(),
                fact: fact.clone(),
            },
        );
        fact
    }

    fn take_new(&mut self) -> Vec<Fact> {
        std::mem::take(&mut self.new)
    }
}

/// Answers recorded in a trace. An unrecorded question gets "unknown" (None / absent).
#[derive(Default)]
pub struct RecordedFacts {
    locate: BTreeMap<String, Option<String>>,
    files: BTreeMap<String, FileFact>,
    relative: BTreeMap<String, Option<String>>,
}

impl RecordedFacts {
    pub fn add(&mut self, f: &Fact) {
        match f {
            Fact::Locate { name, found } => {
                self.locate.insert(name.clone(), found.clone());
            }
            Fact::File { path, fact } => {
                self.files.insert(path.clone(), fact.clone());
            }
            Fact::Relative { rel, near, found } => {
                self.relative
                    .insert(Fact::relative_question(rel, near), found.clone());
            }
        }
    }
}

impl HostFacts for RecordedFacts {
    fn locate(&mut self, name: &str) -> Option<String> {
        self.locate.get(name).cloned().flatten()
    }

    fn file(&mut self, path: &str) -> FileFact {
        self.files.get(path).cloned().unwrap_or_default()
    }

    fn locate_relative(&mut self, rel: &str, near: &[String]) -> Option<String> {
        self.relative
            .get(&Fact::relative_question(rel, near))
            .cloned()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_answers_are_recorded_and_replayed_identically() {
        let dir = std::env::temp_dir().join(format!("facts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("crlf.sh");
        std::fs::write(&script, b"#!/bin/sh\r\necho hi\r\n").unwrap();
        let mut live = LiveFacts::default();
        let f = live.file(script.to_str().unwrap());
        assert!(f.exists);
        assert_eq!(f.shebang.as_deref(), Some("#!/bin/sh\r"));
        assert!(live.locate("sh").is_some());
        assert!(live.locate("surely-no-such-command-xyz").is_none());
        let mut rec = RecordedFacts::default();
        for fact in live.take_new() {
            rec.add(&fact);
        }
        assert_eq!(rec.file(script.to_str().unwrap()), f);
        assert_eq!(rec.locate("sh"), live.locate("sh"));
        assert!(!rec.file("/never/asked").exists);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
