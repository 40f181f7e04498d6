//! Writes the harness case file (the walkthrough) of an example set, with tokens signed by
//! its keys: envoy-examples/policy, compass or onap.
//!
//!     cargo run -p jwt-minter --bin example-requests -- envoy-examples/policy/keys > requests.json

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(keys) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: example-requests KEYS_DIR");
        return ExitCode::from(2);
    };
    match jwt_minter::cases_for(&keys) {
        Ok(file) => {
            println!("{}", serde_json::to_string_pretty(&file).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
