//! The trust and identity holes of the adversarial review (issue 14), one test each, named
//! after its item. Every request runs natively behind the mock host and in the real module
//! under each host profile of the harness, and the three must see the same thing: the status
//! (200 when forwarded), the identity headers the upstream receives, and its path.

use std::collections::BTreeMap;

use decision_table::bundle::{Bundle, MayAssert, Mode, Mtls, MtlsIdentity, ProxyHost};
use jwt_minter::{Signer, mint};
use policy_filter::engine::metrics;
use proxy_wasm_harness::{HostProfile, Request};
use serde_json::{Value, json};

use crate::mock::{MockHost, NOW, ana_token, claims, example, example_bundle, load, platform, run, signer};

/// A request as the tests send it.
#[derive(Clone, Default)]
struct Ask {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    properties: Vec<(String, Vec<u8>)>,
}

impl Ask {
    fn new(method: &str, path: &str) -> Ask {
        Ask { method: method.into(), path: path.into(), ..Ask::default() }
    }

    fn get(path: &str) -> Ask {
        Ask::new("GET", path)
    }

    fn header(mut self, name: &str, value: &str) -> Ask {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn bearer(self, token: &str) -> Ask {
        self.header("authorization", &format!("Bearer {token}"))
    }

    fn property(mut self, path: &str, value: &[u8]) -> Ask {
        self.properties.push((path.into(), value.to_vec()));
        self
    }
}

/// What the upstream sees: the status (200 when forwarded), the identity headers it receives
/// with a value (`x-auth-*`, sorted), and the path (when forwarded).
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    status: u32,
    identity: BTreeMap<String, String>,
    path: Option<String>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.identity.get(name).map(String::as_str)
    }
}

const EVERY_HOST: [HostProfile; 2] = [HostProfile::Envoy, HostProfile::NgxWasmModule];

/// `ask` natively and in the module under every host; they must agree. The native answer.
fn everywhere(bundle: &Bundle, ask: &Ask) -> Seen {
    on(&EVERY_HOST, bundle, ask)
}

fn on(hosts: &[HostProfile], bundle: &Bundle, ask: &Ask) -> Seen {
    let mut mock = MockHost::request(&ask.method, &ask.path);
    for (name, value) in &ask.headers {
        mock = mock.header(name, value);
    }
    for (path, value) in &ask.properties {
        mock = mock.property(path, value);
    }
    let (flow, host) = run(&load(bundle), mock);
    let native = match flow {
        policy_filter::engine::Flow::Answered => Seen { status: host.status().unwrap(), identity: BTreeMap::new(), path: None },
        policy_filter::engine::Flow::Dispatched(_) => panic!("these bundles introspect nothing"),
        policy_filter::engine::Flow::Continue => Seen {
            status: 200,
            identity: host.headers.iter().filter(|(k, v)| k.starts_with("x-auth-") && !v.is_empty()).map(|(k, v)| (k.clone(), v.clone())).collect(),
            path: host.get(":path").map(str::to_string),
        },
    };
    for &profile in hosts {
        let mut configured = bundle.clone();
        configured.settings.host = if profile == HostProfile::Envoy { ProxyHost::Envoy } else { ProxyHost::NgxWasmModule };
        let mut plugin = crate::wasm::plugin().host(profile).plugin_config(serde_json::to_string(&configured).unwrap()).now(NOW).start().unwrap();
        let mut request = Request::new(&ask.method, &ask.path);
        for (name, value) in &ask.headers {
            request = request.header(name, value);
        }
        for (path, value) in &ask.properties {
            request = request.property(path, proxy_wasm_harness::PropertyValue::Bytes(value.clone()));
        }
        let outcome = plugin.send(&request);
        let in_module = if outcome.answered_by_proxy {
            // NGINX refused it before the module ran: refused either way.
            assert_ne!(native.status, 200, "{}: the proxy refused what the filter lets through", profile.name());
            continue;
        } else if outcome.forwarded() {
            let upstream = outcome.upstream.as_ref().unwrap();
            Seen {
                status: 200,
                identity: upstream
                    .headers
                    .iter()
                    .filter(|(k, v)| k.to_ascii_lowercase().starts_with("x-auth-") && !v.is_empty())
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect(),
                path: outcome.upstream_header(":path").map(str::to_string),
            }
        } else {
            Seen { status: u32::from(outcome.status()), identity: BTreeMap::new(), path: None }
        };
        assert_eq!(in_module, native, "{}: the module and the native run disagree on {} {}", profile.name(), ask.method, ask.path);
    }
    native
}

