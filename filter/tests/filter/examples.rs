//! Every proxy example in envoy-examples/, rendered from the shared example policy set, must
//! hand the module a configuration it accepts and that gives the decisions the walkthrough
//! promises, so the examples never rot.

use decision_table::bundle::{Bundle, ProxyHost};
use proxy_wasm_harness::cases::{CaseFile, Replay};
use proxy_wasm_harness::{HostProfile, ProxyWasmModule, workspace};
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

/// The plugin configuration each example hands the module, by example, with the host that
/// runs it.
fn configurations() -> Vec<(&'static str, HostProfile, String)> {
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

    let directive = |name: &str| nginx.lines().map(str::trim).find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("nginx.conf has no {name}")).to_string();
    // What makes the NGINX example hold (the README's host table): the upstream gets the
    // module's :path, refusals are logged, and a token of max_token_bytes fits a buffer.
    assert_eq!(directive("proxy_pass "), "proxy_pass http://users_service$uri$is_args$args;");
    assert_eq!(directive("error_log "), "error_log logs/error.log warn;");
    assert_eq!(directive("large_client_header_buffers "), "large_client_header_buffers 4 16k;");
    let quoted = directive("proxy_wasm policy_filter ");
    let quoted = quoted.trim_start_matches("proxy_wasm policy_filter ").trim_end_matches(';');
    vec![
        ("envoy", HostProfile::Envoy, string(&at(&envoy, &wasm)["configuration"]["value"])),
        ("envoy-ecds", HostProfile::Envoy, string(at(&ecds, &["resources", "0", "typed_config", "config", "configuration", "value"]))),
        ("istio", HostProfile::Envoy, istio["spec"]["pluginConfig"].to_string()),
        ("istio-configmap", HostProfile::Envoy, string(&configmap["data"]["plugin-config.json"])),
        ("kong", HostProfile::NgxWasmModule, at(&kong, &["services", "0", "filter_chains", "0", "filters", "0", "config"]).to_string()),
        ("nginx", HostProfile::NgxWasmModule, policy_compiler::render::nginx_unquote(quoted).unwrap()),
    ]
}

#[test]
fn each_example_names_its_host_in_the_bundle() {
    for (proxy, host, configuration) in configurations() {
        let bundle = Bundle::parse(configuration.as_bytes()).unwrap();
        let expected = if host == HostProfile::Envoy { ProxyHost::Envoy } else { ProxyHost::NgxWasmModule };
        assert_eq!(bundle.settings.host, expected, "{proxy}");
    }
}

#[test]
fn kongs_schema_describes_every_field_of_the_bundle_and_no_other() {
    // Kong validates the filter's config against policy_filter.meta.json: the schema must
    // accept what `compile` writes, so every key of a full bundle must be in it, and nothing
    // that a bundle cannot hold.
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(example("../kong/policy_filter.meta.json")).unwrap()).unwrap();
    let schema = &meta["config_schema"];
    let keys = |value: &Value| -> Vec<String> {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    let mut bundle = example_bundle();
    bundle.settings.mtls = Some(decision_table::bundle::Mtls { identity: decision_table::bundle::MtlsIdentity::UriSan, roles: Default::default() });
    let bundle = serde_json::to_value(&bundle).unwrap();
    assert_eq!(keys(&schema["properties"]), keys(&bundle));
    assert_eq!(keys(&schema["properties"]["settings"]["properties"]), keys(&bundle["settings"]), "settings");
    for section in ["claims", "forward", "mtls"] {
        assert_eq!(keys(&schema["properties"]["settings"]["properties"][section]["properties"]), keys(&bundle["settings"][section]), "{section}");
    }
    assert_eq!(keys(&schema["properties"]["providers"]["items"]["properties"]), keys(&bundle["providers"][0]));
    let required: Vec<&str> = schema["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(required.len(), keys(&bundle).len(), "every top-level field is required");
}

#[test]
fn every_example_configuration_gives_the_walkthrough_decisions() {
    let module = ProxyWasmModule::from_file(workspace::package("policy-filter").unwrap()).unwrap();
    let file: CaseFile = serde_json::from_value(jwt_minter::example_cases(&example("keys")).unwrap()).unwrap();
    for (proxy, host, configuration) in configurations() {
        let builder = module.plugin().ngx_shm_kv("policy_filter").host(host).plugin_config(configuration).now(file.now.unwrap());
        let mut replay = Replay::start(&file, builder).unwrap_or_else(|e| panic!("{proxy}: the module refused the configuration: {e}"));
        for case in &file.cases {
            let result = replay.run(case);
            assert!(result.passed, "{proxy}: {}: {:?}", case.name, result.reason);
        }
    }
}

#[test]
fn an_unknown_placeholder_is_an_error() {
    let error = policy_compiler::render::render("value: {{bundle:yaml}}", &example_bundle()).unwrap_err();
    assert!(error.contains("{{bundle:yaml}}"), "{error}");
}

#[test]
fn nginx_gets_a_compact_bundle_and_one_too_long_for_its_parser_is_refused() {
    // NGINX refuses a parameter of 4096 bytes or more (NGX_CONF_BUFFER): the example fits
    // once its defaults are left out, and reads back as the same bundle.
    let bundle = example_bundle();
    let rendered = policy_compiler::render::render("proxy_wasm policy_filter {{bundle:nginx}};", &bundle).unwrap();
    let quoted = rendered.trim_start_matches("proxy_wasm policy_filter ").trim_end_matches(';');
    assert!(quoted.len() <= policy_compiler::render::NGINX_MAX_PARAMETER, "{} bytes", quoted.len());
    let mut expected = bundle.clone();
    expected.settings.host = decision_table::bundle::ProxyHost::NgxWasmModule;
    assert_eq!(Bundle::parse(policy_compiler::render::nginx_unquote(quoted).unwrap().as_bytes()), Ok(expected));

    let mut large = bundle;
    large.providers[0].revocation.token_ids = (0..200).map(|i| format!("revoked-token-{i}")).collect();
    let error = policy_compiler::render::render("{{bundle:nginx}}", &large).unwrap_err();
    assert!(error.contains("NGINX refuses a parameter over 4095 bytes") && error.contains("POLICY_FILTER_BUNDLE"), "{error}");
}
