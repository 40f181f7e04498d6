//! Embeds a bundle into the module when `POLICY_FILTER_BUNDLE` names one at build time.

fn main() {
    println!("cargo:rerun-if-env-changed=POLICY_FILTER_BUNDLE");
    let bundle = match std::env::var("POLICY_FILTER_BUNDLE") {
        Ok(path) => {
            println!("cargo:rerun-if-changed={path}");
            std::fs::read_to_string(&path).unwrap_or_else(|e| {
                println!("cargo::error=POLICY_FILTER_BUNDLE={path}: {e}");
                String::new()
            })
        }
        Err(_) => String::new(),
    };
    let out = std::env::var("OUT_DIR").unwrap_or_default();
    if let Err(e) = std::fs::write(std::path::Path::new(&out).join("embedded-bundle.json"), bundle) {
        println!("cargo::error=cannot write the embedded bundle: {e}");
    }
}
