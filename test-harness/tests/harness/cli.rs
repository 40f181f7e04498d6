//! The `pw-harness` command line: output format, summary line and exit codes.

use std::path::PathBuf;
use std::process::Command;

use proxy_wasm_harness::workspace;

fn pw_harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pw-harness"))
}

fn scratch(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pw-harness-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

const CASES: &str = r#"{"now": 1800000000, "cases": [
  {"name": "custom header on the response", "request": {"method": "GET", "path": "/a"},
   "expect": {"status": 200, "headers": {"custom-header": "team-a"}}},
  {"name": "upstream gets the request headers", "request": {"method": "GET", "path": "/b",
     "headers": [["x-user", "u-1"]], "properties": {"source.address": "10.0.0.7:1"}},
   "expect": {"status": 200, "headers": {"x-user": "u-1"}, "absent_headers": ["x-forged"]}}
]}"#;

#[test]
fn run_prints_a_line_per_case_and_the_summary_last() {
    let wasm = workspace::fixture("http-config").unwrap();
    let config = scratch("config-a.txt", "team-a");
    // The first case checks the upstream's request headers (forwarded), so it must fail:
    // custom-header is on the response, not the request.
    let cases = scratch("cases-a.json", CASES);
    let output = pw_harness()
        .args(["run", "--wasm"]).arg(&wasm)
        .arg("--plugin-config").arg(&config)
        .arg("--cases").arg(&cases)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL  custom header on the response"), "{stdout}");
    assert!(stdout.contains("header custom-header: expected \"team-a\", got none"), "{stdout}");
    assert!(stdout.contains("PASS  upstream gets the request headers  (200 forwarded)"), "{stdout}");
    assert_eq!(stdout.lines().last(), Some("1 passed, 1 failed"));
}

#[test]
fn run_with_json_prints_one_object_per_case() {
    let wasm = workspace::fixture("http-headers").unwrap();
    let config = scratch("config-b.txt", "");
    let cases = scratch(
        "cases-b.json",
        r#"{"cases": [{"name": "hello", "request": {"method": "GET", "path": "/hello"},
             "expect": {"status": 200, "headers": {"hello": "World"}, "body_contains": "Hello"}}]}"#,
    );
    let output = pw_harness()
        .args(["run", "--json", "--wasm"]).arg(&wasm)
        .arg("--plugin-config").arg(&config)
        .arg("--cases").arg(&cases)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["name"], "hello");
    assert_eq!(first["passed"], true);
    assert_eq!(first["forwarded"], false);
    assert_eq!(first["status"], 200);
    assert!(first["body"].as_str().unwrap().contains("Hello"), "the reply's body: {first}");
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!((summary["passed"].as_u64(), summary["failed"].as_u64()), (Some(1), Some(0)));
    assert!(summary["metrics"].is_array(), "{summary}");
}

