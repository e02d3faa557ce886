//! An extension that is deleted leaves no membership behind: it is taken out of the page
//! groups that list it, in the delete's own transaction (a page group it is the only member of
//! refuses the delete, since a page group needs a member). Pickup-group rows go by the foreign
//! key (`ON DELETE CASCADE`); ring groups refuse the delete while they name the extension
//! (`hunt_referrer!`, documented in docs/ring-groups.md).

/// Takes extension `$number` out of `$tenant`'s page groups (inside a transaction). Evaluates
/// to `Option<String>`: why the delete must be refused (the only member of a page group), in
/// which case nothing was changed. Uses `?` on database errors.
macro_rules! leave_page_groups {
    ($tx:ident, $tenant:expr, $number:expr) => {{
        let number: &str = $number;
        let mut updates: Vec<(i64, String)> = Vec::new();
        let mut refused: Option<String> = None;
        for r in sqlx::query("SELECT id, name, spec FROM page_groups WHERE tenant_id = $1 ORDER BY name")
            .bind($tenant)
            .fetch_all(&mut *$tx)
            .await?
        {
            // An unreadable row is left alone (the page group's own listing reports it).
            let Ok(mut g) = serde_json::from_str::<engine::page::PageGroup>(&r.text("spec")?) else {
                continue;
            };
            if !g.members.iter().any(|m| m == number) {
                continue;
            }
            g.members.retain(|m| m != number);
            if g.members.is_empty() {
                refused = Some(format!(
                    "the only member of page group {}: remove the group or give it another member first",
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
                sqlx::query("UPDATE page_groups SET spec = $1, updated_at = $2 WHERE id = $3")
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
pub(crate) use leave_page_groups;
