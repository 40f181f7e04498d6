//! The example requests: one case per behaviour the walkthroughs promise.

use serde_json::{Value, json};

use crate::{Signer, encode, mint};

/// The example's host clock: every token is valid then unless its case says otherwise.
pub const NOW: u64 = 1_800_000_000;

fn claims(extra: Value) -> Value {
    let mut claims = json!({"iat": NOW - 60, "exp": NOW + 3600});
    if let (Some(target), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        target.extend(extra);
    }
    claims
}

pub(crate) fn case(name: &str, method: &str, path: &str, headers: Vec<(&str, String)>, expect: Value) -> Value {
    let headers: Vec<Value> = headers.into_iter().map(|(k, v)| json!([k, v])).collect();
    json!({"name": name, "request": {"method": method, "path": path, "authority": "api.example", "headers": headers}, "expect": expect})
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

/// The harness case file for the example policy set (`envoy-examples/policy`), with tokens
/// signed by the example keys in `keys`.
pub fn example_cases(keys: &std::path::Path) -> Result<Value, String> {
    let platform = Signer::from_file("RS256", &keys.join("platform.EXAMPLE-ONLY.key"))?;
    let es256 = Signer::from_file("ES256", &keys.join("partner-es256.EXAMPLE-ONLY.key"))?;
    let es384 = Signer::from_file("ES384", &keys.join("partner-es384.EXAMPLE-ONLY.key"))?;
    let es512 = Signer::from_file("ES512", &keys.join("partner-es512.EXAMPLE-ONLY.key"))?;
    let eddsa = Signer::from_file("EdDSA", &keys.join("partner-eddsa.EXAMPLE-ONLY.key"))?;
    let internal = Signer::from_file("HS256", &keys.join("internal-hs256.secret"))?;

    let ana = mint(&platform, "RS256", Some("platform"), &claims(json!({"userId": "u-100", "username": "ana", "roles": "user"})));
    let root = mint(&platform, "RS256", Some("platform"), &claims(json!({"userId": "u-1", "username": "root", "roles": "admin,system"})));
    let contractor = mint(&platform, "RS256", Some("platform"), &claims(json!({"userId": "u-9", "username": "eve", "roles": ["admin", "contractor"]})));
    let expired = mint(&platform, "RS256", Some("platform"), &json!({"username": "ana", "roles": "user", "iat": NOW - 7200, "exp": NOW - 3600}));
    let partner = |signer: &Signer, alg: &str, kid: &str, scope: &str, audience: &str| {
        mint(signer, alg, Some(kid), &claims(json!({"iss": "https://partner.example", "aud": [audience], "username": "partner-billing", "scope": scope})))
    };
    let partner_read = partner(&es256, "ES256", "partner-es256", "billing:read", "api.example");
    let partner_write = partner(&eddsa, "EdDSA", "partner-eddsa", "billing:read billing:write", "api.example");
    let partner_elsewhere = partner(&es384, "ES384", "partner-es384", "billing:read", "another.example");
    let partner_es512 = partner(&es512, "ES512", "partner-es512", "billing:read", "api.example");
    // The review's token: the partner's own key, a platform user's name and the admin role.
    let partner_as_root = mint(&es256, "ES256", Some("partner-es256"), &claims(json!({"iss": "https://partner.example", "aud": ["api.example"], "username": "root", "roles": "admin"})));
    let partner_admin = mint(&es256, "ES256", Some("partner-es256"), &claims(json!({"iss": "https://partner.example", "aud": ["api.example"], "username": "partner-billing", "roles": "admin"})));
    let scraper = mint(&internal, "HS256", Some("internal-1"), &claims(json!({"iss": "internal", "username": "scraper", "roles": ["service"]})));
    let unsigned = format!("{}.{}.", encode(br#"{"alg":"none"}"#), encode(claims(json!({"username": "root", "roles": "admin"})).to_string().as_bytes()));

    let allowed = |user: &str, policy: &str| json!({"status": 200, "headers": {"x-auth-username": user, "x-auth-policy": policy}, "absent_headers": ["authorization"]});
    let partner_allowed = |policy: &str| {
        json!({"status": 200, "headers": {"x-auth-username": "partner-billing", "x-auth-policy": policy}, "absent_headers": ["authorization", "x-auth-roles"]})
    };
    let unauthorized = |error: &str| json!({"status": 401, "headers": {"www-authenticate": error}});
    let forbidden = json!({"status": 403, "body_contains": "forbidden"});

    let mut spoofed = bearer(&ana);
    spoofed.push(("x-auth-username", "root".into()));
    spoofed.push(("x-auth-roles", "admin".into()));
    let mut two = bearer(&ana);
    two.push(("authorization", format!("Bearer {root}")));
    let mut twice = bearer(&ana);
    twice.push(("x-auth-roles", "admin".into()));
    twice.push(("x-auth-roles", "admin".into()));
    let challenge_expired = r#"Bearer realm="users-service", error="invalid_token", error_description="the token has expired""#;
    let ana_expect = json!({"status": 200, "headers": {"x-auth-username": "ana", "x-auth-user-id": "u-100", "x-auth-roles": "user", "x-auth-policy": "users-allow-read-access"}, "absent_headers": ["authorization"]});

    let list = vec![
        case("health checks skip authentication", "GET", "/health", vec![], json!({"status": 200})),
        case("no token: 401 with a Bearer challenge", "GET", "/users/me", vec![], unauthorized(r#"Bearer realm="users-service""#)),
        case("ana reads her profile (RS256, keysDir key)", "GET", "/users/me", bearer(&ana), ana_expect.clone()),
        case("spoofed identity headers are replaced", "GET", "/users/me", spoofed, ana_expect),
        case("ana cannot write her profile", "PUT", "/users/me", bearer(&ana), forbidden.clone()),
        case("ana cannot read another user", "GET", "/users/42", bearer(&ana), forbidden.clone()),
        case("an admin reads any user", "GET", "/users/42", bearer(&root), allowed("root", "users-allow-admin-access")),
        case("a contractor admin is denied the admin API", "GET", "/admin/settings", bearer(&contractor), forbidden.clone()),
        case("dot segments do not dodge the deny", "GET", "/public/../admin/settings", bearer(&contractor), forbidden.clone()),
        case("the upstream gets the path that was decided on", "GET", "//users/./me", bearer(&ana), json!({"status": 200, "headers": {":path": "/users/me", "x-auth-username": "ana"}})),
        on_ngx(
            case("an encoded slash is refused (NGINX: decoded first, and forwarded as decided)", "GET", "/admin%2Fsettings", bearer(&root), json!({"status": 400})),
            // NGINX decodes %2F before the module sees the path: the decision and the upstream
            // are both on /admin/settings.
            json!({"status": 200, "headers": {":path": "/admin/settings", "x-auth-username": "root"}}),
        ),
        case("a spoofed identity on a bypassed path does not reach the upstream", "GET", "/health", vec![("x-auth-username", "root".to_string())], json!({"status": 200, "absent_headers": ["x-auth-username"]})),
        on_ngx(
            case("an identity header sent twice is removed (NGINX: refused)", "GET", "/users/me", twice, json!({"status": 200, "headers": {"x-auth-roles": "user"}})),
            // ngx_wasm_module cannot take the second copy out of what the upstream receives.
            json!({"status": 400}),
        ),
        case("an expired token", "GET", "/users/me", bearer(&expired), unauthorized(challenge_expired)),
        case("an unsigned token (alg none)", "GET", "/users/me", bearer(&unsigned), json!({"status": 401})),
        // NGINX refuses a repeated Authorization header itself (400).
        on_ngx(case("two Authorization headers (NGINX refuses them itself)", "GET", "/users/me", two, json!({"status": 401})), json!({"status": 400})),
        case("the partner reads an invoice (ES256)", "GET", "/billing/inv-1", bearer(&partner_read), partner_allowed("partner-reads-billing")),
        case("the partner reads an invoice (ES512)", "GET", "/billing/inv-1", bearer(&partner_es512), partner_allowed("partner-reads-billing")),
        case("the partner needs billing:write to file one", "POST", "/billing/inv-2", bearer(&partner_read), forbidden.clone()),
        case("the partner files an invoice (EdDSA)", "POST", "/billing/inv-2", bearer(&partner_write), partner_allowed("partner-writes-billing")),
        case(
            "the partner cannot mint a platform user",
            "GET",
            "/users/42",
            bearer(&partner_as_root),
            unauthorized(r#"Bearer realm="users-service", error="invalid_token", error_description="the token's issuer may not assert its subject""#),
        ),
        case("the partner cannot mint the admin role", "POST", "/admin/users", bearer(&partner_admin), forbidden.clone()),
        case("a path parameter is refused (Tomcat reads ..; as ..)", "GET", "/swagger/..;/admin/users", bearer(&ana), json!({"status": 400})),
        case("a token for another audience (ES384)", "GET", "/billing/inv-1", bearer(&partner_elsewhere), json!({"status": 401})),
        case("metrics from the internal network (HS256)", "GET", "/internal/metrics", bearer(&scraper), json!({"status": 200})),
    ];
    let mut list = list;
    // The client address comes from the proxy, not a header.
    if let Some(internal) = list.iter_mut().find(|case| case["name"] == "metrics from the internal network (HS256)") {
        from_address(internal, "10.1.2.3:5000");
    }
    let mut outside = case("metrics from outside", "GET", "/internal/metrics", bearer(&scraper), forbidden);
    from_address(&mut outside, "203.0.113.9:5000");
    list.push(outside);
    let (idp_cases, upstreams) = idp_cases(keys)?;
    list.extend(idp_cases);
    // The example bundle shares fetched documents in this zone (nginx.conf: `shm_kv
    // policy_filter 1m;`); Envoy ignores it.
    Ok(json!({"now": NOW, "shm_kv": ["policy_filter"], "upstreams": upstreams, "cases": list}))
}

const IDP: &str = "https://idp.example/realms/acme";
const CERTS: &str = "idp.example:443 /realms/acme/protocol/openid-connect/certs";
const REVOCATIONS: &str = "idp.example:443 /realms/acme/revocations";

/// The `idp` provider's cases: its keys come from its JWKS endpoint, played by a stub (an
/// Envoy cluster `idp.example:443`, or the address NGINX dispatches to), and rotate; its
/// revocation list comes from the same identity provider. The stub's answers and the clock's
/// moves are part of the cases, so `pw-harness run` replays them on either host.
fn idp_cases(keys: &std::path::Path) -> Result<(Vec<Value>, Value), String> {
    let rsa = Signer::from_file("RS256", &keys.join("idp-rsa.EXAMPLE-ONLY.key"))?;
    let ec = Signer::from_file("ES256", &keys.join("idp-es256.EXAMPLE-ONLY.key"))?;
    let token = |signer: &Signer, alg: &str, kid: &str, sub: &str, extra: Value| {
        let mut claims = claims(json!({"iss": IDP, "aud": "api.example", "sub": sub, "username": sub, "userId": format!("idp-{sub}"), "roles": "user"}));
        if let (Some(target), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            target.extend(extra);
        }
        mint(signer, alg, Some(kid), &claims)
    };
    let lena = token(&rsa, "RS256", "idp-rsa-1", "lena", json!({}));
    let leaked = token(&rsa, "RS256", "idp-rsa-1", "lena", json!({"jti": "leaked-7f3a"}));
    let stolen = token(&rsa, "RS256", "idp-rsa-1", "lena", json!({"jti": "stolen-2b9c"}));
    let mallory = token(&rsa, "RS256", "idp-rsa-1", "mallory", json!({}));
    let rotated = token(&ec, "ES256", "idp-ec-2", "lena", json!({}));
    let after_outage = token(&rsa, "RS256", "idp-rsa-1", "lena", json!({"jti": "after-outage"}));

    let first = crate::idp_jwks(&[(&rsa, "idp-rsa-1", "RS256")], true);
    let both = crate::idp_jwks(&[(&rsa, "idp-rsa-1", "RS256"), (&ec, "idp-ec-2", "ES256")], true);
    let jwks = |document: &Value| json!({"status": 200, "headers": [["content-type", "application/json"], ["cache-control", "max-age=300"]], "body_json": document});
    let revocations = json!({"status": 200, "headers": [["cache-control", "max-age=30"]], "body_json": {"token_ids": ["stolen-2b9c"], "subjects": {}}});
    let upstreams = json!({CERTS: [jwks(&first)], REVOCATIONS: [revocations]});

    let revoked = r#"Bearer realm="users-service", error="invalid_token", error_description="the token has been revoked""#;
    let lena_allowed = json!({"status": 200, "headers": {"x-auth-username": "lena", "x-auth-user-id": "idp-lena", "x-auth-policy": "users-allow-read-access"}, "absent_headers": ["authorization"]});
    let calls = |expect: &mut Value, certs: usize| {
        if let Some(object) = expect.as_object_mut() {
            object.insert("calls".into(), json!({CERTS: certs}));
        }
    };
    let mut before = json!({"status": 401, "headers": {"www-authenticate": r#"Bearer realm="users-service", error="invalid_token", error_description="the token's issuer has published no keys yet""#}});
    calls(&mut before, 0);
    let mut fetched = lena_allowed.clone();
    calls(&mut fetched, 1);
    let mut early = lena_allowed.clone();
    calls(&mut early, 2);
    let mut cases = vec![
        case("the IdP's token before its keys are fetched (no fetch from a request)", "GET", "/users/me", bearer(&lena), before),
        with(case("the IdP's keys are fetched on the first tick, once", "GET", "/users/me", bearer(&lena), fetched), json!({"advance_seconds": 1})),
        case("a token id the bundle revokes", "GET", "/users/me", bearer(&leaked), json!({"status": 401, "headers": {"www-authenticate": revoked}})),
        case("a token id the IdP's revocation list names", "GET", "/users/me", bearer(&stolen), json!({"status": 401, "headers": {"www-authenticate": revoked}})),
        case("a subject the bundle revokes", "GET", "/users/me", bearer(&mallory), json!({"status": 401, "headers": {"www-authenticate": revoked}})),
        with(
            case("a token signed by the IdP's new key, before the set has it", "GET", "/users/me", bearer(&rotated), json!({"status": 401})),
            json!({"upstreams": {CERTS: [jwks(&both)]}}),
        ),
        with(case("the new key, fetched early (no restart)", "GET", "/users/me", bearer(&rotated), early), json!({"advance_seconds": 1})),
    ];
    let down = json!({"status": 503, "body": "maintenance"});
    cases.push(with(
        case("the IdP is down at the refresh: the last good set still verifies", "GET", "/users/me", bearer(&after_outage), lena_allowed),
        json!({"advance_seconds": 301, "upstreams": {CERTS: [down]}}),
    ));
    Ok((cases, upstreams))
}

/// The case with these fields added (`advance_seconds`, `upstreams`).
pub(crate) fn with(mut case: Value, fields: Value) -> Value {
    if let (Some(object), Value::Object(fields)) = (case.as_object_mut(), fields) {
        object.extend(fields);
    }
    case
}

/// The case with another expectation under ngx_wasm_module (NGINX, Kong).
fn on_ngx(mut case: Value, expect: Value) -> Value {
    if let Some(object) = case.as_object_mut() {
        object.insert("expect_on".into(), json!({"ngx_wasm_module": expect}));
    }
    case
}

/// Sets the case's `source.address` property.
fn from_address(case: &mut Value, address: &str) {
    if let Some(request) = case.get_mut("request").and_then(Value::as_object_mut) {
        request.insert("properties".into(), json!({"source.address": address}));
    }
}
