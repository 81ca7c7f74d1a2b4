//! systemd timers: the unit files of a service manager (timers, the services they
//! start, drop-ins, which timers something wants) as plain data, and when each timer's
//! calendar says it should have started its service. `files` is the only part that
//! reads the file system; a `ManagerView` goes into the trace, so a replay judges the
//! units the live run saw.
pub mod calendar;
pub mod files;
pub mod status;
pub mod unit;

use serde::{Deserialize, Serialize};

pub use unit::{ExecLine, Service, Timer};

/// A unit file or drop-in as read, under the name the manager gives it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UnitSource {
    /// The unit it belongs to (`backup.timer`), for drop-ins too.
    pub unit: String,
    pub path: String,
    pub text: String,
}

/// The timers of one systemd manager and the services they start, as it reads them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ManagerView {
    /// The managers reading these files (empty: none ran; the files as they would be read).
    pub pids: Vec<u32>,
    /// `/`, or `/proc/PID/root` for a manager in another mount namespace.
    pub root: String,
    pub mnt_ns: Option<String>,
    /// The manager's time zone (`OnCalendar=` without a zone is local time).
    pub tz: String,
    /// Each unit's file, then its drop-ins in the order systemd applies them.
    pub units: Vec<UnitSource>,
    /// Timers that something pulls in: a link in a `.wants/` or `.requires/`
    /// directory, or a `Wants=`/`Requires=` of a unit read. A timer nothing wants is
    /// not expected to fire.
    pub wanted: Vec<String>,
    /// What could not be read (`path: why`).
    pub errors: Vec<String>,
}

impl ManagerView {
    fn unit_file(&self, name: &str) -> Option<unit::UnitFile> {
        let mut u = unit::UnitFile {
            name: name.to_string(),
            ..Default::default()
        };
        for s in self.units.iter().filter(|s| s.unit == name) {
            u.add(&s.path, &s.text);
        }
        (!u.files.is_empty()).then_some(u)
    }

    /// Every timer read, in name order.
    pub fn timers(&self) -> Vec<Timer> {
        let mut names: Vec<&str> = self
            .units
            .iter()
            .map(|s| s.unit.as_str())
            .filter(|n| n.ends_with(".timer"))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
            .into_iter()
            .filter_map(|n| self.unit_file(n))
            .map(|u| Timer::from_unit(&u))
            .collect()
    }

    pub fn service(&self, name: &str) -> Option<Service> {
        self.unit_file(name).map(|u| Service::from_unit(&u))
    }

    pub fn is_wanted(&self, timer: &str) -> bool {
        self.wanted.iter().any(|w| w == timer)
    }

    /// "systemd (pid 1)" for messages.
    pub fn who(&self) -> String {
        let ns = if self.root == "/" {
            ""
        } else {
            " in its own mount namespace"
        };
        match self.pids.as_slice() {
            [] => "systemd (not running)".to_string(),
            [p] => format!("systemd (pid {p}){ns}"),
            ps => format!(
                "systemd (pids {}){ns}",
                ps.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// systemd, as a root: its forks are services (and its own helpers).
pub fn is_manager(comm: &str) -> bool {
    comm == "systemd"
}

/// The service a process was placed in, from a cgroup path systemd wrote it to
/// (`/sys/fs/cgroup/system.slice/backup.service/cgroup.procs`, or per controller on
/// cgroup v1): the last `.service` component.
pub fn service_of_cgroup_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/sys/fs/cgroup/")?;
    rest.split('/')
        .rfind(|c| c.ends_with(".service") && c.len() > ".service".len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_is_the_last_service_component_of_a_cgroup_path() {
        assert_eq!(
            service_of_cgroup_path("/sys/fs/cgroup/system.slice/jt-wd.service/cgroup.procs"),
            Some("jt-wd.service")
        );
        assert_eq!(
            service_of_cgroup_path(
                "/sys/fs/cgroup/unified/user.slice/user-1000.slice/user@1000.service/app.slice/x.service/cgroup.procs"
            ),
            Some("x.service")
        );
        assert_eq!(
            service_of_cgroup_path("/sys/fs/cgroup/cpu/cgroup.procs"),
            None
        );
        assert_eq!(service_of_cgroup_path("/etc/x.service"), None);
    }

    #[test]
    fn a_view_builds_timers_and_services_from_files_and_drop_ins() {
        let src = |unit: &str, path: &str, text: &str| UnitSource {
            unit: unit.into(),
            path: path.into(),
            text: text.into(),
        };
        let v = ManagerView {
            units: vec![
                src(
                    "b.timer",
                    "/etc/systemd/system/b.timer",
                    "[Timer]\nOnCalendar=daily\n",
                ),
                src(
                    "b.service",
                    "/etc/systemd/system/b.service",
                    "[Service]\nExecStart=/bin/b\n",
                ),
                src(
                    "b.service",
                    "/etc/systemd/system/b.service.d/wd.conf",
                    "[Service]\nWorkingDirectory=/srv/b\n",
                ),
            ],
            wanted: vec!["b.timer".into()],
            ..Default::default()
        };
        let t = v
            .timers()
            .into_iter()
            .find(|t| t.unit == "b.service")
            .unwrap();
        assert_eq!(t.name, "b.timer");
        let s = v.service("b.service").unwrap();
        assert_eq!(s.required_dir(), Some("/srv/b"));
        assert_eq!(s.files.len(), 2);
        assert!(v.is_wanted("b.timer") && !v.is_wanted("c.timer"));
        assert!(v.service("c.service").is_none());
    }
}
