//! The heartbeat: what a node tells its peer every `interval` on every path, and its wire format.
//!
//! The wire format is fixed-layout binary, authenticated with HMAC-SHA256 (truncated to 16 bytes)
//! under a key both nodes share: a heartbeat can make an Active node demote (a higher epoch) or
//! keep serving (an acknowledgement, see [`Ack`]), so a forged one must not be accepted. Replays are
//! dropped by the node, which accepts only a strictly increasing `(incarnation, seq)`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{Epoch, NodeId, Role};

/// The state of the local PostgreSQL as a node reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbHealth {
    /// Not running or not answering.
    Down,
    /// Read-write primary; `standby_streaming` and `lag_bytes` come from `pg_stat_replication`
    /// (the standby's replay position behind this primary's current WAL position).
    Primary {
        /// A standby is connected and streaming.
        standby_streaming: bool,
        /// How far the standby's replay is behind, in WAL bytes.
        lag_bytes: u64,
    },
    /// Read-only replica of the peer.
    Replica {
        /// The WAL receiver is streaming from the peer.
        streaming: bool,
        /// Received-but-not-replayed WAL, in bytes.
        lag_bytes: u64,
    },
}

/// The health a node summarises for its peer (and for the panel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Local database state.
    pub db: DbHealth,
    /// SIP sockets are bound (the node could serve if given the application IP).
    pub sip_bound: bool,
    /// The sender could take over now: Standby, healthy, replicating, not in hold-down or
    /// maintenance. An Active node reports `false`.
    pub ready: bool,
    /// Who the witness last said holds the lease (`None` if unknown or free).
    pub lease_holder_seen: Option<NodeId>,
}

/// "I have received your heartbeat `seq` of incarnation `incarnation`." The sender promises not to
/// take over before `dead_after` has passed since it last heard the addressee; the addressee, if
/// Active, may keep serving on that promise (measured from when it sent `seq`) while it cannot
/// reach the witness. See the crate docs, "witness down".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The addressee's incarnation the acknowledged heartbeat came from.
    pub incarnation: u64,
    /// The highest sequence number received from it.
    pub seq: u64,
}

/// One heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Sender.
    pub from: NodeId,
    /// Sender's incarnation: must grow across restarts of the sender (wall-clock milliseconds at
    /// start, or a persisted counter).
    pub incarnation: u64,
    /// Sequence number, one per heartbeat round (the same on every path).
    pub seq: u64,
    /// Sender's role.
    pub role: Role,
    /// The sender's epoch if Active, otherwise the highest epoch it knows.
    pub epoch: Epoch,
    /// Sender's health summary.
    pub health: Health,
    /// The highest heartbeat of ours the sender received (`None` if none, or if the sender is
    /// Active: an Active node makes no promise).
    pub ack: Option<Ack>,
    /// A graceful switchover: the sender has released the IP and the lease for this node to take.
    pub handover_to: Option<NodeId>,
}

/// Why bytes are not a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not the expected length.
    #[error("heartbeat must be {expected} bytes, got {got}")]
    Length {
        /// Expected length.
        expected: usize,
        /// Received length.
        got: usize,
    },
    /// Does not start with the magic bytes.
    #[error("not a Denwa heartbeat (bad magic)")]
    Magic,
    /// A version this build does not speak.
    #[error("heartbeat version {0} not supported (this build speaks 1)")]
    Version(u8),
    /// The HMAC does not match: wrong key, or forged/corrupted.
    #[error("heartbeat authentication failed")]
    Auth,
    /// A field holds a value outside its range.
    #[error("heartbeat field {field} has invalid value {value}")]
    Field {
        /// Field name.
        field: &'static str,
        /// The byte found.
        value: u8,
    },
}

const MAGIC: &[u8; 4] = b"DWHA";
const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
/// Body length (everything before the tag).
const BODY_LEN: usize = 4 + 1 + 4 + 8 + 8 + 1 + 8 + 1 + 1 + 8 + 1 + 1 + 1 + 4 + 1 + 8 + 8 + 1 + 4;
/// Length of an encoded heartbeat on the wire.
pub const WIRE_LEN: usize = BODY_LEN + TAG_LEN;

