//! One module per subcommand: each wires the stages together and nothing more.
pub mod check;
pub mod record;
pub mod replay;
