//! Replaying requests many times and summarising time and guest fuel per request.

use std::time::Instant;

use serde::Serialize;

use crate::http::Request;
use crate::plugin::Plugin;

/// Per-request figures over one run.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub requests: usize,
    pub median_ns: u64,
    pub p99_ns: u64,
    pub median_fuel: u64,
    /// proxy-wasm hostcalls per request (median).
    pub median_hostcalls: u64,
}

/// Times `timed` (a module compiled without fuel metering, as proxies run it): every request
/// once to warm up, then `iterations` times each, timing every `send`. The fuel figures come
/// from `metered` (the same module with metering), which replays every request three times,
/// the first two to warm up: the second is the first to find what the first left behind (a
/// cached token), and pays once for what that needs once (a counter's definition); from the
/// third on a request's fuel and hostcalls do not vary.
pub fn measure(timed: &mut Plugin, metered: &mut Plugin, requests: &[Request], iterations: usize) -> Stats {
    for request in requests {
        timed.send(request);
        metered.send(request);
        metered.send(request);
    }
    let (mut fuel, mut hostcalls): (Vec<u64>, Vec<u64>) = requests
        .iter()
        .map(|request| {
            let outcome = metered.send(request);
            (outcome.fuel, outcome.hostcalls.len() as u64)
        })
        .unzip();
    let mut times = Vec::with_capacity(requests.len() * iterations);
    for _ in 0..iterations {
        for request in requests {
            let started = Instant::now();
            timed.send(request);
            times.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
    }
    Stats {
        requests: times.len(),
        median_ns: percentile(&mut times, 50),
        p99_ns: percentile(&mut times, 99),
        median_fuel: percentile(&mut fuel, 50),
        median_hostcalls: percentile(&mut hostcalls, 50),
    }
}

/// The `pct`-th percentile (nearest rank); 0 for no samples.
pub fn percentile(samples: &mut [u64], pct: usize) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    samples.sort_unstable();
    let rank = (samples.len() * pct).div_ceil(100).clamp(1, samples.len());
    samples.get(rank - 1).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut samples: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(percentile(&mut samples, 50), 50);
        assert_eq!(percentile(&mut samples, 99), 99);
        assert_eq!(percentile(&mut [7], 99), 7);
        assert_eq!(percentile(&mut [], 50), 0);
    }
}
