//! Records decoded into events, and events into processes and job invocations.
pub mod decode;
pub mod event;
pub mod job;
pub mod jobs;
pub mod names;
pub mod process;
pub mod scheduler;
pub mod users;
