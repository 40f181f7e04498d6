//! proxy_log, proxy_get_log_level.

use wasmtime::Linker;

use super::Ctx;
use crate::guest;
use crate::host::{HostState, LogLevel};
use crate::status::{HostResult, Status, to_abi};

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "proxy_log", |mut c: Ctx<'_>, level: i32, ptr: i32, len: i32| {
        to_abi("proxy_log", log(&mut c, level, ptr, len))
    })?;
    linker.func_wrap("env", "proxy_get_log_level", |mut c: Ctx<'_>, out: i32| {
        let level = c.data().log_level as u32;
        to_abi("proxy_get_log_level", guest::write_u32(&mut c, out, level))
    })?;
    Ok(())
}

fn log(c: &mut Ctx<'_>, level: i32, ptr: i32, len: i32) -> HostResult {
    let level = LogLevel::from_abi(level).ok_or(Status::BadArgument)?;
    let message = String::from_utf8_lossy(&guest::read(c, ptr, len)?).into_owned();
    c.data_mut().log(level, message);
    Ok(())
}
