//! Shared data: compare-and-swap per host, ngx_wasm_module's `shm_kv` zones, and several
//! workers (plugins) sharing one store and one clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proxy_wasm_harness::{CallReply, HostProfile, Plugin, Request, Response};

use crate::{fixture, logged};

const NGX: HostProfile = HostProfile::NgxWasmModule;
const ENVOY: HostProfile = HostProfile::Envoy;

fn plugin(host: HostProfile, zones: &[&str]) -> Plugin {
    let mut builder = fixture("idp-refresh").plugin().host(host).plugin_config("tick_ms=0");
    for zone in zones {
        builder = builder.ngx_shm_kv(zone);
    }
    builder.start().unwrap()
}

fn status(plugin: &mut Plugin, path: &str) -> u16 {
    plugin.send(&Request::get(path)).status()
}

#[test]
fn cas_zero_on_an_existing_key_writes_on_envoy_and_is_a_mismatch_on_ngx() {
    let mut envoy = plugin(ENVOY, &[]);
    let mut ngx = plugin(NGX, &["*"]);
    for plugin in [&mut envoy, &mut ngx] {
        assert_eq!(status(plugin, "/shm/set?key=k&cas=0&value=a"), 200);
    }
    assert_eq!(status(&mut envoy, "/shm/set?key=k&cas=0&value=b"), 200, "SharedData::set: cas 0 always writes");
    assert_eq!(status(&mut ngx, "/shm/set?key=k&cas=0&value=b"), 409, "ngx_wa_shm_kv_set_locked: 0 only creates");
    assert_eq!(ngx.shared_data("k").as_deref(), Some(&b"a"[..]));

    // The current cas writes on both; ngx counts per key from 1.
    let cas = ngx.send(&Request::get("/shm/get?key=k")).response_header("x-cas").map(str::to_string);
    assert_eq!(cas.as_deref(), Some("1"));
    assert_eq!(status(&mut ngx, "/shm/set?key=k&cas=1&value=c"), 200);
    assert_eq!(status(&mut ngx, "/shm/set?key=k&cas=1&value=d"), 409, "stale");

    // An absent key: Envoy writes whatever the cas, ngx wants 0.
    assert_eq!(status(&mut envoy, "/shm/set?key=new&cas=42&value=x"), 200);
    assert_eq!(status(&mut ngx, "/shm/set?key=new&cas=42&value=x"), 409);
}

#[test]
fn ngx_deletes_on_a_null_value() {
    let mut ngx = plugin(NGX, &["*"]);
    assert_eq!(status(&mut ngx, "/shm/set?key=k&cas=0&value=a"), 200);
    assert_eq!(status(&mut ngx, "/shm/set?key=k&cas=1"), 200);
    assert_eq!(ngx.shared_data("k"), None);
    assert_eq!(status(&mut ngx, "/shm/set?key=k&cas=0"), 409, "nothing to delete");
}

#[test]
fn ngx_traps_shared_data_when_no_shm_kv_zone_resolves() {
    let mut none = plugin(NGX, &[]);
    let outcome = none.send(&Request::get("/shm/get?key=jwks"));
    assert_eq!(outcome.status(), 503);
    assert!(outcome.guest_failure.as_deref().unwrap_or_default().contains("could not resolve namespace"), "{outcome:?}");
    let mut none = plugin(NGX, &[]);
    assert_eq!(status(&mut none, "/shm/set?key=jwks&cas=0&value=a"), 503);

    // A zone named by the key's prefix, and no default zone.
    let mut named = plugin(NGX, &["idp"]);
    assert_eq!(status(&mut named, "/shm/set?key=idp/jwks&cas=0&value=a"), 200);
    assert_eq!(named.shared_data("idp/jwks").as_deref(), Some(&b"a"[..]));
    assert_eq!(status(&mut named, "/shm/get?key=other"), 503, "no zone `other`, no `*`");

    let mut envoy = plugin(ENVOY, &[]);
    assert_eq!(status(&mut envoy, "/shm/get?key=jwks"), 404, "Envoy has no zones");
}

#[test]
fn workers_share_shared_data_and_the_clock() {
    for host in [ENVOY, NGX] {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let module = fixture("idp-refresh");
        let builder = module.plugin().host(host).ngx_shm_kv("*").cluster("idp.local", move |_| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            CallReply::Respond(Response::new(200).body(format!("set {n}")))
        });
        let mut first = builder.clone().plugin_config("tick_ms=1000").start().unwrap();
        let mut second = builder.plugin_config("tick_ms=0").shared_with(&first).start().unwrap();
        first.advance_time(Duration::from_secs(1)).unwrap();
        assert_eq!(second.now_nanos(), first.now_nanos(), "{host:?}: one clock");
        let outcome = second.send(&Request::get("/cached"));
        assert_eq!(outcome.body_text(), "set 0", "{host:?}: the second worker reads the first one's write");
        assert_eq!(second.http_calls().len(), 0, "each worker's own callouts");

        // The second worker's CAS write, with the cas it read, is seen by the first.
        let read = second.send(&Request::get("/shm/get?key=jwks"));
        let cas = read.response_header("x-cas").unwrap().to_string();
        assert_eq!(status(&mut second, &format!("/shm/set?key=jwks&cas={cas}&value=mine")), 200);
        assert_eq!(first.shared_data("jwks").as_deref(), Some(&b"mine"[..]), "{host:?}");
    }
}

#[test]
fn advancing_workers_together_runs_every_tick_in_time_order() {
    let module = fixture("idp-refresh");
    let builder = module.plugin().host(NGX).ngx_shm_kv("*").cluster("idp.local", |_| {
        CallReply::Respond(Response::new(200).body("jwks")).after(Duration::from_millis(100))
    });
    let first = builder.clone().plugin_config("tick_ms=1000").start().unwrap();
    let second = builder.plugin_config("tick_ms=700").shared_with(&first).start().unwrap();
    let mut workers = vec![first, second];
    Plugin::advance_workers(&mut workers, Duration::from_millis(1500)).unwrap();
    let start = 1_800_000_000_000u64;
    // 0.7 s: the second ticks; 0.8 s: its answer; 1.0 s: the first; 1.1 s: its answer; 1.4 s: the second again,
    // answered at 1.5 s.
    assert!(logged(&workers[1], &format!("stored jwks at {}", start + 800)));
    assert!(logged(&workers[0], &format!("stored jwks at {}", start + 1100)), "{:?}", workers[0].logs());
    assert!(logged(&workers[1], &format!("stored jwks at {}", start + 1500)), "an answer due at the target is delivered");
    assert_eq!(workers[1].pending_http_calls(), 0);
    assert_eq!(workers[0].now_nanos(), (start + 1500) * 1_000_000);
}
