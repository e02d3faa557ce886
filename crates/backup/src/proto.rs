//! The pairing and shipping protocol's wire types and proofs (no I/O).
//!
//! Pairing (docs/backup.md): the backup server's administrator makes a one-time code; the PBX's
//! administrator enters the server's address and the code. The PBX connects over TLS accepting
//! whatever certificate the server shows, and proves it knows the code by an HMAC, keyed by the
//! code, over that certificate's fingerprint and its node id. The server accepts only when the
//! fingerprint is its own (a man in the middle shows another certificate, and cannot make the
//! HMAC without the code), spends the code, and answers with a new random token and its own HMAC
//! over the fingerprint and the token, which the PBX checks before pinning the fingerprint and
//! keeping the token. Every later request pins the fingerprint and carries the token.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The alphabet of pairing codes (Crockford base32: no I, L, O, U).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in a pairing code (80 bits).
pub const CODE_CHARS: usize = 16;
/// Header carrying the SHA-256 (hex) of an archive sent or fetched.
pub const SHA_HEADER: &str = "x-denwa-sha256";
/// Header carrying the sender's node name on uploads.
pub const NAME_HEADER: &str = "x-denwa-node";

/// A new one-time pairing code, `XXXX-XXXX-XXXX-XXXX`, from `random` bytes (80 bits used).
pub fn new_code(random: [u8; 10]) -> String {
    let mut bits: u128 = 0;
    for b in random {
        bits = (bits << 8) | u128::from(b);
    }
    let mut out = String::new();
    for i in 0..CODE_CHARS {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        let idx = (bits >> (5 * (CODE_CHARS - 1 - i))) & 31;
        out.push(ALPHABET[idx as usize] as char);
    }
    out
}

/// The code as typed, normalized: upper case, without dashes and spaces; `None` when it cannot
/// be a code.
pub fn normalize_code(s: &str) -> Option<String> {
    let c: String = s
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .map(|c| match c {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect();
    (c.len() == CODE_CHARS && c.bytes().all(|b| ALPHABET.contains(&b))).then_some(c)
}

/// The proof key of a code; its hex is what the server keeps at rest.
pub fn code_key(normalized: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"denwa-pair-v1\0");
    h.update(normalized.as_bytes());
    h.finalize().into()
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> String {
    // HMAC accepts keys of any length: this cannot fail.
    let mut m = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    for p in parts {
        m.update(&(p.len() as u64).to_be_bytes());
        m.update(p);
    }
    hex::encode(m.finalize().into_bytes())
}

/// The PBX's proof: it knows the code and sees the certificate `fingerprint`.
pub fn client_proof(key: &[u8; 32], fingerprint: &str, node_id: &str) -> String {
    hmac(
        key,
        &[b"client", fingerprint.as_bytes(), node_id.as_bytes()],
    )
}

/// The server's proof: it knows the code, and the token comes from the certificate's holder.
pub fn server_proof(key: &[u8; 32], fingerprint: &str, token: &str) -> String {
    hmac(key, &[b"server", fingerprint.as_bytes(), token.as_bytes()])
}

/// Constant-time equality of two strings.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// SHA-256, hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A fresh token (256 random bits, hex).
pub fn new_token(random: [u8; 32]) -> String {
    hex::encode(random)
}

/// `POST /backup/v1/pair` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairRequest {
    /// The PBX's licence node id.
    pub node_id: String,
    /// The PBX's node name.
    pub name: String,
    /// [`client_proof`].
    pub proof: String,
}

/// `POST /backup/v1/pair` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairResponse {
    /// The bearer token of this pairing.
    pub token: String,
    /// The server's node name.
    pub server_name: String,
    /// [`server_proof`].
    pub proof: String,
}

/// A kept generation as the server lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationInfo {
    /// Generation number.
    pub id: i64,
    /// Sender's name.
    pub source: String,
    /// Arrival (RFC 3339).
    pub received_at: String,
    /// Taken at (RFC 3339), from the manifest.
    pub created_at: Option<String>,
    /// Bytes.
    pub size: i64,
    /// SHA-256 of the archive.
    pub sha256: String,
    /// `ok` or `rejected`.
    pub status: String,
    /// Reason or summary.
    pub detail: String,
}

/// An error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Short code (`unauthorized`, `corrupt`, `disk_full`, …).
    pub error: String,
    /// Human-readable reason.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_forgiving() {
        let c = new_code([0xA5; 10]);
        assert_eq!(c.len(), CODE_CHARS + 3);
        let n = normalize_code(&c).unwrap();
        assert_eq!(n.len(), CODE_CHARS);
        assert_eq!(normalize_code(&c.to_lowercase()), Some(n.clone()));
        assert_eq!(normalize_code(&c.replace('-', " ")), Some(n));
        assert_eq!(normalize_code("ABCD"), None);
        assert_eq!(normalize_code("UUUU-UUUU-UUUU-UUUU"), None);
        assert_ne!(new_code([0; 10]), new_code([1; 10]));
    }

    #[test]
    fn proofs_bind_the_code_the_certificate_and_the_parties() {
        let k = code_key("ABCDEFGHJKMNPQRS");
        let other = code_key("ABCDEFGHJKMNPQRT");
        let p = client_proof(&k, "aa", "dn-1");
        assert_eq!(p, client_proof(&k, "aa", "dn-1"));
        assert_ne!(p, client_proof(&other, "aa", "dn-1"));
        assert_ne!(p, client_proof(&k, "ab", "dn-1"), "another certificate");
        assert_ne!(p, client_proof(&k, "aa", "dn-2"));
        assert_ne!(
            p,
            server_proof(&k, "aa", "dn-1"),
            "roles are not interchangeable"
        );
        assert!(same(&p, &p.clone()));
        assert!(!same(&p, &server_proof(&k, "aa", "t")));
    }
}
