//! Decoding untrusted bytes never panics; a table that decodes can be prepared and evaluated.
#![no_main]

use decision_table::{AccessRequest, Attributes, ClientAddress, Evaluator, Table};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Raw bytes, and the same bytes behind a valid header, so the fuzzer reaches the payload.
    let mut framed = Vec::new();
    framed.extend_from_slice(b"PWDT");
    framed.extend_from_slice(&decision_table::format::FORMAT_VERSION.to_le_bytes());
    use sha2::Digest as _;
    framed.extend_from_slice(&sha2::Sha256::digest(data));
    framed.extend_from_slice(data);
    for bytes in [data, framed.as_slice()] {
        if let Ok(table) = Table::decode(bytes) {
            if let Ok(evaluator) = Evaluator::new(&table) {
                let attributes = Attributes::new().with("roles", &["admin"]);
                let request = AccessRequest { subject: "ana", action: "api:read", resource: "/a/b", attributes: &attributes, client_address: ClientAddress::Known(attributes.get("clientIP")) };
                let _ = evaluator.evaluate(&request);
            }
        }
    }
});
