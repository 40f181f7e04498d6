#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, reason = "test code: a failed expectation should panic")]

//! End-to-end tests of the harness: real fixture modules built for wasm32-wasip1, one test per
//! behaviour, each through the public library API.

mod callouts;
mod cli;
mod families;
mod failures;
mod lifecycle;
mod shared;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use proxy_wasm_harness::{Limits, ProxyWasmModule, workspace};

/// The fixture module `name`, built and compiled once per test binary.
pub fn fixture(name: &str) -> &'static ProxyWasmModule {
    fixture_with(name, Limits::default())
}

pub fn fixture_with(name: &str, limits: Limits) -> &'static ProxyWasmModule {
    static MODULES: OnceLock<Mutex<HashMap<String, &'static ProxyWasmModule>>> = OnceLock::new();
    let key = format!("{name}/{:?}/{}", limits.fuel_per_callback, limits.memory_bytes);
    let mut modules = MODULES.get_or_init(Mutex::default).lock().unwrap();
    modules.entry(key).or_insert_with(|| {
        let path = workspace::fixture(name).unwrap_or_else(|e| panic!("{e}"));
        let bytes = std::fs::read(path).unwrap();
        Box::leak(Box::new(ProxyWasmModule::from_bytes(&bytes, limits).unwrap()))
    })
}

pub fn logged(plugin: &proxy_wasm_harness::Plugin, needle: &str) -> bool {
    plugin.logs().iter().any(|entry| entry.message.contains(needle))
}
