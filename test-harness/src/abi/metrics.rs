//! proxy_define_metric, proxy_increment_metric, proxy_record_metric, proxy_get_metric.

use wasmtime::Linker;

use super::Ctx;
use crate::guest;
use crate::host::{HostState, Metric, MetricKind};
use crate::status::{HostResult, Status, to_abi};

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "proxy_define_metric", |mut c: Ctx<'_>, kind: i32, name: i32, name_len: i32, id_out: i32| {
        to_abi("proxy_define_metric", define(&mut c, kind, name, name_len, id_out))
    })?;
    linker.func_wrap("env", "proxy_increment_metric", |mut c: Ctx<'_>, id: i32, offset: i64| {
        to_abi("proxy_increment_metric", increment(c.data_mut(), id as u32, offset))
    })?;
    linker.func_wrap("env", "proxy_record_metric", |mut c: Ctx<'_>, id: i32, value: i64| {
        to_abi("proxy_record_metric", record(c.data_mut(), id as u32, value as u64))
    })?;
    linker.func_wrap("env", "proxy_get_metric", |mut c: Ctx<'_>, id: i32, out: i32| {
        let value = metric(c.data_mut(), id as u32).map(|m| m.value);
        to_abi("proxy_get_metric", value.and_then(|value| guest::write_u64(&mut c, out, value as u64)))
    })?;
    Ok(())
}

fn define(c: &mut Ctx<'_>, kind: i32, name: i32, name_len: i32, id_out: i32) -> HostResult {
    let kind = match kind {
        0 => MetricKind::Counter,
        1 => MetricKind::Gauge,
        2 => MetricKind::Histogram,
        _ => return Err(Status::BadArgument.into()),
    };
    let name = guest::read_string(c, name, name_len)?;
    let metrics = &mut c.data_mut().metrics;
    // Defining a name twice gives the same metric, as in Envoy.
    let index = match metrics.iter().position(|m| m.name == name) {
        Some(index) => index,
        None => {
            metrics.push(Metric { name, kind, value: 0, samples: Vec::new() });
            metrics.len() - 1
        }
    };
    guest::write_u32(c, id_out, index as u32 + 1)
}

fn metric(state: &mut HostState, id: u32) -> HostResult<&mut Metric> {
    let index = (id as usize).checked_sub(1).ok_or(Status::NotFound)?;
    state.metrics.get_mut(index).ok_or(Status::NotFound.into())
}

fn increment(state: &mut HostState, id: u32, offset: i64) -> HostResult {
    let metric = metric(state, id)?;
    match metric.kind {
        MetricKind::Counter if offset < 0 => Err(Status::BadArgument.into()),
        MetricKind::Counter | MetricKind::Gauge => {
            metric.value = metric.value.saturating_add(offset);
            Ok(())
        }
        MetricKind::Histogram => Err(Status::BadArgument.into()),
    }
}

fn record(state: &mut HostState, id: u32, value: u64) -> HostResult {
    let metric = metric(state, id)?;
    match metric.kind {
        MetricKind::Counter | MetricKind::Gauge => metric.value = value as i64,
        MetricKind::Histogram => metric.samples.push(value),
    }
    Ok(())
}
