//! proxy_http_call, answered by the stub clusters a test registers, when due on the host
//! clock (`Plugin` delivers them); gRPC is not offered and answers Unimplemented. What each
//! host accepts differs: `hosts::envoy::call_refused`, `hosts::ngx_wasm_module::dispatch_*`.

use std::time::Duration;

use wasmtime::Linker;

use super::Ctx;
use crate::guest;
use crate::host::{Answer, HostState, PendingCall};
use crate::hosts::{envoy, ngx_wasm_module};
use crate::http::{CallReply, HttpCallRequest};
use crate::status::{HostError, HostResult, Status, to_abi};
use crate::LogLevel;

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: Ctx<'_>,
         cluster: i32,
         cluster_len: i32,
         headers: i32,
         headers_len: i32,
         body: i32,
         body_len: i32,
         trailers: i32,
         trailers_len: i32,
         timeout_ms: i32,
         token_out: i32| {
            let args = CallArgs { cluster, cluster_len, headers, headers_len, body, body_len, trailers, trailers_len };
            to_abi("proxy_http_call", http_call(&mut c, args, timeout_ms as u32, token_out))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_call",
        |_: Ctx<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| {
            Ok(Status::Unimplemented as i32)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_stream",
        |_: Ctx<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| Ok(Status::Unimplemented as i32),
    )?;
    linker.func_wrap("env", "proxy_grpc_send", |_: Ctx<'_>, _: i32, _: i32, _: i32, _: i32| Ok(Status::Unimplemented as i32))?;
    linker.func_wrap("env", "proxy_grpc_cancel", |_: Ctx<'_>, _: i32| Ok(Status::Unimplemented as i32))?;
    linker.func_wrap("env", "proxy_grpc_close", |_: Ctx<'_>, _: i32| Ok(Status::Unimplemented as i32))?;
    Ok(())
}

struct CallArgs {
    cluster: i32,
    cluster_len: i32,
    headers: i32,
    headers_len: i32,
    body: i32,
    body_len: i32,
    trailers: i32,
    trailers_len: i32,
}

fn http_call(c: &mut Ctx<'_>, args: CallArgs, timeout_ms: u32, token_out: i32) -> HostResult {
    let ngx = c.data().profile.is_ngx();
    if ngx && !ngx_wasm_module::dispatch_allowed(c.data().step) {
        return Err(trap(ngx_wasm_module::DISPATCH_STEP_TRAP));
    }
    let cluster = guest::read_string(c, args.cluster, args.cluster_len)?;
    let headers = guest::decode_header_map(&guest::read(c, args.headers, args.headers_len)?)?;
    let body = guest::read(c, args.body, args.body_len)?;
    let trailers = guest::decode_header_map(&guest::read(c, args.trailers, args.trailers_len)?)?;
    let state = c.data_mut();
    let now = state.clock.nanos();
    let in_request = state.stream().is_some();
    let stub = state.clusters.get(&cluster).cloned();
    let request = HttpCallRequest { cluster, headers, body, trailers, timeout_ms };
    let (due_nanos, answer) = if ngx {
        if let Some(error) = ngx_wasm_module::dispatch_error(&request.cluster, &request.headers) {
            // ngx_http_proxy_wasm_dispatch_err: a trap in a request, a log line (and an
            // error status) in on_tick's fake request.
            if in_request {
                return Err(trap(&error));
            }
            state.log(LogLevel::Error, error);
            return Err(Status::InternalFailure.into());
        }
        if let Some(warning) = ngx_wasm_module::unknown_scheme(&request.headers) {
            state.log(LogLevel::Warn, warning);
        }
        let timeout = if timeout_ms == 0 { ngx_wasm_module::DEFAULT_DISPATCH_TIMEOUT_MS } else { timeout_ms };
        match stub {
            Some(stub) => schedule(stub(&request), now, Some(timeout)),
            // Accepted, then failed when the connection is tried, as an address nobody serves.
            None => (Some(now), Answer::Failure(ngx_wasm_module::unreachable(&request.cluster))),
        }
    } else {
        if envoy::call_refused(&request.headers) {
            return Err(Status::BadArgument.into());
        }
        let Some(stub) = stub else {
            state.log(LogLevel::Warn, format!("harness: http call to unknown cluster {:?} refused", request.cluster));
            return Err(Status::BadArgument.into());
        };
        // A timeout of 0 sets no timer (Envoy's AsyncClient: no global timeout).
        schedule(stub(&request), now, (timeout_ms > 0).then_some(timeout_ms))
    };
    let token = state.next_call_token;
    state.next_call_token = token.wrapping_add(1).max(1);
    state.calls_made.push(request);
    if ngx && let Some(stream) = state.stream_mut() {
        // ngx_http_proxy_wasm_dispatch: `ngx_proxy_wasm_ctx_set_next_action(pwctx, PAUSE)`.
        stream.dispatch_paused = true;
    }
    state.pending_calls.push(PendingCall { token, context_id: state.effective_context, due_nanos, answer });
    guest::write_u32(c, token_out, token)
}

fn trap(message: &str) -> HostError {
    HostError::Trap(wasmtime::Error::msg(message.to_string()))
}

/// When the stub's reply is due, and what it delivers: a reply later than the call's timeout
/// (or none at all) is a timeout failure at the timeout.
fn schedule(reply: CallReply, now: u64, timeout_ms: Option<u32>) -> (Option<u64>, Answer) {
    let mut delay = Duration::ZERO;
    let mut reply = reply;
    while let CallReply::Delayed(by, inner) = reply {
        delay = delay.saturating_add(by);
        reply = *inner;
    }
    let at = now.saturating_add(u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX));
    let (due, answer) = match reply {
        CallReply::Respond(response) => (Some(at), Answer::Response(response)),
        CallReply::Timeout => (None, Answer::Failure("timeout")),
        // A reset (and `Delayed` cannot remain).
        _ => (Some(at), Answer::Failure("broken connection")),
    };
    let limit = timeout_ms.map(|ms| now.saturating_add(u64::from(ms) * 1_000_000));
    match (due, limit) {
        (Some(due), Some(limit)) if due > limit => (Some(limit), Answer::Failure("timeout")),
        (None, Some(limit)) => (Some(limit), Answer::Failure("timeout")),
        _ => (due, answer),
    }
}
