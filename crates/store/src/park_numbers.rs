//! A number may not be a slot of the tenant's park lot: dialling it would reach the slot (or
//! the number, depending on the order of evaluation) and the other would be unreachable. The
//! lot's own writes check the reverse (`Store::set_park_lot`); this covers every write that gives
//! an extension, ring group, IVR menu, conference room, page group or time condition its number
//! ([`crate::numbers::number_owner!`]). Without a stored lot the defaults (701–720) are in force.

/// Why `$number` clashes with `$tenant`'s park lot (inside a transaction), or `None`. Uses `?`
/// on database errors.
macro_rules! slot_clash {
    ($tx:ident, $tenant:expr, $number:expr) => {{
        let row = sqlx::query("SELECT first_slot, last_slot FROM park_lots WHERE tenant_id = $1")
            .bind($tenant)
            .fetch_optional(&mut *$tx)
            .await?;
        let mut lot = engine::park::ParkLot::default();
        if let Some(r) = row {
            let u = |v: i64| u32::try_from(v).unwrap_or(0);
            lot.first = u(r.i64("first_slot")?);
            lot.last = u(r.i64("last_slot")?);
        }
        let n: &str = $number;
        lot.slot_of(n).map(|_| {
            format!(
                "{n} is a slot of the park lot ({}-{}): choose another number, or move the park slots first",
                lot.first, lot.last
            )
        })
    }};
}
pub(crate) use slot_clash;
