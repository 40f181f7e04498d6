//! The `env` imports of proxy-wasm ABI v0.2.1 (and the v0.2.0 spellings), one file per family.
//! Every function here is a thin adapter: decode guest memory, act on `HostState`, encode.

use wasmtime::{Caller, Linker, Module, Val, ValType};

use crate::host::HostState;
use crate::status::Status;

mod buffers;
mod callouts;
mod clock;
mod foreign;
mod headers;
mod logging;
mod metrics;
mod properties;
mod shared;
mod stream;

pub(crate) type Ctx<'a> = Caller<'a, HostState>;

/// Every `env` function the families below define.
const KNOWN: &[&str] = &[
    "proxy_log", "proxy_get_log_level",
    "proxy_get_current_time_nanoseconds", "proxy_set_tick_period_milliseconds",
    "proxy_get_header_map_pairs", "proxy_set_header_map_pairs", "proxy_get_header_map_size",
    "proxy_get_header_map_value", "proxy_add_header_map_value",
    "proxy_replace_header_map_value", "proxy_remove_header_map_value",
    "proxy_get_buffer_bytes", "proxy_set_buffer_bytes", "proxy_get_buffer_status",
    "proxy_get_property", "proxy_set_property",
    "proxy_get_shared_data", "proxy_set_shared_data", "proxy_register_shared_queue",
    "proxy_resolve_shared_queue", "proxy_dequeue_shared_queue", "proxy_enqueue_shared_queue",
    "proxy_continue_stream", "proxy_close_stream", "proxy_continue_request",
    "proxy_continue_response", "proxy_send_local_response", "proxy_done",
    "proxy_set_effective_context", "proxy_get_status",
    "proxy_http_call", "proxy_grpc_call", "proxy_grpc_stream", "proxy_grpc_send",
    "proxy_grpc_cancel", "proxy_grpc_close",
    "proxy_define_metric", "proxy_increment_metric", "proxy_record_metric", "proxy_get_metric",
    "proxy_call_foreign_function",
];

pub(crate) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    logging::link(linker)?;
    clock::link(linker)?;
    headers::link(linker)?;
    buffers::link(linker)?;
    properties::link(linker)?;
    shared::link(linker)?;
    stream::link(linker)?;
    callouts::link(linker)?;
    metrics::link(linker)?;
    foreign::link(linker)?;
    Ok(())
}

/// Links every `env` function the module imports that no family provides, so instantiation
/// never fails on a call the module never makes. Called, it answers `Unimplemented` (and logs
/// it); a function with no status result traps with a clear message instead.
pub(crate) fn link_unknown_env_imports(
    linker: &mut Linker<HostState>,
    module: &Module,
) -> wasmtime::Result<()> {
    let defined: std::collections::HashSet<String> =
        KNOWN.iter().map(|name| (*name).to_string()).collect();
    let mut missing = Vec::new();
    for import in module.imports() {
        if import.module() != "env" || defined.contains(import.name()) {
            continue;
        }
        if let Some(ty) = import.ty().func().cloned() {
            missing.push((import.name().to_string(), ty));
        }
    }
    for (name, ty) in missing {
        let returns_status = matches!(ty.results().collect::<Vec<_>>().as_slice(), [ValType::I32]);
        let label = name.clone();
        linker.func_new("env", &name, ty, move |mut caller: Ctx<'_>, _params, results| {
            if returns_status {
                caller.data_mut().log(
                    crate::LogLevel::Warn,
                    format!("harness: hostcall {label} is not implemented; answered Unimplemented"),
                );
                if let Some(slot) = results.first_mut() {
                    *slot = Val::I32(Status::Unimplemented as i32);
                }
                Ok(())
            } else {
                Err(wasmtime::Error::msg(format!("hostcall {label} is not implemented by the harness")))
            }
        })?;
    }
    Ok(())
}
