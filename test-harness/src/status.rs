//! Status codes of the proxy-wasm ABI, as Envoy's `WasmResult` and the Rust SDK number them.

/// A hostcall's result code. The SDK panics on a code it does not expect for a given call,
/// so each hostcall returns exactly the codes Envoy returns for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    SerializationFailure = 3,
    ParseFailure = 4,
    InvalidMemoryAccess = 6,
    Empty = 7,
    CasMismatch = 8,
    InternalFailure = 10,
    Unimplemented = 12,
}

/// Why a hostcall stopped: an ABI status for the guest, or a trap (the guest's own allocator
/// trapped while we were handing it data) that must unwind the guest call.
#[derive(Debug)]
pub(crate) enum HostError {
    Status(Status),
    Trap(wasmtime::Error),
}

impl From<Status> for HostError {
    fn from(status: Status) -> Self {
        HostError::Status(status)
    }
}

pub(crate) type HostResult<T = ()> = Result<T, HostError>;

thread_local! {
    /// The proxy-wasm hostcalls made on this thread, by name; every one answers through
    /// [`to_abi`]. A plugin runs on the thread that drives it, so what a `send` adds is that
    /// request's list.
    static HOSTCALLS: std::cell::RefCell<Vec<&'static str>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Starts recording hostcalls on this thread afresh.
pub(crate) fn start_recording_hostcalls() {
    HOSTCALLS.with(|calls| calls.borrow_mut().clear());
}

/// The hostcalls made on this thread since recording started.
pub(crate) fn recorded_hostcalls() -> Vec<&'static str> {
    HOSTCALLS.with(|calls| std::mem::take(&mut *calls.borrow_mut()))
}

/// Converts a hostcall's outcome into what wasmtime hands back to the guest, and records
/// the call.
pub(crate) fn to_abi(name: &'static str, result: HostResult) -> wasmtime::Result<i32> {
    HOSTCALLS.with(|calls| {
        let mut calls = calls.borrow_mut();
        // A bound, so a plugin driven outside `send` (start-up, ticks) cannot grow it forever.
        if calls.len() < 100_000 {
            calls.push(name);
        }
    });
    match result {
        Ok(()) => Ok(Status::Ok as i32),
        Err(HostError::Status(status)) => Ok(status as i32),
        Err(HostError::Trap(trap)) => Err(trap),
    }
}
