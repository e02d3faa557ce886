//! Versioned, forward-only schema migrations, the same on both backends.
//!
//! Each migration is one SQL text written in the dialect both SQLite and PostgreSQL accept; the
//! only difference, the auto-numbered primary key, is spelled `{id}` and substituted per
//! backend. Applied versions are recorded in `schema_migrations`. A database whose highest
//! version is above [`LATEST`] was written by a newer Denwa and is refused.

use chrono::Utc;
use sqlx::Row;

use crate::db::{Db, write_tx};
use crate::{Backend, Error, Result};

/// One schema step.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Version number, starting at 1, without gaps.
    pub version: i64,
    /// Short description, recorded in `schema_migrations`.
    pub name: &'static str,
    sql: &'static str,
}

/// The highest schema version this build knows.
pub const LATEST: i64 = 19;

const V1: &str = r#"
CREATE TABLE tenants (
    id {id},
    name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    realm TEXT NOT NULL CHECK (length(realm) >= 1),
    is_default BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX tenants_one_default ON tenants (is_default) WHERE is_default;

CREATE TABLE domains (
    domain TEXT PRIMARY KEY CHECK (length(domain) >= 1),
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE
);
CREATE INDEX domains_tenant ON domains (tenant_id);

CREATE TABLE extensions (
    id {id},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    number TEXT NOT NULL CHECK (length(number) BETWEEN 1 AND 32),
    display_name TEXT NOT NULL DEFAULT '',
    ha1_md5 TEXT,
    ha1_sha256 TEXT,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    max_contacts BIGINT NOT NULL DEFAULT 3 CHECK (max_contacts >= 1),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, number)
);

CREATE TABLE administrators (
    id {id},
    username TEXT NOT NULL UNIQUE CHECK (length(username) >= 1),
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id {id},
    tenant_id BIGINT REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL CHECK (scope IN ('read', 'full')),
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);

