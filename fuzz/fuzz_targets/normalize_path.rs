//! Path normalisation never panics, and is idempotent: a normalised path normalises to
//! itself, so no second pass can reveal another resource.
#![no_main]

use decision_table::request::normalize_path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(once) = normalize_path(text) {
            assert_eq!(normalize_path(&once).as_deref(), Ok(once.as_str()), "not idempotent for {text:?}");
            assert!(once.starts_with('/'));
            assert!(!once.contains("//"));
        }
    }
});
