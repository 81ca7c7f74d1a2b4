//! What should have run, and when: the scheduler configuration of the host (crontabs
//! today), read once and analysed without root, BPF or further I/O.
//!
//! `host` is the only part that touches the real file system; everything it returns
//! ([`CrontabSource`], [`HostContext`]) is plain data that goes into the trace header, so a
//! replay analyses exactly the crontabs the live run saw.
pub mod crontab;
pub mod host;
pub mod source;
pub mod systemd;
pub mod tables;
pub mod view;

use serde::{Deserialize, Serialize};

pub use crontab::rules::{Rule, Scope, RULES};
pub use crontab::schedule::{Fire, FireReason, Schedule};
pub use crontab::{
    analyse, daemon_tz, resolve_tz, CrontabSet, Effect, Entry, Problem, ProblemKind,
};
pub use host::{origin_of, read_context, read_file_as, read_sources, read_whole_text};
pub use source::{CrontabSource, HostContext, Origin, UserInfo};
pub use view::{classify, ScheduleView};

/// The cron implementation whose rules apply. They differ in which files they read,
/// what they refuse, how they parse a line and how they treat clock changes, so every
/// judgement in this module is made for one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Daemon {
    /// Debian's cron 3.0pl1 (Paul Vixie's cron with Debian's patches), `/usr/sbin/cron`.
    DebianCron,
    /// cronie (Fedora, RHEL, Arch...), `crond`.
    Cronie,
    /// busybox `crond` (Alpine, embedded, containers).
    BusyboxCrond,
}

impl Daemon {
    pub const ALL: [Daemon; 3] = [Daemon::DebianCron, Daemon::Cronie, Daemon::BusyboxCrond];

    /// The name an on-call engineer knows it by, for messages.
    pub fn label(self) -> &'static str {
        match self {
            Daemon::DebianCron => "Debian cron",
            Daemon::Cronie => "cronie",
            Daemon::BusyboxCrond => "busybox crond",
        }
    }

    /// Whether this daemon follows Vixie cron's lineage (shared parser shape and
    /// virtual-clock handling of DST).
    pub(crate) fn is_vixie(self) -> bool {
        matches!(self, Daemon::DebianCron | Daemon::Cronie)
    }
}
