//! proxy_get_property, proxy_set_property. A path arrives as NUL-separated segments.

use wasmtime::Linker;

use super::Ctx;
use crate::guest;
use crate::host::{HostState, PropertyPath};
use crate::status::{HostResult, Status, to_abi};

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "proxy_get_property", |mut c: Ctx<'_>, path: i32, path_len: i32, ptr_out: i32, size_out: i32| {
        to_abi("proxy_get_property", get(&mut c, path, path_len, ptr_out, size_out))
    })?;
    linker.func_wrap("env", "proxy_set_property", |mut c: Ctx<'_>, path: i32, path_len: i32, value: i32, value_len: i32| {
        to_abi("proxy_set_property", set(&mut c, path, path_len, value, value_len))
    })?;
    Ok(())
}

fn decode_path(c: &mut Ctx<'_>, ptr: i32, len: i32) -> HostResult<PropertyPath> {
    let raw = guest::read_string(c, ptr, len)?;
    let mut segments: PropertyPath = raw.split('\0').map(str::to_string).collect();
    if segments.last().is_some_and(String::is_empty) {
        segments.pop();
    }
    if segments.is_empty() {
        return Err(Status::BadArgument.into());
    }
    Ok(segments)
}

fn get(c: &mut Ctx<'_>, path: i32, path_len: i32, ptr_out: i32, size_out: i32) -> HostResult {
    let path = decode_path(c, path, path_len)?;
    let state = c.data_mut();
    if state.profile.is_ngx() {
        // ngx_proxy_wasm_properties_get: a dotted property outside a request is an error; the
        // properties it does not implement are NotFound, logged (not_supported, nyi).
        if state.stream().is_none() && path.len() > 1 {
            state.log(crate::LogLevel::Error, "[wasm] cannot get scoped properties outside of a request".into());
            return Err(Status::InternalFailure.into());
        }
        if state.profile.lacks_property(&path) {
            state.log(crate::LogLevel::Error, format!("[wasm] \"{}\" property not supported", path.join(".")));
            return Err(Status::NotFound.into());
        }
    }
    let value = c.data().property(&path).cloned().ok_or(Status::NotFound)?;
    guest::return_bytes(c, &value, ptr_out, size_out)
}

fn set(c: &mut Ctx<'_>, path: i32, path_len: i32, value: i32, value_len: i32) -> HostResult {
    let path = decode_path(c, path, path_len)?;
    let value = guest::read(c, value, value_len)?;
    let state = c.data_mut();
    match state.stream_mut() {
        Some(stream) => stream.properties.insert(path, value),
        None => state.properties.insert(path, value),
    };
    Ok(())
}
