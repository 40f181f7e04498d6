//! proxy_call_foreign_function: host functions a test registers by name. An unknown name is
//! `NotFound` in Envoy and a trap in ngx_wasm_module (`hosts::ngx_wasm_module`).

use wasmtime::Linker;

use super::Ctx;
use crate::guest;
use crate::host::HostState;
use crate::status::{HostError, HostResult, Status, to_abi};

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |mut c: Ctx<'_>, name: i32, name_len: i32, args: i32, args_len: i32, ptr_out: i32, size_out: i32| {
            to_abi("proxy_call_foreign_function", call(&mut c, name, name_len, args, args_len, ptr_out, size_out))
        },
    )?;
    Ok(())
}

fn call(c: &mut Ctx<'_>, name: i32, name_len: i32, args: i32, args_len: i32, ptr_out: i32, size_out: i32) -> HostResult {
    let name = guest::read_string(c, name, name_len)?;
    let args = guest::read(c, args, args_len)?;
    let Some(function) = c.data().foreign_functions.get(&name).cloned() else {
        if c.data().profile.unknown_foreign_function_traps() {
            return Err(HostError::Trap(wasmtime::Error::msg(format!("unknown foreign function \"{name}\""))));
        }
        return Err(Status::NotFound.into());
    };
    let result = function(&args)?;
    guest::return_bytes(c, &result, ptr_out, size_out)
}
