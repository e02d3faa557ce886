//! The four topologies a licence can choose (DESIGN §2).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How Denwa is deployed; chosen by the installed licence.
///
/// Written everywhere (licence payload, CLI, API, `Display`, `FromStr`) as the lowercase-hyphen
/// names `standalone`, `standalone-backup`, `active-standby` and `cloud`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topology {
    /// One server; embedded SQLite or PostgreSQL. The free allowance runs this.
    Standalone,
    /// A PBX plus a backup/report server.
    StandaloneBackup,
    /// A primary and a secondary with a floating application IP.
    ActiveStandby,
    /// N servers by role, multi-tenant.
    Cloud,
}

impl Topology {
    /// Every topology, in the order of DESIGN §2.
    pub const ALL: [Topology; 4] = [
        Topology::Standalone,
        Topology::StandaloneBackup,
        Topology::ActiveStandby,
        Topology::Cloud,
    ];

    /// The name used in files, the CLI and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Topology::Standalone => "standalone",
            Topology::StandaloneBackup => "standalone-backup",
            Topology::ActiveStandby => "active-standby",
            Topology::Cloud => "cloud",
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A topology name that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown topology {0:?}; expected one of standalone, standalone-backup, active-standby, cloud"
)]
pub struct UnknownTopology(pub String);

impl FromStr for Topology {
    type Err = UnknownTopology;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Topology::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownTopology(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_display_fromstr_and_serde() {
        for t in Topology::ALL {
            assert_eq!(t.to_string().parse::<Topology>(), Ok(t));
            let json = serde_json::to_string(&t).expect("serialises");
            assert_eq!(json, format!("\"{t}\""));
            assert_eq!(serde_json::from_str::<Topology>(&json).ok(), Some(t));
        }
        assert_eq!(
            "active-standby".parse::<Topology>(),
            Ok(Topology::ActiveStandby)
        );
    }

    #[test]
    fn unknown_names_are_refused_with_the_list() {
        let err = "Standalone".parse::<Topology>().expect_err("case matters");
        assert!(err.to_string().contains("standalone-backup"), "{err}");
        assert!(serde_json::from_str::<Topology>("\"active_standby\"").is_err());
    }
}
