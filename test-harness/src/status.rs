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

/// Converts a hostcall's outcome into what wasmtime hands back to the guest.
pub(crate) fn to_abi(result: HostResult) -> wasmtime::Result<i32> {
    match result {
        Ok(()) => Ok(Status::Ok as i32),
        Err(HostError::Status(status)) => Ok(status as i32),
        Err(HostError::Trap(trap)) => Err(trap),
    }
}
