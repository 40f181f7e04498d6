//! Header and trailer maps: proxy_{get,set}_header_map_pairs, proxy_get_header_map_value,
//! proxy_{add,replace,remove}_header_map_value, proxy_get_header_map_size.
//! Names are lower-cased on the way in, as Envoy's `LowerCaseString` does. Under the
//! ngx_wasm_module profile a removed request header (and each repeat a replace drops) is only
//! hidden from the module: it moves to the stream's hidden list, which the upstream still
//! receives (`hosts::ngx_wasm_module`).

use wasmtime::Linker;

use super::Ctx;
use crate::guest;
use crate::host::HostState;
use crate::hosts::ngx_wasm_module::{self, HeaderEdit};
use crate::http::Headers;
use crate::status::{HostResult, Status, to_abi};

const REQUEST_HEADERS: i32 = 0;
const REQUEST_TRAILERS: i32 = 1;
const RESPONSE_HEADERS: i32 = 2;
const RESPONSE_TRAILERS: i32 = 3;
const CALL_RESPONSE_HEADERS: i32 = 6;
const CALL_RESPONSE_TRAILERS: i32 = 7;

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "proxy_get_header_map_pairs", |mut c: Ctx<'_>, map: i32, ptr_out: i32, size_out: i32| {
        to_abi("proxy_get_header_map_pairs", get_pairs(&mut c, map, ptr_out, size_out))
    })?;
    linker.func_wrap("env", "proxy_set_header_map_pairs", |mut c: Ctx<'_>, map: i32, ptr: i32, size: i32| {
        to_abi("proxy_set_header_map_pairs", set_pairs(&mut c, map, ptr, size))
    })?;
    linker.func_wrap("env", "proxy_get_header_map_size", |mut c: Ctx<'_>, map: i32, out: i32| {
        to_abi("proxy_get_header_map_size", get_size(&mut c, map, out))
    })?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: Ctx<'_>, map: i32, key: i32, key_len: i32, ptr_out: i32, size_out: i32| {
            to_abi("proxy_get_header_map_value", get_value(&mut c, map, key, key_len, ptr_out, size_out))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut c: Ctx<'_>, map: i32, key: i32, key_len: i32, value: i32, value_len: i32| {
            to_abi("proxy_add_header_map_value", edit(&mut c, map, key, key_len, Some((value, value_len)), Edit::Add))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: Ctx<'_>, map: i32, key: i32, key_len: i32, value: i32, value_len: i32| {
            to_abi("proxy_replace_header_map_value", edit(&mut c, map, key, key_len, Some((value, value_len)), Edit::Replace))
        },
    )?;
    linker.func_wrap("env", "proxy_remove_header_map_value", |mut c: Ctx<'_>, map: i32, key: i32, key_len: i32| {
        to_abi("proxy_remove_header_map_value", edit(&mut c, map, key, key_len, None, Edit::Remove))
    })?;
    Ok(())
}

fn headers(state: &HostState, map: i32) -> HostResult<&Headers> {
    let stream = state.stream();
    let found = match map {
        REQUEST_HEADERS => stream.map(|s| &s.request_headers),
        REQUEST_TRAILERS => stream.map(|s| &s.request_trailers),
        RESPONSE_HEADERS => stream.map(|s| &s.response_headers),
        RESPONSE_TRAILERS => stream.map(|s| &s.response_trailers),
        CALL_RESPONSE_HEADERS => state.call_response.as_ref().map(|r| &r.headers),
        CALL_RESPONSE_TRAILERS => state.call_response.as_ref().map(|r| &r.trailers),
        _ => None,
    };
    found.ok_or(Status::BadArgument.into())
}

fn headers_mut(state: &mut HostState, map: i32) -> HostResult<&mut Headers> {
    let found = match map {
        CALL_RESPONSE_HEADERS => state.call_response.as_mut().map(|r| &mut r.headers),
        CALL_RESPONSE_TRAILERS => state.call_response.as_mut().map(|r| &mut r.trailers),
        _ => state.stream_mut().and_then(|s| match map {
            REQUEST_HEADERS => Some(&mut s.request_headers),
            REQUEST_TRAILERS => Some(&mut s.request_trailers),
            RESPONSE_HEADERS => Some(&mut s.response_headers),
            RESPONSE_TRAILERS => Some(&mut s.response_trailers),
            _ => None,
        }),
    };
    found.ok_or(Status::BadArgument.into())
}