fn partner_es256() -> Signer {
    signer("ES256", "partner-es256.EXAMPLE-ONLY.key")
}

fn partner_token(extra: Value) -> String {
    let mut payload = json!({"iss": "https://partner.example", "aud": ["api.example"]});
    payload.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    mint(&partner_es256(), "ES256", Some("partner-es256"), &claims(payload))
}

fn internal_token(extra: Value) -> String {
    let internal = Signer::from_file("HS256", &example("keys/internal-hs256.secret")).unwrap();
    let mut payload = json!({"iss": "internal"});
    payload.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    mint(&internal, "HS256", Some("internal-1"), &claims(payload))
}

fn platform_token(extra: Value) -> String {
    mint(&platform(), "RS256", Some("platform"), &claims(extra))
}

#[test]
fn issue14_1_a_partner_issuer_cannot_mint_the_platforms_admin_role() {
    let mut bundle = example_bundle();
    bundle.settings.forward.provider = Some("x-auth-provider".into());
    // The review's token: the partner's own key, a platform user's name and the admin role.
    let forged = partner_token(json!({"username": "root", "roles": "admin"}));
    assert_eq!(everywhere(&bundle, &Ask::get("/users/42").bearer(&forged)).status, 401, "the partner may not name root");
    assert_eq!(everywhere(&bundle, &Ask::new("POST", "/admin/users").bearer(&forged)).status, 401);
    // Its own subject with the admin role: authenticated, but the role is dropped.
    let own = partner_token(json!({"username": "partner-billing", "roles": "admin", "scope": "billing:read"}));
    assert_eq!(everywhere(&bundle, &Ask::get("/users/42").bearer(&own)).status, 403);
    let allowed = everywhere(&bundle, &Ask::get("/billing/inv-1").bearer(&own));
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("x-auth-provider"), Some("partner"));
    assert_eq!(allowed.header("x-auth-roles"), None, "the role it may not assert never reaches the upstream");
    // The platform's own token with the same role is admin; the provider is the verifier,
    // never the token's own `provider` claim.
    let root = platform_token(json!({"username": "root", "roles": "admin", "provider": "partner"}));
    let admin = everywhere(&bundle, &Ask::get("/users/42").bearer(&root));
    assert_eq!((admin.status, admin.header("x-auth-provider")), (200, Some("keysDir")));
    // A policy bound to the partner is not satisfied by another provider's token naming the
    // partner's subject.
    let posing = platform_token(json!({"username": "partner-billing", "scope": "billing:read"}));
    assert_eq!(everywhere(&bundle, &Ask::new("POST", "/billing/inv-1").bearer(&posing)).status, 403);
    let internal = internal_token(json!({"username": "svc-reports", "roles": ["service", "admin"]}));
    assert_eq!(everywhere(&bundle, &Ask::get("/users/42").bearer(&internal)).status, 403, "internal may assert the service role only");
    // A bundle (hand-written, say) whose provider lists no subject it may name: no one.
    let mut nameless = bundle.clone();
    for provider in &mut nameless.providers {
        if provider.name == "partner" {
            provider.may_assert = MayAssert::Only([("scopes".to_string(), vec!["billing:.*".to_string()])].into());
        }
    }
    assert_eq!(everywhere(&nameless, &Ask::get("/billing/inv-1").bearer(&own)).status, 401);
    // Its regexes are anchored whoever wrote them: `partner-` does not admit `root@partner-`.
    let mut unanchored = bundle.clone();
    for provider in &mut unanchored.providers {
        if provider.name == "partner" {
            provider.may_assert = MayAssert::Only([("subject".to_string(), vec!["partner-".to_string()])].into());
        }
    }
    let suffixed = partner_token(json!({"username": "root@partner-", "roles": "admin"}));
    assert_eq!(everywhere(&unanchored, &Ask::get("/users/42").bearer(&suffixed)).status, 401);
}

