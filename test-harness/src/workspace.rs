//! Builds this workspace's proxy-wasm modules on demand, so `cargo test` needs no manual
//! "build the wasm first" step. Each module is built once per process, with the workspace's
//! `wasm` profile, into the one shared target folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The workspace this harness was built from.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"))
}

/// A fixture module from `test-harness/fixtures/examples/NAME.rs`.
pub fn fixture(name: &str) -> Result<PathBuf, String> {
    build(&["-p", "harness-fixtures", "--example", name], &format!("examples/{}.wasm", name.replace('-', "_")))
}

/// Example module `name` of workspace package `package` (an `[[example]]` cdylib).
pub fn example(package: &str, name: &str) -> Result<PathBuf, String> {
    build(&["-p", package, "--example", name], &format!("examples/{}.wasm", name.replace('-', "_")))
}

/// The cdylib of workspace package `package` (e.g. `policy-filter`).
pub fn package(package: &str) -> Result<PathBuf, String> {
    build(&["-p", package, "--lib"], &format!("{}.wasm", package.replace('-', "_")))
}

fn build(args: &[&str], artifact: &str) -> Result<PathBuf, String> {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Mutex::default);
    // One build at a time in this process; cargo's own lock orders separate processes.
    let mut built = built.lock().map_err(|_| "a previous module build panicked".to_string())?;
    let key = args.join(" ");
    if let Some(path) = built.get(&key) {
        return Ok(path.clone());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(&cargo)
        .current_dir(root())
        .args(["build", "--quiet", "--target", "wasm32-wasip1", "--profile", "wasm"])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo build {} for wasm32-wasip1 failed (is the target installed? `rustup target add wasm32-wasip1`):\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let path = target_dir().join("wasm32-wasip1").join("wasm").join(artifact);
    if !path.exists() {
        return Err(format!("the build succeeded but {} is missing", path.display()));
    }
    built.insert(key, path.clone());
    Ok(path)
}
