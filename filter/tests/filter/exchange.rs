//! Issue 17, the second half: Basic credentials checked by an endpoint, the first-success
//! chain, the tenant-mapping endpoint, per-provider metrics, the ES256 minted token; and the
//! Compass-style and ONAP-style example sets, whose walkthroughs replay in the real module.

use std::path::PathBuf;

use base64::Engine as _;
use decision_table::bundle::{Bundle, Chain};
use policy_filter::cache::TokenCache;
use policy_filter::config::Loaded;
use policy_filter::engine::{self, Flow};
use proxy_wasm_harness::cases::{CaseFile, Replay};
use proxy_wasm_harness::HostProfile;
use serde_json::json;

use crate::mock::{MockHost, NOW, load};

fn example_set(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../envoy-examples").join(name)
}

fn compiled(name: &str) -> Bundle {
    let file = policy_compiler::source::read(&example_set(name).join("config.json")).unwrap();
    policy_compiler::compile::bundle(&file).unwrap().0
}

fn basic(credentials: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials))
}

/// A Keycloak token of the ONAP example.
fn keycloak(user: &str, roles: &str) -> String {
    let signer = jwt_minter::Signer::from_file("RS256", &example_set("onap").join("keys/keycloak-rs256.EXAMPLE-ONLY.key")).unwrap();
    let claims = json!({"iss": "https://keycloak.onap.local/realms/onap", "aud": "onap-api", "sub": user, "username": user, "roles": roles, "iat": NOW - 60, "exp": NOW + 3600});
    jwt_minter::mint(&signer, "RS256", Some("kc-1"), &claims)
}

/// Sends `host`'s request; while the filter waits for a callout, answers it with the next of
/// `answers` (status, body), `elapsed_ms` later on the host clock.
fn send(loaded: &Loaded, cache: &mut TokenCache, mut host: MockHost, answers: &[(Option<u16>, &[u8])]) -> (Flow, MockHost) {
    let mut flow = engine::on_request_headers(loaded, cache, &mut host);
    let mut answers = answers.iter();
    while let Flow::Dispatched(callout) = flow {
        let (status, body) = answers.next().expect("the filter made a callout the test did not answer");
        host.elapsed_ms += 40;
        flow = engine::on_callout_answer(loaded, cache, &mut host, callout, *status, Some(body));
    }
    (flow, host)
}

fn request(path: &str) -> MockHost {
    MockHost::request("GET", path)
}