#[test]
fn issue14_1_a_forwarded_provider_header_from_the_client_is_taken_out() {
    let seen = everywhere(&example_bundle(), &Ask::get("/health").header("x-auth-provider", "keysDir"));
    assert_eq!((seen.status, seen.header("x-auth-provider")), (200, None));
}

#[test]
fn issue14_2_a_spoofed_subject_cn_does_not_authenticate() {
    let mut bundle = example_bundle();
    bundle.settings.forward.provider = Some("x-auth-provider".into());
    bundle.settings.mtls = Some(Mtls { identity: MtlsIdentity::SubjectCn, roles: [("admin-svc".to_string(), vec!["admin".to_string()])].into() });
    let with_subject = |subject: &str| Ask::get("/admin/settings").property("connection.mtls", &[1]).property("connection.subject_peer_certificate", subject.as_bytes());
    // Envoy reports the certificate; ngx_wasm_module implements none of these properties.
    let envoy = [HostProfile::Envoy];
    let real = on(&envoy, &bundle, &with_subject("CN=admin-svc,O=Example"));
    assert_eq!((real.status, real.header("x-auth-provider")), (200, Some("mtls")));
    assert_eq!(on(&envoy, &bundle, &with_subject("O=Evil\\,CN=admin-svc,C=US")).status, 401);
    assert_eq!(on(&envoy, &bundle, &with_subject("OU=x\\,CN=admin-svc,CN=attacker")).status, 403);
    assert_eq!(on(&envoy, &bundle, &with_subject("CN=admin-svc,CN=attacker")).status, 401);
    let mut ngx = crate::wasm::plugin().host(HostProfile::NgxWasmModule).plugin_config(serde_json::to_string(&bundle).unwrap()).now(NOW).start().unwrap();
    let request = Request::get("/admin/settings").property("connection.mtls", "true").property("connection.subject_peer_certificate", "CN=admin-svc");
    assert_eq!(ngx.send(&request).status(), 401, "ngx_wasm_module: no certificate property, no identity");
}

#[test]
fn issue14_3_path_spellings_an_upstream_resolves_differently_are_refused() {
    let bundle = example_bundle();
    let token = platform_token(json!({"username": "bob"}));
    for path in [
        "/swagger/..;/admin/users",
        "/swagger.json;x=1",
        "/users/me%252e%252e",
        "/users/%252e%252e/admin",
        "/users/me.",
        "/users/me%20",
        "/users/me%2e",
    ] {
        assert_eq!(everywhere(&bundle, &Ask::get(path).bearer(&token)).status, 400, "{path}");
    }
    // A fragment: Envoy hands it to the module, which refuses it; NGINX drops it (its URI ends
    // at a raw `#`), and the module decides on, and forwards, what is left.
    assert_eq!(on(&[HostProfile::Envoy], &bundle, &Ask::get("/swagger.json#/../admin").bearer(&token)).status, 400);
    let mut ngx = crate::wasm::plugin().host(HostProfile::NgxWasmModule).plugin_config(serde_json::to_string(&bundle).unwrap()).now(NOW).start().unwrap();
    let outcome = ngx.send(&Request::get("/swagger.json#/../admin").header("authorization", &format!("Bearer {token}")));
    assert_eq!(outcome.upstream_header(":path"), Some("/swagger.json"));
    // Under an ignore pattern, unauthenticated: refused before the bypass.
    assert_eq!(everywhere(&bundle, &Ask::get("/health/..;/admin/x")).status, 400);
    assert_eq!(everywhere(&bundle, &Ask::get("/health;x=1")).status, 400);
    // Case counts by default: /SWAGGER.JSON is another resource, which no policy allows.
    assert_eq!(everywhere(&bundle, &Ask::get("/SWAGGER.JSON").bearer(&token)).status, 403);
    assert_eq!(everywhere(&bundle, &Ask::get("/\u{17f}wagger.json").bearer(&token)).status, 403);
}

