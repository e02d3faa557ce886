//! Account policy: what a SIP password, an administrator's name and password, a display name and
//! an extension's contact limit may be, and how generated passwords are drawn. One definition
//! that the CLI, the REST API, the control panel and the registrar all use, so a value accepted
//! in one place is accepted everywhere.
//!
//! Sans-IO like the rest of the engine: the generators take the random source as an argument.

use std::ops::RangeInclusive;

use rand::Rng as _;

/// Length of a SIP password, in bytes (printable ASCII, so also in characters).
pub const SIP_PASSWORD_LEN: RangeInclusive<usize> = 8..=128;
/// Shortest administrator password, in characters.
pub const ADMIN_PASSWORD_MIN: usize = 10;
/// Longest administrator user name, in bytes (ASCII only).
pub const ADMIN_USERNAME_MAX: usize = 64;
/// Longest display name, in characters.
pub const DISPLAY_NAME_MAX: usize = 64;
/// Contacts (registered devices) one extension may hold at once; beyond it the oldest is dropped.
pub const MAX_CONTACTS: RangeInclusive<i64> = 1..=100;
/// Length of a generated SIP password.
pub const GENERATED_SIP_PASSWORD_LEN: usize = 16;
/// Length of a generated administrator password.
pub const GENERATED_ADMIN_PASSWORD_LEN: usize = 20;
/// Character classes (lower case, upper case, digits, symbols) a SIP password must mix.
pub const SIP_PASSWORD_CLASSES: usize = 2;

/// Characters of generated passwords: letters and digits without look-alikes (0/O, 1/l/I).
const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Why a value breaks the policy. The text is a complete English sentence fragment that names
/// the rule (the CLI prints it as is, the API after the field name); [`PolicyError::key`] names
/// the panel's translated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// SIP password shorter than [`SIP_PASSWORD_LEN`].
    #[error("password too short: at least {} characters", SIP_PASSWORD_LEN.start())]
    SipPasswordShort,
    /// SIP password longer than [`SIP_PASSWORD_LEN`].
    #[error("password too long: at most {} characters", SIP_PASSWORD_LEN.end())]
    SipPasswordLong,
    /// SIP password with spaces, control or non-ASCII characters.
    #[error("password may only contain printable ASCII characters without spaces")]
    SipPasswordChars,
    /// SIP password containing the extension's number.
    #[error("password must not contain the extension number")]
    SipPasswordHasNumber,
    /// SIP password of fewer than [`SIP_PASSWORD_CLASSES`] character classes.
    #[error(
        "password too simple: mix at least {SIP_PASSWORD_CLASSES} of lower case, upper case, digits and symbols"
    )]
    SipPasswordClasses,
    /// Administrator password shorter than [`ADMIN_PASSWORD_MIN`].
    #[error("administrator password too short: at least {ADMIN_PASSWORD_MIN} characters")]
    AdminPasswordShort,
    /// Administrator user name empty, too long or with other characters than allowed.
    #[error("user name: 1 to {ADMIN_USERNAME_MAX} of letters, digits and . _ - @")]
    AdminUsername,
    /// Display name too long or with control characters.
    #[error("display_name: at most {DISPLAY_NAME_MAX} characters, no control characters")]
    DisplayName,
    /// Contact limit outside [`MAX_CONTACTS`].
    #[error("max_contacts must be {} to {}", MAX_CONTACTS.start(), MAX_CONTACTS.end())]
    MaxContacts,
}

impl PolicyError {
    /// Key of the translated message (the `web` crate's message table).
    pub fn key(self) -> &'static str {
        match self {
            PolicyError::SipPasswordShort => "pw.short",
            PolicyError::SipPasswordLong => "pw.long",
            PolicyError::SipPasswordChars => "pw.chars",
            PolicyError::SipPasswordHasNumber => "pw.number",
            PolicyError::SipPasswordClasses => "pw.classes",
            PolicyError::AdminPasswordShort => "admin.short_password",
            PolicyError::AdminUsername => "admin.bad_name",
            PolicyError::DisplayName => "ext.bad_name",
            PolicyError::MaxContacts => "ext.bad_max",
        }
    }
}

/// Checks a SIP password on its own: [`SIP_PASSWORD_LEN`], printable ASCII without spaces, at
/// least [`SIP_PASSWORD_CLASSES`] character classes. [`check_extension_password`] adds the rule
/// that needs the extension's number.
pub fn check_sip_password(p: &str) -> Result<(), PolicyError> {
    if p.len() < *SIP_PASSWORD_LEN.start() {
        return Err(PolicyError::SipPasswordShort);
    }
    if !p.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(PolicyError::SipPasswordChars);
    }
    if p.len() > *SIP_PASSWORD_LEN.end() {
        return Err(PolicyError::SipPasswordLong);
    }
    let classes = [
        p.bytes().any(|b| b.is_ascii_lowercase()),
        p.bytes().any(|b| b.is_ascii_uppercase()),
        p.bytes().any(|b| b.is_ascii_digit()),
        p.bytes().any(|b| !b.is_ascii_alphanumeric()),
    ];
    if classes.iter().filter(|c| **c).count() < SIP_PASSWORD_CLASSES {
        return Err(PolicyError::SipPasswordClasses);
    }
    Ok(())
}

