//! `denwa trunk|route|did|outbound ...` and `denwa extension edit`: the CLI side of outside
//! lines. Validation is the `engine::outside` types' own (through the store), so the CLI, the
//! API and the panel refuse the same inputs with the same words; this module names the flag.

use std::io::Write;

use anyhow::{Result, anyhow, bail};
use store::{
    CallClass, DidSpec, ExtLimits, ExtensionUpdate, RouteSpec, Store, TenantOutbound, TrunkSpec,
};
use web::engine::dialplan::Decision;
use web::engine::outside::{self, DidFrom, DtmfMode, Identity, TrunkTransport};

use crate::cli::*;

/// A store refusal, with the field named as the CLI flag.
fn flag_error(e: store::Error) -> anyhow::Error {
    match e {
        store::Error::Invalid { field, reason } => {
            let flag = match field {
                "name" | "number" => return anyhow!("{reason}"),
                "pattern" if reason.contains("DID") => "pattern",
                "to" => "to",
                "cos" | "class" => "cos",
                "ping_interval_s" => "ping-interval",
                "expires_s" => "expires",
                "inbound_addrs" => "inbound-addr",
                other => return anyhow!("--{}: {reason}", other.replace('_', "-")),
            };
            anyhow!("--{flag}: {reason}")
        }
        other => anyhow!(other),
    }
}

fn parse<T: std::str::FromStr<Err = String>>(flag: &str, v: &str) -> Result<T> {
    v.parse::<T>().map_err(|e| anyhow!("--{flag}: {e}"))
}

/// Applies the given flags to a trunk's settings.
fn apply_trunk(spec: &mut TrunkSpec, f: &TrunkFlags) -> Result<()> {
    if let Some(h) = &f.host {
        let (host, port) =
            outside::parse_host_port("host", h).map_err(|e| anyhow!("--host: {}", e.reason))?;
        spec.host = host;
        spec.port = port;
    }
    if let Some(t) = &f.transport {
        spec.transport = parse::<TrunkTransport>("transport", t)?;
    }
    if let Some(u) = &f.username {
        spec.username = u.clone();
    }
    if let Some(u) = &f.auth_username {
        spec.auth_username = u.clone();
    }
    if let Some(r) = f.register {
        spec.register = r;
    }
    if let Some(d) = &f.did_from {
        spec.did_from = parse::<DidFrom>("did-from", d)?;
    }
    if let Some(p) = &f.outbound_proxy {
        spec.outbound_proxy = (!p.trim().is_empty()).then(|| p.trim().to_string());
    }
    if let Some(u) = &f.from_user {
        spec.from_user = u.clone();
    }
    if let Some(d) = &f.from_domain {
        spec.from_domain = d.clone();
    }
    if let Some(i) = &f.identity {
        spec.identity = parse::<Identity>("identity", i)?;
    }
    if let Some(c) = &f.codecs {
        spec.codecs = c
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    }
    if let Some(d) = &f.dtmf {
        spec.dtmf = parse::<DtmfMode>("dtmf", d)?;
    }
    if let Some(n) = f.max_calls {
        spec.max_calls = n;
    }
    if let Some(n) = f.ping_interval {
        spec.ping_interval_s = n;
    }
    if let Some(n) = f.expires {
        spec.expires_s = n;
    }
    if !f.inbound_addr.is_empty() {
        spec.inbound_addrs = f.inbound_addr.clone();
    }
    if let Some(e) = f.enabled {
        spec.enabled = e;
    }
    Ok(())
}

