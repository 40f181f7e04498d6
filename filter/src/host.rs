//! What the request logic needs from the proxy. The proxy-wasm adapter implements it with
//! hostcalls; tests implement it with a plain struct, so most logic runs natively.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

pub trait Host {
    /// Every request header, in order, names lower-case (pseudo-headers included).
    fn request_headers(&self) -> Vec<(String, String)>;
    fn set_request_header(&mut self, name: &str, value: Option<&str>);
    fn add_request_header(&mut self, name: &str, value: &str);
    /// A property (`["source", "address"]`), raw bytes.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;
    /// The host's clock, in Unix seconds. Never the module's own.
    fn now(&self) -> u64;
    fn send_response(&mut self, status: u32, headers: &[(&str, &str)], body: &[u8]);
    fn log(&mut self, level: Level, message: &str);
    /// Adds one to the counter `name`.
    fn count(&mut self, name: &str);
    /// Calls the proxy's foreign function `name` (`proxy_call_foreign_function`); `None` when
    /// the proxy has no such function or it failed.
    fn call_foreign_function(&self, _name: &str, _arguments: &[u8]) -> Option<Vec<u8>> {
        None
    }
}
