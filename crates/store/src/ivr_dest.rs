//! Save-time check of where an IVR menu sends callers (issue 14 §4): every option and the
//! fallback must name something that exists in the tenant — an extension or mailbox, a ring
//! group, a menu, a time condition, a conference room, a page group — or be a number the
//! dialplan can route: an internal number (an extension's, an application's, a feature code,
//! a park slot) or an outside number that an enabled outbound route takes with the menu's
//! class of service. The one check for the CLI, the API and the panel (they all save through
//! [`crate::Store::put_ivr`]); its messages name the option and the target.

use engine::dialplan::Destination;
use engine::outside::{CallClass, RouteSpec};

/// What checking one destination text needs from the database.
pub(crate) enum Need {
    /// Nothing: fine as it is.
    Nothing,
    /// Refused, with the reason.
    Refused(String),
    /// A row must exist: the query (tenant, key) and the reason when it does not.
    Row(&'static str, String, String),
    /// A bare number: internal (someone owns it) or an outside number a route takes.
    Number(String),
}

/// Classifies destination `text` of menu `menu` (a menu may name itself).
pub(crate) fn need(text: &str, menu: &str) -> Need {
    let text = text.trim();
    let dest = match text.parse::<Destination>() {
        Ok(d) => d,
        Err(e) => {
            if !text.is_empty()
                && text.len() <= 32
                && text
                    .chars()
                    .all(|c| c.is_ascii_digit() || "+*#".contains(c))
            {
                return Need::Number(text.to_string());
            }
            return Need::Refused(format!(
                "{e}; or an extension or outside number (digits, + * #)"
            ));
        }
    };
    let row = |sql: &'static str, key: &str, what: &str| {
        Need::Row(sql, key.to_string(), format!("{what} {key} does not exist"))
    };
    match &dest {
        Destination::Ext(n) => row(
            "SELECT id FROM extensions WHERE tenant_id = $1 AND number = $2",
            n,
            "extension",
        ),
        Destination::Vm(n) => row(
            "SELECT id FROM extensions WHERE tenant_id = $1 AND number = $2",
            n,
            "mailbox (extension)",
        ),
        Destination::Group(n) => row(
            "SELECT id FROM ring_groups WHERE tenant_id = $1 AND name = $2",
            n,
            "ring group",
        ),
        Destination::Ivr(n) if n == menu => Need::Nothing,
        Destination::Ivr(n) => row(
            "SELECT id FROM ivr_menus WHERE tenant_id = $1 AND name = $2",
            n,
            "IVR menu",
        ),
        Destination::Timecond(n) => row(
            "SELECT id FROM time_conditions WHERE tenant_id = $1 AND name = $2",
            n,
            "time condition",
        ),
        Destination::Conf(n) => row(
            "SELECT id FROM conf_rooms WHERE tenant_id = $1 AND number = $2",
            n,
            "conference room",
        ),
        Destination::Page(n) => row(
            "SELECT id FROM page_groups WHERE tenant_id = $1 AND name = $2",
            n,
            "page group",
        ),
        Destination::ParkSlot(n) if n.parse::<u32>().is_ok_and(|s| s > 0) => Need::Nothing,
        Destination::ParkSlot(n) => Need::Refused(format!("park:{n}: a slot is a number")),
        Destination::Park | Destination::VmMain | Destination::Hangup => Need::Nothing,
        Destination::VmOwn => Need::Refused(format!(
            "{dest}: only a phone's own feature code reaches its own box; use voicemail (the main voicemail number) or vm:EXT"
        )),
        Destination::Route(r) => Need::Refused(format!(
            "route:{r} names no number: give the outside number itself (e.g. 9=0312345678), it goes out through the outbound routes"
        )),
    }
}

/// The menu's class of service (`cos`): empty is the default (`mobile`).
pub(crate) fn menu_class(cos: &str) -> Result<CallClass, String> {
    if cos.trim().is_empty() {
        return Ok(CallClass::default());
    }
    cos.parse::<CallClass>().map_err(|e| e.to_string())
}

/// Why outside number `number` cannot be dialled by a menu of class `cos` through the enabled
/// routes `routes` (in order, as stored): `None` when the first route whose pattern matches
/// may be used (the dialplan's rule: the first match whose class the caller's includes).
pub(crate) fn outside_problem(
    number: &str,
    cos: CallClass,
    routes: &[RouteSpec],
) -> Option<String> {
    let mut needs: Option<CallClass> = None;
    for spec in routes.iter().filter(|r| r.enabled) {
        let entry = engine::config::RouteEntry::new(String::new(), spec.clone());
        if !entry.patterns.iter().any(|p| p.matches(number).is_some()) {
            continue;
        }
        if spec.class <= cos {
            return None;
        }
        needs = Some(needs.map_or(spec.class, |c| c.min(spec.class)));
    }
    Some(match needs {
        Some(class) => format!(
            "outside number {number} needs class of service {class}; the menu's is {cos} (set cos)"
        ),
        None => format!(
            "{number} is no extension or internal number, and no outbound route takes it as an outside number"
        ),
    })
}

