//! Shared data (with compare-and-swap), in a store shared by every plugin started
//! `shared_with` another, and shared queues (per plugin).

use std::collections::VecDeque;

use wasmtime::Linker;

use super::Ctx;
use crate::guest;
use crate::host::{HostState, Queue, SharedStore};
use crate::hosts::{envoy, ngx_wasm_module};
use crate::status::{HostError, HostResult, Status, to_abi};

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: Ctx<'_>, key: i32, key_len: i32, ptr_out: i32, size_out: i32, cas_out: i32| {
            to_abi("proxy_get_shared_data", get_data(&mut c, key, key_len, ptr_out, size_out, cas_out))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: Ctx<'_>, key: i32, key_len: i32, value: i32, value_len: i32, cas: i32| {
            to_abi("proxy_set_shared_data", set_data(&mut c, key, key_len, value, value_len, cas as u32))
        },
    )?;
    linker.func_wrap("env", "proxy_register_shared_queue", |mut c: Ctx<'_>, name: i32, name_len: i32, id_out: i32| {
        to_abi("proxy_register_shared_queue", register_queue(&mut c, name, name_len, id_out))
    })?;
    linker.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: Ctx<'_>, _vm: i32, _vm_len: i32, name: i32, name_len: i32, id_out: i32| {
            // One VM per harness plugin: the vm_id names this one.
            to_abi("proxy_resolve_shared_queue", resolve_queue(&mut c, name, name_len, id_out))
        },
    )?;
    linker.func_wrap("env", "proxy_enqueue_shared_queue", |mut c: Ctx<'_>, id: i32, value: i32, value_len: i32| {
        to_abi("proxy_enqueue_shared_queue", enqueue(&mut c, id as u32, value, value_len))
    })?;
    linker.func_wrap("env", "proxy_dequeue_shared_queue", |mut c: Ctx<'_>, id: i32, ptr_out: i32, size_out: i32| {
        to_abi("proxy_dequeue_shared_queue", dequeue(&mut c, id as u32, ptr_out, size_out))
    })?;
    Ok(())
}

fn get_data(c: &mut Ctx<'_>, key: i32, key_len: i32, ptr_out: i32, size_out: i32, cas_out: i32) -> HostResult {
    let key = guest::read_string(c, key, key_len)?;
    let ngx = c.data().profile.is_ngx();
    let found = {
        let mut store = lock(c.data())?;
        if ngx {
            let zone = ngx_wasm_module::resolve_zone(&mut store.zones, &key)
                .ok_or_else(|| trap("failed getting value from shm (could not resolve namespace)"))?;
            zone.get(&key).cloned()
        } else {
            store.envoy.get(&key).cloned()
        }
    };
    let (value, cas) = found.ok_or(Status::NotFound)?;
    guest::return_bytes(c, &value, ptr_out, size_out)?;
    guest::write_u32(c, cas_out, cas)
}

/// Compare-and-swap as the host does it: `hosts::envoy::set_shared`,
/// `hosts::ngx_wasm_module::set_shared`.
fn set_data(c: &mut Ctx<'_>, key: i32, key_len: i32, value: i32, value_len: i32, cas: u32) -> HostResult {
    let key = guest::read_string(c, key, key_len)?;
    let bytes = guest::read(c, value, value_len)?;
    let mut store = lock(c.data())?;
    let result = if c.data().profile.is_ngx() {
        let zone = ngx_wasm_module::resolve_zone(&mut store.zones, &key)
            .ok_or_else(|| trap("failed setting value to shm (could not resolve namespace)"))?;
        // ngx_proxy_wasm_hfuncs_set_shared_data: a NULL value pointer is a delete.
        ngx_wasm_module::set_shared(zone, key, (value != 0).then_some(bytes), cas)
    } else {
        envoy::set_shared(&mut store, key, bytes, cas)
    };
    result.map_err(Into::into)
}

fn lock(state: &HostState) -> HostResult<std::sync::MutexGuard<'_, SharedStore>> {
    state.shared.lock().map_err(|_| Status::InternalFailure.into())
}

fn trap(message: &str) -> HostError {
    HostError::Trap(wasmtime::Error::msg(message.to_string()))
}

fn queue_id(index: usize) -> u32 {
    // Ids start at 1 so that 0 never names a queue.
    index as u32 + 1
}

fn register_queue(c: &mut Ctx<'_>, name: i32, name_len: i32, id_out: i32) -> HostResult {
    let name = guest::read_string(c, name, name_len)?;
    let state = c.data_mut();
    let owner_context = state.effective_context;
    let index = match state.queues.iter().position(|(n, _)| *n == name) {
        Some(index) => index,
        None => {
            state.queues.push((name, Queue { owner_context, items: VecDeque::new() }));
            state.queues.len() - 1
        }
    };
    guest::write_u32(c, id_out, queue_id(index))
}

fn resolve_queue(c: &mut Ctx<'_>, name: i32, name_len: i32, id_out: i32) -> HostResult {
    let name = guest::read_string(c, name, name_len)?;
    let index = c.data().queues.iter().position(|(n, _)| *n == name).ok_or(Status::NotFound)?;
    guest::write_u32(c, id_out, queue_id(index))
}

fn queue(state: &mut HostState, id: u32) -> HostResult<&mut Queue> {
    let index = (id as usize).checked_sub(1).ok_or(Status::NotFound)?;
    state.queues.get_mut(index).map(|(_, q)| q).ok_or(Status::NotFound.into())
}

fn enqueue(c: &mut Ctx<'_>, id: u32, value: i32, value_len: i32) -> HostResult {
    let value = guest::read(c, value, value_len)?;
    let state = c.data_mut();
    let queue = queue(state, id)?;
    queue.items.push_back(value);
    let owner = queue.owner_context;
    state.ready_queues.push_back((owner, id));
    Ok(())
}

fn dequeue(c: &mut Ctx<'_>, id: u32, ptr_out: i32, size_out: i32) -> HostResult {
    let item = queue(c.data_mut(), id)?.items.pop_front().ok_or(Status::Empty)?;
    guest::return_bytes(c, &item, ptr_out, size_out)
}
