//! BLAKE3 of a file, or of a span of it, read at offsets (the OS layer's read_at): what both ends hash to verify a file (PROTOCOL.md B3, B8), the file's offset left where it was.

use std::io;

use crate::protocol::batch::hex;

/// Feeds the first `len` bytes of `file` to `hasher`, 256 KiB a read, on
/// this thread: it runs beside a copy that keeps the other core busy, where
/// spreading the hash over the cores (blake3's rayon feature) measured slower
/// (229 ms against 199 ms for 128 MiB sent verified). Reads with pread, so
/// the file's offset stays where it was.
pub fn hash_from(file: &std::fs::File, len: u64, hasher: &mut blake3::Hasher) -> io::Result<()> {
    let mut buffer = vec![0u8; usize::try_from(len.min(HASH_CHUNK)).unwrap_or(0)];
    hash_span(file, 0, len, &mut buffer, hasher)
}

/// BLAKE3 of the first `len` bytes of `file`, as the frames carry it.
pub fn hash_of(file: &std::fs::File, len: u64) -> io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hash_from(file, len, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

/// Feeds bytes `at` to `end` of `file` to `hasher`, read with pread through
/// `buffer`, a buffer's worth at a time.
pub fn hash_span(
    file: &std::fs::File,
    mut at: u64,
    end: u64,
    buffer: &mut [u8],
    hasher: &mut blake3::Hasher,
) -> io::Result<()> {
    while at < end {
        let want = usize::try_from(end - at)
            .unwrap_or(usize::MAX)
            .min(buffer.len());
        let n = crate::sys::fs::read_at(file, &mut buffer[..want], at)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        hasher.update(&buffer[..n]);
        at += n as u64;
    }
    Ok(())
}

/// What [`hash_from`] reads at once.
const HASH_CHUNK: u64 = 256 * 1024;
