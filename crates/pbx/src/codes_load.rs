//! Loads feature codes, time conditions, holiday calendars and pickup groups into call
//! control's snapshot. A stored time condition or calendar that no longer builds (a
//! destination text that became invalid) is left out with a warning, not a failed start.

use std::collections::HashMap;

use engine::features::CodesConfig;
use store::Store;
use tracing::warn;

/// Everything `engine::features::CodesConfig` holds, from the database.
pub async fn load(store: &Store) -> anyhow::Result<CodesConfig> {
    let mut c = CodesConfig {
        tables: store.all_feature_tables().await?,
        pickup: store.all_pickup_groups().await?,
        ..CodesConfig::default()
    };
    for row in store.all_timeconds().await? {
        match row.spec.build(&row.name, row.index, row.mode) {
            Ok(tc) => {
                c.timeconds.insert((row.tenant_id, row.name), tc);
            }
            Err((field, e)) => {
                warn!(tenant = row.tenant_id, timecond = %row.name, field, error = %e, "time condition left out")
            }
        }
    }
    let mut tz = HashMap::new();
    for (tenant, spec) in store.all_calendars().await? {
        match spec.build() {
            Ok((zone, cal)) => {
                tz.insert(tenant, zone);
                c.calendars.insert(tenant, cal);
            }
            Err((field, e)) => warn!(tenant, field, error = %e, "holiday calendar left out"),
        }
    }
    c.timezones = tz;
    Ok(c)
}
