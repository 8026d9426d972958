//! Incompressible test data that differs in every byte position (xorshift): for `ftx demo` and the benchmarks.

/// A stream of pseudo-random bytes; the same seed gives the same bytes.
#[derive(Debug, Clone)]
pub struct Noise(u64);

impl Noise {
    /// A stream for `seed`; different seeds give different streams.
    pub fn new(seed: u64) -> Noise {
        Noise(0x2545_F491_4F6C_DD1D ^ seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
    }

    /// `len` bytes of the stream for `seed`.
    pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        Noise::new(seed).fill(&mut bytes);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_by_seed_and_repeat_by_seed() {
        assert_ne!(Noise::bytes(1, 64), Noise::bytes(2, 64));
        assert_eq!(Noise::bytes(1, 61), Noise::bytes(1, 64)[..61]);
    }
}
