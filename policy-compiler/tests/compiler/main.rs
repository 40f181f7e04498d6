#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, reason = "test code: a failed expectation should panic")]
//! policy-compiler tests: the compiled table against the reference evaluator (property
//! tests), Microkubes inputs, and the CLI's output and exit codes.

mod agreement;
mod cli;
mod edge;
mod inputs;
mod remote;
mod trust;

use std::path::PathBuf;

/// The example policy set shared with the proxy examples.
pub fn example(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../envoy-examples/policy").join(file)
}

/// Writes `contents` to a fresh scratch file and returns its path.
pub fn scratch(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("policy-compiler-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}
