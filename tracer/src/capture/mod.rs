//! Where records come from on a live host: the kernel programs and `/proc`; and
//! `as_cron`, which starts a job the way cron does for `tracer trigger`.
pub mod as_cron;
pub mod followed;
pub mod host;
pub mod live;
pub mod loader;
pub mod snapshot;
