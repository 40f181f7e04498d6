//! The walkthroughs of the credential-exchange examples: `envoy-examples/compass` (Kyma
//! Compass: Hydra introspection, certificates and the identity service's JWT, tenant mapping,
//! a minted ES256 token, the console's login) and `envoy-examples/onap` (ONAP Auth*/CADI:
//! Basic checked by AAF beside Keycloak JWTs, first success wins, revocation, a minted EdDSA
//! principal). The services the filter calls are stubs in the case file; their answers are
//! set by the case that needs them.

use serde_json::{Value, json};

use crate::example::{NOW, case, with};
use crate::{Signer, mint};

const HYDRA: &str = "hydra.compass.local:443 /oauth2/introspect";
const TENANTS: &str = "director.compass.local:3000 /tenant-mapping";

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

fn answer(body: Value) -> Value {
    json!({"status": 200, "headers": [["content-type", "application/json"]], "body_json": body})
}

fn calls(mut expect: Value, counts: Value) -> Value {
    if let Some(object) = expect.as_object_mut() {
        object.insert("calls".into(), counts);
    }
    expect
}

/// Sets request properties (the client certificate, as the proxy reports it).
fn with_properties(mut case: Value, properties: Value) -> Value {
    if let Some(request) = case.get_mut("request").and_then(Value::as_object_mut) {
        request.insert("properties".into(), properties);
    }
    case
}

