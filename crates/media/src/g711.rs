//! G.711 µ-law (PCMU) and A-law (PCMA) companding for 16-bit linear PCM.
//!
//! Encoding follows the segment/mantissa construction of ITU-T G.711 on the top 14 (µ-law) or
//! 13 (A-law) bits of the sample; decoding uses 256-entry tables built at compile time.

const ULAW_BIAS: i32 = 0x84;

/// Index of the highest set bit (`v` must be non-zero).
const fn top_bit(v: i32) -> i32 {
    31 - (v as u32).leading_zeros() as i32
}

/// Encodes one linear sample as µ-law.
pub const fn ulaw_encode(sample: i16) -> u8 {
    let s = sample as i32;
    // The -1 for negatives makes the quantiser symmetric around zero, as in G.711's reference.
    let (mag, mask) = if s < 0 {
        (ULAW_BIAS - s - 1, 0x7f_i32)
    } else {
        (ULAW_BIAS + s, 0xff_i32)
    };
    let seg = top_bit(mag | 0xff) - 7;
    if seg >= 8 {
        return (0x7f ^ mask) as u8;
    }
    let v = (seg << 4) | ((mag >> (seg + 3)) & 0x0f);
    (v ^ mask) as u8
}

/// Decodes one µ-law byte to a linear sample.
pub const fn ulaw_decode(byte: u8) -> i16 {
    ULAW_TABLE[byte as usize]
}

const fn ulaw_decode_calc(byte: u8) -> i16 {
    let u = !byte;
    let exp = ((u >> 4) & 0x07) as i32;
    let mant = (u & 0x0f) as i32;
    let mag = (((mant << 3) + ULAW_BIAS) << exp) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -mag as i16
    } else {
        mag as i16
    }
}

/// Encodes one linear sample as A-law.
pub const fn alaw_encode(sample: i16) -> u8 {
    let s = sample as i32;
    let (mag, mask) = if s >= 0 {
        (s, 0xd5_i32)
    } else {
        (-s - 1, 0x55_i32)
    };
    let seg = top_bit(mag | 0xff) - 7;
    // seg <= 7 always holds for 16-bit input.
    let shift = if seg < 2 { 4 } else { seg + 3 };
    let v = (seg << 4) | ((mag >> shift) & 0x0f);
    (v ^ mask) as u8
}

/// Decodes one A-law byte to a linear sample.
pub const fn alaw_decode(byte: u8) -> i16 {
    ALAW_TABLE[byte as usize]
}

const fn alaw_decode_calc(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let seg = ((a & 0x70) >> 4) as i32;
    let mut mag = ((a & 0x0f) as i32) << 4;
    if seg == 0 {
        mag += 8;
    } else {
        mag = (mag + 0x108) << (seg - 1);
    }
    if a & 0x80 != 0 {
        mag as i16
    } else {
        -mag as i16
    }
}

const fn table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_decode_calc(i as u8)
        } else {
            ulaw_decode_calc(i as u8)
        };
        i += 1;
    }
    t
}

static ULAW_TABLE: [i16; 256] = table(false);
static ALAW_TABLE: [i16; 256] = table(true);

/// Encodes linear samples as µ-law.
pub fn encode_ulaw(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| ulaw_encode(s)).collect()
}

/// Decodes µ-law bytes to linear samples.
pub fn decode_ulaw(bytes: &[u8]) -> Vec<i16> {
    bytes.iter().map(|&b| ulaw_decode(b)).collect()
}

/// Encodes linear samples as A-law.
pub fn encode_alaw(samples: &[i16]) -> Vec<u8> {
    samples.iter().map(|&s| alaw_encode(s)).collect()
}

/// Decodes A-law bytes to linear samples.
pub fn decode_alaw(bytes: &[u8]) -> Vec<i16> {
    bytes.iter().map(|&b| alaw_decode(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(ulaw_decode(0xff), 0);
        assert_eq!(ulaw_decode(0x7f), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_encode(-1), 0x7f);
        assert_eq!(ulaw_decode(0xfe), 8);
        assert_eq!(ulaw_decode(0xef), 132);
        assert_eq!(ulaw_encode(1000), 0xce);
        assert_eq!(ulaw_decode(0xce), 988);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(alaw_encode(0), 0xd5);
        assert_eq!(alaw_decode(0xd5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xaa), 32256);
        assert_eq!(alaw_decode(0x2a), -32256);
        assert_eq!(alaw_encode(i16::MAX), 0xaa);
        assert_eq!(alaw_encode(i16::MIN), 0x2a);
        assert_eq!(alaw_encode(1000), 0xfa);
        assert_eq!(alaw_decode(0xfa), 1008);
    }

    #[test]
    fn every_code_roundtrips() {
        for b in 0..=255u8 {
            // 0x7f is µ-law "negative zero": it decodes to 0, which encodes as 0xff.
            let want = if b == 0x7f { 0xff } else { b };
            assert_eq!(ulaw_encode(ulaw_decode(b)), want, "ulaw {b:#04x}");
            assert_eq!(alaw_encode(alaw_decode(b)), b, "alaw {b:#04x}");
        }
    }

    #[test]
    fn quantisation_error_is_bounded_and_monotonic() {
        let mut prev_u = i16::MIN;
        let mut prev_a = i16::MIN;
        for s in i16::MIN..=i16::MAX {
            let u = ulaw_decode(ulaw_encode(s));
            let a = alaw_decode(alaw_encode(s));
            // Segment 7 steps are 1024 (µ) / 1024 (A) wide; clipping adds at most ~650 at the ends.
            assert!(
                (i32::from(u) - i32::from(s)).abs() <= 1024,
                "ulaw {s} -> {u}"
            );
            assert!(
                (i32::from(a) - i32::from(s)).abs() <= 1024,
                "alaw {s} -> {a}"
            );
            assert!(u >= prev_u && a >= prev_a, "non-monotonic at {s}");
            prev_u = u;
            prev_a = a;
        }
    }

    #[test]
    fn slice_helpers() {
        let pcm = [0, 1000, -1000, 32000];
        assert_eq!(decode_ulaw(&encode_ulaw(&pcm)), [0, 988, -988, 32124]);
        assert_eq!(decode_alaw(&encode_alaw(&pcm)), [8, 1008, -1008, 32256]);
    }
}