#[test]
fn issue14_3_case_insensitive_upstreams_get_lower_case_paths_and_no_case_folding_characters() {
    let mut bundle = example_bundle();
    bundle.settings.case_insensitive_paths = true;
    let ana = ana_token();
    let seen = everywhere(&bundle, &Ask::get("/USERS/Me?Tab=1").bearer(&ana));
    assert_eq!((seen.status, seen.path.as_deref()), (200, Some("/users/me?Tab=1")));
    // `ſ` upper-cases to `S`: an upstream folding case could read /ſwagger as /swagger.
    assert_eq!(everywhere(&bundle, &Ask::get("/users/m%C4%B0").bearer(&ana)).status, 400);
    assert_eq!(everywhere(&bundle, &Ask::get("/\u{17f}wagger.json").bearer(&ana)).status, 400);
    // The deny still applies to every spelling.
    let contractor = platform_token(json!({"username": "eve", "roles": "admin,contractor"}));
    assert_eq!(everywhere(&bundle, &Ask::get("/ADMIN/settings").bearer(&contractor)).status, 403);
}

#[test]
fn issue14_3_path_parameters_can_be_kept_for_upstreams_that_give_them_no_meaning() {
    let mut bundle = example_bundle();
    bundle.settings.path_parameters = decision_table::bundle::PathParameters::Keep;
    let seen = everywhere(&bundle, &Ask::get("/users/me;v=1").bearer(&ana_token()));
    assert_eq!(seen.status, 403, "kept, `/users/me;v=1` is not `/users/me`");
}

#[test]
fn issue14_4_cors_preflights_are_not_bypassed_by_default() {
    let preflight = Ask::new("OPTIONS", "/admin/settings").header("origin", "https://app.example").header("access-control-request-method", "DELETE");
    assert_eq!(everywhere(&example_bundle(), &preflight).status, 401);
}

#[test]
fn issue14_5_claim_values_cannot_inject_headers_or_list_items() {
    let token = platform_token(json!({"username": "ana", "userId": "u-1\r\nx-injected: yes", "roles": ["user", "x,admin"]}));
    let seen = everywhere(&example_bundle(), &Ask::get("/users/me").bearer(&token));
    assert_eq!(seen.status, 200);
    assert_eq!(seen.header("x-auth-user-id"), Some("u-1%0D%0Ax-injected: yes"));
    assert_eq!(seen.header("x-auth-roles"), Some("user,x%2Cadmin"));
}

#[test]
fn issue14_6_every_identity_header_name_is_taken_out() {
    let mut bundle = example_bundle();
    bundle.settings.forward.policy = None;
    bundle.settings.forward.provider = None;
    let spoofed = Ask::get("/users/me").bearer(&ana_token()).header("x-auth-policy", "forged").header("x-auth-provider", "internal");
    let seen = everywhere(&bundle, &spoofed);
    assert_eq!((seen.status, seen.header("x-auth-policy"), seen.header("x-auth-provider")), (200, None, None));
}

#[test]
fn issue14_7_only_commas_and_ascii_spaces_split_a_roles_claim() {
    let token = platform_token(json!({"username": "ana", "roles": "user\u{a0}admin"}));
    assert_eq!(everywhere(&example_bundle(), &Ask::get("/users/42").bearer(&token)).status, 403);
}