/// The Compass-style walkthrough, with the identity service's tokens signed by `keys`.
pub fn compass_cases(keys: &std::path::Path) -> Result<Value, String> {
    let dex = Signer::from_file("ES256", &keys.join("dex-es256.EXAMPLE-ONLY.key"))?;
    let person = |email: &str| {
        let claims = json!({"iss": "https://dex.compass.local", "aud": "compass-ui", "sub": format!("dex|{email}"), "email": email, "iat": NOW - 60, "exp": NOW + 3600});
        mint(&dex, "ES256", Some("dex-1"), &claims)
    };
    let active = |client: &str, scope: &str| {
        answer(json!({"active": true, "client_id": client, "sub": client, "scope": scope, "iss": "https://hydra.compass.local/", "token_type": "Bearer", "exp": NOW + 600}))
    };
    let hydrated = |tenant: &str, scope: &str| answer(json!({"subject": "", "extra": {"tenant": tenant, "scope": scope}, "header": {}}));
    let allowed = |user: &str, tenant: &str, provider: &str| json!({"status": 200, "headers": {"x-auth-username": user, "x-auth-tenant": tenant, "x-auth-provider": provider}});
    // A page navigation to `authority` over https.
    let browser = |name: &str, authority: &str, expect: Value| {
        let mut page = case(name, "GET", "/console/apps", vec![("accept", "text/html,application/xhtml+xml".into())], expect);
        if let Some(request) = page.get_mut("request").and_then(Value::as_object_mut) {
            request.insert("authority".into(), json!(authority));
            request.insert("scheme".into(), json!("https"));
        }
        page
    };
    let tenant = "3e64ebae-38b5-46a0-b1ed-9ccee153a0ae";
    let certificate = json!({"connection.mtls": true, "connection.subject_peer_certificate": "CN=runtime-eu-1,OU=runtimes,O=compass"});
    let cases = vec![
        with(
            case("an OAuth2 client's opaque token: introspected at Hydra, its tenant from the mapping handler", "GET", "/director/applications", vec![bearer("ory_at_orders-1")],
                calls(allowed("app-orders", "tenant-orders", "hydra"), json!({HYDRA: 1, TENANTS: 1}))),
            json!({"upstreams": {HYDRA: [active("app-orders", "application:read")], TENANTS: [hydrated("tenant-orders", "application:read application:write")]}}),
        ),
        case("the same token again: both answers are cached, no callout", "GET", "/director/applications", vec![bearer("ory_at_orders-1")],
            calls(allowed("app-orders", "tenant-orders", "hydra"), json!({HYDRA: 1, TENANTS: 1}))),
        case("the client writes with the scope its tenant mapping granted", "POST", "/director/applications", vec![bearer("ory_at_orders-1")],
            allowed("app-orders", "tenant-orders", "hydra")),
        with(
            case("an inactive token: 401", "GET", "/director/applications", vec![bearer("ory_at_revoked-2")], json!({"status": 401})),
            json!({"upstreams": {HYDRA: [answer(json!({"active": false}))]}}),
        ),
        with(
            case("Hydra is down: 503, never a pass", "GET", "/director/applications", vec![bearer("ory_at_down-3")], json!({"status": 503, "headers": {"retry-after": "1"}})),
            json!({"upstreams": {HYDRA: [{"status": 502, "body": "bad gateway"}]}}),
        ),
        with(
            case("Hydra does not answer in time: 503", "GET", "/director/applications", vec![bearer("ory_at_slow-4")], json!({"status": 503})),
            json!({"upstreams": {HYDRA: [{"fail": "timeout"}]}}),
        ),
        with(
            case("Hydra's answer is not JSON: 503", "GET", "/director/applications", vec![bearer("ory_at_junk-5")], json!({"status": 503})),
            json!({"upstreams": {HYDRA: [{"status": 200, "body": "<html>login</html>"}]}}),
        ),
        case("the identity service's JWT (Dex): tenant and scopes from the static ConfigMap, no callout", "POST", "/director/applications", vec![bearer(&person("admin@kyma.cx"))],
            calls(allowed("admin@kyma.cx", tenant, "dex"), json!({TENANTS: 1}))),
        case("a read-only user cannot write", "POST", "/director/applications", vec![bearer(&person("dev@kyma.cx"))], json!({"status": 403})),
        with(
            case("a Dex user nobody maps: the handler answers 404, a tenant is required: 403", "GET", "/director/applications", vec![bearer(&person("stranger@example.org"))],
                calls(json!({"status": 403}), json!({TENANTS: 2}))),
            json!({"upstreams": {TENANTS: [{"status": 404}]}}),
        ),
        case("a client's own x-auth-tenant never arrives", "GET", "/director/applications", vec![bearer(&person("dev@kyma.cx")), ("x-auth-tenant", "tenant-orders".into())],
            allowed("dev@kyma.cx", tenant, "dex")),
        with(
            with_properties(
                case("a runtime's client certificate: its CN mapped to a tenant by the handler", "GET", "/connector/configuration", vec![],
                    calls(allowed("runtime-eu-1", "tenant-eu", "mtls"), json!({TENANTS: 3}))),
                certificate,
            ),
            json!({"upstreams": {TENANTS: [hydrated("tenant-eu", "runtime:read")]},
                   // ngx_wasm_module does not implement the peer certificate's subject
                   // (NotFound): nobody authenticates by it there.
                   "expect_on": {"ngx_wasm_module": {"status": 401}}}),
        ),
        browser("a browser without a session is sent to Dex's login, to come back", "compass.local",
            json!({"status": 302, "headers": {"location": "https://dex.compass.local/auth?return_to=https%3A%2F%2Fcompass.local%2Fconsole%2Fapps"}})),
        case("a machine on the same path gets the RFC 6750 401", "GET", "/console/apps", vec![("accept", "application/json".into())],
            json!({"status": 401, "headers": {"www-authenticate": r#"Bearer realm="compass""#}})),
        browser("a forged Host cannot make the login an open redirect: 401", "evil.example", json!({"status": 401})),
    ];
    Ok(json!({"now": NOW, "cases": cases}))
}

const AAF: &str = "aaf.onap.local:8095 /authn/basicAuth";
const REVOKED: &str = "keycloak.onap.local:443 /realms/onap/revoked";

/// The ONAP-style walkthrough, with Keycloak's tokens signed by `keys`.
pub fn onap_cases(keys: &std::path::Path) -> Result<Value, String> {
    use base64::Engine as _;
    let keycloak = Signer::from_file("RS256", &keys.join("keycloak-rs256.EXAMPLE-ONLY.key"))?;
    let token = |user: &str, roles: &str, jti: &str| {
        let claims = json!({"iss": "https://keycloak.onap.local/realms/onap", "aud": "onap-api", "sub": user, "username": user, "roles": roles, "jti": jti, "iat": NOW - 60, "exp": NOW + 3600});
        mint(&keycloak, "RS256", Some("kc-1"), &claims)
    };
    let basic = |credentials: &str| ("authorization", format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials)));
    let cookie = |token: &str| ("cookie", format!("onap_token={token}"));
    let allowed = |user: &str, provider: &str| json!({"status": 200, "headers": {"x-auth-username": user, "x-auth-provider": provider}, "absent_headers": ["authorization", "cookie"]});
    let demo = "demo@people.osaaf.org";
    let jane = token("jane", "aai-reader", "jane-1");
    let cases = vec![
        case("no credential: 401", "GET", "/aai/v23/network", vec![], json!({"status": 401})),
        with(
            case("AAF vouches for the Basic credentials, and its roles decide", "GET", "/aai/v23/network", vec![basic("demo@people.osaaf.org:demo123456!")],
                calls(allowed(demo, "aaf"), json!({AAF: 1}))),
            json!({"upstreams": {AAF: [answer(json!({"roles": ["aai-admin"]}))]}}),
        ),
        case("cached by a hash of the credentials: no second check", "PUT", "/aai/v23/network/l3", vec![basic("demo@people.osaaf.org:demo123456!")],
            calls(allowed(demo, "aaf"), json!({AAF: 1}))),
        with(
            case("a wrong password: 401", "GET", "/aai/v23/network", vec![basic("demo@people.osaaf.org:guess")], calls(json!({"status": 401}), json!({AAF: 2}))),
            json!({"upstreams": {AAF: [{"status": 401}]}}),
        ),
        case("the same wrong password again is refused without asking AAF", "GET", "/aai/v23/network", vec![basic("demo@people.osaaf.org:guess")],
            calls(json!({"status": 401}), json!({AAF: 2}))),
        case("Basic credentials that are not user:password: 401, AAF is not asked", "GET", "/aai/v23/network", vec![("authorization", "Basic !!not-base64".into())],
            calls(json!({"status": 401}), json!({AAF: 2}))),
        case("a Keycloak JWT", "GET", "/aai/v23/network", vec![bearer(&jane)], allowed("jane", "keycloak")),
        case("a reader cannot write", "PUT", "/aai/v23/network/l3", vec![bearer(&jane)], json!({"status": 403})),
        case("a token id the bundle revokes", "GET", "/aai/v23/network", vec![bearer(&token("jane", "aai-reader", "leaked-4711"))], json!({"status": 401})),
        with(
            case("a token id Keycloak's revocation list names (fetched on the tick)", "GET", "/aai/v23/network", vec![bearer(&token("jane", "aai-reader", "stolen-42"))],
                calls(json!({"status": 401}), json!({REVOKED: 1}))),
            json!({"advance_seconds": 1}),
        ),
        case("first success wins: a wrong Basic password, then a valid Keycloak cookie", "GET", "/aai/v23/network", vec![basic("demo@people.osaaf.org:guess"), cookie(&jane)],
            allowed("jane", "keycloak")),
        with(
            case("AAF is down: a valid cookie still gets in", "GET", "/aai/v23/network", vec![basic("ops@people.osaaf.org:secret"), cookie(&jane)],
                allowed("jane", "keycloak")),
            json!({"upstreams": {AAF: [{"status": 503}]}}),
        ),
        case("AAF is down and nothing else vouches: 503", "GET", "/aai/v23/network", vec![basic("ops2@people.osaaf.org:secret")], json!({"status": 503})),
        case("a client's own principal header never arrives as it sent it", "GET", "/portal/home", vec![bearer(&jane), ("x-auth-provider", "aaf".into())],
            allowed("jane", "keycloak")),
    ];
    let revoked = json!({"status": 200, "headers": [["cache-control", "max-age=30"]], "body_json": {"token_ids": ["stolen-42"], "subjects": {}}});
    Ok(json!({"now": NOW, "upstreams": {REVOKED: [revoked]}, "cases": cases}))
}
