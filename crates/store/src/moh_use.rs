//! Who uses a music-on-hold class: what refuses deleting a class in use, naming the user.

use crate::{Result, Store};

/// The setting naming the hold-music class (the engine's `moh.class`).
const MOH_CLASS_KEY: &str = "moh.class";

impl Store {
    /// What in `tenant` plays music-on-hold class `class`: its own `moh.class` setting (or the
    /// node's, when it has none) and its park lot. Empty when nothing does.
    pub async fn moh_class_users(&self, tenant: i64, class: &str) -> Result<Vec<String>> {
        let is = |v: &serde_json::Value| v.as_str().is_some_and(|s| s.trim() == class);
        let mut users = Vec::new();
        let own = self.list_settings(Some(tenant)).await?;
        match own.iter().find(|(k, _)| k == MOH_CLASS_KEY) {
            Some((_, v)) => {
                if is(v) {
                    users.push(format!("the tenant's setting {MOH_CLASS_KEY}"));
                }
            }
            None => {
                let node = self.list_settings(None).await?;
                if node.iter().any(|(k, v)| k == MOH_CLASS_KEY && is(v)) {
                    users.push(format!("the node's setting {MOH_CLASS_KEY}"));
                }
            }
        }
        if self.park_lot(tenant).await?.moh_class == class {
            users.push("the park lot (denwa park set --moh-class)".to_string());
        }
        Ok(users)
    }

    /// Refuses (with a message naming the users) removing `tenant`'s class `class` while
    /// something plays it; see [`Store::moh_class_users`].
    pub async fn moh_class_removable(&self, tenant: i64, class: &str) -> Result<()> {
        let users = self.moh_class_users(tenant, class).await?;
        if users.is_empty() {
            return Ok(());
        }
        Err(crate::Error::Invalid {
            field: "class",
            reason: format!(
                "music-on-hold class {class} is in use by {}: choose another class there first",
                users.join(", ")
            ),
        })
    }
}