#[test]
fn a_closed_stdout_ends_the_run_quietly() {
    // `pw-harness run --json | head -1`: the reader goes away after the first line, long
    // before 1,500 lines (far more than a pipe buffers) are written.
    let wasm = workspace::fixture("http-config").unwrap();
    let config = scratch("config-pipe.txt", "team-a");
    let many: Vec<String> = (0..1500).map(|i| format!(r#"{{"name": "case {i}", "request": {{"method": "GET", "path": "/a"}}, "expect": {{"status": 200}}}}"#)).collect();
    let cases = scratch("cases-pipe.json", &format!(r#"{{"cases": [{}]}}"#, many.join(",")));
    let mut child = pw_harness()
        .args(["run", "--json", "--wasm"]).arg(&wasm)
        .arg("--plugin-config").arg(&config)
        .arg("--cases").arg(&cases)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}

#[test]
fn a_refused_configuration_exits_2_and_shows_the_module_log() {
    let wasm = workspace::fixture("http-config").unwrap();
    let config = scratch("config-c.txt", "");
    let cases = scratch("cases-c.json", CASES);
    let output = pw_harness()
        .args(["run", "--wasm"]).arg(&wasm)
        .arg("--plugin-config").arg(&config)
        .arg("--cases").arg(&cases)
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("refused its configuration"), "{stderr}");
    assert!(stderr.contains("must be a non-empty UTF-8 header value"), "{stderr}");
}

#[test]
fn a_malformed_case_file_exits_2() {
    let wasm = workspace::fixture("passthrough").unwrap();
    let config = scratch("config-d.txt", "");
    let cases = scratch("cases-d.json", r#"{"cases": [{"name": "no request"}]}"#);
    let output = pw_harness()
        .args(["run", "--wasm"]).arg(&wasm)
        .arg("--plugin-config").arg(&config)
        .arg("--cases").arg(&cases)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8(output.stderr).unwrap().contains("missing field `request`"));
}

#[test]
fn bench_reports_the_module_beside_the_passthrough_baseline() {
    let wasm = workspace::fixture("http-headers").unwrap();
    let config = scratch("config-e.txt", "");
    let cases = scratch("cases-e.json", CASES);
    let output = pw_harness()
        .args(["bench", "--json", "--iterations", "20", "--wasm"]).arg(&wasm)
        .arg("--plugin-config").arg(&config)
        .arg("--cases").arg(&cases)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["module"]["requests"], 40);
    assert_eq!(report["baseline"]["requests"], 40);
    // The header-logging module burns more fuel per request than the passthrough one.
    assert!(report["module"]["median_fuel"].as_u64().unwrap() > report["baseline"]["median_fuel"].as_u64().unwrap());
}

/// Two NGINX workers and an IdP: the JWKS fetched on one worker's tick is served by the
/// other; a delayed answer lands later; a case's own upstreams replace the answers.
const IDP_CASES: &str = r#"{"now": 1800000000, "host": "ngx_wasm_module", "workers": 2, "shm_kv": ["*"],
 "upstreams": {"idp.local": [{"body_json": {"keys": ["k1"]}, "headers": [["cache-control", "max-age=60"]]},
                             {"body_json": {"keys": ["k2"]}, "delay_ms": 200}]},
 "cases": [
  {"name": "nothing cached before a tick", "request": {"method": "GET", "path": "/cached"},
   "expect": {"status": 404, "calls": {"idp.local": 0}}},
  {"name": "worker 1 serves what worker 0 fetched", "advance_seconds": 1, "worker": 1,
   "request": {"method": "GET", "path": "/cached"},
   "expect": {"status": 200, "body_contains": "[\"k1\"]", "calls": {"idp.local": 2}}},
  {"name": "the delayed answer lands later", "advance_seconds": 0.5,
   "request": {"method": "GET", "path": "/cached"},
   "expect": {"status": 200, "body_contains": "k2", "calls": {"idp.local": 2}}},
  {"name": "timeouts keep the last good set", "advance_seconds": 1,
   "upstreams": {"idp.local": [{"fail": "timeout"}]},
   "request": {"method": "GET", "path": "/cached"},
   "expect": {"status": 200, "body_contains": "k2", "calls": {"idp.local": 4}}},
  {"name": "a request waits for its callout", "upstreams": {"idp.local": [{"body": "fresh", "delay_ms": 100}]},
   "request": {"method": "GET", "path": "/dispatch"},
   "expect": {"status": 200, "body_contains": "fresh", "calls": {"idp.local": 5}}},
  {"name": "a wrong count fails", "request": {"method": "GET", "path": "/cached"},
   "expect": {"status": 200, "calls": {"idp.local": 99}}}
]}"#;

#[test]
fn run_replays_upstream_answers_ticks_and_workers_on_both_hosts() {
    let wasm = workspace::fixture("idp-refresh").unwrap();
    let config = scratch("config-idp.txt", "tick_ms=1000\ntimeout_ms=500");
    let cases = scratch("cases-idp.json", IDP_CASES);
    for host in ["ngx_wasm_module", "envoy"] {
        let output = pw_harness()
            .args(["run", "--host", host, "--wasm"]).arg(&wasm)
            .arg("--plugin-config").arg(&config)
            .arg("--cases").arg(&cases)
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert_eq!(output.status.code(), Some(1), "{host}: {stdout}{}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains("calls to idp.local: expected 99, got 5"), "{host}: {stdout}");
        assert_eq!(stdout.lines().last(), Some("5 passed, 1 failed"), "{host}: {stdout}");
    }
}

#[test]
fn an_unknown_field_in_an_upstream_answer_exits_2() {
    let wasm = workspace::fixture("passthrough").unwrap();
    let config = scratch("config-f.txt", "");
    let cases = scratch("cases-f.json", r#"{"upstreams": {"idp": [{"fail": "reset", "delay": 5}]}, "cases": []}"#);
    let output = pw_harness()
        .args(["run", "--wasm"]).arg(&wasm)
        .arg("--plugin-config").arg(&config)
        .arg("--cases").arg(&cases)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8(output.stderr).unwrap().contains("unknown field `delay`"));
}
