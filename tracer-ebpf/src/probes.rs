pub mod exec;
pub mod exit;
pub mod fork;
pub mod signal;
pub mod syscall;
