//! Path normalisation never panics, and is idempotent under every rule set: a normalised
//! path normalises to itself, so no second pass can reveal another resource.
#![no_main]

use decision_table::bundle::PathParameters;
use decision_table::request::{PathRules, normalize_path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&rules, rest)) = data.split_first() else { return };
    let rules = PathRules {
        parameters: if rules & 1 == 0 { PathParameters::Refuse } else { PathParameters::Keep },
        case_insensitive: rules & 2 != 0,
    };
    if let Ok(text) = std::str::from_utf8(rest) {
        if let Ok(once) = normalize_path(text, rules) {
            assert_eq!(normalize_path(&once, rules).as_deref(), Ok(once.as_str()), "not idempotent for {text:?}");
            assert!(once.starts_with('/'));
            assert!(!once.contains("//"));
            assert!(!once.contains('#'));
        }
    }
});