#[test]
fn issue14_8_shadow_mode_takes_a_rejected_token_out() {
    let mut bundle = example_bundle();
    bundle.settings.mode = Mode::Shadow;
    let mut expired = claims(json!({"username": "ana", "roles": "user"}));
    expired["exp"] = json!(NOW - 3600);
    expired["iat"] = json!(NOW - 7200);
    let token = mint(&platform(), "RS256", Some("platform"), &expired);
    let seen = everywhere(&bundle, &Ask::get("/users/me").bearer(&token));
    assert_eq!((seen.status, seen.identity.len()), (200, 0));
    let mut plugin = crate::wasm::plugin().plugin_config(serde_json::to_string(&bundle).unwrap()).now(NOW).start().unwrap();
    let outcome = plugin.send(&Request::get("/users/me").header("authorization", &format!("Bearer {token}")));
    assert_eq!(outcome.upstream_header("authorization"), None);
}

#[test]
fn issue14_9_a_kidless_token_is_tried_against_a_bounded_number_of_keys() {
    let mut bundle = example_bundle();
    let token = mint(&platform(), "RS256", None, &claims(json!({"username": "ana", "roles": "user"})));
    assert_eq!(everywhere(&bundle, &Ask::get("/users/me").bearer(&token)).status, 200, "one RS256 key: tried");
    bundle.settings.max_key_trials = 0;
    assert_eq!(everywhere(&bundle, &Ask::get("/users/me").bearer(&token)).status, 401);
    let loaded = load(&bundle);
    let (_, host) = run(&loaded, MockHost::request("GET", "/users/me").bearer(&token));
    assert!(host.response_header("www-authenticate").unwrap().contains("the token names no key (kid)"));
}

#[test]
fn issue14_9_claims_refuse_before_a_signature_is_paid_for_and_a_replayed_forgery_costs_a_hash() {
    let bundle = example_bundle();
    // ngx_wasm_module: the module checks ECDSA itself (Envoy's verify_signature would).
    let mut plugin = crate::wasm::plugin().host(HostProfile::NgxWasmModule).plugin_config(serde_json::to_string(&bundle).unwrap()).now(NOW).start().unwrap();
    let send = |plugin: &mut proxy_wasm_harness::Plugin, token: &str| plugin.send(&Request::get("/billing/inv-1").header("authorization", &format!("Bearer {token}")));
    let valid = partner_token(json!({"username": "partner-billing", "scope": "billing:read"}));
    let (head, _) = valid.rsplit_once('.').unwrap();
    let other = partner_token(json!({"username": "partner-billing", "scope": "billing:write"}));
    let forged = format!("{head}.{}", other.rsplit_once('.').unwrap().1);
    let first = send(&mut plugin, &forged);
    let replayed = send(&mut plugin, &forged);
    assert_eq!((first.status(), replayed.status()), (401, 401));
    assert!(first.response_header("www-authenticate").unwrap().contains("signature is invalid"));
    assert!(replayed.response_header("www-authenticate").unwrap().contains("signature is invalid"));
    assert!(replayed.fuel * 10 < first.fuel, "a replayed forgery costs a hash: {} then {} fuel", first.fuel, replayed.fuel);
    // An expired forgery is refused for its claims, with no signature check.
    let mut old = claims(json!({"iss": "https://partner.example", "aud": ["api.example"], "username": "partner-billing"}));
    old["exp"] = json!(NOW - 3600);
    old["iat"] = json!(NOW - 7200);
    let expired = mint(&partner_es256(), "ES256", Some("partner-es256"), &old);
    let expired_forgery = format!("{}.{}", expired.rsplit_once('.').unwrap().0, forged.rsplit_once('.').unwrap().1);
    let outcome = send(&mut plugin, &expired_forgery);
    assert!(outcome.response_header("www-authenticate").unwrap().contains("expired"));
    assert!(outcome.fuel * 10 < first.fuel, "{} fuel against {}", outcome.fuel, first.fuel);
    // Natively: the replay is counted.
    let loaded = load(&bundle);
    let mut cache = policy_filter::cache::TokenCache::with_rejected(8, 8);
    for _ in 0..2 {
        let mut host = MockHost::request("GET", "/billing/inv-1").bearer(&forged);
        policy_filter::engine::on_request_headers(&loaded, &mut cache, &mut host);
        assert_eq!(host.status(), Some(401));
        if host.count(metrics::REJECTED_CACHE_HITS) == 1 {
            return;
        }
    }
    panic!("the replay was not served from the rejected-token cache");
}