CREATE TABLE settings (
    id {id},
    tenant_id BIGINT REFERENCES tenants (id) ON DELETE CASCADE,
    key TEXT NOT NULL CHECK (length(key) >= 1),
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- NULL (node-global) never equals NULL in a plain unique constraint; fold it to 0.
CREATE UNIQUE INDEX settings_scope_key ON settings ((COALESCE(tenant_id, 0)), key);

CREATE TABLE registrations (
    id {id},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    extension_id BIGINT NOT NULL REFERENCES extensions (id) ON DELETE CASCADE,
    aor TEXT NOT NULL,
    contact_uri TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    q DOUBLE PRECISION NOT NULL DEFAULT 1.0,
    call_id TEXT NOT NULL,
    cseq BIGINT NOT NULL,
    user_agent TEXT NOT NULL DEFAULT '',
    received_addr TEXT NOT NULL,
    transport TEXT NOT NULL CHECK (transport IN ('udp', 'tcp', 'tls', 'ws', 'wss')),
    local_addr TEXT NOT NULL,
    instance_id TEXT,
    reg_id BIGINT,
    node TEXT NOT NULL,
    flags BIGINT NOT NULL DEFAULT 0,
    last_seen BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (extension_id, contact_uri)
);
CREATE INDEX registrations_aor ON registrations (tenant_id, aor);
CREATE INDEX registrations_expires ON registrations (expires_at);

CREATE TABLE cdrs (
    id {id},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    call_id TEXT NOT NULL,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    caller_name TEXT NOT NULL DEFAULT '',
    start_time BIGINT NOT NULL,
    answer_time BIGINT,
    end_time BIGINT NOT NULL,
    duration_s BIGINT NOT NULL CHECK (duration_s >= 0),
    billsec BIGINT NOT NULL CHECK (billsec >= 0),
    disposition TEXT NOT NULL
        CHECK (disposition IN ('ANSWERED', 'NO ANSWER', 'BUSY', 'FAILED', 'CANCELED')),
    hangup_by TEXT NOT NULL CHECK (hangup_by IN ('caller', 'callee', 'system')),
    hangup_cause TEXT NOT NULL DEFAULT '',
    codec TEXT NOT NULL DEFAULT ''
);
CREATE INDEX cdrs_start ON cdrs (tenant_id, start_time);
CREATE INDEX cdrs_caller ON cdrs (caller);
CREATE INDEX cdrs_callee ON cdrs (callee);

-- Change counters: how other processes on SQLite learn that configuration changed.
CREATE TABLE change_counters (
    kind TEXT PRIMARY KEY,
    counter BIGINT NOT NULL DEFAULT 0
);
INSERT INTO change_counters (kind, counter) VALUES
    ('tenants', 0), ('extensions', 0), ('settings', 0), ('admins', 0), ('api_keys', 0),
    ('all', 0);
"#;

const V2: &str = r#"
ALTER TABLE cdrs ADD COLUMN a_pkts_rx BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cdrs ADD COLUMN a_pkts_tx BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cdrs ADD COLUMN a_lost BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cdrs ADD COLUMN a_jitter_ms DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE cdrs ADD COLUMN b_pkts_rx BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cdrs ADD COLUMN b_pkts_tx BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cdrs ADD COLUMN b_lost BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cdrs ADD COLUMN b_jitter_ms DOUBLE PRECISION NOT NULL DEFAULT 0;
CREATE INDEX cdrs_call_id ON cdrs (call_id);
"#;

/// Every REGISTER refresh moves `expires_at`, so an index on it was rewritten on each one (and
/// kept PostgreSQL from updating the row in place); only the purge every 30 s and the status
/// count read by expiry, and a scan serves them.
const V3: &str = r#"
DROP INDEX registrations_expires;
"#;

/// Outside lines: trunks, outbound and inbound routes (their settings as versioned JSON
/// documents the `engine::outside` types read and validate), trunk status per node, classes of
/// service and outbound limits, and the routing facts of a call record.
const V4: &str = r#"
ALTER TABLE extensions ADD COLUMN cos TEXT NOT NULL DEFAULT 'mobile';
ALTER TABLE extensions ADD COLUMN outbound_cid TEXT NOT NULL DEFAULT '';
ALTER TABLE extensions ADD COLUMN anonymous BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE extensions ADD COLUMN out_limits TEXT NOT NULL DEFAULT '{}';
ALTER TABLE tenants ADD COLUMN outbound TEXT NOT NULL DEFAULT '{}';

CREATE TABLE trunks (
    id {id},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    spec TEXT NOT NULL,
    password TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE outbound_routes (
    id {id},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    position BIGINT NOT NULL,
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE inbound_routes (
    id {id},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    pattern TEXT NOT NULL CHECK (length(pattern) BETWEEN 1 AND 64),
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, pattern)
);

CREATE TABLE trunk_status (
    trunk_id BIGINT NOT NULL REFERENCES trunks (id) ON DELETE CASCADE,
    node TEXT NOT NULL,
    status TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (trunk_id, node)
);

ALTER TABLE cdrs ADD COLUMN direction TEXT NOT NULL DEFAULT 'internal';
ALTER TABLE cdrs ADD COLUMN trunk TEXT NOT NULL DEFAULT '';
ALTER TABLE cdrs ADD COLUMN did TEXT NOT NULL DEFAULT '';
ALTER TABLE cdrs ADD COLUMN dialled TEXT NOT NULL DEFAULT '';
ALTER TABLE cdrs ADD COLUMN sent_number TEXT NOT NULL DEFAULT '';
ALTER TABLE cdrs ADD COLUMN caller_id TEXT NOT NULL DEFAULT '';
CREATE INDEX cdrs_direction ON cdrs (tenant_id, direction, start_time);

INSERT INTO change_counters (kind, counter) VALUES ('outside', 0);
"#;

/// Reports (issue 16): call counts aggregated from the call records into hour, day and month
/// buckets per dimension (see `report.rs`), the aggregation's watermark, and the ids it skipped
/// that a still-open PostgreSQL transaction may yet commit.
const V5: &str = r#"
CREATE TABLE report_calls (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    period TEXT NOT NULL CHECK (period IN ('hour', 'day', 'month')),
    dimension TEXT NOT NULL,
    key TEXT NOT NULL,
    bucket_start BIGINT NOT NULL,
    offered BIGINT NOT NULL DEFAULT 0,
    answered BIGINT NOT NULL DEFAULT 0,
    missed BIGINT NOT NULL DEFAULT 0,
    abandoned BIGINT NOT NULL DEFAULT 0,
    busy BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    talk_s BIGINT NOT NULL DEFAULT 0,
    wait_ms BIGINT NOT NULL DEFAULT 0,
    wait_max_ms BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, period, dimension, key, bucket_start)
);
CREATE INDEX report_calls_time ON report_calls (tenant_id, period, dimension, bucket_start);

CREATE TABLE report_state (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    last_cdr_id BIGINT NOT NULL,
    timezone TEXT NOT NULL,
    records BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
INSERT INTO report_state (id, last_cdr_id, timezone, records, updated_at) VALUES (1, 0, 'UTC', 0, 0);

CREATE TABLE report_gaps (
    cdr_id BIGINT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
"#;

/// Voice applications (issue 14): IVR menus, each a JSON document of `apps::ivr::MenuSpec`
/// and the internal number that reaches it.
const V6: &str = r#"
CREATE TABLE ivr_menus (
    id {id},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    number TEXT NOT NULL DEFAULT '',
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE UNIQUE INDEX ivr_menus_number ON ivr_menus (tenant_id, number) WHERE number <> '';

INSERT INTO change_counters (kind, counter) VALUES ('apps', 0);
"#;

/// Conference rooms (issue 14): one row per room number, settings as a JSON document of
/// `apps::conf::RoomSpec`.
const V7: &str = r#"
CREATE TABLE conf_rooms (
    id {id},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    number TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, number)
);
"#;

/// Backup shipping (issue 16): on a PBX, where backups go and when (`backup_ship`, one row);
/// on a backup server, pairing codes, paired nodes, received generations and its own state.
/// None of these tables is in a backup archive: pairing is node-local, and a restore keeps it.
const V8: &str = r#"
CREATE TABLE backup_ship (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    url TEXT NOT NULL DEFAULT '',
    fingerprint TEXT NOT NULL DEFAULT '',
    token TEXT NOT NULL DEFAULT '',
    server_name TEXT NOT NULL DEFAULT '',
    paired_at BIGINT,
    daily_at TEXT NOT NULL DEFAULT '',
    last_attempt_at BIGINT,
    last_success_at BIGINT,
    last_error TEXT NOT NULL DEFAULT '',
    failures BIGINT NOT NULL DEFAULT 0,
    failures_total BIGINT NOT NULL DEFAULT 0,
    successes_total BIGINT NOT NULL DEFAULT 0,
    last_size BIGINT NOT NULL DEFAULT 0
);
INSERT INTO backup_ship (id) VALUES (1);

CREATE TABLE backup_pair_codes (
    code_hash TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE TABLE backup_peers (
    id {id},
    name TEXT NOT NULL,
    node_id TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    paired_at BIGINT NOT NULL,
    last_seen_at BIGINT,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE backup_generations (
    id {id},
    peer_id BIGINT,
    source TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    created_at BIGINT,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'rejected')),
    detail TEXT NOT NULL DEFAULT '',
    file TEXT NOT NULL DEFAULT '',
    schema_version BIGINT,
    entries BIGINT NOT NULL DEFAULT 0,
    cdrs_imported BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX backup_generations_status ON backup_generations (status, id);

CREATE TABLE backup_server_state (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    keep BIGINT NOT NULL DEFAULT 7 CHECK (keep BETWEEN 1 AND 1000),
    cdr_mark BIGINT NOT NULL DEFAULT 0,
    received_total BIGINT NOT NULL DEFAULT 0,
    rejected_total BIGINT NOT NULL DEFAULT 0
);
INSERT INTO backup_server_state (id) VALUES (1);
"#;

const V9_RING_GROUPS: &str = r#"
CREATE TABLE ring_groups (
    id {id},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 40),
    number TEXT NOT NULL DEFAULT '',
    spec TEXT NOT NULL,
    last_member TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE ext_forwarding (
    extension_id BIGINT PRIMARY KEY REFERENCES extensions (id) ON DELETE CASCADE,
    spec TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
"#;

const V10_RECORDING: &str = r#"
CREATE TABLE recording_policies (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('extension', 'route', 'trunk')),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    policy TEXT NOT NULL CHECK (policy IN ('never', 'always', 'on_demand')),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, kind, name)
);

CREATE TABLE recording_settings (
    tenant_id BIGINT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    retention_days BIGINT NOT NULL DEFAULT 0 CHECK (retention_days BETWEEN 0 AND 36500),
    format TEXT NOT NULL DEFAULT 'wav' CHECK (format IN ('wav', 'opus')),
    layout TEXT NOT NULL DEFAULT 'mono' CHECK (layout IN ('mono', 'stereo'))
);

CREATE TABLE recordings (
    id {id},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    call_id TEXT NOT NULL,
    path TEXT NOT NULL DEFAULT '',
    format TEXT NOT NULL DEFAULT 'wav',
    started_at BIGINT NOT NULL,
    stopped_at BIGINT,
    duration_ms BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'recording'
        CHECK (status IN ('recording', 'stopped', 'disk-full', 'error', 'expired')),
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX recordings_call ON recordings (tenant_id, call_id);
CREATE INDEX recordings_started ON recordings (started_at);
"#;

/// Voicemail (issue 14 §5): mailbox settings per extension number (a JSON document of
/// `apps::vmail::BoxSpec`, the PIN as an Argon2 hash, never a default one, and the wrong-PIN
/// lockout) and the message index (folder, caller, length, time, file under the data
/// directory's `voicemail/`), so counts are exact without reading the disk; and the e-mail
/// outbox (one row per message to mail, retried with backoff, its last error kept); event
/// subscriptions (message-waiting), so a restart keeps them. Outbox and subscriptions are not in
/// backups (state of this node).
const V11_VOICEMAIL: &str = r#"
CREATE TABLE vm_boxes (
    id {id},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    number TEXT NOT NULL,
    spec TEXT NOT NULL,
    pin_hash TEXT,
    pin_failures BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, number)
);

CREATE TABLE vm_messages (
    id {id},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    mailbox TEXT NOT NULL,
    folder TEXT NOT NULL CHECK (folder IN ('new', 'saved')),
    caller TEXT NOT NULL DEFAULT '',
    caller_name TEXT NOT NULL DEFAULT '',
    call_id TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    duration_ms BIGINT NOT NULL CHECK (duration_ms >= 0),
    received_at BIGINT NOT NULL,
    path TEXT NOT NULL UNIQUE
);
CREATE INDEX vm_messages_box ON vm_messages (tenant_id, mailbox, folder);

CREATE TABLE vm_outbox (
    id {id},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    message_id BIGINT NOT NULL,
    mailbox TEXT NOT NULL,
    email TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    sent_at BIGINT
);
CREATE INDEX vm_outbox_due ON vm_outbox (status, next_at);

CREATE TABLE event_subs (
    call_id TEXT NOT NULL,
    local_tag TEXT NOT NULL,
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    record TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (call_id, local_tag)
);
"#;

/// Feature codes, time conditions and call pickup (issue 15): a tenant's changes to the
/// default feature codes (`code` NULL: switched off), time conditions (rules as a JSON
/// `engine::timecond::TimeCondSpec`, the manual override in `mode`), the tenant's time zone and
/// holiday calendar (JSON `engine::timecond::CalendarSpec`), and the pickup groups of each
/// extension.
const V12_FEATURE_CODES: &str = r#"
CREATE TABLE feature_codes (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    feature TEXT NOT NULL,
    code TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, feature)
);

CREATE TABLE time_conditions (
    id {id},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    number TEXT NOT NULL DEFAULT '',
    day_night_index BIGINT NOT NULL DEFAULT 0,
    spec TEXT NOT NULL,
    mode TEXT NOT NULL DEFAULT 'auto' CHECK (mode IN ('auto', 'day', 'night')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE holiday_calendars (
    tenant_id BIGINT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    spec TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE pickup_groups (
    extension_id BIGINT NOT NULL REFERENCES extensions (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    PRIMARY KEY (extension_id, name)
);
INSERT INTO change_counters (kind, counter) VALUES ('codes', 0);
"#;

/// Events of a call in order (transfers, pickups), tied to its record by tenant and Call-ID.
const V13_CDR_EVENTS: &str = r#"
CREATE TABLE cdr_events (
    id {id},
    tenant_id BIGINT NOT NULL,
    call_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    by_number TEXT NOT NULL DEFAULT '',
    party TEXT NOT NULL DEFAULT '',
    target TEXT NOT NULL DEFAULT '',
    status BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX cdr_events_call ON cdr_events (tenant_id, call_id, seq);
"#;

/// Call park: each tenant's lot settings, and the parked calls (so they survive a restart).
const V14_PARK: &str = r#"
CREATE TABLE park_lots (
    tenant_id BIGINT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    first_slot BIGINT NOT NULL,
    last_slot BIGINT NOT NULL,
    timeout_s BIGINT NOT NULL,
    moh_class TEXT NOT NULL,
    fallback TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE park_calls (
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    slot BIGINT NOT NULL,
    parked_at BIGINT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (tenant_id, slot)
);
"#;

/// Page groups (`page:NAME`): settings as a JSON document of `engine::page::PageGroup`.
const V15_PAGE_GROUPS: &str = r#"
CREATE TABLE page_groups (
    id {id},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 40),
    number TEXT NOT NULL DEFAULT '',
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);
"#;

/// Prompt language: a tenant default and a per-extension override (empty = inherit).
const V16_PROMPT_LANGUAGE: &str = r#"
ALTER TABLE tenants ADD COLUMN language TEXT NOT NULL DEFAULT '';
ALTER TABLE extensions ADD COLUMN language TEXT NOT NULL DEFAULT '';
"#;

/// The active/standby pair's fencing token: the epoch of the takeover whose node may write this
/// database (one row; `crate::fence`). Not backed up: a restore never carries an old epoch.
const V17_CLUSTER_EPOCH: &str = r#"
CREATE TABLE cluster_epoch (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL CHECK (epoch >= 0),
    node BIGINT NOT NULL DEFAULT 0,
    stamped_at BIGINT NOT NULL DEFAULT 0
);
INSERT INTO cluster_epoch (id, epoch) VALUES (1, 0);
"#;

/// Calls in progress of an active/standby pair (`engine::live_calls`): one row per relayed,
/// answered call, the engine's record as JSON, so the node taking over continues it.
const V18_LIVE_CALLS: &str = r#"
CREATE TABLE live_calls (
    tenant_id BIGINT NOT NULL,
    call_id TEXT NOT NULL,
    saved_at BIGINT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (tenant_id, call_id)
);
"#;

/// Named custom prompts (`apps::custom_prompt`): one row per tenant, name and language variant
/// (`any`, `en`, `ja`); the audio is a file under `prompts/tenant-T/custom/`.
const V19_CUSTOM_PROMPTS: &str = r#"
CREATE TABLE custom_prompts (
    id {id},
    tenant_id BIGINT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 40),
    lang TEXT NOT NULL CHECK (lang IN ('any', 'en', 'ja')),
    description TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL CHECK (source IN ('uploaded', 'recorded')),
    original_name TEXT NOT NULL DEFAULT '',
    original_format TEXT NOT NULL DEFAULT '',
    recorded_by TEXT NOT NULL DEFAULT '',
    duration_ms BIGINT NOT NULL DEFAULT 0,
    sha256 TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name, lang)
);
"#;

/// All migrations, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial schema",
        sql: V1,
    },
    Migration {
        version: 2,
        name: "per-leg RTP statistics in call records",
        sql: V2,
    },
    Migration {
        version: 3,
        name: "no index on registration expiry",
        sql: V3,
    },
    Migration {
        version: 4,
        name: "trunks, routes, DIDs, classes of service",
        sql: V4,
    },
    Migration {
        version: 5,
        name: "report tables",
        sql: V5,
    },
    Migration {
        version: 6,
        name: "IVR menus",
        sql: V6,
    },
    Migration {
        version: 7,
        name: "conference rooms",
        sql: V7,
    },
    Migration {
        version: 8,
        name: "backup shipping and the backup server",
        sql: V8,
    },
    Migration {
        version: 9,
        name: "ring groups and forwarding",
        sql: V9_RING_GROUPS,
    },
    Migration {
        version: 10,
        name: "call recording",
        sql: V10_RECORDING,
    },
    Migration {
        version: 11,
        name: "voicemail",
        sql: V11_VOICEMAIL,
    },
    Migration {
        version: 12,
        name: "feature codes, time conditions, pickup groups",
        sql: V12_FEATURE_CODES,
    },
    Migration {
        version: 13,
        name: "call events (transfers)",
        sql: V13_CDR_EVENTS,
    },
    Migration {
        version: 14,
        name: "call park",
        sql: V14_PARK,
    },
    Migration {
        version: 15,
        name: "page groups",
        sql: V15_PAGE_GROUPS,
    },
    Migration {
        version: 16,
        name: "prompt language",
        sql: V16_PROMPT_LANGUAGE,
    },
    Migration {
        version: 17,
        name: "cluster epoch (fencing token)",
        sql: V17_CLUSTER_EPOCH,
    },
    Migration {
        version: 18,
        name: "calls in progress (live_calls)",
        sql: V18_LIVE_CALLS,
    },
    Migration {
        version: 19,
        name: "custom prompts",
        sql: V19_CUSTOM_PROMPTS,
    },
];

fn render(sql: &str, backend: Backend) -> String {
    let id = match backend {
        Backend::Sqlite => "INTEGER PRIMARY KEY",
        Backend::Postgres => "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    };
    sql.replace("{id}", id)
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";

/// The schema version of the database (0 for an empty one).
pub(crate) async fn current_version(db: &Db) -> Result<i64> {
    let v: Option<i64> = crate::db::read_pool!(db, pool, kind => {
        let exists: bool = match kind {
            Backend::Sqlite => sqlx::query(
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
            )
            .fetch_one(pool)
            .await?
            .try_get::<i64, _>("n")? > 0,
            Backend::Postgres => sqlx::query(
                "SELECT COUNT(*) AS n FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_name = 'schema_migrations'",
            )
            .fetch_one(pool)
            .await?
            .try_get::<i64, _>("n")? > 0,
        };
        if exists {
            sqlx::query("SELECT MAX(version) AS v FROM schema_migrations")
                .fetch_one(pool)
                .await?
                .try_get::<Option<i64>, _>("v")?
        } else {
            None
        }
    });
    Ok(v.unwrap_or(0))
}

/// Applies every migration up to `target` that is not applied yet; returns the versions applied.
///
/// Concurrent starters are serialized (an advisory lock on PostgreSQL, the write lock on
/// SQLite), so two processes opening an empty database never both create the schema.
pub(crate) async fn migrate_to(db: &Db, target: i64) -> Result<Vec<i64>> {
    if target > LATEST {
        return Err(Error::Migrate(format!(
            "target version {target} is above the latest known version {LATEST}"
        )));
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version <= target) {
        let done: bool = write_tx!(db, tx, kind => {
            if kind == Backend::Postgres {
                // Any constant shared by all Denwa processes; released at commit.
                sqlx::query("SELECT pg_advisory_xact_lock(4242001)")
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::raw_sql(CREATE_TABLE).execute(&mut *tx).await?;
            let cur: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM schema_migrations")
                .fetch_one(&mut *tx)
                .await?
                .try_get::<Option<i64>, _>("v")?;
            let cur = cur.unwrap_or(0);
            if cur > LATEST {
                return Err(too_new(cur));
            }
            if cur >= m.version {
                false
            } else if cur + 1 != m.version {
                return Err(Error::Migrate(format!(
                    "database is at version {cur}, cannot apply {}",
                    m.version
                )));
            } else {
                let sql = render(m.sql, kind);
                sqlx::raw_sql(&sql)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| Error::Migrate(format!("version {} ({}): {e}", m.version, m.name)))?;
                sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                    .bind(m.version)
                    .bind(m.name)
                    .bind(Utc::now().timestamp_millis())
                    .execute(&mut *tx)
                    .await?;
                true
            }
        });
        if done {
            tracing::info!(
                version = m.version,
                name = m.name,
                "applied schema migration"
            );
            applied.push(m.version);
        }
    }
    Ok(applied)
}

pub(crate) fn too_new(found: i64) -> Error {
    Error::SchemaTooNew {
        found,
        supported: LATEST,
    }
}
