//! proxy_get_current_time_nanoseconds, proxy_set_tick_period_milliseconds.

use wasmtime::Linker;

use super::Ctx;
use crate::guest;
use crate::host::HostState;
use crate::status::to_abi;

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "proxy_get_current_time_nanoseconds", |mut c: Ctx<'_>, out: i32| {
        let now = c.data().clock.nanos();
        to_abi("proxy_get_current_time_nanoseconds", guest::write_u64(&mut c, out, now))
    })?;
    linker.func_wrap("env", "proxy_set_tick_period_milliseconds", |mut c: Ctx<'_>, period: i32| {
        // Ticks go to the root context, whichever context asked.
        let state = c.data_mut();
        state.tick_period_ms = period as u32;
        state.next_tick_nanos = match period as u32 {
            0 => None,
            ms => Some(state.clock.nanos().saturating_add(u64::from(ms) * 1_000_000)),
        };
        to_abi("proxy_set_tick_period_milliseconds", Ok(()))
    })?;
    Ok(())
}