fn get_pairs(c: &mut Ctx<'_>, map: i32, ptr_out: i32, size_out: i32) -> HostResult {
    let encoded = guest::encode_header_map(headers(c.data(), map)?);
    guest::return_bytes(c, &encoded, ptr_out, size_out)
}

fn get_size(c: &mut Ctx<'_>, map: i32, out: i32) -> HostResult {
    let size = guest::encode_header_map(headers(c.data(), map)?).len() as u32;
    guest::write_u32(c, out, size)
}

fn set_pairs(c: &mut Ctx<'_>, map: i32, ptr: i32, size: i32) -> HostResult {
    let bytes = guest::read(c, ptr, size)?;
    let pairs = guest::decode_header_map(&bytes)?;
    let pairs: Headers = pairs.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    if let Some(stream) = hiding_request_headers(c.data_mut(), map) {
        ngx_wasm_module::set_request_header_pairs(&mut stream.request_headers, &mut stream.request_headers_hidden, pairs);
        return Ok(());
    }
    *headers_mut(c.data_mut(), map)? = pairs;
    Ok(())
}

/// The stream, when `map` is the request headers of a host whose removals only hide.
fn hiding_request_headers(state: &mut HostState, map: i32) -> Option<&mut crate::host::Stream> {
    if map != REQUEST_HEADERS || state.profile.removal_reaches_upstream() {
        return None;
    }
    state.stream_mut()
}

fn get_value(c: &mut Ctx<'_>, map: i32, key: i32, key_len: i32, ptr_out: i32, size_out: i32) -> HostResult {
    let key = guest::read_string(c, key, key_len)?.to_ascii_lowercase();
    // ngx_proxy_wasm_maps.c, ngx_proxy_wasm_maps_get_dispatch_status: a special key ("ok",
    // "timeout", "broken connection", ...), set only while ngx delivers a call response.
    if map == CALL_RESPONSE_HEADERS
        && key == ":dispatch_status"
        && let Some(status) = c.data().dispatch_status
    {
        return guest::return_bytes(c, status.as_bytes(), ptr_out, size_out);
    }
    // The first value when a name repeats; names compare case-insensitively (NGINX keeps the
    // client's spelling).
    let value = headers(c.data(), map)?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&key))
        .map(|(_, v)| v.clone())
        .ok_or(Status::NotFound)?;
    guest::return_bytes(c, value.as_bytes(), ptr_out, size_out)
}

enum Edit {
    Add,
    Replace,
    Remove,
}

fn edit(c: &mut Ctx<'_>, map: i32, key: i32, key_len: i32, value: Option<(i32, i32)>, how: Edit) -> HostResult {
    let key = guest::read_string(c, key, key_len)?.to_ascii_lowercase();
    let value = match value {
        Some((ptr, len)) => guest::read_string(c, ptr, len)?,
        None => String::new(),
    };
    if let Some(stream) = hiding_request_headers(c.data_mut(), map) {
        let edit = match how {
            Edit::Add => HeaderEdit::Add(value),
            Edit::Replace => HeaderEdit::Replace(value),
            Edit::Remove => HeaderEdit::Remove,
        };
        ngx_wasm_module::edit_request_headers(&mut stream.request_headers, &mut stream.request_headers_hidden, key, edit);
        return Ok(());
    }
    let headers = headers_mut(c.data_mut(), map)?;
    match how {
        Edit::Add => headers.push((key, value)),
        Edit::Remove => headers.retain(|(k, _)| *k != key),
        Edit::Replace => match headers.iter().position(|(k, _)| *k == key) {
            Some(first) => {
                let mut index = 0;
                headers.retain(|(k, _)| {
                    let keep = *k != key || index == first;
                    index += 1;
                    keep
                });
                if let Some(slot) = headers.get_mut(first) {
                    slot.1 = value;
                }
            }
            None => headers.push((key, value)),
        },
    }
    Ok(())
}
