//! The policy compiler as a library: reading policy files ([`source`]), compiling them into
//! the decision table and bundle ([`compile`]), the reference evaluator ([`reference`]), the
//! lints ([`check`]) and the subcommands ([`commands`]). `main.rs` is only the CLI.

pub mod check;
pub mod commands;
pub mod compile;
pub mod diagnostics;
pub mod keys;
pub mod reference;
pub mod render;
pub mod source;
pub mod testfile;

/// Output for people or for machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// The documented exit codes (2, usage, is clap's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    InvalidInput = 1,
    Denied = 3,
    Io = 4,
    Disagreement = 5,
}
