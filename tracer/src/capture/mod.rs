//! Where records come from on a live host: the kernel programs and `/proc`.
pub mod host;
pub mod live;
pub mod loader;
pub mod snapshot;
