//! ggml's q8_0 and q5_1 block formats, written as ggml's reference quantiser writes them.
//!
//! The workspace forbids `unsafe`, so ggml's own `ggml_quantize_chunk` (which
//! whisper.cpp's `quantize` tool calls, and whisper-rs-sys exposes only as a raw
//! FFI function) is not called: the blocks are written here to the same
//! arithmetic as ggml's reference quantisers (f32, with f16 rounded to
//! nearest even), and `scripts/quant_check.sh` holds the files byte for byte
//! to what ggml's quantiser writes.

use half::f16;

/// Elements per block in both formats.
pub const BLOCK: usize = 32;
/// q8_0: f16 scale `d`, then 32 × i8 `q` (x ≈ d·q).
pub const Q8_0_BYTES: usize = 2 + BLOCK;
/// q5_1: f16 scale `d`, f16 minimum `m`, u32 of the 32 fifth bits, 16 bytes of
/// low nibbles (element j in the low nibble of byte j, j+16 in its high one).
pub const Q5_1_BYTES: usize = 2 + 2 + 4 + BLOCK / 2;

/// Appends the q8_0 blocks of `x` (a multiple of [`BLOCK`] long) to `out`.
pub fn q8_0(x: &[f32], out: &mut Vec<u8>) {
    for block in x.chunks_exact(BLOCK) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        // C's roundf: half away from zero, as f32::round; |v·id| <= 127.
        out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
    }
}