/// Checks the SIP password of extension `number`: [`check_sip_password`], and the password must
/// not contain the number (an empty number skips that rule).
pub fn check_extension_password(number: &str, p: &str) -> Result<(), PolicyError> {
    check_sip_password(p)?;
    if !number.is_empty() && p.contains(number) {
        return Err(PolicyError::SipPasswordHasNumber);
    }
    Ok(())
}

/// Checks an administrator password: at least [`ADMIN_PASSWORD_MIN`] characters.
pub fn check_admin_password(p: &str) -> Result<(), PolicyError> {
    if p.chars().count() < ADMIN_PASSWORD_MIN {
        return Err(PolicyError::AdminPasswordShort);
    }
    Ok(())
}

/// Checks an administrator's user name (callers trim it first): 1 to [`ADMIN_USERNAME_MAX`] of
/// ASCII letters, digits and `. _ - @`.
pub fn check_admin_username(u: &str) -> Result<(), PolicyError> {
    let ok = !u.is_empty()
        && u.len() <= ADMIN_USERNAME_MAX
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(PolicyError::AdminUsername)
    }
}

/// Checks an extension's display name: at most [`DISPLAY_NAME_MAX`] characters, none a control
/// character.
pub fn check_display_name(n: &str) -> Result<(), PolicyError> {
    if n.chars().count() > DISPLAY_NAME_MAX || n.chars().any(char::is_control) {
        return Err(PolicyError::DisplayName);
    }
    Ok(())
}

/// Checks a contact limit given by an operator: within [`MAX_CONTACTS`].
pub fn check_max_contacts(v: i64) -> Result<(), PolicyError> {
    if MAX_CONTACTS.contains(&v) {
        Ok(())
    } else {
        Err(PolicyError::MaxContacts)
    }
}

/// The contact limit the registrar applies for a stored value: clamped into [`MAX_CONTACTS`]
/// (a row written before the limit existed, or by hand, still gets a usable limit).
pub fn max_contacts(v: i64) -> usize {
    let v = v.clamp(*MAX_CONTACTS.start(), *MAX_CONTACTS.end());
    // In 1..=100, so the conversion cannot fail.
    usize::try_from(v).unwrap_or(1)
}

/// A random password of `len` characters (at least the shortest SIP password) drawn uniformly
/// from letters and digits without look-alikes, always passing [`check_sip_password`].
pub fn generate_password<R: rand::RngCore + ?Sized>(rng: &mut R, len: usize) -> String {
    let len = len.clamp(*SIP_PASSWORD_LEN.start(), *SIP_PASSWORD_LEN.end());
    loop {
        // gen_range is uniform; a byte modulo 57 would favour the first 28 characters.
        let p: String = (0..len)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect();
        // Nearly every draw passes (only all-lower, all-upper or all-digit draws fail).
        if check_sip_password(&p).is_ok() {
            return p;
        }
    }
}

/// A random SIP password of [`GENERATED_SIP_PASSWORD_LEN`] characters. It contains no digit run
/// chosen by the caller, but a caller that knows the extension's number should still check it
/// with [`check_extension_password`] and draw again on the rare collision
/// ([`generate_extension_password`] does).
pub fn generate_sip_password<R: rand::RngCore + ?Sized>(rng: &mut R) -> String {
    generate_password(rng, GENERATED_SIP_PASSWORD_LEN)
}

/// A random SIP password for extension `number`, passing [`check_extension_password`].
pub fn generate_extension_password<R: rand::RngCore + ?Sized>(rng: &mut R, number: &str) -> String {
    loop {
        let p = generate_sip_password(rng);
        if check_extension_password(number, &p).is_ok() {
            return p;
        }
    }
}