fn tag(key: &[u8], body: &[u8]) -> [u8; TAG_LEN] {
    // HMAC accepts keys of any length, so this cannot fail; an empty tag would only make every
    // heartbeat fail authentication, never accept a forged one.
    let mut out = [0u8; TAG_LEN];
    if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) {
        mac.update(body);
        let full = mac.finalize().into_bytes();
        out.copy_from_slice(&full[..TAG_LEN]);
    }
    out
}

impl Heartbeat {
    /// Serialise and authenticate with `key`.
    pub fn encode(&self, key: &[u8]) -> Vec<u8> {
        let mut b = Vec::with_capacity(WIRE_LEN);
        b.extend_from_slice(MAGIC);
        b.push(VERSION);
        b.extend_from_slice(&self.from.0.to_be_bytes());
        b.extend_from_slice(&self.incarnation.to_be_bytes());
        b.extend_from_slice(&self.seq.to_be_bytes());
        b.push(self.role.code());
        b.extend_from_slice(&self.epoch.0.to_be_bytes());
        let (db, flag, lag) = match self.health.db {
            DbHealth::Down => (0u8, 0u8, 0u64),
            DbHealth::Primary {
                standby_streaming,
                lag_bytes,
            } => (1, u8::from(standby_streaming), lag_bytes),
            DbHealth::Replica {
                streaming,
                lag_bytes,
            } => (2, u8::from(streaming), lag_bytes),
        };
        b.push(db);
        b.push(flag);
        b.extend_from_slice(&lag.to_be_bytes());
        b.push(u8::from(self.health.sip_bound));
        b.push(u8::from(self.health.ready));
        b.push(u8::from(self.health.lease_holder_seen.is_some()));
        b.extend_from_slice(
            &self
                .health
                .lease_holder_seen
                .map_or(0, |n| n.0)
                .to_be_bytes(),
        );
        b.push(u8::from(self.ack.is_some()));
        let ack = self.ack.unwrap_or(Ack {
            incarnation: 0,
            seq: 0,
        });
        b.extend_from_slice(&ack.incarnation.to_be_bytes());
        b.extend_from_slice(&ack.seq.to_be_bytes());
        b.push(u8::from(self.handover_to.is_some()));
        b.extend_from_slice(&self.handover_to.map_or(0, |n| n.0).to_be_bytes());
        debug_assert_eq!(b.len(), BODY_LEN);
        let t = tag(key, &b);
        b.extend_from_slice(&t);
        b
    }

    /// Parse and authenticate bytes received from the network.
    pub fn decode(bytes: &[u8], key: &[u8]) -> Result<Heartbeat, DecodeError> {
        if bytes.len() != WIRE_LEN {
            return Err(DecodeError::Length {
                expected: WIRE_LEN,
                got: bytes.len(),
            });
        }
        if &bytes[..4] != MAGIC {
            return Err(DecodeError::Magic);
        }
        if bytes[4] != VERSION {
            return Err(DecodeError::Version(bytes[4]));
        }
        let (body, got_tag) = bytes.split_at(BODY_LEN);
        let want = tag(key, body);
        // Constant-time comparison: the tag is a secret-derived value.
        let diff = want
            .iter()
            .zip(got_tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(DecodeError::Auth);
        }
        let mut r = Reader { b: body, at: 5 };
        let from = NodeId(r.u32());
        let incarnation = r.u64();
        let seq = r.u64();
        let role_code = r.u8();
        let role = Role::from_code(role_code).ok_or(DecodeError::Field {
            field: "role",
            value: role_code,
        })?;
        let epoch = Epoch(r.u64());
        let db_tag = r.u8();
        let flag = r.flag("db_flag")?;
        let lag_bytes = r.u64();
        let db = match db_tag {
            0 => DbHealth::Down,
            1 => DbHealth::Primary {
                standby_streaming: flag,
                lag_bytes,
            },
            2 => DbHealth::Replica {
                streaming: flag,
                lag_bytes,
            },
            v => {
                return Err(DecodeError::Field {
                    field: "db",
                    value: v,
                });
            }
        };
        let sip_bound = r.flag("sip_bound")?;
        let ready = r.flag("ready")?;
        let has_holder = r.flag("lease_holder")?;
        let holder = r.u32();
        let has_ack = r.flag("ack")?;
        let ack_inc = r.u64();
        let ack_seq = r.u64();
        let has_handover = r.flag("handover")?;
        let handover = r.u32();
        Ok(Heartbeat {
            from,
            incarnation,
            seq,
            role,
            epoch,
            health: Health {
                db,
                sip_bound,
                ready,
                lease_holder_seen: has_holder.then_some(NodeId(holder)),
            },
            ack: has_ack.then_some(Ack {
                incarnation: ack_inc,
                seq: ack_seq,
            }),
            handover_to: has_handover.then_some(NodeId(handover)),
        })
    }
}