#[test]
fn issue14_10_a_keys_dir_provider_can_check_an_audience() {
    let mut bundle = example_bundle();
    let keys_dir = bundle.providers.iter_mut().find(|p| p.name == "keysDir").unwrap();
    keys_dir.audiences = vec!["users-service".into()];
    assert_eq!(everywhere(&bundle, &Ask::get("/users/me").bearer(&ana_token())).status, 401, "no aud");
    let token = platform_token(json!({"username": "ana", "roles": "user", "aud": "users-service"}));
    assert_eq!(everywhere(&bundle, &Ask::get("/users/me").bearer(&token)).status, 200);
    // The compiler writes it from `filter.keys_dir.audiences`.
    let dir = std::env::temp_dir().join(format!("keys-dir-audience-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::copy(example("keys/platform.pub"), dir.join("keys/platform.pub")).unwrap();
    let config = json!({"security": {"keysDir": "keys", "acl": {"policies": [
        {"id": "p", "resources": ["<.*>"], "actions": ["api:read"], "effect": "allow", "subjects": ["<.+>"]}]}},
        "filter": {"keys_dir": {"audiences": ["users-service"]}}});
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let compiled = policy_compiler::compile::bundle(&policy_compiler::source::read(&dir.join("config.json")).unwrap()).unwrap().0;
    assert_eq!(compiled.providers[0].audiences, ["users-service"]);
    assert_eq!(compiled.providers[0].may_assert, MayAssert::Any, "a bundle's only provider is the platform's own");
}

#[test]
fn issue14_11_the_credential_chain_is_one_provider_per_issuer_and_a_token_decides() {
    let bundle = example_bundle();
    // A platform-signed token claiming the internal issuer: only internal's keys are tried.
    let posing = platform_token(json!({"iss": "internal", "username": "ana", "roles": "user"}));
    assert_eq!(everywhere(&bundle, &Ask::get("/users/me").bearer(&posing)).status, 401);
    // An issuer no provider names goes to the issuer-less one (keysDir).
    let elsewhere = platform_token(json!({"iss": "https://elsewhere.example", "username": "ana", "roles": "user"}));
    assert_eq!(everywhere(&bundle, &Ask::get("/users/me").bearer(&elsewhere)).status, 200);
    // An invalid token never falls back to a valid client certificate.
    let mut with_mtls = bundle.clone();
    let spiffe = "spiffe://cluster.local/ns/ops/sa/scraper";
    with_mtls.settings.mtls = Some(Mtls { identity: MtlsIdentity::UriSan, roles: [(spiffe.to_string(), vec!["service".to_string()])].into() });
    let certificate = |ask: Ask| ask.property("connection.mtls", &[1]).property("connection.uri_san_peer_certificate", spiffe.as_bytes()).property("source.address", b"10.2.3.4:6000");
    let envoy = [HostProfile::Envoy];
    assert_eq!(on(&envoy, &with_mtls, &certificate(Ask::get("/internal/metrics"))).status, 200);
    assert_eq!(on(&envoy, &with_mtls, &certificate(Ask::get("/internal/metrics").bearer("not.a.jwt"))).status, 401);
    // The module refuses a bundle whose chain has an unreachable provider.
    let mut twice = serde_json::to_value(&bundle).unwrap();
    let mut again = twice["providers"][0].clone();
    again["name"] = json!("again");
    twice["providers"].as_array_mut().unwrap().push(again);
    let error = policy_filter::config::load(twice.to_string().as_bytes()).err().unwrap();
    assert!(error.contains("could never be reached"), "{error}");
}
