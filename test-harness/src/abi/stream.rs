//! Stream control: continue, close, local replies, proxy_done, the effective context and
//! proxy_get_status.

use wasmtime::Linker;

use super::Ctx;
use crate::guest;
use crate::host::HostState;
use crate::http::{LocalReply, Response};
use crate::status::{HostResult, Status, to_abi};

const HTTP_REQUEST: i32 = 0;
const HTTP_RESPONSE: i32 = 1;

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "proxy_continue_stream", |mut c: Ctx<'_>, stream: i32| {
        to_abi("proxy_continue_stream", resume(&mut c, stream))
    })?;
    // ABI 0.2.0 spellings.
    linker.func_wrap("env", "proxy_continue_request", |mut c: Ctx<'_>| to_abi("proxy_continue_request", resume(&mut c, HTTP_REQUEST)))?;
    linker.func_wrap("env", "proxy_continue_response", |mut c: Ctx<'_>| to_abi("proxy_continue_response", resume(&mut c, HTTP_RESPONSE)))?;
    linker.func_wrap("env", "proxy_close_stream", |mut c: Ctx<'_>, stream: i32| {
        to_abi("proxy_close_stream", close(&mut c, stream))
    })?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: Ctx<'_>,
         status: i32,
         details: i32,
         details_len: i32,
         body: i32,
         body_len: i32,
         headers: i32,
         headers_len: i32,
         grpc_status: i32| {
            let reply = LocalArgs { status, details, details_len, body, body_len, headers, headers_len, grpc_status };
            to_abi("proxy_send_local_response", send_local_response(&mut c, reply))
        },
    )?;
    linker.func_wrap("env", "proxy_done", |mut c: Ctx<'_>| {
        c.data_mut().done_signalled = true;
        to_abi("proxy_done", Ok(()))
    })?;
    linker.func_wrap("env", "proxy_set_effective_context", |mut c: Ctx<'_>, context: i32| {
        to_abi("proxy_set_effective_context", set_effective_context(&mut c, context as u32))
    })?;
    linker.func_wrap("env", "proxy_get_status", |mut c: Ctx<'_>, code_out: i32, ptr_out: i32, size_out: i32| {
        // Only gRPC sets a status, and the harness runs no gRPC: always OK, no message.
        let result = guest::write_u32(&mut c, code_out, 0).and_then(|()| guest::return_bytes(&mut c, &[], ptr_out, size_out));
        to_abi("proxy_get_status", result)
    })?;
    Ok(())
}

fn resume(c: &mut Ctx<'_>, which: i32) -> HostResult {
    let stream = c.data_mut().stream_mut().ok_or(Status::BadArgument)?;
    match which {
        HTTP_REQUEST => stream.request_resumed = true,
        HTTP_RESPONSE => stream.response_resumed = true,
        _ => return Err(Status::BadArgument.into()),
    }
    Ok(())
}

fn close(c: &mut Ctx<'_>, which: i32) -> HostResult {
    let stream = c.data_mut().stream_mut().ok_or(Status::BadArgument)?;
    match which {
        HTTP_REQUEST | HTTP_RESPONSE => stream.reset = true,
        _ => return Err(Status::BadArgument.into()),
    }
    Ok(())
}

struct LocalArgs {
    status: i32,
    details: i32,
    details_len: i32,
    body: i32,
    body_len: i32,
    headers: i32,
    headers_len: i32,
    grpc_status: i32,
}

fn send_local_response(c: &mut Ctx<'_>, args: LocalArgs) -> HostResult {
    let details = String::from_utf8_lossy(&guest::read(c, args.details, args.details_len)?).into_owned();
    let body = guest::read(c, args.body, args.body_len)?;
    let headers = guest::decode_header_map(&guest::read(c, args.headers, args.headers_len)?)?;
    let status = u16::try_from(args.status).ok().filter(|s| (100..=599).contains(s)).ok_or(Status::BadArgument)?;
    let mut response = Response::new(status).body(body);
    for (name, value) in headers {
        response = response.header(&name, &value);
    }
    let reply = LocalReply { status, details, grpc_status: args.grpc_status };
    let stream = c.data_mut().stream_mut().ok_or(Status::BadArgument)?;
    stream.local_reply = Some((reply, response));
    Ok(())
}

fn set_effective_context(c: &mut Ctx<'_>, context: u32) -> HostResult {
    let state = c.data_mut();
    if context != state.root_context && !state.streams.contains_key(&context) {
        return Err(Status::BadArgument.into());
    }
    state.effective_context = context;
    Ok(())
}