/// Reads fixed-width fields from a body whose length was checked before.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(s) = self.b.get(self.at..self.at + N) {
            out.copy_from_slice(s);
        }
        self.at += N;
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take())
    }
    fn flag(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8() {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::Field { field, value }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Heartbeat {
        Heartbeat {
            from: NodeId(2),
            incarnation: 1_765_000_000_123,
            seq: 42,
            role: Role::Standby,
            epoch: Epoch(7),
            health: Health {
                db: DbHealth::Replica {
                    streaming: true,
                    lag_bytes: 4096,
                },
                sip_bound: true,
                ready: true,
                lease_holder_seen: Some(NodeId(1)),
            },
            ack: Some(Ack {
                incarnation: 99,
                seq: 41,
            }),
            handover_to: None,
        }
    }

    #[test]
    fn round_trip_every_role_and_db_state() {
        let key = b"shared secret";
        for role in [
            Role::Starting,
            Role::Standby,
            Role::Active,
            Role::Fenced,
            Role::Maintenance,
        ] {
            for db in [
                DbHealth::Down,
                DbHealth::Primary {
                    standby_streaming: false,
                    lag_bytes: u64::MAX,
                },
                DbHealth::Replica {
                    streaming: true,
                    lag_bytes: 0,
                },
            ] {
                let mut hb = sample();
                hb.role = role;
                hb.health.db = db;
                hb.handover_to = Some(NodeId(1));
                hb.ack = None;
                let wire = hb.encode(key);
                assert_eq!(wire.len(), WIRE_LEN);
                assert_eq!(WIRE_LEN, 89, "docs/ha.md gives the length");
                assert_eq!(Heartbeat::decode(&wire, key), Ok(hb));
            }
        }
        let hb = sample();
        assert_eq!(Heartbeat::decode(&hb.encode(key), key), Ok(hb));
    }

    #[test]
    fn rejects_bad_input_precisely() {
        let key = b"k";
        let wire = sample().encode(key);
        assert_eq!(
            Heartbeat::decode(&wire[..10], key),
            Err(DecodeError::Length {
                expected: WIRE_LEN,
                got: 10
            })
        );
        assert_eq!(
            Heartbeat::decode(&[], key),
            Err(DecodeError::Length {
                expected: WIRE_LEN,
                got: 0
            })
        );
        let mut bad = wire.clone();
        bad[0] = b'X';
        assert_eq!(Heartbeat::decode(&bad, key), Err(DecodeError::Magic));
        let mut bad = wire.clone();
        bad[4] = 9;
        assert_eq!(Heartbeat::decode(&bad, key), Err(DecodeError::Version(9)));
        // Any flipped bit in the body or tag fails authentication.
        for i in 5..wire.len() {
            let mut bad = wire.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                Heartbeat::decode(&bad, key),
                Err(DecodeError::Auth),
                "byte {i}"
            );
        }
        assert_eq!(
            Heartbeat::decode(&wire, b"other key"),
            Err(DecodeError::Auth)
        );
    }

    #[test]
    fn authenticated_but_out_of_range_fields_are_refused() {
        let key = b"k";
        let mut body = sample().encode(key);
        body.truncate(BODY_LEN);
        // role byte sits after magic(4) version(1) from(4) incarnation(8) seq(8)
        body[25] = 77;
        let t = tag(key, &body);
        body.extend_from_slice(&t);
        assert_eq!(
            Heartbeat::decode(&body, key),
            Err(DecodeError::Field {
                field: "role",
                value: 77
            })
        );
    }
}
