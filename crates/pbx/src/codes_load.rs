//! Loads feature codes, time conditions, holiday calendars and pickup groups into call
//! control's snapshot. A stored time condition or calendar that no longer builds (a
//! destination text that became invalid) is left out with a warning, not a failed start.

use std::collections::HashMap;
use std::sync::OnceLock;

use engine::features::CodesConfig;
use store::Store;
use tracing::warn;

/// Everything `engine::features::CodesConfig` holds, from the database.
pub async fn load(store: &Store) -> anyhow::Result<CodesConfig> {
    let mut c = CodesConfig {
        tables: store.all_feature_tables().await?,
        pickup: store.all_pickup_groups().await?,
        park: engine::park::ParkLots {
            lots: store.park_lots().await?,
        },
        ..CodesConfig::default()
    };
    c.clock_offset_s = test_clock_offset();
    c.recording = crate::recording::load_config(store).await?;
    for row in store.all_timeconds().await? {
        match row.spec.build(&row.name, row.index, row.mode) {
            Ok(tc) => {
                if !row.number.is_empty() {
                    c.numbers
                        .insert((row.tenant_id, row.number.clone()), row.name.clone());
                }
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

/// Tests only: `DENWA_TEST_TIMECOND_AT=<RFC 3339 time>` makes time conditions see that time
/// at the moment of the first load, the clock running on from there (so an end-to-end test can
/// put the office at 10:00 on a Tuesday). Unset (production): no shift.
fn test_clock_offset() -> i64 {
    static OFFSET: OnceLock<i64> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        let Ok(v) = std::env::var("DENWA_TEST_TIMECOND_AT") else {
            return 0;
        };
        match chrono::DateTime::parse_from_rfc3339(v.trim()) {
            Ok(t) => {
                let off = t.timestamp() - chrono::Utc::now().timestamp();
                warn!(at = %v, offset_s = off, "DENWA_TEST_TIMECOND_AT: time conditions run on a shifted clock (tests only)");
                off
            }
            Err(e) => {
                warn!(value = %v, error = %e, "DENWA_TEST_TIMECOND_AT is not an RFC 3339 time: ignored");
                0
            }
        }
    })
}
