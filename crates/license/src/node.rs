//! Node identity: the string a licence is bound to.
//!
//! Recommended scheme (what the `denwa` binary should do):
//!
//! 1. On first start, if `<data-dir>/`[`NODE_ID_FILE`] does not exist, take
//!    [`NODE_ID_RANDOM_BYTES`] bytes from the OS random source, build the id with
//!    [`new_node_id`], and write it to that file (mode 0644, one line). Read it with
//!    [`parse_node_id_file`] ever after.
//! 2. Show it in `denwa license show`, the panel's licence page and `GET /api/v1/license`, so the
//!    customer can send it to the vendor, who binds the licence to it (`--node ID`).
//! 3. Keep the file out of the database and out of `denwa backup create`: the database is
//!    replicated to the standby and restored onto replacement servers, and the id must not travel
//!    with it. An active/standby pair therefore has two ids, and its licence names both.
//!
//! Alternative: [`node_id_from_machine_id`] derives the id from `/etc/machine-id` (hashed with a
//! Denwa-specific prefix, as systemd asks applications to do, so the machine id itself is not
//! disclosed). It survives a wiped data dir but changes when the OS is reinstalled, and cloned VM
//! images share it unless regenerated.
//!
//! Either way the binding is a deterrent against running one file on many servers casually, not a
//! defence against a customer who copies the id file on purpose.

use sha2::{Digest, Sha256};

/// The file under the data dir holding this node's id.
pub const NODE_ID_FILE: &str = "node-id";
/// How many random bytes [`new_node_id`] takes (80 bits).
pub const NODE_ID_RANDOM_BYTES: usize = 10;

/// Why a node id could not be read or derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIdError {
    /// The node-id file does not hold a valid id.
    #[error(
        "the node-id file holds {0:?}, which is not a node identity (1-64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit)"
    )]
    Invalid(String),
    /// `/etc/machine-id` does not hold 32 hexadecimal digits.
    #[error("machine id {0:?} is not 32 hexadecimal digits")]
    BadMachineId(String),
}

/// A new node id from random bytes the caller draws: `dn-` and 20 hex digits in groups of four,
/// e.g. `dn-7f3a-9c20-1b4e-5d68-a0c3`.
pub fn new_node_id(random: [u8; NODE_ID_RANDOM_BYTES]) -> String {
    format_id(&random)
}

/// A node id derived from the contents of `/etc/machine-id` (surrounding whitespace ignored):
/// the first 10 bytes of SHA-256(`"denwa-node-id-v1\0"` + machine id), formatted as
/// [`new_node_id`] does.
pub fn node_id_from_machine_id(machine_id: &str) -> Result<String, NodeIdError> {
    let m = machine_id.trim();
    if m.len() != 32 || !m.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NodeIdError::BadMachineId(m.chars().take(80).collect()));
    }
    let digest = Sha256::new()
        .chain_update(b"denwa-node-id-v1\0")
        .chain_update(m.to_ascii_lowercase().as_bytes())
        .finalize();
    Ok(format_id(&digest[..NODE_ID_RANDOM_BYTES]))
}

/// Reads the contents of the node-id file (surrounding whitespace ignored) and checks it.
pub fn parse_node_id_file(contents: &str) -> Result<String, NodeIdError> {
    let id = contents.trim();
    if is_valid_node_id(id) {
        Ok(id.to_owned())
    } else {
        Err(NodeIdError::Invalid(id.chars().take(80).collect()))
    }
}

/// True for 1-64 characters of `a-z 0-9 . _ -` starting with a letter or digit. Node ids are
/// compared exactly.
pub fn is_valid_node_id(id: &str) -> bool {
    let ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().next().is_some_and(ok)
        && id.bytes().all(|b| ok(b) || b"._-".contains(&b))
}

fn format_id(bytes: &[u8]) -> String {
    let hex = hex::encode(bytes);
    let groups: Vec<&str> = hex
        .as_bytes()
        .chunks(4)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    format!("dn-{}", groups.join("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_have_the_documented_shape() {
        let id = new_node_id([0x7f, 0x3a, 0x9c, 0x20, 0x1b, 0x4e, 0x5d, 0x68, 0xa0, 0xc3]);
        assert_eq!(id, "dn-7f3a-9c20-1b4e-5d68-a0c3");
        assert!(is_valid_node_id(&id));
    }

    #[test]
    fn machine_ids_hash_stably_and_bad_ones_are_refused() {
        let a = node_id_from_machine_id("0123456789abcdef0123456789ABCDEF\n").expect("valid");
        let b = node_id_from_machine_id("0123456789ABCDEF0123456789abcdef").expect("valid");
        assert_eq!(a, b);
        assert!(is_valid_node_id(&a));
        assert!(
            !a.contains("0123"),
            "the machine id itself is not disclosed: {a}"
        );
        assert!(matches!(
            node_id_from_machine_id("not-a-machine-id"),
            Err(NodeIdError::BadMachineId(_))
        ));
    }

    #[test]
    fn node_id_file_is_trimmed_and_checked() {
        assert_eq!(parse_node_id_file("dn-1\n").as_deref(), Ok("dn-1"));
        for bad in ["", "  ", "-x", "Upper", "a b", &"a".repeat(65)] {
            assert!(parse_node_id_file(bad).is_err(), "{bad:?}");
        }
    }
}
