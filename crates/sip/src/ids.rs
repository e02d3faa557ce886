//! Random identifiers: Via branches, tags and Call-IDs.

use rand::Rng;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn random_token<R: Rng + ?Sized>(rng: &mut R, len: usize) -> String {
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// A Via branch with the RFC 3261 magic cookie and 96+ bits of randomness.
pub fn generate_branch_with<R: Rng + ?Sized>(rng: &mut R) -> String {
    format!("z9hG4bK{}", random_token(rng, 20))
}

/// A From/To tag (RFC 3261 §19.3 asks for at least 32 random bits; we use ~95).
pub fn generate_tag_with<R: Rng + ?Sized>(rng: &mut R) -> String {
    random_token(rng, 16)
}

/// A Call-ID, `random@host` when a host is given.
pub fn generate_call_id_with<R: Rng + ?Sized>(rng: &mut R, host: Option<&str>) -> String {
    let id = random_token(rng, 24);
    match host {
        Some(h) => format!("{id}@{h}"),
        None => id,
    }
}

/// [`generate_branch_with`] using the thread RNG.
pub fn generate_branch() -> String {
    generate_branch_with(&mut rand::thread_rng())
}

/// [`generate_tag_with`] using the thread RNG.
pub fn generate_tag() -> String {
    generate_tag_with(&mut rand::thread_rng())
}

/// [`generate_call_id_with`] using the thread RNG.
pub fn generate_call_id(host: Option<&str>) -> String {
    generate_call_id_with(&mut rand::thread_rng(), host)
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
        assert!(b1.starts_with("z9hG4bK") && b1.len() == 27);
        assert_ne!(b1, b2);
        assert!(
            crate::values::parse_call_id(&generate_call_id_with(&mut rng, Some("pbx.example.com")))
                .is_ok()
        );
        assert_eq!(generate_tag().len(), 16);
        assert_ne!(generate_call_id(None), generate_call_id(None));
    }
}
