//! An extension that is deleted leaves no membership behind and no dangling reference, in
//! the delete's own transaction:
//! - memberships are cleaned up: it is taken out of every ring group and page group that
//!   lists it (a group it is the last member of refuses the delete, naming the group, since a
//!   group needs a member); pickup-group rows go by the foreign key (`ON DELETE CASCADE`);
//! - references that route callers to it refuse the delete with a message naming the first
//!   one, since silently dropping a route would send callers nowhere: a ring group's no-answer
//!   destination or another extension's forward (`hunt_referrer!`), an inbound route, an IVR
//!   option, a time condition or the park lot's timeout fallback (`ext_referrer!`).
//!
//! Documented in docs/ring-groups.md ("Removing things").

/// What routes callers to extension `$number` (`ext:N` or `vm:N`) outside the ring groups and
/// forwards, inside a transaction: `Some("the destination of inbound route 0312345678")`,
/// `Some("option 1 of IVR menu main")`, `Some("the matched destination of time condition
/// office")`, `Some("the timeout fallback of the park lot")`, or `None`. Uses `?`.
macro_rules! ext_referrer {
    ($tx:ident, $tenant:expr, $number:expr) => {{
        let number: &str = $number;
        let (ext, vm) = (format!("ext:{number}"), format!("vm:{number}"));
        let names = |d: &str| d.trim() == ext || d.trim() == vm;
        let mut found: Option<String> = None;
        for r in sqlx::query(
            "SELECT pattern, spec FROM inbound_routes WHERE tenant_id = $1 ORDER BY pattern",
        )
        .bind($tenant)
        .fetch_all(&mut *$tx)
        .await?
        {
            let spec: engine::outside::DidSpec =
                serde_json::from_str(&r.text("spec")?).unwrap_or_default();
            if names(&spec.destination) {
                found = Some(format!(
                    "the destination of inbound route {}",
                    r.text("pattern")?
                ));
                break;
            }
        }
        if found.is_none() {
            for r in
                sqlx::query("SELECT name, spec FROM ivr_menus WHERE tenant_id = $1 ORDER BY name")
                    .bind($tenant)
                    .fetch_all(&mut *$tx)
                    .await?
            {
                let spec: apps::ivr::MenuSpec =
                    serde_json::from_str(&r.text("spec")?).unwrap_or_default();
                if let Some((field, _)) = spec.destinations().find(|(_, d)| names(d)) {
                    let what = match field.strip_prefix("options.") {
                        Some(key) => format!("option {key}"),
                        None => format!("the {field}"),
                    };
                    found = Some(format!("{what} of IVR menu {}", r.text("name")?));
                    break;
                }
            }
        }
        if found.is_none() {
            for r in sqlx::query(
                "SELECT name, spec FROM time_conditions WHERE tenant_id = $1 ORDER BY name",
            )
            .bind($tenant)
            .fetch_all(&mut *$tx)
            .await?
            {
                let s: engine::timecond::TimeCondSpec =
                    serde_json::from_str(&r.text("spec")?).unwrap_or_default();
                let which = if names(&s.matched) {
                    "matched"
                } else if names(&s.unmatched) {
                    "unmatched"
                } else {
                    continue;
                };
                found = Some(format!(
                    "the {which} destination of time condition {}",
                    r.text("name")?
                ));
                break;
            }
        }
        if found.is_none()
            && let Some(r) = sqlx::query("SELECT fallback FROM park_lots WHERE tenant_id = $1")
                .bind($tenant)
                .fetch_optional(&mut *$tx)
                .await?
            && names(&r.text("fallback")?)
        {
            found = Some("the timeout fallback of the park lot".to_string());
        }
        found
    }};
}
pub(crate) use ext_referrer;

/// Takes the members `$is_it` (a closure on one member) out of `$tenant`'s groups in `$table`
/// (rows `id, name, spec`; `spec` a JSON `$spec` with a `members` list), inside a transaction.
/// Evaluates to `(Option<String>, bool)`: why the delete must be refused (a group would be left
/// without members; then nothing was changed), and whether a group was changed. Uses `?` on
/// database errors.
macro_rules! leave_groups {
    ($tx:ident, $tenant:expr, $table:literal, $spec:ty, $is_it:expr, $last:literal) => {{
        let is_it = $is_it;
        let mut updates: Vec<(i64, String)> = Vec::new();
        let mut refused: Option<String> = None;
        for r in sqlx::query(concat!(
            "SELECT id, name, spec FROM ",
            $table,
            " WHERE tenant_id = $1 ORDER BY name"
        ))
        .bind($tenant)
        .fetch_all(&mut *$tx)
        .await?
        {
            // An unreadable row is left alone (the group's own listing reports it).
            let Ok(mut g) = serde_json::from_str::<$spec>(&r.text("spec")?) else {
                continue;
            };
            if !g.members.iter().any(|m| is_it(m)) {
                continue;
            }
            g.members.retain(|m| !is_it(m));
            if g.members.is_empty() {
                refused = Some(format!(
                    concat!(
                        $last,
                        " {}: remove the group or give it another member first"
                    ),
                    r.text("name")?
                ));
                break;
            }
            let doc = serde_json::to_string(&g).map_err(|e| crate::Error::Invalid {
                field: "spec",
                reason: e.to_string(),
            })?;
            updates.push((r.i64("id")?, doc));
        }
        if refused.is_none() {
            let now = crate::db::to_ms(chrono::Utc::now());
            for (id, doc) in &updates {
                sqlx::query(concat!(
                    "UPDATE ",
                    $table,
                    " SET spec = $1, updated_at = $2 WHERE id = $3"
                ))
                .bind(doc)
                .bind(now)
                .bind(id)
                .execute(&mut *$tx)
                .await?;
            }
        }
        (refused, !updates.is_empty())
    }};
}

/// Takes extension `$number` out of `$tenant`'s ring groups (members named `N` or `ext:N`);
/// the last member of a group is refused. See `leave_groups!`.
macro_rules! leave_ring_groups {
    ($tx:ident, $tenant:expr, $number:expr) => {{
        let number: &str = $number;
        let as_ext = format!("ext:{number}");
        crate::ext_members::leave_groups!(
            $tx,
            $tenant,
            "ring_groups",
            engine::hunt::GroupSpec,
            |m: &engine::hunt::Member| m.number == number || m.number == as_ext,
            "the last member of ring group"
        )
    }};
}
pub(crate) use leave_ring_groups;

/// Takes extension `$number` out of `$tenant`'s page groups; the only member of a page group
/// is refused. See `leave_groups!`.
macro_rules! leave_page_groups {
    ($tx:ident, $tenant:expr, $number:expr) => {{
        let number: &str = $number;
        crate::ext_members::leave_groups!(
            $tx,
            $tenant,
            "page_groups",
            engine::page::PageGroup,
            |m: &String| m == number,
            "the only member of page group"
        )
    }};
}
pub(crate) use leave_groups;
pub(crate) use leave_page_groups;
