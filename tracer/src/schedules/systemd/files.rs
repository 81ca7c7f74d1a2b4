//! Reading a system manager's timers and their services from the unit directories,
//! in systemd's order of precedence (no D-Bus: the files are what a replay needs).
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use super::{ManagerView, UnitSource};
use crate::schedules::host::read_whole_text;

/// The system unit search path, highest precedence first (systemd.unit(5)).
pub const UNIT_DIRS: [&str; 6] = [
    "/etc/systemd/system",
    "/run/systemd/transient",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];

/// Unit files and drop-ins are small; a larger one is not a unit.
const MAX_UNIT_BYTES: u64 = 256 * 1024;
/// A host with thousands of timers is odd; past this the rest is named as not read.
const MAX_TIMERS: usize = 2_000;

fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn names_in(root: &Path, dir: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(under(root, dir)) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

fn read_text(root: &Path, path: &str, errors: &mut Vec<String>) -> Option<String> {
    read_whole_text(&under(root, path), MAX_UNIT_BYTES)
        .map_err(|e| errors.push(format!("{path}: {e}")))
        .ok()
}

/// Where `name` is defined (the first directory that has it) and its drop-ins: per
/// file name the highest-precedence one, applied in file-name order.
fn read_unit(root: &Path, name: &str, out: &mut ManagerView) -> bool {
    let Some(main) = UNIT_DIRS
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| under(root, p).exists())
    else {
        return false;
    };
    // A link to /dev/null masks the unit: nothing to read, and no error.
    if std::fs::read_link(under(root, &main)).is_ok_and(|l| l == Path::new("/dev/null")) {
        return false;
    }
    let Some(text) = read_text(root, &main, &mut out.errors) else {
        return false;
    };
    // An empty file or a link to /dev/null masks the unit.
    if text.trim().is_empty() {
        return false;
    }
    out.units.push(UnitSource {
        unit: name.to_string(),
        path: main,
        text,
    });
    let mut drop_ins: BTreeMap<String, String> = BTreeMap::new();
    for d in UNIT_DIRS.iter().rev() {
        let dir = format!("{d}/{name}.d");
        for f in names_in(root, &dir)
            .into_iter()
            .filter(|f| f.ends_with(".conf"))
        {
            drop_ins.insert(f.clone(), format!("{dir}/{f}"));
        }
    }
    for path in drop_ins.into_values() {
        if let Some(text) = read_text(root, &path, &mut out.errors) {
            out.units.push(UnitSource {
                unit: name.to_string(),
                path,
                text,
            });
        }
    }
    true
}

/// Every timer under `root`, the service each starts, and which timers something wants.
pub fn read_manager(root: &Path) -> ManagerView {
    let mut view = ManagerView {
        root: "/".into(),
        ..Default::default()
    };
    let mut timers: BTreeSet<String> = BTreeSet::new();
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    let mut targets: BTreeSet<String> = BTreeSet::new();
    for d in UNIT_DIRS {
        for n in names_in(root, d) {
            if n.ends_with(".timer") {
                timers.insert(n);
            } else if n.ends_with(".wants") || n.ends_with(".requires") {
                for w in names_in(root, &format!("{d}/{n}")) {
                    if w.ends_with(".timer") {
                        wanted.insert(w);
                    }
                }
            } else if n.ends_with(".target") && !d.ends_with("lib/systemd/system") {
                targets.insert(n);
            }
        }
    }
    if timers.len() > MAX_TIMERS {
        view.errors.push(format!(
            "{} timers: only the first {MAX_TIMERS} were read",
            timers.len()
        ));
    }
    for t in timers.iter().take(MAX_TIMERS) {
        if !read_unit(root, t, &mut view) {
            continue;
        }
        let Some(u) = view.unit_file(t) else {
            continue;
        };
        let service = super::Timer::from_unit(&u).unit;
        if !view.units.iter().any(|s| s.unit == service) {
            read_unit(root, &service, &mut view);
        }
    }
    // Targets the administrator wrote may pull a timer in by `Wants=` instead of a link.
    let mut scratch = ManagerView::default();
    for t in &targets {
        if !read_unit(root, t, &mut scratch) {
            continue;
        }
        if let Some(u) = scratch.unit_file(t) {
            for key in ["Wants", "Requires"] {
                for s in u.list("Unit", key) {
                    wanted.extend(
                        s.value
                            .split_whitespace()
                            .filter(|w| w.ends_with(".timer"))
                            .map(String::from),
                    );
                }
            }
        }
    }
    view.wanted = wanted.into_iter().collect();
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_services_drop_ins_and_links_are_read_in_precedence_order() {
        let dir = std::env::temp_dir().join(format!("jt-units-{}", std::process::id()));
        let w = |p: &str, t: &str| {
            let p = dir.join(p.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, t).unwrap();
        };
        w("/lib/systemd/system/b.timer", "[Timer]\nOnCalendar=daily\n");
        w(
            "/etc/systemd/system/b.timer",
            "[Timer]\nOnCalendar=hourly\n",
        );
        w(
            "/lib/systemd/system/b.service",
            "[Service]\nExecStart=/bin/b\n",
        );
        w(
            "/lib/systemd/system/b.service.d/a.conf",
            "[Service]\nUser=x\n",
        );
        w(
            "/etc/systemd/system/b.service.d/a.conf",
            "[Service]\nUser=y\n",
        );
        w(
            "/run/systemd/system/b.service.d/z.conf",
            "[Service]\nGroup=g\n",
        );
        w("/etc/systemd/system/timers.target.wants/b.timer", "");
        w(
            "/run/systemd/system/t.target",
            "[Unit]\nWants=c.timer x.service\n",
        );
        w(
            "/run/systemd/system/c.timer",
            "[Timer]\nUnit=b.service\nOnCalendar=weekly\n",
        );
        w("/etc/systemd/system/masked.timer", "");
        std::os::unix::fs::symlink("/dev/null", dir.join("etc/systemd/system/nulled.timer"))
            .unwrap();
        let v = read_manager(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let t = v.timers();
        assert_eq!(
            t.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            vec!["b.timer", "c.timer"]
        );
        assert_eq!(t[0].calendar[0].value, "hourly");
        let s = v.service("b.service").unwrap();
        assert_eq!(s.user.as_deref(), Some("y"));
        assert_eq!(s.group.as_deref(), Some("g"));
        assert_eq!(
            s.files,
            vec![
                "/lib/systemd/system/b.service",
                "/etc/systemd/system/b.service.d/a.conf",
                "/run/systemd/system/b.service.d/z.conf"
            ]
        );
        assert_eq!(v.wanted, vec!["b.timer", "c.timer"]);
        assert!(
            v.errors.is_empty(),
            "a masked unit is no error: {:?}",
            v.errors
        );
    }
}
