//! One module per subcommand: each wires the stages together and nothing more.
pub mod check;
pub mod crontab;
pub mod export;
pub mod record;
pub mod replay;
pub mod trigger;

/// Exit codes shared by every command (also in `--help`).
pub const EXIT_CLEAN: u8 = 0;
pub const EXIT_FINDINGS: u8 = 1;
pub const EXIT_ERROR: u8 = 2;
pub const EXIT_DAMAGED: u8 = 3;