fn apply_route(spec: &mut RouteSpec, f: &RouteFlags) -> Result<()> {
    if !f.patterns.is_empty() {
        spec.patterns = f.patterns.clone();
    }
    if !f.trunks.is_empty() {
        spec.trunks = f.trunks.clone();
    }
    if let Some(n) = f.strip {
        spec.strip = n;
    }
    if let Some(p) = &f.prepend {
        spec.prepend = p.clone();
    }
    if let Some(c) = &f.cos {
        spec.class = parse::<CallClass>("cos", c)?;
    }
    if let Some(c) = &f.caller_id {
        spec.caller_id = c.clone();
    }
    if let Some(e) = f.emergency {
        spec.emergency = e;
    }
    if let Some(e) = f.enabled {
        spec.enabled = e;
    }
    Ok(())
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// `denwa trunk ...`
pub async fn trunk(cmd: TrunkCmd, store: &Store, tenant: i64, out: &mut impl Write) -> Result<()> {
    match cmd {
        TrunkCmd::Add { name, flags } => {
            if flags.host.is_none() {
                bail!("--host: required (the provider's host name or address)");
            }
            let mut spec = TrunkSpec::default();
            apply_trunk(&mut spec, &flags)?;
            let password = flags.password.clone().unwrap_or_default();
            if spec.register && password.is_empty() {
                bail!("--password: a registration trunk needs the account's password");
            }
            let t = store
                .create_trunk(tenant, &name, &spec, &password)
                .await
                .map_err(flag_error)?;
            writeln!(
                out,
                "trunk {} added ({}, {})",
                t.name,
                t.spec.host,
                if t.spec.register {
                    "registration"
                } else {
                    "IP trunk"
                }
            )?;
        }
        TrunkCmd::Edit { name, flags } => {
            let Some(t) = store.trunk(tenant, &name).await? else {
                bail!("no trunk {name}");
            };
            let mut spec = t.spec;
            apply_trunk(&mut spec, &flags)?;
            store
                .update_trunk(tenant, &name, &spec, flags.password.as_deref())
                .await
                .map_err(flag_error)?;
            writeln!(out, "trunk {name} changed")?;
        }
        TrunkCmd::List { json } => {
            let list = store.list_trunks(tenant).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                writeln!(
                    out,
                    "{:<16} {:<28} {:<5} {:<9} {:<12} {:<6} ENABLED",
                    "NAME", "HOST", "TP", "REGISTER", "USER", "CALLS"
                )?;
                for t in list {
                    let host = match t.spec.port {
                        Some(p) => format!("{}:{p}", t.spec.host),
                        None => t.spec.host.clone(),
                    };
                    writeln!(
                        out,
                        "{:<16} {:<28} {:<5} {:<9} {:<12} {:<6} {}",
                        t.name,
                        host,
                        t.spec.transport.as_str(),
                        yes(t.spec.register),
                        t.spec.username,
                        if t.spec.max_calls == 0 {
                            "-".to_string()
                        } else {
                            t.spec.max_calls.to_string()
                        },
                        yes(t.spec.enabled)
                    )?;
                }
            }
        }
        TrunkCmd::Show { name, json } => {
            let Some(t) = store.trunk(tenant, &name).await? else {
                bail!("no trunk {name}");
            };
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&t)?)?;
            } else {
                let v = serde_json::to_value(&t)?;
                if let Some(o) = v.as_object() {
                    for (k, v) in o {
                        writeln!(out, "{k:<16} {v}")?;
                    }
                }
            }
        }
        TrunkCmd::Remove { name } => {
            store
                .delete_trunk(tenant, &name)
                .await
                .map_err(flag_error)?;
            writeln!(out, "trunk {name} removed")?;
        }
        TrunkCmd::Status { json } => {
            let trunks = store.list_trunks(tenant).await?;
            let states = store.trunk_statuses(tenant).await?;
            if json {
                let v: Vec<serde_json::Value> = trunks
                    .iter()
                    .map(|t| {
                        let nodes: Vec<&store::TrunkStatusRow> =
                            states.iter().filter(|s| s.trunk_id == t.id).collect();
                        serde_json::json!({
                            "name": t.name,
                            "register": t.spec.register,
                            "enabled": t.spec.enabled,
                            "nodes": nodes,
                        })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                return Ok(());
            }
            writeln!(
                out,
                "{:<16} {:<10} {:<13} {:<28} {:<8} {:<5} UPDATED",
                "NAME", "NODE", "REGISTRATION", "LAST ANSWER", "HEALTH", "CALLS"
            )?;
            for t in trunks {
                let mine: Vec<&store::TrunkStatusRow> =
                    states.iter().filter(|s| s.trunk_id == t.id).collect();
                if mine.is_empty() {
                    writeln!(
                        out,
                        "{:<16} (no state stored: is `denwa serve` running?)",
                        t.name
                    )?;
                }
                for s in mine {
                    let get = |k: &str| {
                        s.status
                            .get(k)
                            .and_then(|v| v.as_str())
                            .unwrap_or("-")
                            .to_string()
                    };
                    let mut answer = get("last_register_answer");
                    if let Some(f) = s.status.get("failure").and_then(|v| v.as_str()) {
                        answer = format!("{answer} ({f})");
                    }
                    if let Some(n) = s.status.get("next_attempt_at").and_then(|v| v.as_u64())
                        && get("registration") == "failing"
                    {
                        let at = chrono::DateTime::from_timestamp(n as i64, 0)
                            .map(|t| t.format("%H:%M:%S").to_string())
                            .unwrap_or_default();
                        answer = format!("{answer}, retry {at}");
                    }
                    writeln!(
                        out,
                        "{:<16} {:<10} {:<13} {:<28} {:<8} {:<5} {}",
                        t.name,
                        s.node,
                        get("registration"),
                        answer,
                        get("health"),
                        s.status.get("calls").and_then(|v| v.as_u64()).unwrap_or(0),
                        s.updated_at.format("%Y-%m-%d %H:%M:%S")
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// `denwa route add|edit|list|remove`.
pub async fn route(cmd: RouteCmd, store: &Store, tenant: i64, out: &mut impl Write) -> Result<()> {
    match cmd {
        RouteCmd::Add { name, flags } => {
            let mut spec = RouteSpec::default();
            apply_route(&mut spec, &flags)?;
            let r = store
                .create_route(tenant, &name, &spec, flags.position)
                .await
                .map_err(flag_error)?;
            writeln!(out, "route {} added at position {}", r.name, r.position)?;
        }
        RouteCmd::Edit { name, flags } => {
            let Some(r) = store.route(tenant, &name).await? else {
                bail!("no route {name}");
            };
            let mut spec = r.spec;
            apply_route(&mut spec, &flags)?;
            let r = store
                .update_route(tenant, &name, &spec, flags.position)
                .await
                .map_err(flag_error)?;
            writeln!(out, "route {} changed (position {})", r.name, r.position)?;
        }
        RouteCmd::List { json } => {
            let list = store.list_routes(tenant).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                writeln!(
                    out,
                    "{:<3} {:<16} {:<14} {:<32} {:<24} STRIP/PREPEND",
                    "#", "NAME", "CLASS", "PATTERNS", "TRUNKS"
                )?;
                for r in list {
                    let mut class = r.spec.class.to_string();
                    if r.spec.emergency {
                        class.push_str(" +sos");
                    }
                    if !r.spec.enabled {
                        class.push_str(" (off)");
                    }
                    writeln!(
                        out,
                        "{:<3} {:<16} {:<14} {:<32} {:<24} {}/{}",
                        r.position,
                        r.name,
                        class,
                        r.spec.patterns.join(" "),
                        r.spec.trunks.join(","),
                        r.spec.strip,
                        if r.spec.prepend.is_empty() {
                            "-"
                        } else {
                            &r.spec.prepend
                        }
                    )?;
                }
            }
        }
        RouteCmd::Remove { name } => {
            store
                .delete_route(tenant, &name)
                .await
                .map_err(flag_error)?;
            writeln!(out, "route {name} removed")?;
        }
        RouteCmd::Test { .. } => unreachable!("handled by the caller"),
    }
    Ok(())
}

/// `denwa did ...`
pub async fn did(cmd: DidCmd, store: &Store, tenant: i64, out: &mut impl Write) -> Result<()> {
    match cmd {
        DidCmd::Add {
            pattern,
            to,
            trunk,
            description,
        } => {
            let spec = DidSpec {
                destination: to,
                trunk: trunk.unwrap_or_default(),
                description: description.unwrap_or_default(),
            };
            let d = store
                .put_did(tenant, &pattern, &spec, true)
                .await
                .map_err(flag_error)?;
            writeln!(
                out,
                "inbound route {} -> {} added",
                d.pattern, d.spec.destination
            )?;
        }
        DidCmd::Edit {
            pattern,
            to,
            trunk,
            description,
        } => {
            let list = store.list_dids(tenant).await?;
            let key = pattern.trim().to_ascii_lowercase();
            let Some(mut d) = list
                .into_iter()
                .find(|d| d.pattern.to_ascii_lowercase() == key)
            else {
                bail!("no inbound route {pattern}");
            };
            if let Some(t) = to {
                d.spec.destination = t;
            }
            if let Some(t) = trunk {
                d.spec.trunk = t;
            }
            if let Some(x) = description {
                d.spec.description = x;
            }
            let d = store
                .put_did(tenant, &d.pattern, &d.spec, false)
                .await
                .map_err(flag_error)?;
            writeln!(out, "inbound route {} -> {}", d.pattern, d.spec.destination)?;
        }
        DidCmd::List { json } => {
            let mut list = store.list_dids(tenant).await?;
            // In the order the dialplan tries them.
            list.sort_by_key(|d| {
                d.pattern
                    .parse::<outside::DidPattern>()
                    .map(|p| p.rank())
                    .unwrap_or(3)
            });
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                writeln!(
                    out,
                    "{:<20} {:<20} {:<16} NOTE",
                    "DID", "DESTINATION", "TRUNK"
                )?;
                for d in list {
                    writeln!(
                        out,
                        "{:<20} {:<20} {:<16} {}",
                        d.pattern,
                        d.spec.destination,
                        if d.spec.trunk.is_empty() {
                            "(any)"
                        } else {
                            &d.spec.trunk
                        },
                        d.spec.description
                    )?;
                }
            }
        }
        DidCmd::Remove { pattern } => {
            store
                .delete_did(tenant, &pattern)
                .await
                .map_err(flag_error)?;
            writeln!(out, "inbound route {pattern} removed")?;
        }
    }
    Ok(())
}

/// `denwa outbound ...`
pub async fn outbound(
    cmd: OutboundCmd,
    store: &Store,
    tenant: i64,
    out: &mut impl Write,
) -> Result<()> {
    match cmd {
        OutboundCmd::Show { json } => {
            let p = store.tenant_outbound(tenant).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&p)?)?;
            } else {
                let main = if p.main_number.is_empty() {
                    "(none)"
                } else {
                    &p.main_number
                };
                writeln!(out, "main number          {main}")?;
                writeln!(
                    out,
                    "emergency numbers    {}",
                    p.emergency_numbers.join(", ")
                )?;
                writeln!(out, "max outside calls    {} at once", p.max_concurrent)?;
                writeln!(out, "max calls per hour   {}", p.max_per_hour)?;
                writeln!(out, "international/day    {} min", p.intl_minutes_per_day)?;
            }
        }
        OutboundCmd::Set {
            main_number,
            emergency,
            max_calls,
            max_per_hour,
            intl_minutes,
        } => {
            let mut p: TenantOutbound = store.tenant_outbound(tenant).await?;
            if let Some(m) = main_number {
                p.main_number = m;
            }
            if let Some(e) = emergency {
                p.emergency_numbers = e
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            if let Some(n) = max_calls {
                p.max_concurrent = n;
            }
            if let Some(n) = max_per_hour {
                p.max_per_hour = n;
            }
            if let Some(n) = intl_minutes {
                p.intl_minutes_per_day = n;
            }
            store
                .set_tenant_outbound(tenant, &p)
                .await
                .map_err(|e| match e {
                    store::Error::Invalid { field, reason } => {
                        let flag = match field {
                            "emergency_numbers" => "emergency",
                            other => other,
                        };
                        anyhow!("--{}: {reason}", flag.replace('_', "-"))
                    }
                    other => anyhow!(other),
                })?;
            writeln!(out, "outbound policy changed")?;
        }
    }
    Ok(())
}

/// `denwa extension edit`.
#[allow(clippy::too_many_arguments)]
pub async fn extension_edit(
    store: &Store,
    tenant: i64,
    number: &str,
    name: Option<String>,
    cos: Option<String>,
    outbound_cid: Option<String>,
    anonymous: Option<bool>,
    limits: (Option<u32>, Option<u32>, Option<u32>),
    enabled: Option<bool>,
    out: &mut impl Write,
) -> Result<()> {
    let Some(e) = store.extension(tenant, number).await? else {
        bail!("no extension {number}");
    };
    let cos = match cos {
        Some(c) => Some(parse::<CallClass>("cos", &c)?),
        None => None,
    };
    let new_limits = match limits {
        (None, None, None) => None,
        (c, h, i) => Some(ExtLimits {
            max_concurrent: c.unwrap_or(e.limits.max_concurrent),
            max_per_hour: h.unwrap_or(e.limits.max_per_hour),
            intl_minutes_per_day: i.unwrap_or(e.limits.intl_minutes_per_day),
        }),
    };
    let upd = ExtensionUpdate {
        display_name: name,
        enabled,
        cos,
        outbound_cid,
        anonymous,
        limits: new_limits,
        ..Default::default()
    };
    let e = store
        .update_extension(tenant, number, upd)
        .await
        .map_err(|e| match e {
            store::Error::Invalid { field, reason } => {
                anyhow!("--{}: {reason}", field.replace('_', "-"))
            }
            other => anyhow!(other),
        })?;
    writeln!(
        out,
        "extension {}: class {}, caller ID {}, {} outside calls at once, {}/hour, {} intl min/day",
        e.number,
        e.cos,
        if e.outbound_cid.is_empty() {
            "(main number)"
        } else {
            &e.outbound_cid
        },
        e.limits.max_concurrent,
        e.limits.max_per_hour,
        e.limits.intl_minutes_per_day
    )?;
    Ok(())
}

/// Prints a dialplan decision for `denwa route test`.
pub fn print_decision(
    out: &mut impl Write,
    from: &str,
    number: &str,
    decision: &Decision,
) -> Result<()> {
    match decision {
        Decision::Route {
            destination,
            reason,
        } => writeln!(out, "{from} -> {number}: {destination} ({reason})")?,
        Decision::Outside { call, reason } => {
            writeln!(
                out,
                "{from} -> {number}: outside call{} via route {} ({reason})",
                if call.emergency { " (EMERGENCY)" } else { "" },
                call.route
            )?;
            writeln!(out, "  number sent   {}", call.number)?;
            writeln!(out, "  trunks        {}", call.trunks.join(", "))?;
            let cid = if call.caller_id.number.is_empty() {
                "(the trunk's account)".to_string()
            } else {
                call.caller_id.number.clone()
            };
            writeln!(
                out,
                "  caller ID     {cid}{}",
                if call.privacy {
                    " (withheld: Privacy: id)"
                } else {
                    ""
                }
            )?;
            writeln!(out, "  class         {}", call.class)?;
        }
        Decision::Reject { status, reason } => {
            writeln!(out, "{from} -> {number}: rejected with {status} {reason}")?
        }
        Decision::Feature { feature, reason } => writeln!(
            out,
            "{from} -> {number}: feature {}{} ({reason})",
            feature.action,
            if feature.arg.is_empty() {
                String::new()
            } else {
                format!(" {}", feature.arg)
            }
        )?,
    }
    Ok(())
}