/// Appends the q5_1 blocks of `x` (a multiple of [`BLOCK`] long) to `out`.
pub fn q5_1(x: &[f32], out: &mut Vec<u8>) {
    for block in x.chunks_exact(BLOCK) {
        let (min, max) = block
            .iter()
            .fold((f32::MAX, -f32::MAX), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend_from_slice(&f16::from_f32(min).to_le_bytes());
        // C truncates (uint8_t)(x + 0.5f): 0..=31 here, so `as u8` is the same.
        let q = |v: f32| ((v - min) * id + 0.5) as u8;
        let half = BLOCK / 2;
        let mut qh = 0u32;
        let mut qs = [0u8; BLOCK / 2];
        for j in 0..half {
            let (a, b) = (q(block[j]), q(block[j + half]));
            qs[j] = (a & 0x0F) | ((b & 0x0F) << 4);
            qh |= u32::from((a & 0x10) >> 4) << j;
            qh |= u32::from((b & 0x10) >> 4) << (j + half);
        }
        out.extend_from_slice(&qh.to_le_bytes());
        out.extend_from_slice(&qs);
    }
}

/// The values a q8_0 block stands for (ggml's `dequantize_row_q8_0`), for tests.
#[cfg(test)]
pub fn dequantize_q8_0(b: &[u8]) -> Vec<f32> {
    let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
    b[2..Q8_0_BYTES]
        .iter()
        .map(|&q| d * f32::from(q as i8))
        .collect()
}

/// The values a q5_1 block stands for (ggml's `dequantize_row_q5_1`), for tests.
#[cfg(test)]
pub fn dequantize_q5_1(b: &[u8]) -> Vec<f32> {
    let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
    let m = f16::from_le_bytes([b[2], b[3]]).to_f32();
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let qs = &b[8..Q5_1_BYTES];
    let mut out = vec![0.0; BLOCK];
    for j in 0..BLOCK / 2 {
        let hi0 = ((qh >> j) & 1) << 4;
        let hi1 = ((qh >> (j + 16)) & 1) << 4;
        out[j] = d * (u32::from(qs[j] & 0x0F) | hi0) as f32 + m;
        out[j + 16] = d * (u32::from(qs[j] >> 4) | hi1) as f32 + m;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_q8_0_block_is_its_scale_then_one_signed_byte_per_value() {
        // 0, 1, ..., 31 with a negative peak: amax 127 gives d = 1 exactly.
        let mut x: Vec<f32> = (0..32).map(|i| i as f32).collect();
        x[5] = -127.0;
        x[6] = 2.5; // half away from zero: 3
        x[7] = -2.5; // -3
        let mut out = Vec::new();
        q8_0(&x, &mut out);
        assert_eq!(out.len(), Q8_0_BYTES);
        assert_eq!(&out[..2], &[0x00, 0x3C], "f16 1.0");
        let q: Vec<i8> = out[2..].iter().map(|&b| b as i8).collect();
        let mut want: Vec<i8> = (0..32).map(|i| i as i8).collect();
        want[5] = -127;
        want[6] = 3;
        want[7] = -3;
        assert_eq!(q, want);
    }

    #[test]
    fn a_q8_0_block_of_zeros_has_a_zero_scale() {
        let mut out = Vec::new();
        q8_0(&[0.0; 64], &mut out);
        assert_eq!(out, vec![0; 2 * Q8_0_BYTES]);
    }

    #[test]
    fn a_q5_1_block_is_scale_minimum_fifth_bits_and_nibbles() {
        // -1, 0, ..., 30: min -1, d = 31/31 = 1, q = x + 1 = 0..31.
        let x: Vec<f32> = (0..32).map(|i| i as f32 - 1.0).collect();
        let mut out = Vec::new();
        q5_1(&x, &mut out);
        assert_eq!(out.len(), Q5_1_BYTES);
        assert_eq!(&out[..2], &[0x00, 0x3C], "d: f16 1.0");
        assert_eq!(&out[2..4], &[0x00, 0xBC], "m: f16 -1.0");
        // q 16..31 (elements 16..31) have the fifth bit: the high half of qh.
        assert_eq!(&out[4..8], &0xFFFF_0000u32.to_le_bytes());
        // Byte j: q[j] & 15 low, q[j + 16] & 15 high, both j.
        let want: Vec<u8> = (0..16u8).map(|j| j | (j << 4)).collect();
        assert_eq!(&out[8..], &want[..]);
    }

    #[test]
    fn q5_1_rounds_to_the_nearest_of_its_32_levels() {
        // min 0, max 3.1: d = 0.1; 1.04 is 10.4 steps (10), 1.06 is 10.6 (11).
        let mut x = vec![0.0f32; 32];
        x[1] = 3.1;
        x[2] = 1.04;
        x[3] = 1.06;
        let mut out = Vec::new();
        q5_1(&x, &mut out);
        let back = dequantize_q5_1(&out);
        let d = f16::from_f32(3.1 / 31.0).to_f32();
        assert_eq!(back[1], 31.0 * d);
        assert_eq!(back[2], 10.0 * d);
        assert_eq!(back[3], 11.0 * d);
    }

    #[test]
    fn quantised_blocks_come_back_within_half_a_step() {
        // A deterministic spread of weights, like a model's, both signs.
        let x: Vec<f32> = (0..32 * 8)
            .map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.2)
            .collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        q8_0(&x, &mut a);
        q5_1(&x, &mut b);
        for (i, block) in x.chunks_exact(BLOCK).enumerate() {
            let back8 = dequantize_q8_0(&a[i * Q8_0_BYTES..]);
            let back5 = dequantize_q5_1(&b[i * Q5_1_BYTES..]);
            let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let (lo, hi) = block
                .iter()
                .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
            // Half a step, plus the f16 rounding of the scale and the minimum.
            let tol8 = amax / 127.0 * 0.5 + amax * 1e-3;
            let tol5 = (hi - lo) / 31.0 * 0.5 + (hi - lo + lo.abs()) * 1e-3;
            for j in 0..BLOCK {
                assert!((back8[j] - block[j]).abs() <= tol8, "q8_0 {i}/{j}");
                assert!((back5[j] - block[j]).abs() <= tol5, "q5_1 {i}/{j}");
            }
        }
    }
}
