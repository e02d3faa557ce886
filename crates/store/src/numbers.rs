//! One number space per tenant. Extensions, IVR menu numbers, conference rooms, ring group,
//! page group and time condition numbers are all dialled the same way, so no two of them may
//! share a number, and no feature code may shadow one (`*8` equal to a number, or `**`
//! that takes digits after it being the start of one), nor may a number be a slot of the
//! tenant's park lot (`crate::park_numbers`). Every write that gives something a
//! number asks [`number_owner!`] inside its transaction; the feature-code table asks
//! [`tenant_numbers!`] for the whole list.

/// The kinds of things that own a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Extension,
    Ivr,
    Conf,
    Group,
    Timecond,
    Page,
}

impl Kind {
    /// What an error message calls it, with its name.
    pub(crate) fn describe(self, name: &str) -> String {
        match self {
            Kind::Extension => format!("extension {name}"),
            Kind::Ivr => format!("IVR menu {name}"),
            Kind::Conf => format!("conference room {name}"),
            Kind::Group => format!("ring group {name}"),
            Kind::Timecond => format!("time condition {name}"),
            Kind::Page => format!("page group {name}"),
        }
    }

    /// What the feature-code check calls a number of this kind.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Extension => "extension",
            Kind::Ivr => "IVR menu number",
            Kind::Conf => "conference room",
            Kind::Group => "ring group number",
            Kind::Timecond => "time condition number",
            Kind::Page => "page group number",
        }
    }
}

/// Each kind's owners of a number: `$1` tenant, `$2` number; the column `n` is the owner's
/// name (what [`Kind::describe`] shows and what an update may match itself by).
pub(crate) const OWNERS: &[(Kind, &str)] = &[
    (
        Kind::Extension,
        "SELECT number AS n FROM extensions WHERE tenant_id = $1 AND number = $2",
    ),
    (
        Kind::Ivr,
        "SELECT name AS n FROM ivr_menus WHERE tenant_id = $1 AND number = $2",
    ),
    (
        Kind::Conf,
        "SELECT number AS n FROM conf_rooms WHERE tenant_id = $1 AND number = $2",
    ),
    (
        Kind::Group,
        "SELECT name AS n FROM ring_groups WHERE tenant_id = $1 AND number = $2",
    ),
    (
        Kind::Timecond,
        "SELECT name AS n FROM time_conditions WHERE tenant_id = $1 AND number = $2",
    ),
    (
        Kind::Page,
        "SELECT name AS n FROM page_groups WHERE tenant_id = $1 AND number = $2",
    ),
];

/// Every number of a tenant by kind: `$1` tenant, column `n` (the number).
pub(crate) const ALL_NUMBERS: &[(Kind, &str)] = &[
    (
        Kind::Extension,
        "SELECT number AS n FROM extensions WHERE tenant_id = $1",
    ),
    (
        Kind::Ivr,
        "SELECT number AS n FROM ivr_menus WHERE tenant_id = $1 AND number <> ''",
    ),
    (
        Kind::Conf,
        "SELECT number AS n FROM conf_rooms WHERE tenant_id = $1",
    ),
    (
        Kind::Group,
        "SELECT number AS n FROM ring_groups WHERE tenant_id = $1 AND number <> ''",
    ),
    (
        Kind::Timecond,
        "SELECT number AS n FROM time_conditions WHERE tenant_id = $1 AND number <> ''",
    ),
    (
        Kind::Page,
        "SELECT number AS n FROM page_groups WHERE tenant_id = $1 AND number <> ''",
    ),
];

/// Who already uses `$number` in `$tenant` (inside a transaction), other than `$me` — a
/// `(Kind, name)` the caller is saving under that number (an update may keep its own
/// number). Feature codes are checked too. Evaluates to `Option<String>`: why the number is
/// taken ("1001 is already the number of extension 1001"). Uses `?` on database errors.
macro_rules! number_owner {
    ($tx:ident, $tenant:expr, $number:expr, $me:expr) => {{
        let me: Option<(crate::numbers::Kind, &str)> = $me;
        let mut found: Option<String> = None;
        for (kind, sql) in crate::numbers::OWNERS {
            let rows = sqlx::query(sql)
                .bind($tenant)
                .bind($number)
                .fetch_all(&mut *$tx)
                .await?;
            for r in rows {
                let name = r.text("n")?;
                if me != Some((*kind, name.as_str())) && found.is_none() {
                    found = Some(format!(
                        "{} is already the number of {}",
                        $number,
                        kind.describe(&name)
                    ));
                }
            }
        }
        if found.is_none() {
            let rows = sqlx::query("SELECT feature, code FROM feature_codes WHERE tenant_id = $1")
                .bind($tenant)
                .fetch_all(&mut *$tx)
                .await?;
            let mut v = Vec::new();
            for r in &rows {
                v.push((r.text("feature")?, r.opt_text("code")?));
            }
            let table = crate::codes::table_from(v);
            let n: &str = $number;
            if let Err(e) = table.validate([("number", n)]) {
                found = Some(e.to_string());
            }
        }
        if found.is_none() {
            found = crate::park_numbers::slot_clash!($tx, $tenant, $number);
        }
        found
    }};
}
pub(crate) use number_owner;

/// Every number of a tenant as `(label, number)` (inside a transaction), for checking
/// feature codes against them.
macro_rules! tenant_numbers {
    ($tx:ident, $tenant:expr) => {{
        let mut out: Vec<(String, String)> = Vec::new();
        for (kind, sql) in crate::numbers::ALL_NUMBERS {
            for r in sqlx::query(sql).bind($tenant).fetch_all(&mut *$tx).await? {
                out.push((kind.label().to_string(), r.text("n")?));
            }
        }
        let dids = sqlx::query("SELECT pattern AS n FROM inbound_routes WHERE tenant_id = $1")
            .bind($tenant)
            .fetch_all(&mut *$tx)
            .await?;
        for r in dids {
            out.push(("DID".to_string(), r.text("n")?));
        }
        out
    }};
}
pub(crate) use tenant_numbers;
