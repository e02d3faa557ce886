//! The licence file's armour: reading it strictly and writing it.
//!
//! ```text
//! # Denwa licence DL-20260501-3f9a0c1e for Example KK (standalone, valid until 2027-05-01T00:00:00Z)
//! # Comment lines before BEGIN are informational and NOT covered by the signature.
//! -----BEGIN DENWA LICENSE-----
//! Format: 1
//! Key-Id: 0123456789abcdef
//! Signature: <base64 of the 64-byte Ed25519 signature>
//!
//! <base64 of the payload bytes, 64 characters a line>
//! -----END DENWA LICENSE-----
//! ```
//!
//! The signature is over exactly the base64-decoded payload bytes, and those same bytes are what
//! is parsed: nothing is re-serialised to verify.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::keys::KeyId;

/// The licence format this build reads and writes (the `Format:` header and the payload's
/// `"format"` field).
pub const FORMAT_VERSION: u32 = 1;
/// Largest licence file accepted, in bytes (64 KiB); a real one is about 1 KiB.
pub const MAX_LICENSE_BYTES: usize = 64 * 1024;

pub(crate) const BEGIN: &str = "-----BEGIN DENWA LICENSE-----";
pub(crate) const END: &str = "-----END DENWA LICENSE-----";

/// The parts of an armoured licence, not yet verified.
pub(crate) struct Armoured {
    pub key_id: KeyId,
    pub signature: [u8; 64],
    pub payload: Vec<u8>,
}

/// Why the armour could not be read; mapped onto `LicenseError` by the caller.
pub(crate) enum ArmourError {
    Malformed(String),
    UnknownVersion(String),
}

fn bad<T>(reason: impl Into<String>) -> Result<T, ArmourError> {
    Err(ArmourError::Malformed(reason.into()))
}

/// Reads the armour. Accepts CRLF line ends and trailing spaces; nothing else is lenient.
pub(crate) fn parse(text: &str) -> Result<Armoured, ArmourError> {
    let mut lines = text.lines().map(str::trim_end).peekable();
    // Preamble: blank lines and `#` comments only.
    loop {
        match lines.next() {
            None if text.trim().is_empty() => return bad("the file is empty"),
            None => return bad(format!("no \"{BEGIN}\" line")),
            Some(l) if l.is_empty() || l.starts_with('#') => continue,
            Some(l) if l == BEGIN => break,
            Some(l) => {
                return bad(format!(
                    "unexpected text before \"{BEGIN}\": {:?}",
                    l.chars().take(40).collect::<String>()
                ));
            }
        }
    }
    // Headers, up to a blank line.
    let (mut format, mut key_id, mut signature) = (None, None, None);
    loop {
        let Some(line) = lines.next() else {
            return bad("the file ends inside the headers");
        };
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return bad(format!(
                "header line {line:?} has no ':' (is the blank line after the headers missing?)"
            ));
        };
        let slot = match name {
            "Format" => &mut format,
            "Key-Id" => &mut key_id,
            "Signature" => &mut signature,
            _ => return bad(format!("unknown header {name:?}")),
        };
        if slot.replace(value.trim()).is_some() {
            return bad(format!("header {name:?} appears twice"));
        }
    }
    let Some(format) = format else {
        return bad("no Format header");
    };
    match format.parse::<u32>() {
        Ok(FORMAT_VERSION) => {}
        Ok(_) => return Err(ArmourError::UnknownVersion(format.to_owned())),
        Err(_) => return bad(format!("Format header {format:?} is not a number")),
    }
    let Some(key_id) = key_id else {
        return bad("no Key-Id header");
    };
    let Some(key_id) = KeyId::parse(key_id) else {
        return bad(format!("Key-Id {key_id:?} is not 16 lowercase hex digits"));
    };
    let Some(signature) = signature else {
        return bad("no Signature header");
    };
    let signature = match B64.decode(signature) {
        Ok(s) => match <[u8; 64]>::try_from(s.as_slice()) {
            Ok(s) => s,
            Err(_) => {
                return bad(format!(
                    "the signature is {} bytes; an Ed25519 signature is 64",
                    s.len()
                ));
            }
        },
        Err(e) => return bad(format!("the signature is not base64 ({e})")),
    };
    // Body, up to END.
    let mut body = String::new();
    loop {
        match lines.next() {
            None => return bad(format!("no \"{END}\" line")),
            Some(END) => break,
            Some(l) => body.push_str(l),
        }
    }
    if let Some(l) = lines.find(|l| !l.is_empty()) {
        return bad(format!(
            "unexpected text after \"{END}\": {:?}",
            l.chars().take(40).collect::<String>()
        ));
    }
    if body.is_empty() {
        return bad("the licence body is empty");
    }
    let payload = match B64.decode(&body) {
        Ok(p) => p,
        Err(e) => return bad(format!("the licence body is not base64 ({e})")),
    };
    Ok(Armoured {
        key_id,
        signature,
        payload,
    })
}

/// Writes the armour around signed payload bytes.
#[cfg(feature = "issuer")]
pub(crate) fn write(comment: &str, key_id: &KeyId, signature: &[u8; 64], payload: &[u8]) -> String {
    let mut out = String::new();
    for line in comment.lines() {
        out.push_str(&format!("# {line}\n"));
    }
    out.push_str(&format!(
        "{BEGIN}\nFormat: {FORMAT_VERSION}\nKey-Id: {key_id}\nSignature: {}\n\n",
        B64.encode(signature)
    ));
    let body = B64.encode(payload);
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    out
}
