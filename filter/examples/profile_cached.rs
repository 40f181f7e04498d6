// scratch: not committed
use policy_filter::cache::TokenCache;
use policy_filter::engine;
use policy_filter::host::{Host, Level};
use std::collections::HashMap;
struct H { headers: Vec<(String,String)>, props: HashMap<String,Vec<u8>>, now: u64 }
impl Host for H {
    fn request_headers(&self) -> Vec<(String, String)> { self.headers.clone() }
    fn set_request_header(&mut self, _: &str, _: Option<&str>) {}
    fn add_request_header(&mut self, _: &str, _: &str) {}
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> { self.props.get(&path.join(".")).cloned() }
    fn now(&self) -> u64 { self.now }
    fn send_response(&mut self, _: u32, _: &[(&str, &str)], _: &[u8]) {}
    fn log(&mut self, _: Level, _: &str) {}
    fn count(&mut self, _: &str) {}
}
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bundle = std::fs::read(&args[1]).unwrap();
    let cases: serde_json::Value = serde_json::from_slice(&std::fs::read(&args[2]).unwrap()).unwrap();
    let n: usize = args[3].parse().unwrap();
    let loaded = policy_filter::config::load(&bundle).unwrap();
    let req = &cases["cases"][0]["request"];
    let mut headers = vec![(":method".to_string(), req["method"].as_str().unwrap().to_string()), (":path".into(), req["path"].as_str().unwrap().into())];
    for h in req["headers"].as_array().unwrap() { headers.push((h[0].as_str().unwrap().into(), h[1].as_str().unwrap().into())); }
    let mut props = HashMap::new();
    props.insert("source.address".to_string(), b"10.1.2.3:5000".to_vec());
    let mut host = H { headers, props, now: cases["now"].as_u64().unwrap() };
    let mut cache = TokenCache::new(loaded.settings.cache_entries);
    for _ in 0..n { std::hint::black_box(engine::on_request_headers(&loaded, &mut cache, &mut host)); }
}
