//! Signs one token, valid from now (the wall clock) for `--ttl` seconds, for trying the
//! examples against a real proxy:
//!
//!     cargo run -q -p jwt-minter --bin mint -- RS256 envoy-examples/policy/keys/platform.EXAMPLE-ONLY.key platform \
//!         '{"username":"ana","roles":"user","userId":"u-100"}' [TTL_SECONDS]

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(alg), Some(key), Some(kid), Some(claims)) = (args.get(1), args.get(2), args.get(3), args.get(4)) else {
        eprintln!("usage: mint ALG PRIVATE_KEY_OR_SECRET KID CLAIMS_JSON [TTL_SECONDS]");
        return ExitCode::from(2);
    };
    let ttl: u64 = args.get(5).and_then(|t| t.parse().ok()).unwrap_or(3600);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut claims: serde_json::Value = match serde_json::from_str(claims) {
        Ok(serde_json::Value::Object(map)) => serde_json::Value::Object(map),
        _ => {
            eprintln!("error: CLAIMS_JSON must be a JSON object");
            return ExitCode::from(2);
        }
    };
    if let Some(map) = claims.as_object_mut() {
        map.entry("iat").or_insert(now.into());
        map.entry("exp").or_insert((now + ttl).into());
    }
    match jwt_minter::Signer::from_file(alg, std::path::Path::new(key)) {
        Ok(signer) => {
            println!("{}", jwt_minter::mint(&signer, alg, Some(kid), &claims));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
