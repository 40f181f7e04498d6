//! `pw-harness`: run a proxy-wasm module offline against a file of cases, or benchmark it.
//!
//! Exit codes: 0 every case passed, 1 a case failed, 2 usage or load error (a configuration
//! the module refused is a load error; its log is shown).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use proxy_wasm_harness::cases::{self, CaseFile, Replay};
use proxy_wasm_harness::{HostProfile, Limits, Plugin, PluginBuilder, ProxyWasmModule, Request, bench, workspace};

#[derive(Parser)]
#[command(name = "pw-harness", version, about = "Run proxy-wasm 0.2.1 modules offline, the way Envoy or NGINX with ngx_wasm_module does")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay a case file through a module and check each expectation.
    Run {
        #[command(flatten)]
        load: LoadArgs,
        /// Print one JSON object per case instead of one line.
        #[arg(long)]
        json: bool,
        /// Print the module's log lines as they happen.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Time the cases against the module and against a passthrough module, in one run.
    Bench {
        #[command(flatten)]
        load: LoadArgs,
        /// Times each case is replayed.
        #[arg(long, default_value_t = 2000)]
        iterations: usize,
        /// The baseline module (default: build this workspace's passthrough fixture).
        #[arg(long)]
        baseline: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct LoadArgs {
    /// The proxy-wasm module.
    #[arg(long)]
    wasm: PathBuf,
    /// The plugin configuration (what Envoy passes as `configuration`).
    #[arg(long)]
    plugin_config: PathBuf,
    /// The VM configuration (what Envoy passes as `vm_config.configuration`).
    #[arg(long)]
    vm_config: Option<PathBuf>,
    /// The case file.
    #[arg(long)]
    cases: PathBuf,
    /// The host clock at start, in Unix seconds (overrides the case file's `now`).
    #[arg(long)]
    now: Option<u64>,
    /// The proxy to play: envoy (default), ngx_wasm_module (NGINX or Kong, configured as
    /// `policy-compiler render nginx` renders it), ngx_wasm_module_plain_proxy_pass. Overrides
    /// the case file's `host`.
    #[arg(long, value_parser = parse_host)]
    host: Option<HostProfile>,
    /// Withdraw one of the host's foreign functions (Envoy's `verify_signature`). Repeatable.
    #[arg(long, value_name = "NAME")]
    without_foreign_function: Vec<String>,
}

fn parse_host(name: &str) -> Result<HostProfile, String> {
    HostProfile::parse(name).ok_or_else(|| {
        let known: Vec<&str> = HostProfile::ALL.iter().map(|h| h.name()).collect();
        format!("unknown host {name:?}; known: {}", known.join(", "))
    })
}

/// A failure before any case ran: exit 2.
struct LoadFailure(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { load, json, verbose } => run(&load, json, verbose),
        Command::Bench { load, iterations, baseline, json } => bench(&load, iterations, baseline, json),
    };
    match result {
        Ok(code) => code,
        Err(LoadFailure(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, LoadFailure> {
    std::fs::read(path).map_err(|e| LoadFailure(format!("cannot read {}: {e}", path.display())))
}

fn compile(wasm: &Path, limits: Limits) -> Result<ProxyWasmModule, LoadFailure> {
    ProxyWasmModule::from_bytes(&read(wasm)?, limits).map_err(|e| LoadFailure(format!("{}: {e}", wasm.display())))
}

/// The plugin as the command line and the case file set it up, before the case file's
/// upstreams and zones (`cases::prepare`).
fn builder<'m>(module: &'m ProxyWasmModule, load: &LoadArgs, file: &CaseFile, verbose: bool) -> Result<PluginBuilder<'m>, LoadFailure> {
    let mut builder = module
        .plugin()
        .host(load.host.or(file.host).unwrap_or_default())
        .plugin_config(read(&load.plugin_config)?)
        .now(load.now.or(file.now).unwrap_or(1_800_000_000))
        .echo_logs(verbose);
    if let Some(vm_config) = &load.vm_config {
        builder = builder.vm_config(read(vm_config)?);
    }
    for name in &load.without_foreign_function {
        builder = builder.without_foreign_function(name);
    }
    Ok(builder)
}

/// One plugin with the case file's upstreams and zones (for the bench).
/// Starts a plugin for `bench`, and moves its clock by the cases' largest `advance_seconds`
/// before anything is timed (ticks and callouts delivered: a key set fetched at start is in
/// place when the requests are timed).
fn start(wasm: &Path, load: &LoadArgs, file: &CaseFile, limits: Limits) -> Result<Plugin, LoadFailure> {
    let module = compile(wasm, limits)?;
    let (builder, _upstreams) = cases::prepare(file, builder(&module, load, file, false)?).map_err(LoadFailure)?;
    let mut plugin = builder.start().map_err(|e| LoadFailure(format!("{}: {e}", wasm.display())))?;
    let settle = file.cases.iter().filter_map(|case| case.advance_seconds).fold(0.0_f64, f64::max);
    if settle > 0.0 {
        let by = std::time::Duration::try_from_secs_f64(settle).map_err(|e| LoadFailure(format!("advance_seconds: {e}")))?;
        plugin.advance_time(by).map_err(|e| LoadFailure(format!("{}: {e}", wasm.display())))?;
    }
    Ok(plugin)
}

/// Writes a line to stdout; false once stdout is closed (`pw-harness run --json | head -2`),
/// where `println!` would panic.
fn say(line: &str) -> bool {
    use std::io::Write as _;
    writeln!(std::io::stdout().lock(), "{line}").is_ok()
}

fn run(load: &LoadArgs, json: bool, verbose: bool) -> Result<ExitCode, LoadFailure> {
    let file = cases::load(&load.cases).map_err(LoadFailure)?;
    let module = compile(&load.wasm, Limits::default())?;
    let mut replay = Replay::start(&file, builder(&module, load, &file, verbose)?)
        .map_err(|e| LoadFailure(format!("{}: {e}", load.wasm.display())))?;
    let (mut passed, mut failed) = (0, 0);
    for case in &file.cases {
        let result = replay.run(case);
        if result.passed {
            passed += 1;
        } else {
            failed += 1;
        }
        let written = if json {
            say(&serde_json::to_string(&result).unwrap_or_default())
        } else {
            let verdict = if result.passed { "PASS" } else { "FAIL" };
            let route = match result.answered_by {
                "upstream" => "forwarded",
                "proxy" => "answered by the proxy",
                _ => "answered by the module",
            };
            say(&format!("{verdict}  {}  ({} {route})", result.name, result.status))
                && result.reason.as_ref().is_none_or(|reason| say(&format!("      {reason}")))
        };
        if !written {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let code = if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) };
    if json {
        // One tick, so a module that hands its counters over on its timer has done so. The
        // metrics are worker 0's.
        let ticked = Plugin::advance_workers(replay.workers_mut(), std::time::Duration::from_secs(1));
        let metrics = replay.workers().first().map(|w| w.metrics().to_vec()).unwrap_or_default();
        let summary = serde_json::json!({"passed": passed, "failed": failed, "metrics": metrics, "tick": ticked.err()});
        say(&summary.to_string());
    } else {
        say(&format!("{passed} passed, {failed} failed"));
    }
    Ok(code)
}

fn bench(load: &LoadArgs, iterations: usize, baseline: Option<PathBuf>, json: bool) -> Result<ExitCode, LoadFailure> {
    let file = cases::load(&load.cases).map_err(LoadFailure)?;
    let requests = file
        .cases
        .iter()
        .map(|case| case.request.to_request().map_err(|e| LoadFailure(format!("case {}: {e}", case.name))))
        .collect::<Result<Vec<Request>, _>>()?;
    let baseline = match baseline {
        Some(path) => path,
        None => workspace::fixture("passthrough").map_err(|e| LoadFailure(format!("{e}\n(give --baseline PATH)")))?,
    };
    // Timed without fuel metering, as a proxy runs modules; fuel counted on a metered twin.
    let unmetered = Limits { fuel_per_callback: None, ..Limits::default() };
    let mut stats = Vec::new();
    for wasm in [&load.wasm, &baseline] {
        let mut timed = start(wasm, load, &file, unmetered)?;
        let mut metered = start(wasm, load, &file, Limits::default())?;
        stats.push(bench::measure(&mut timed, &mut metered, &requests, iterations));
    }
    let [module_stats, baseline_stats] = <[bench::Stats; 2]>::try_from(stats).map_err(|_| LoadFailure("bench: no figures".into()))?;
    let ratio = module_stats.median_ns as f64 / baseline_stats.median_ns.max(1) as f64;
    if json {
        let report = serde_json::json!({
            "module": module_stats, "baseline": baseline_stats, "median_ratio": ratio, "iterations": iterations,
        });
        say(&report.to_string());
    } else {
        let mut lines = vec![format!("{:<12} {:>10} {:>12} {:>10} {:>14} {:>10}", "module", "requests", "median µs", "p99 µs", "median fuel", "hostcalls")];
        for (name, stats) in [("module", &module_stats), ("passthrough", &baseline_stats)] {
            lines.push(format!(
                "{name:<12} {:>10} {:>12.1} {:>10.1} {:>14} {:>10}",
                stats.requests,
                stats.median_ns as f64 / 1000.0,
                stats.p99_ns as f64 / 1000.0,
                stats.median_fuel,
                stats.median_hostcalls
            ));
        }
        lines.push(format!("median time ratio module/passthrough: {ratio:.2}"));
        let _ = lines.iter().all(|line| say(line));
    }
    Ok(ExitCode::SUCCESS)
}
