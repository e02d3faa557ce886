//! Random identifiers: Via branches, tags and Call-IDs.
//!
//! They are lowercase hex. Mixed-case alphanumerics carry more bits per character, but a random
//! token then now and then spells a header name: sipp, which finds headers by searching the
//! message text, aborted about one registration in 150,000 whose To tag happened to contain
//! `CSeq`. Hex cannot spell any header name (every one has a letter past `f`), so devices and
//! ALGs with the same shortcut cannot trip over our identifiers.

use rand::Rng;

/// `len` lowercase hex digits (4 random bits each).
fn random_hex<R: Rng + ?Sized>(rng: &mut R, len: usize) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(len + 16);
    while s.len() < len {
        let _ = write!(s, "{:016x}", rng.r#gen::<u64>());
    }
    s.truncate(len);
    s
}

/// A Via branch with the RFC 3261 magic cookie and 96 bits of randomness.
pub fn generate_branch_with<R: Rng + ?Sized>(rng: &mut R) -> String {
    format!("z9hG4bK{}", random_hex(rng, 24))
}

/// A From/To tag (RFC 3261 §19.3 asks for at least 32 random bits; we use 64).
pub fn generate_tag_with<R: Rng + ?Sized>(rng: &mut R) -> String {
    random_hex(rng, 16)
}

/// A Call-ID of 128 random bits, `random@host` when a host is given.
pub fn generate_call_id_with<R: Rng + ?Sized>(rng: &mut R, host: Option<&str>) -> String {
    let id = random_hex(rng, 32);
    match host {
        Some(h) => format!("{id}@{h}"),
        None => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ids_are_valid_and_distinct() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let b1 = generate_branch_with(&mut rng);
        let b2 = generate_branch_with(&mut rng);
        assert!(b1.starts_with("z9hG4bK") && b1.len() == 31);
        assert_ne!(b1, b2);
        assert!(
            crate::values::parse_call_id(&generate_call_id_with(&mut rng, Some("pbx.example.com")))
                .is_ok()
        );
        assert_eq!(generate_tag_with(&mut rng).len(), 16);
        assert_ne!(
            generate_call_id_with(&mut rng, None),
            generate_call_id_with(&mut rng, None)
        );
    }

    /// No identifier can contain a header name (or anything but hex), whatever the RNG gives.
    #[test]
    fn ids_are_lowercase_hex_only() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        for _ in 0..10_000 {
            let b = generate_branch_with(&mut rng);
            assert!(hex(&b["z9hG4bK".len()..]), "{b}");
            let t = generate_tag_with(&mut rng);
            assert!(t.len() == 16 && hex(&t), "{t}");
            let c = generate_call_id_with(&mut rng, None);
            assert!(c.len() == 32 && hex(&c), "{c}");
        }
        // The all-zero and all-one RNG outputs still give full-length ids.
        let mut zero = rand::rngs::mock::StepRng::new(0, 0);
        assert_eq!(generate_tag_with(&mut zero), "0000000000000000");
        let mut ones = rand::rngs::mock::StepRng::new(u64::MAX, 0);
        assert_eq!(generate_call_id_with(&mut ones, None), "f".repeat(32));
    }
}
