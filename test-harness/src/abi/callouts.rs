//! proxy_http_call, answered by the stub clusters a test registers; gRPC is not offered and
//! answers Unimplemented.

use wasmtime::Linker;

use super::Ctx;
use crate::guest;
use crate::host::{HostState, PendingCall};
use crate::http::HttpCallRequest;
use crate::status::{HostResult, Status, to_abi};

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
    let cluster = guest::read_string(c, args.cluster, args.cluster_len)?;
    let headers = guest::decode_header_map(&guest::read(c, args.headers, args.headers_len)?)?;
    let body = guest::read(c, args.body, args.body_len)?;
    let trailers = guest::decode_header_map(&guest::read(c, args.trailers, args.trailers_len)?)?;
    // Envoy refuses a callout without these pseudo-headers, or to an unknown cluster.
    let has = |name: &str| headers.iter().any(|(k, v)| k == name && !v.is_empty());
    if !has(":method") || !has(":path") || !has(":authority") {
        return Err(Status::BadArgument.into());
    }
    let state = c.data_mut();
    if !state.clusters.contains_key(&cluster) {
        state.log(crate::LogLevel::Warn, format!("harness: http call to unknown cluster {cluster:?} refused"));
        return Err(Status::BadArgument.into());
    }
    let token = state.next_call_token;
    state.next_call_token = token.wrapping_add(1).max(1);
    let request = HttpCallRequest { cluster, headers, body, trailers, timeout_ms };
    state.calls_made.push(request.clone());
    state.pending_calls.push_back(PendingCall { token, context_id: state.effective_context, request });
    guest::write_u32(c, token_out, token)
}
