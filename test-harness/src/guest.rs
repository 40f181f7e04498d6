//! Bounds-checked access to the guest's linear memory, and handing data to the guest through
//! its own allocator (`proxy_on_memory_allocate`, or `malloc` in older modules).

use wasmtime::{Caller, Extern, Memory};

use crate::host::HostState;
use crate::status::{HostError, HostResult, Status};

/// The exports a guest may allocate with, in order of preference.
pub(crate) const ALLOCATOR_EXPORTS: [&str; 2] = ["proxy_on_memory_allocate", "malloc"];

fn memory(caller: &mut Caller<'_, HostState>) -> HostResult<Memory> {
    if let Some(memory) = caller.data().guest_memory {
        return Ok(memory);
    }
    caller
        .get_export("memory")
        .and_then(Extern::into_memory)
        .ok_or(HostError::Status(Status::InvalidMemoryAccess))
}

fn offset(value: i32) -> usize {
    // wasm32 pointers and sizes are unsigned 32-bit values carried in an i32.
    value as u32 as usize
}

pub(crate) fn read(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> HostResult<Vec<u8>> {
    let memory = memory(caller)?;
    let mut buffer = vec![0; offset(len)];
    memory
        .read(&*caller, offset(ptr), &mut buffer)
        .map_err(|_| HostError::Status(Status::InvalidMemoryAccess))?;
    Ok(buffer)
}

pub(crate) fn read_string(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> HostResult<String> {
    String::from_utf8(read(caller, ptr, len)?).map_err(|_| HostError::Status(Status::BadArgument))
}

pub(crate) fn write(caller: &mut Caller<'_, HostState>, ptr: i32, bytes: &[u8]) -> HostResult {
    let memory = memory(caller)?;
    memory
        .write(&mut *caller, offset(ptr), bytes)
        .map_err(|_| HostError::Status(Status::InvalidMemoryAccess))
}

pub(crate) fn write_u32(caller: &mut Caller<'_, HostState>, ptr: i32, value: u32) -> HostResult {
    write(caller, ptr, &value.to_le_bytes())
}

pub(crate) fn write_u64(caller: &mut Caller<'_, HostState>, ptr: i32, value: u64) -> HostResult {
    write(caller, ptr, &value.to_le_bytes())
}

/// Copies `data` into memory the guest allocates, and stores its address and size at
/// `ptr_out` and `size_out`. Empty data is returned as a null pointer, as Envoy does; the SDK
/// reads that as "no value" or "empty value" depending on the call.
pub(crate) fn return_bytes(
    caller: &mut Caller<'_, HostState>,
    data: &[u8],
    ptr_out: i32,
    size_out: i32,
) -> HostResult {
    if data.is_empty() {
        write_u32(caller, ptr_out, 0)?;
        return write_u32(caller, size_out, 0);
    }
    let size = i32::try_from(data.len()).map_err(|_| HostError::Status(Status::BadArgument))?;
    let address = allocate(caller, size)?;
    write(caller, address, data)?;
    write_u32(caller, ptr_out, address as u32)?;
    write_u32(caller, size_out, size as u32)
}

fn allocate(caller: &mut Caller<'_, HostState>, size: i32) -> HostResult<i32> {
    let allocator = match caller.data().guest_allocator.clone() {
        Some(allocator) => allocator,
        // Not cached yet: a hostcall made while the module is being instantiated.
        None => ALLOCATOR_EXPORTS
            .iter()
            .find_map(|name| caller.get_export(name).and_then(Extern::into_func))
            .ok_or(HostError::Status(Status::InternalFailure))?
            .typed::<i32, i32>(&*caller)
            .map_err(|_| HostError::Status(Status::InternalFailure))?,
    };
    let address = allocator.call(&mut *caller, size).map_err(HostError::Trap)?;
    if address == 0 {
        return Err(HostError::Status(Status::InternalFailure));
    }
    Ok(address)
}

/// Header maps cross the ABI as: u32 count, (u32 key size, u32 value size) per pair, then
/// each key and each value followed by a NUL byte.
pub(crate) fn encode_header_map(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (key, value) in pairs {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (key, value) in pairs {
        out.extend_from_slice(key.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out
}

/// The inverse of [`encode_header_map`]; any inconsistency is a `SerializationFailure`.
pub(crate) fn decode_header_map(bytes: &[u8]) -> Result<Vec<(String, String)>, Status> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut cursor = Cursor { bytes, at: 0 };
    let count = cursor.u32()? as usize;
    let mut sizes = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        sizes.push((cursor.u32()? as usize, cursor.u32()? as usize));
    }
    let mut pairs = Vec::with_capacity(sizes.len());
    for (key_size, value_size) in sizes {
        let key = cursor.text(key_size)?;
        let value = cursor.text(value_size)?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Status> {
        let end = self.at.checked_add(n).ok_or(Status::SerializationFailure)?;
        let slice = self.bytes.get(self.at..end).ok_or(Status::SerializationFailure)?;
        self.at = end;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<u32, Status> {
        let raw: [u8; 4] = self.take(4)?.try_into().map_err(|_| Status::SerializationFailure)?;
        Ok(u32::from_le_bytes(raw))
    }

    /// A string of `n` bytes followed by its NUL terminator.
    fn text(&mut self, n: usize) -> Result<String, Status> {
        let text = String::from_utf8(self.take(n)?.to_vec()).map_err(|_| Status::SerializationFailure)?;
        match self.take(1)? {
            [0] => Ok(text),
            _ => Err(Status::SerializationFailure),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_map_round_trips() {
        let pairs = vec![
            (":path".to_string(), "/a".to_string()),
            ("x-empty".to_string(), String::new()),
        ];
        assert_eq!(decode_header_map(&encode_header_map(&pairs)).unwrap(), pairs);
    }

    #[test]
    fn truncated_header_map_is_a_serialization_failure() {
        let bytes = encode_header_map(&[("k".into(), "v".into())]);
        for cut in 1..bytes.len() {
            assert_eq!(decode_header_map(&bytes[..cut]), Err(Status::SerializationFailure), "cut at {cut}");
        }
    }

    #[test]
    fn huge_count_does_not_allocate_or_panic() {
        let bytes = u32::MAX.to_le_bytes();
        assert_eq!(decode_header_map(&bytes), Err(Status::SerializationFailure));
    }
}
