//! Every proxy example in envoy-examples/, rendered from the shared example policy set, must
//! hand the module a configuration it accepts and that gives the decisions the walkthrough
//! promises, so the examples never rot.

use proxy_wasm_harness::cases::{CaseFile, run_case};
use proxy_wasm_harness::{ProxyWasmModule, workspace};
use serde_json::Value;

use crate::mock::{example, example_bundle};

fn render(template: &str) -> String {
    let path = example(&format!("../{template}.tmpl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    policy_compiler::render::render(&text, &example_bundle()).unwrap()
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap()
}

fn at<'v>(value: &'v Value, path: &[&str]) -> &'v Value {
    path.iter().fold(value, |v, step| match step.parse::<usize>() {
        Ok(index) => &v[index],
        Err(_) => &v[*step],
    })
}

fn string(value: &Value) -> String {
    value.as_str().unwrap_or_else(|| panic!("not a string: {value}")).to_string()
}

/// The plugin configuration each example hands the module, by example.
fn configurations() -> Vec<(&'static str, String)> {
    let envoy = yaml(&render("envoy/envoy.yaml"));
    let wasm = ["static_resources", "listeners", "0", "filter_chains", "0", "filters", "0", "typed_config", "http_filters", "0", "typed_config", "config"];
    let ecds_envoy = yaml(&render("envoy/ecds/envoy.yaml"));
    let ecds = yaml(&render("envoy/ecds/policy-filter.yaml"));
    let istio = yaml(&render("istio/wasmplugin.yaml"));
    let configmap = yaml(&render("istio/bundle-configmap.yaml"));
    let kong = yaml(&render("kong/kong.yaml"));
    let nginx = render("nginx/nginx.conf");

    assert_eq!(at(&envoy, &wasm[..10])["name"], "envoy.filters.http.wasm");
    assert_eq!(at(&envoy, &wasm)["vm_config"]["runtime"], "envoy.wasm.runtime.v8");
    assert_eq!(at(&envoy, &wasm)["configuration"]["@type"], "type.googleapis.com/google.protobuf.StringValue");
    let discovery = at(&ecds_envoy, &["static_resources", "listeners", "0", "filter_chains", "0", "filters", "0", "typed_config", "http_filters", "0", "config_discovery"]);
    assert_eq!(discovery["type_urls"][0], "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm");
    assert_eq!(at(&ecds, &["resources", "0", "name"]), "policy_filter", "the ECDS resource name matches the filter's");
    assert_eq!(istio["kind"], "WasmPlugin");
    assert_eq!(istio["spec"]["failStrategy"], "FAIL_CLOSE");

    let line = nginx.lines().find(|l| l.trim_start().starts_with("proxy_wasm policy_filter ")).unwrap();
    let quoted = line.trim().trim_start_matches("proxy_wasm policy_filter ").trim_end_matches(';');
    vec![
        ("envoy", string(&at(&envoy, &wasm)["configuration"]["value"])),
        ("envoy-ecds", string(at(&ecds, &["resources", "0", "typed_config", "config", "configuration", "value"]))),
        ("istio", istio["spec"]["pluginConfig"].to_string()),
        ("istio-configmap", string(&configmap["data"]["plugin-config.json"])),
        ("kong", string(at(&kong, &["services", "0", "filter_chains", "0", "filters", "0", "config"]))),
        ("nginx", policy_compiler::render::nginx_unquote(quoted).unwrap()),
    ]
}

#[test]
fn every_example_configuration_gives_the_walkthrough_decisions() {
    let module = ProxyWasmModule::from_file(workspace::package("policy-filter").unwrap()).unwrap();
    let file: CaseFile = serde_json::from_value(jwt_minter::example_cases(&example("keys")).unwrap()).unwrap();
    for (proxy, configuration) in configurations() {
        let mut plugin = module
            .plugin()
            .plugin_config(configuration)
            .now(file.now.unwrap())
            .start()
            .unwrap_or_else(|e| panic!("{proxy}: the module refused the configuration: {e}"));
        for case in &file.cases {
            let result = run_case(&mut plugin, case);
            assert!(result.passed, "{proxy}: {}: {:?}", case.name, result.reason);
        }
    }
}

#[test]
fn an_unknown_placeholder_is_an_error() {
    let error = policy_compiler::render::render("value: {{bundle:yaml}}", &example_bundle()).unwrap_err();
    assert!(error.contains("{{bundle:yaml}}"), "{error}");
}
