//! proxy_get_buffer_bytes, proxy_set_buffer_bytes, proxy_get_buffer_status.

use wasmtime::Linker;

use super::Ctx;
use crate::guest;
use crate::host::HostState;
use crate::status::{HostResult, Status, to_abi};

const REQUEST_BODY: i32 = 0;
const RESPONSE_BODY: i32 = 1;
const CALL_RESPONSE_BODY: i32 = 4;
const VM_CONFIGURATION: i32 = 6;
const PLUGIN_CONFIGURATION: i32 = 7;
const CALL_DATA: i32 = 8;

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: Ctx<'_>, buffer: i32, start: i32, max: i32, ptr_out: i32, size_out: i32| {
            to_abi("proxy_get_buffer_bytes", get_bytes(&mut c, buffer, start, max, ptr_out, size_out))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: Ctx<'_>, buffer: i32, start: i32, size: i32, ptr: i32, len: i32| {
            to_abi("proxy_set_buffer_bytes", set_bytes(&mut c, buffer, start, size, ptr, len))
        },
    )?;
    linker.func_wrap("env", "proxy_get_buffer_status", |mut c: Ctx<'_>, buffer: i32, len_out: i32, flags_out: i32| {
        to_abi("proxy_get_buffer_status", status(&mut c, buffer, len_out, flags_out))
    })?;
    Ok(())
}

fn buffer(state: &HostState, buffer: i32) -> HostResult<&[u8]> {
    let found = match buffer {
        REQUEST_BODY => state.stream().map(|s| s.request_body.as_slice()),
        RESPONSE_BODY => state.stream().map(|s| s.response_body.as_slice()),
        CALL_RESPONSE_BODY => state.call_response.as_ref().map(|r| r.body.as_slice()),
        VM_CONFIGURATION => Some(state.vm_config.as_slice()),
        PLUGIN_CONFIGURATION => Some(state.plugin_config.as_slice()),
        CALL_DATA => Some(state.call_data.as_slice()),
        _ => None,
    };
    found.ok_or(Status::NotFound.into())
}

fn get_bytes(c: &mut Ctx<'_>, which: i32, start: i32, max: i32, ptr_out: i32, size_out: i32) -> HostResult {
    let data = buffer(c.data(), which)?;
    let start = (start as u32 as usize).min(data.len());
    let end = start.saturating_add(max as u32 as usize).min(data.len());
    let slice = data.get(start..end).unwrap_or_default().to_vec();
    guest::return_bytes(c, &slice, ptr_out, size_out)
}

fn status(c: &mut Ctx<'_>, which: i32, len_out: i32, flags_out: i32) -> HostResult {
    let len = buffer(c.data(), which)?.len() as u32;
    guest::write_u32(c, len_out, len)?;
    guest::write_u32(c, flags_out, 0)
}

/// Envoy's `Buffer::copyFrom`: (0, 0) prepends, (0, >= len) replaces, start >= len appends;
/// any other range is refused.
fn set_bytes(c: &mut Ctx<'_>, which: i32, start: i32, size: i32, ptr: i32, len: i32) -> HostResult {
    let data = guest::read(c, ptr, len)?;
    let state = c.data_mut();
    let body = match which {
        REQUEST_BODY => state.stream_mut().map(|s| &mut s.request_body),
        RESPONSE_BODY => state.stream_mut().map(|s| &mut s.response_body),
        CALL_RESPONSE_BODY => state.call_response.as_mut().map(|r| &mut r.body),
        _ => None,
    }
    .ok_or(Status::BadArgument)?;
    let (start, size) = (start as u32 as usize, size as u32 as usize);
    if start == 0 && size == 0 {
        body.splice(0..0, data);
    } else if start == 0 && size >= body.len() {
        *body = data;
    } else if start >= body.len() {
        body.extend_from_slice(&data);
    } else {
        return Err(Status::BadArgument.into());
    }
    Ok(())
}