#[test]
fn issue17_basic_credentials_are_checked_by_the_endpoint_cached_by_hash_and_never_logged() {
    let loaded = load(&compiled("onap"));
    let mut cache = TokenCache::with_rejected(16, 16);
    let password = "demo123456!";
    let credentials = basic(&format!("demo@people.osaaf.org:{password}"));
    let vouched: &[u8] = br#"{"roles": ["aai-admin"]}"#;
    let (flow, host) = send(&loaded, &mut cache, request("/aai/v23/network").header("authorization", &credentials), &[(Some(200), vouched)]);
    assert_eq!(flow, Flow::Continue);
    assert_eq!((host.get("x-auth-username"), host.get("x-auth-roles"), host.get("x-auth-provider")), (Some("demo@people.osaaf.org"), Some("aai-admin"), Some("aaf")));
    assert_eq!(host.get("authorization"), None, "the credentials do not go upstream");
    let (upstream, headers, body) = &host.dispatched[0];
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(upstream, "aaf.onap.local:8095");
    assert_eq!((header(":method"), header(":path"), header("authorization")), (Some("GET"), Some("/authn/basicAuth"), Some(credentials.as_str())));
    assert!(body.is_empty());

    // Cached: a second request asks nothing.
    let (flow, host) = send(&loaded, &mut cache, request("/aai/v23/network").header("authorization", &credentials), &[]);
    assert_eq!((flow, host.dispatched.len()), (Flow::Continue, 0));

    // Wrong: 401 with both challenges, remembered for negative_seconds.
    let wrong = basic("demo@people.osaaf.org:guess");
    let (flow, host) = send(&loaded, &mut cache, request("/aai/v23/network").header("authorization", &wrong), &[(Some(401), b"")]);
    assert_eq!((flow, host.status()), (Flow::Answered, Some(401)));
    let challenges: Vec<&str> = host.response.as_ref().unwrap().1.iter().filter(|(k, _)| k == "www-authenticate").map(|(_, v)| v.as_str()).collect();
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert!(challenges[0].starts_with(r#"Bearer realm="onap", error="invalid_token""#) && challenges[1] == r#"Basic realm="onap", charset="UTF-8""#, "{challenges:?}");
    assert!(host.logs.iter().any(|l| l.contains(r#""reason":"bad_credentials""#)), "{:?}", host.logs);
    let (_, again) = send(&loaded, &mut cache, request("/aai/v23/network").header("authorization", &wrong), &[]);
    assert_eq!((again.status(), again.dispatched.len()), (Some(401), 0));
    let mut later = request("/aai/v23/network").header("authorization", &wrong);
    later.now = NOW + 11;
    assert_eq!(send(&loaded, &mut cache, later, &[(Some(401), b"")]).1.dispatched.len(), 1, "asked again after negative_seconds");

    // Not user:password: refused without asking.
    let (_, host) = send(&loaded, &mut cache, request("/aai/v23/network").header("authorization", "Basic !!!"), &[]);
    assert_eq!((host.status(), host.dispatched.len()), (Some(401), 0));

    // Nothing logs the password or the credentials.
    for (_, host) in [
        send(&loaded, &mut TokenCache::new(4), request("/aai/v23/network").header("authorization", &credentials), &[(Some(200), vouched)]),
        send(&loaded, &mut TokenCache::new(4), request("/aai/v23/network").header("authorization", &credentials), &[(Some(500), b"")]),
    ] {
        let encoded = credentials.trim_start_matches("Basic ");
        assert!(host.logs.iter().all(|l| !l.contains(password) && !l.contains(encoded)), "{:?}", host.logs);
    }
}

#[test]
fn issue17_an_endpoint_that_cannot_say_is_a_503_for_basic_credentials() {
    let loaded = load(&compiled("onap"));
    let oversized = vec![b' '; 200_000];
    let answers: [(Option<u16>, &[u8]); 5] = [(None, b""), (Some(500), b""), (Some(200), b"<html>"), (Some(200), &oversized), (Some(302), b"")];
    for answer in answers {
        let (flow, host) = send(&loaded, &mut TokenCache::new(4), request("/aai/v23/network").header("authorization", &basic("a@b.c:d")), &[answer]);
        assert_eq!((flow, host.status()), (Flow::Answered, Some(503)), "{:?}", answer.0);
        assert_eq!(host.count("policy_filter_provider_aaf_unavailable"), 1);
    }
}

#[test]
fn issue17_first_success_tries_each_credential_and_one_credential_refuses_two() {
    let bundle = compiled("onap");
    let loaded = load(&bundle);
    let jane = keycloak("jane", "aai-reader");
    let both = || request("/aai/v23/network").header("authorization", &basic("demo@people.osaaf.org:guess")).header("cookie", &format!("lang=en; onap_token={jane}"));
    let (flow, host) = send(&loaded, &mut TokenCache::with_rejected(8, 8), both(), &[(Some(401), b"")]);
    assert_eq!(flow, Flow::Continue);
    assert_eq!((host.get("x-auth-username"), host.get("x-auth-provider")), (Some("jane"), Some("keycloak")));
    assert_eq!((host.get("authorization"), host.get("cookie")), (None, Some("lang=en")), "every credential is taken out, used or not");
    // The endpoint down: the next credential still decides.
    let (flow, host) = send(&loaded, &mut TokenCache::new(8), both(), &[(Some(503), b"")]);
    assert_eq!((flow, host.get("x-auth-username")), (Flow::Continue, Some("jane")));
    // Both refused: the first refusal answers; the endpoint down and nothing else: 503.
    let forged = format!("{}x", &jane[..jane.len() - 2]);
    let refused = request("/aai/v23/network").header("authorization", &basic("demo@people.osaaf.org:guess")).header("cookie", &format!("onap_token={forged}"));
    let (_, host) = send(&loaded, &mut TokenCache::new(8), refused, &[(Some(401), b"")]);
    assert_eq!(host.status(), Some(401));
    assert!(host.logs.iter().any(|l| l.contains(r#""reason":"bad_credentials""#)), "{:?}", host.logs);

    // One credential: the same request is refused before anything is checked.
    let mut one = bundle.clone();
    one.settings.chain = Chain::OneCredential;
    let (flow, host) = send(&load(&one), &mut TokenCache::new(8), both(), &[]);
    assert_eq!((flow, host.status(), host.dispatched.len()), (Flow::Answered, Some(401), 0));
    assert!(host.logs.iter().any(|l| l.contains("multiple_credentials")));
}

#[test]
fn issue17_per_provider_metrics_count_outcomes_cache_hits_and_callout_latency() {
    let loaded = load(&compiled("onap"));
    let mut cache = TokenCache::with_rejected(8, 8);
    let credentials = basic("demo@people.osaaf.org:pw");
    let (_, first) = send(&loaded, &mut cache, request("/aai/v23/network").header("authorization", &credentials), &[(Some(200), b"{\"roles\":\"aai-reader\"}")]);
    assert_eq!(first.count("policy_filter_provider_aaf_authenticated"), 1);
    assert_eq!(first.histograms.get("policy_filter_provider_aaf_callout_ms"), Some(&vec![40]), "from dispatch to answer, host clock");
    let (_, second) = send(&loaded, &mut cache, request("/aai/v23/network").header("authorization", &credentials), &[]);
    assert_eq!((second.count("policy_filter_provider_aaf_cache_hits"), second.count("policy_filter_provider_aaf_authenticated")), (1, 1));
    let (_, refused) = send(&loaded, &mut cache, request("/aai/v23/network").header("authorization", &basic("x@y.z:no")), &[(Some(403), b"")]);
    assert_eq!(refused.count("policy_filter_provider_aaf_refused"), 1);
    let (_, jwt) = send(&loaded, &mut cache, request("/aai/v23/network").header("authorization", &format!("Bearer {}", keycloak("jane", "aai-reader"))), &[]);
    assert_eq!(jwt.count("policy_filter_provider_keycloak_authenticated"), 1);
    let expired = {
        let signer = jwt_minter::Signer::from_file("RS256", &example_set("onap").join("keys/keycloak-rs256.EXAMPLE-ONLY.key")).unwrap();
        let claims = json!({"iss": "https://keycloak.onap.local/realms/onap", "aud": "onap-api", "username": "jane", "iat": NOW - 7200, "exp": NOW - 3600});
        jwt_minter::mint(&signer, "RS256", Some("kc-1"), &claims)
    };
    let (_, late) = send(&loaded, &mut cache, request("/aai/v23/network").header("authorization", &format!("Bearer {expired}")), &[]);
    assert_eq!(late.count("policy_filter_provider_keycloak_refused"), 1, "the issuer chose the provider, the refusal is its");
}

#[test]
fn issue17_the_tenant_mapping_endpoint_is_asked_once_per_caller_and_its_answer_decides() {
    let loaded = load(&compiled("compass"));
    let mut cache = TokenCache::with_rejected(16, 16);
    let active: &[u8] = br#"{"active": true, "client_id": "app-orders", "scope": "application:read", "exp": 1800000600}"#;
    let plain: &[u8] = br#"{"tenant": "tenant-orders", "scopes": ["application:write"]}"#;
    let token = "Bearer ory_at_orders";
    let (flow, host) = send(&loaded, &mut cache, MockHost::request("POST", "/director/applications").header("authorization", token), &[(Some(200), active), (Some(200), plain)]);
    assert_eq!(flow, Flow::Continue, "{:?}", host.logs);
    assert_eq!(host.get("x-auth-tenant"), Some("tenant-orders"));
    let (upstream, headers, body) = &host.dispatched[1];
    assert_eq!(upstream, "director.compass.local:3000");
    assert!(headers.contains(&(":method".into(), "POST".into())) && headers.contains(&("content-type".into(), "application/json".into())));
    let session: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!((&session["subject"], &session["extra"]["provider"], &session["header"]), (&json!("app-orders"), &json!("hydra"), &json!({})), "Oathkeeper's hydrator session");
    // Cached with the caller: nothing is asked again.
    let (flow, host) = send(&loaded, &mut cache, MockHost::request("POST", "/director/applications").header("authorization", token), &[]);
    assert_eq!((flow, host.dispatched.len(), host.get("x-auth-tenant")), (Flow::Continue, 0, Some("tenant-orders")));

    // The handler down: 503; a 404: nobody, and a tenant is required: 403.
    for (answer, status) in [((Some(500), &b""[..]), 503), ((Some(404), &b""[..]), 403), ((Some(200), &br#"{"extra": {}}"#[..]), 403)] {
        let (_, host) = send(&loaded, &mut TokenCache::new(8), request("/director/applications").header("authorization", "Bearer ory_at_other"), &[(Some(200), active), answer]);
        assert_eq!(host.status(), Some(status), "{answer:?}");
    }
    // A mapping the handler could not give is not remembered.
    let mut cache = TokenCache::new(8);
    let _ = send(&loaded, &mut cache, request("/director/applications").header("authorization", "Bearer ory_at_retry"), &[(Some(200), active), (None, b"")]);
    let (flow, host) = send(&loaded, &mut cache, request("/director/applications").header("authorization", "Bearer ory_at_retry"), &[(Some(200), plain)]);
    assert_eq!((flow, host.dispatched.len()), (Flow::Continue, 1));
}

#[test]
fn issue17_an_es256_minted_token_verifies_with_ring_and_carries_the_decided_identity() {
    let bundle = compiled("compass");
    let loaded = load(&bundle);
    let dex = jwt_minter::Signer::from_file("ES256", &example_set("compass").join("keys/dex-es256.EXAMPLE-ONLY.key")).unwrap();
    let claims = json!({"iss": "https://dex.compass.local", "aud": "compass-ui", "sub": "dex|1", "email": "admin@kyma.cx", "iat": NOW - 60, "exp": NOW + 3600});
    let token = jwt_minter::mint(&dex, "ES256", Some("dex-1"), &claims);
    let (flow, host) = send(&loaded, &mut TokenCache::new(8), request("/director/applications").bearer(&token), &[]);
    assert_eq!(flow, Flow::Continue);
    let minted = host.get("authorization").unwrap().strip_prefix("Bearer ").unwrap();
    let jwks = policy_compiler::compile::mint_jwks(&bundle.settings).unwrap();
    let key = &jwks["keys"][0];
    assert_eq!((&key["kty"], &key["crv"], &key["alg"], &key["kid"]), (&json!("EC"), &json!("P-256"), &json!("ES256"), &json!("oathkeeper-1")));
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut point = vec![4u8];
    point.extend(b64.decode(key["x"].as_str().unwrap()).unwrap());
    point.extend(b64.decode(key["y"].as_str().unwrap()).unwrap());
    let (message, signature) = minted.rsplit_once('.').unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(message.as_bytes(), &b64.decode(signature).unwrap())
        .expect("ring verifies the ES256 minted token");
    let header: serde_json::Value = serde_json::from_slice(&b64.decode(message.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header, json!({"alg": "ES256", "typ": "JWT", "kid": "oathkeeper-1"}));
    let claims: serde_json::Value = serde_json::from_slice(&b64.decode(message.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!((&claims["sub"], &claims["tenant"], &claims["provider"]), (&json!("admin@kyma.cx"), &json!("3e64ebae-38b5-46a0-b1ed-9ccee153a0ae"), &json!("dex")));
    assert_eq!(claims["scopes"], json!(["application:read", "application:write"]));
    assert_eq!((&claims["iss"], &claims["aud"], claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap()), (&json!("https://oathkeeper.compass.local"), &json!(["director", "connector"]), 60));
}

#[test]
fn issue17_the_compass_and_onap_walkthroughs_pass_inside_the_module_under_both_hosts() {
    let module = crate::wasm::filter();
    for name in ["compass", "onap"] {
        let configuration = serde_json::to_string(&compiled(name)).unwrap();
        let file: CaseFile = serde_json::from_value(jwt_minter::cases_for(&example_set(name).join("keys")).unwrap()).unwrap();
        assert!(file.cases.len() >= 14, "{name}");
        for host in [HostProfile::Envoy, HostProfile::NgxWasmModule] {
            let builder = module.plugin().host(host).plugin_config(configuration.clone()).now(file.now.unwrap());
            let mut replay = Replay::start(&file, builder).unwrap();
            let failures: Vec<String> =
                file.cases.iter().map(|case| replay.run(case)).filter(|r| !r.passed).map(|r| format!("{}: {:?}", r.name, r.reason)).collect();
            assert!(failures.is_empty(), "{name} under {host:?}: {failures:#?}");
        }
    }
}

#[test]
fn issue17_a_token_with_a_nul_cannot_pose_as_a_cached_basic_credential() {
    let mut bundle = compiled("onap");
    bundle.settings.token_sources.push(decision_table::bundle::TokenSource::Query { name: "access_token".into() });
    let loaded = load(&bundle);
    let mut cache = TokenCache::new(8);
    let credentials = basic("demo@people.osaaf.org:pw");
    let (flow, _) = send(&loaded, &mut cache, request("/aai/v23/network").header("authorization", &credentials), &[(Some(200), br#"{"roles":"aai-reader"}"#)]);
    assert_eq!(flow, Flow::Continue);
    // The cache key of those credentials, sent as a query token (`%00` decodes to a NUL).
    let key = policy_filter::cache::credential_key(credentials.trim_start_matches("Basic "), true).replace('\0', "%00");
    let (flow, host) = send(&loaded, &mut cache, request(&format!("/aai/v23/network?access_token={key}")), &[]);
    assert_eq!((flow, host.status(), host.get("x-auth-username")), (Flow::Answered, Some(401), None));
}

#[test]
fn issue17_a_chain_of_credentials_that_each_need_an_endpoint_ends_after_a_few_callouts() {
    // Found by the adversarial review: two credentials whose endpoints answer unusably were
    // asked in turn forever under first_success.
    let mut bundle = compiled("onap");
    let mut hydra = compiled("compass").providers.into_iter().find(|p| p.name == "hydra").unwrap();
    hydra.may_assert = decision_table::bundle::MayAssert::Any;
    bundle.providers.push(hydra);
    let loaded = load(&bundle);
    let down: Vec<(Option<u16>, &[u8])> = vec![(Some(500), b""); 12];
    let both = request("/aai/v23/network").header("authorization", &basic("a@b.c:d")).header("cookie", "onap_token=opaque-token-1");
    let (flow, host) = send(&loaded, &mut TokenCache::with_rejected(8, 8), both, &down);
    assert_eq!((flow, host.status()), (Flow::Answered, Some(503)));
    assert!(host.dispatched.len() <= policy_filter::cache::MAX_CALLOUTS_PER_REQUEST as usize, "{} callouts", host.dispatched.len());
}

#[test]
fn issue17_the_tenant_handler_is_never_sent_the_callers_own_tenant_or_scope_claims() {
    // Found by the adversarial review: a handler that answers the session it was sent
    // (Oathkeeper hydrators do) would have handed back the token's own `tenant` and `scope`.
    let loaded = load(&compiled("compass"));
    let dex = jwt_minter::Signer::from_file("ES256", &example_set("compass").join("keys/dex-es256.EXAMPLE-ONLY.key")).unwrap();
    let claims = json!({"iss": "https://dex.compass.local", "aud": "compass-ui", "email": "mallory@example.org", "tenant": "3e64ebae-38b5-46a0-b1ed-9ccee153a0ae",
                        "scope": "application:write", "extra": {"tenant": "victim"}, "iat": NOW - 60, "exp": NOW + 3600});
    let token = jwt_minter::mint(&dex, "ES256", Some("dex-1"), &claims);
    let mut host = MockHost::request("POST", "/director/applications").bearer(&token);
    let mut cache = TokenCache::new(8);
    let Flow::Dispatched(callout) = engine::on_request_headers(&loaded, &mut cache, &mut host) else { panic!("the handler is asked") };
    let sent = host.dispatched[0].2.clone();
    let session: serde_json::Value = serde_json::from_slice(&sent).unwrap();
    assert_eq!(session["extra"], json!({"provider": "dex", "authorization_id": "mallory@example.org", "subject": "mallory@example.org"}));
    // The handler echoes it: nobody is mapped, and a tenant is required.
    assert_eq!(engine::on_callout_answer(&loaded, &mut cache, &mut host, callout, Some(200), Some(&sent)), Flow::Answered);
    assert_eq!(host.status(), Some(403));
}

#[test]
fn issue17_a_503_in_shadow_mode_still_takes_the_credentials_out() {
    let mut bundle = compiled("onap");
    bundle.settings.mode = decision_table::bundle::Mode::Shadow;
    let (flow, host) = send(&load(&bundle), &mut TokenCache::new(8), request("/aai/v23/network").header("authorization", &basic("a@b.c:secret")), &[(Some(500), b"")]);
    assert_eq!((flow, host.get("authorization")), (Flow::Continue, None), "the password never reaches the upstream");
}

#[test]
fn issue17_tenant_answers_kept_for_no_time_are_a_configuration_error() {
    let mut bundle = serde_json::to_value(compiled("compass")).unwrap();
    bundle["settings"]["tenants"]["negative_seconds"] = json!(0);
    let error = Bundle::from_json(&bundle).unwrap_err();
    assert!(error.contains("at least 1 with an endpoint"), "{error}");
}

#[test]
fn issue17_a_providers_token_names_its_authorization_id_only_as_far_as_it_may_assert_it() {
    // A partner whose may_assert lists no `email` cannot borrow a platform user's tenant and
    // scopes by naming that user's email (the static map and the endpoint alike).
    let mut bundle = crate::mock::example_bundle();
    bundle.settings.tenants = Some(decision_table::bundle::TenantMapping {
        id_claims: vec!["client_id".into(), "email".into()],
        entries: [("ana@example.com".to_string(), decision_table::bundle::TenantEntry { tenant: "t-ana".into(), scopes: vec!["billing:write".into()] })].into(),
        required: false,
        endpoint: None,
        cache_seconds: 300,
        negative_seconds: 30,
    });
    let loaded = load(&bundle);
    let partner = crate::mock::signer("ES256", "partner-es256.EXAMPLE-ONLY.key");
    let claims = crate::mock::claims(json!({"iss": "https://partner.example", "aud": ["api.example"], "username": "partner-billing", "email": "ana@example.com", "scope": "billing:read"}));
    let token = jwt_minter::mint(&partner, "ES256", Some("partner-es256"), &claims);
    let (flow, host) = crate::mock::run(&loaded, MockHost::request("GET", "/billing/inv-1").bearer(&token));
    assert_eq!((flow, host.get("x-auth-tenant")), (Flow::Continue, None));
    // The platform's own provider may assert anything: its user is mapped.
    let platform = jwt_minter::mint(&crate::mock::platform(), "RS256", Some("platform"), &crate::mock::claims(json!({"username": "ana", "email": "ana@example.com", "roles": "user"})));
    let (_, host) = crate::mock::run(&loaded, MockHost::request("GET", "/users/me").bearer(&platform));
    assert_eq!(host.get("x-auth-tenant"), Some("t-ana"));
}