/// A random administrator password of [`GENERATED_ADMIN_PASSWORD_LEN`] characters, passing
/// [`check_admin_password`].
pub fn generate_admin_password<R: rand::RngCore + ?Sized>(rng: &mut R) -> String {
    generate_password(rng, GENERATED_ADMIN_PASSWORD_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sip_password_rules() {
        assert_eq!(
            check_extension_password("1001", "short1A"),
            Err(PolicyError::SipPasswordShort)
        );
        assert_eq!(
            check_extension_password("1001", "abcdefgh"),
            Err(PolicyError::SipPasswordClasses)
        );
        assert_eq!(
            check_extension_password("1001", "x1001abcdef"),
            Err(PolicyError::SipPasswordHasNumber)
        );
        assert_eq!(
            check_extension_password("1001", "has space 1A"),
            Err(PolicyError::SipPasswordChars)
        );
        assert_eq!(
            check_extension_password("1001", "pässwort-1A"),
            Err(PolicyError::SipPasswordChars)
        );
        assert_eq!(check_extension_password("1001", "Str0ngPassw"), Ok(()));
        assert_eq!(check_extension_password("", "x1001abcdef"), Ok(()));
        // The number rule is the only one that needs the number.
        assert_eq!(check_sip_password("secret-1001"), Ok(()));
        assert_eq!(
            check_extension_password("1001", "secret-1001"),
            Err(PolicyError::SipPasswordHasNumber)
        );
    }

    #[test]
    fn sip_password_length_bounds() {
        let at = |n: usize| "aB".repeat(n).chars().take(n).collect::<String>();
        assert_eq!(
            check_sip_password(&at(7)),
            Err(PolicyError::SipPasswordShort)
        );
        assert_eq!(check_sip_password(&at(8)), Ok(()));
        assert_eq!(check_sip_password(&at(128)), Ok(()));
        assert_eq!(
            check_sip_password(&at(129)),
            Err(PolicyError::SipPasswordLong)
        );
    }

    #[test]
    fn messages_name_the_limits() {
        assert_eq!(
            PolicyError::SipPasswordShort.to_string(),
            "password too short: at least 8 characters"
        );
        assert_eq!(
            PolicyError::AdminPasswordShort.to_string(),
            "administrator password too short: at least 10 characters"
        );
        assert_eq!(
            PolicyError::MaxContacts.to_string(),
            "max_contacts must be 1 to 100"
        );
        assert!(PolicyError::SipPasswordLong.to_string().contains("128"));
        assert!(
            PolicyError::SipPasswordClasses
                .to_string()
                .contains("at least 2")
        );
    }

    #[test]
    fn admin_rules() {
        assert_eq!(check_admin_username(""), Err(PolicyError::AdminUsername));
        assert_eq!(check_admin_username("a b"), Err(PolicyError::AdminUsername));
        assert_eq!(
            check_admin_username(&"a".repeat(65)),
            Err(PolicyError::AdminUsername)
        );
        assert_eq!(check_admin_username("ops.team_1-x@site"), Ok(()));
        assert_eq!(
            check_admin_password("short"),
            Err(PolicyError::AdminPasswordShort)
        );
        // Characters, not bytes: nine kana are nine characters.
        assert_eq!(
            check_admin_password("あいうえおかきくけ"),
            Err(PolicyError::AdminPasswordShort)
        );
        assert_eq!(check_admin_password("long enough pw"), Ok(()));
    }

    #[test]
    fn display_names() {
        assert_eq!(check_display_name(""), Ok(()));
        assert_eq!(check_display_name(&"青".repeat(64)), Ok(()));
        assert_eq!(
            check_display_name(&"青".repeat(65)),
            Err(PolicyError::DisplayName)
        );
        assert_eq!(check_display_name("a\u{7}b"), Err(PolicyError::DisplayName));
    }

    #[test]
    fn contact_limits() {
        assert_eq!(check_max_contacts(0), Err(PolicyError::MaxContacts));
        assert_eq!(check_max_contacts(1), Ok(()));
        assert_eq!(check_max_contacts(100), Ok(()));
        assert_eq!(check_max_contacts(101), Err(PolicyError::MaxContacts));
        assert_eq!(max_contacts(-5), 1);
        assert_eq!(max_contacts(0), 1);
        assert_eq!(max_contacts(3), 3);
        assert_eq!(max_contacts(i64::MAX), 100);
    }

    #[test]
    fn generated_passwords_pass_the_rules() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let p = generate_sip_password(&mut rng);
            assert_eq!(p.len(), GENERATED_SIP_PASSWORD_LEN);
            assert_eq!(check_sip_password(&p), Ok(()));
            assert!(p.bytes().all(|b| ALPHABET.contains(&b)), "{p}");
            let p = generate_extension_password(&mut rng, "23");
            assert_eq!(check_extension_password("23", &p), Ok(()));
            let a = generate_admin_password(&mut rng);
            assert_eq!(a.len(), GENERATED_ADMIN_PASSWORD_LEN);
            assert_eq!(check_admin_password(&a), Ok(()));
        }
        // Lengths below the SIP minimum are raised to it.
        assert_eq!(generate_password(&mut rng, 3).len(), 8);
    }

    #[test]
    fn generation_is_uniform_enough() {
        // Every alphabet character appears, none more than twice its fair share.
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut counts = [0u32; 256];
        for _ in 0..2000 {
            for b in generate_sip_password(&mut rng).bytes() {
                counts[usize::from(b)] += 1;
            }
        }
        let fair = 2000 * 16 / u32::try_from(ALPHABET.len()).unwrap();
        for &c in ALPHABET {
            let n = counts[usize::from(c)];
            assert!(
                n > fair / 2 && n < fair * 2,
                "{}: {n} (fair {fair})",
                c as char
            );
        }
    }
}