/// Checks every destination of `$spec` (menu `$menu` of `$tenant`) inside transaction `$tx`;
/// evaluates to `Option<(String, String)>`: the field (`options.3`, `fallback`) and why it is
/// refused. Uses `?` on database errors.
macro_rules! ivr_destinations_problem {
    ($tx:ident, $tenant:expr, $menu:expr, $spec:expr) => {{
        let spec: &apps::ivr::MenuSpec = $spec;
        let mut found: Option<(String, String)> = None;
        let cos = crate::ivr_dest::menu_class(&spec.cos);
        if let Err(e) = &cos {
            found = Some(("cos".to_string(), e.clone()));
        }
        let cos = cos.unwrap_or_default();
        let mut routes: Option<Vec<engine::outside::RouteSpec>> = None;
        for (field, text) in spec.destinations() {
            if found.is_some() {
                break;
            }
            let why = match crate::ivr_dest::need(text, $menu) {
                crate::ivr_dest::Need::Nothing => None,
                crate::ivr_dest::Need::Refused(why) => Some(why),
                crate::ivr_dest::Need::Row(sql, key, why) => {
                    let row = sqlx::query(sql)
                        .bind($tenant)
                        .bind(&key)
                        .fetch_optional(&mut *$tx)
                        .await?;
                    row.is_none().then_some(why)
                }
                crate::ivr_dest::Need::Number(n) => {
                    let n: &str = &n;
                    if crate::numbers::number_owner!($tx, $tenant, n, None).is_some() {
                        None
                    } else {
                        if routes.is_none() {
                            let mut v = Vec::new();
                            for r in sqlx::query(
                                "SELECT spec FROM outbound_routes WHERE tenant_id = $1 ORDER BY position",
                            )
                            .bind($tenant)
                            .fetch_all(&mut *$tx)
                            .await?
                            {
                                if let Ok(s) = serde_json::from_str::<engine::outside::RouteSpec>(&r.text("spec")?) {
                                    v.push(s);
                                }
                            }
                            routes = Some(v);
                        }
                        crate::ivr_dest::outside_problem(n, cos, routes.as_deref().unwrap_or(&[]))
                    }
                }
            };
            if let Some(why) = why {
                found = Some((field, format!("{text}: {why}")));
            }
        }
        found
    }};
}
pub(crate) use ivr_destinations_problem;

#[cfg(test)]
mod tests {
    use super::*;

    fn route(patterns: &[&str], class: CallClass) -> RouteSpec {
        RouteSpec {
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            class,
            trunks: vec!["t".into()],
            ..RouteSpec::default()
        }
    }

    #[test]
    fn kinds_are_classified() {
        assert!(matches!(need("group:sales", "main"), Need::Row(_, k, _) if k == "sales"));
        assert!(matches!(need("ivr:main", "main"), Need::Nothing));
        assert!(matches!(need("voicemail", "main"), Need::Nothing));
        assert!(matches!(need("park", "main"), Need::Nothing));
        assert!(matches!(need("park:701", "main"), Need::Nothing));
        assert!(matches!(need("page:all", "main"), Need::Row(_, _, _)));
        assert!(matches!(need("09012345678", "main"), Need::Number(n) if n == "09012345678"));
        assert!(matches!(need("voicemail:own", "main"), Need::Refused(_)));
        assert!(
            matches!(need("route:out", "main"), Need::Refused(w) if w.contains("outside number itself"))
        );
        assert!(matches!(need("fax:1", "main"), Need::Refused(_)));
    }

    #[test]
    fn outside_numbers_need_a_route_and_the_class() {
        let routes = [
            route(&["0|0[789]0XXXXXXXX"], CallClass::Mobile),
            route(&["0|010."], CallClass::International),
        ];
        assert_eq!(
            outside_problem("009012345678", CallClass::Mobile, &routes),
            None
        );
        let why = outside_problem("009012345678", CallClass::Internal, &routes).unwrap_or_default();
        assert!(why.contains("needs class of service mobile"), "{why}");
        let why =
            outside_problem("0010442071234567", CallClass::Mobile, &routes).unwrap_or_default();
        assert!(why.contains("international"), "{why}");
        let why = outside_problem("5555", CallClass::International, &routes).unwrap_or_default();
        assert!(why.contains("no outbound route"), "{why}");
        assert_eq!(menu_class(""), Ok(CallClass::Mobile));
        assert!(menu_class("everything").is_err());
    }
}
