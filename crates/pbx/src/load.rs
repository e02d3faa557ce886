//! Conversions between the engine's values and the database's rows, and the cache loads the
//! driver runs (at start and when the database says configuration changed).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use engine::config::{DidEntry, ExtEntry, Outside, RouteEntry, Settings, Tenants, TrunkEntry};
use engine::db::{CdrRecord, Direction, Disposition, HangupBy, LegStats};
use engine::usrloc::{Binding, Ping};
use sip::Uri;
use sip::transaction::Transport;
use store::Store;
use tracing::warn;

/// Every extension with its digest secrets, in keyset pages of 1,000.
pub async fn extensions(store: &Store) -> anyhow::Result<HashMap<(i64, String), ExtEntry>> {
    const PAGE: i64 = 1000;
    let mut out = HashMap::new();
    let mut after: Option<(i64, String)> = None;
    loop {
        let page = store
            .extensions_with_auth_after(after.as_ref().map(|(t, n)| (*t, n.as_str())), PAGE)
            .await?;
        let full = page.len() as i64 == PAGE;
        for (e, auth) in page {
            after = Some((e.tenant_id, e.number.clone()));
            out.insert(
                (e.tenant_id, e.number.clone()),
                ext_entry(e, auth.ha1_md5, auth.ha1_sha256),
            );
        }
        if !full {
            return Ok(out);
        }
    }
}

/// One extension (after a cache miss).
pub async fn extension(
    store: &Store,
    tenant: i64,
    number: &str,
) -> anyhow::Result<Option<ExtEntry>> {
    let Some(e) = store.extension(tenant, number).await? else {
        return Ok(None);
    };
    let auth = store.extension_auth(tenant, number).await?;
    let (ha1_md5, ha1_sha256) = auth
        .map(|a| (a.ha1_md5, a.ha1_sha256))
        .unwrap_or((None, None));
    Ok(Some(ext_entry(e, ha1_md5, ha1_sha256)))
}

fn ext_entry(e: store::Extension, ha1_md5: Option<String>, ha1_sha256: Option<String>) -> ExtEntry {
    ExtEntry {
        id: e.id,
        number: e.number,
        display_name: e.display_name,
        ha1_md5,
        ha1_sha256,
        enabled: e.enabled,
        max_contacts: engine::policy::max_contacts(e.max_contacts),
        cos: e.cos,
        outbound_cid: e.outbound_cid,
        anonymous: e.anonymous,
        limits: e.limits,
        language: e.language,
    }
}

/// Trunks (their host names resolved), routes, DIDs and tenant policies.
pub async fn outside(
    store: &Store,
    resolver: &crate::resolve::Resolver,
) -> anyhow::Result<Outside> {
    outside_with(store, Some(resolver)).await
}

/// Trunks, routes, DIDs and tenant policies; with a resolver, trunk host names are located
/// (the CLI's `route test` does not need addresses).
pub async fn outside_with(
    store: &Store,
    resolver: Option<&crate::resolve::Resolver>,
) -> anyhow::Result<Outside> {
    let cfg = store.outside_config().await?;
    let mut out = Outside::default();
    for (t, password) in cfg.trunks {
        let (addrs, sources) = match resolver {
            Some(r) => resolve_trunk(r, &t.spec).await,
            None => (Vec::new(), Vec::new()),
        };
        if resolver.is_some() && addrs.is_empty() && t.spec.enabled {
            warn!(trunk = %t.name, host = %t.spec.host, "trunk address does not resolve: calls skip it");
        }
        out.trunks.insert(
            t.id,
            TrunkEntry {
                id: t.id,
                tenant: t.tenant_id,
                name: t.name,
                spec: t.spec,
                password,
                addrs,
                sources,
            },
        );
    }
    for r in cfg.routes {
        out.routes
            .entry(r.tenant_id)
            .or_default()
            .push(RouteEntry::new(r.name, r.spec));
    }
    for d in cfg.dids {
        let (Ok(pattern), Ok(destination)) = (d.pattern.parse(), d.spec.destination.parse()) else {
            warn!(pattern = %d.pattern, "stored inbound route unreadable: skipped");
            continue;
        };
        out.dids.entry(d.tenant_id).or_default().push(DidEntry {
            pattern,
            spec: d.spec,
            destination,
        });
    }
    out.sort_dids();
    out.tenants = cfg.policies.into_iter().collect();
    Ok(out)
}

/// Where a trunk's requests go (the outbound proxy, else the host; RFC 3263 location) and the
/// addresses whose requests are the trunk's (both).
async fn resolve_trunk(
    resolver: &crate::resolve::Resolver,
    spec: &store::TrunkSpec,
) -> (Vec<SocketAddr>, Vec<std::net::IpAddr>) {
    let host = resolver.locate(&spec.host, spec.port, spec.transport).await;
    let proxy = match &spec.outbound_proxy {
        Some(p) => match engine::outside::parse_host_port("outbound_proxy", p) {
            Ok((h, port)) => resolver.locate(&h, port, spec.transport).await,
            Err(_) => Vec::new(),
        },
        None => Vec::new(),
    };
    let mut sources: Vec<std::net::IpAddr> =
        host.iter().chain(proxy.iter()).map(|a| a.ip()).collect();
    sources.sort();
    sources.dedup();
    let addrs = if spec.outbound_proxy.is_some() {
        proxy
    } else {
        host
    };
    (addrs, sources)
}

/// Outbound calls of the last hour and of today (UTC), newest first, at most 100,000.
pub async fn outbound_history(
    store: &Store,
    now: SystemTime,
) -> anyhow::Result<Vec<engine::OutboundHistory>> {
    let now: chrono::DateTime<chrono::Utc> = now.into();
    let day_start = now.date_naive().and_time(chrono::NaiveTime::MIN).and_utc();
    let since = day_start.min(now - chrono::Duration::hours(1));
    Ok(store
        .outbound_calls_since(since, 100_000)
        .await?
        .into_iter()
        .map(
            |(tenant, caller, start, dialled, billsec)| engine::OutboundHistory {
                tenant,
                caller,
                start: start.into(),
                dialled,
                billsec: u64::try_from(billsec).unwrap_or(0),
            },
        )
        .collect())
}

/// Tenants, their domains and realms.
pub async fn tenants(store: &Store) -> anyhow::Result<Tenants> {
    let default = store.default_tenant().await?;
    let mut t = Tenants {
        default_id: default.id,
        ..Default::default()
    };
    for tenant in store.list_tenants().await? {
        for d in store.domains(tenant.id).await? {
            t.by_domain.insert(d.to_ascii_lowercase(), tenant.id);
        }
        t.realms.insert(tenant.id, tenant.realm);
        t.languages.insert(tenant.id, tenant.language);
    }
    Ok(t)
}

/// Runtime settings (node-global rows), each checked against its spec.
pub async fn settings(store: &Store) -> Settings {
    let rows = match store.list_settings(None).await {
        Ok(r) => r,
        Err(e) => {
            warn!(error = %e, "settings unreadable: using the defaults");
            Vec::new()
        }
    };
    let map: HashMap<String, String> = rows
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, text)
        })
        .collect();
    let mut s = Settings::from_values(|k| map.get(k).cloned());
    // Tenants' own values of the settings they may override.
    match store
        .tenant_setting_values(engine::settings::keys::BLF_SHOW_CALLER)
        .await
    {
        Ok(rows) => {
            s.blf_show_caller_tenants = rows
                .iter()
                .filter_map(|(t, v)| engine::tenant_settings::show_caller_value(v).map(|b| (*t, b)))
                .collect();
        }
        Err(e) => warn!(error = %e, "tenant settings unreadable: using the node's"),
    }
    match store
        .tenant_setting_values(engine::settings::keys::INTERCOM_AUDIO)
        .await
    {
        Ok(rows) => {
            s.intercom_one_way_tenants = rows
                .iter()
                .filter_map(|(t, v)| engine::tenant_settings::one_way_value(v).map(|b| (*t, b)))
                .collect();
        }
        Err(e) => warn!(error = %e, "tenant settings unreadable: using the node's"),
    }
    match store
        .tenant_setting_values(engine::settings::keys::TONES_COUNTRY)
        .await
    {
        Ok(rows) => {
            s.tone_country_tenants = rows
                .iter()
                .filter_map(|(t, v)| {
                    engine::tenant_settings::tone_country_value(v).map(|c| (*t, c))
                })
                .collect();
        }
        Err(e) => warn!(error = %e, "tenant settings unreadable: using the node's"),
    }
    match store
        .tenant_setting_values(engine::settings::keys::MOH_CLASS)
        .await
    {
        Ok(rows) => {
            s.moh_class_tenants = rows
                .iter()
                .filter_map(|(t, v)| engine::moh_class::class_value(v).map(|c| (*t, c)))
                .collect();
        }
        Err(e) => warn!(error = %e, "tenant settings unreadable: using the node's"),
    }
    match store
        .tenant_setting_values(engine::settings::keys::RECORDING_BEEP)
        .await
    {
        Ok(rows) => {
            s.recording_beep_tenants = rows
                .iter()
                .filter_map(|(t, v)| engine::rec_ctl::BeepMode::from_json(v).map(|b| (*t, b)))
                .collect();
        }
        Err(e) => warn!(error = %e, "tenant settings unreadable: using the node's"),
    }
    s
}

/// The digest nonce secret from the database, created on first start.
pub async fn digest_secret(store: &Store) -> anyhow::Result<[u8; 32]> {
    let key = engine::settings::keys::DIGEST_SECRET;
    if let Some(secret) = stored_digest_secret(store).await? {
        return Ok(secret);
    }
    let mut secret = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut secret);
    let Err(e) = store.set_setting(None, key, &hex::encode(secret)).await else {
        return Ok(secret);
    };
    // A pair's standby (its database read-only) started right after the active made the
    // secret: it arrives by replication within moments.
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if let Some(secret) = stored_digest_secret(store).await? {
            return Ok(secret);
        }
    }
    Err(e.into())
}

/// The SIP digest secret stored in the database, if there is a valid one.
async fn stored_digest_secret(store: &Store) -> anyhow::Result<Option<[u8; 32]>> {
    let key = engine::settings::keys::DIGEST_SECRET;
    Ok(store
        .setting::<String>(None, key)
        .await?
        .and_then(|hex| hex::decode(hex.trim()).ok())
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok()))
}

/// Unexpired registrations, as bindings (unreadable rows are skipped with a warning).
pub async fn bindings(store: &Store, now: SystemTime) -> anyhow::Result<Vec<Binding>> {
    let cutoff: chrono::DateTime<chrono::Utc> = now.into();
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let page = store
            .list_bindings(store::Page {
                limit: 5000,
                offset,
            })
            .await?;
        let n = page.len();
        for r in page {
            if r.expires_at <= cutoff {
                continue;
            }
            let (Ok(contact), Ok(received)) = (
                r.contact_uri.parse::<Uri>(),
                r.received_addr.parse::<SocketAddr>(),
            ) else {
                warn!(contact = %r.contact_uri, "stored registration unreadable: skipped");
                continue;
            };
            out.push(Binding {
                tenant_id: r.tenant_id,
                extension_id: r.extension_id,
                aor: r.aor,
                contact_uri: r.contact_uri,
                contact,
                expires_at: SystemTime::from(r.expires_at),
                q: r.q,
                call_id: r.call_id,
                cseq: u32::try_from(r.cseq).unwrap_or(0),
                user_agent: r.user_agent,
                received,
                transport: Transport::parse(r.transport.as_str()).unwrap_or(Transport::Udp),
                local: r.local_addr.parse().unwrap_or(received),
                instance_id: r.instance_id,
                reg_id: r.reg_id,
                behind_nat: false,
                flags: r.flags,
                ping: Ping {
                    failures: 0,
                    txn: None,
                    next: Instant::now(),
                },
            });
        }
        if n < 5000 {
            return Ok(out);
        }
        offset += 5000;
    }
}

fn store_transport(t: Transport) -> store::Transport {
    match t {
        Transport::Tcp => store::Transport::Tcp,
        Transport::Tls => store::Transport::Tls,
        Transport::Ws | Transport::Wss => store::Transport::Ws,
        _ => store::Transport::Udp,
    }
}

/// The database row of a binding.
pub fn binding_row(b: &Binding, node: &str, now: SystemTime) -> store::BindingUpsert {
    store::BindingUpsert {
        tenant_id: b.tenant_id,
        extension_id: b.extension_id,
        aor: b.aor.clone(),
        contact_uri: b.contact_uri.clone(),
        expires_at: b.expires_at.into(),
        q: b.q,
        call_id: b.call_id.clone(),
        cseq: i64::from(b.cseq),
        user_agent: b.user_agent.clone(),
        received_addr: b.received.to_string(),
        transport: store_transport(b.transport),
        local_addr: b.local.to_string(),
        instance_id: b.instance_id.clone(),
        reg_id: b.reg_id,
        node: node.to_string(),
        flags: b.flags,
        now: now.into(),
    }
}

/// The database row of a call record.
pub fn cdr_row(c: CdrRecord) -> store::NewCdr {
    let stats = |s: LegStats| store::LegStats {
        pkts_rx: s.pkts_rx,
        pkts_tx: s.pkts_tx,
        lost: s.lost,
        jitter_ms: s.jitter_ms,
    };
    store::NewCdr {
        tenant_id: c.tenant_id,
        call_id: c.call_id,
        caller: c.caller,
        callee: c.callee,
        caller_name: c.caller_name,
        start_time: c.start_time.into(),
        answer_time: c.answer_time.map(Into::into),
        end_time: c.end_time.into(),
        duration_s: c.duration_s,
        billsec: c.billsec,
        disposition: match c.disposition {
            Disposition::Answered => store::Disposition::Answered,
            Disposition::NoAnswer => store::Disposition::NoAnswer,
            Disposition::Busy => store::Disposition::Busy,
            Disposition::Failed => store::Disposition::Failed,
            Disposition::Canceled => store::Disposition::Canceled,
        },
        hangup_by: match c.hangup_by {
            HangupBy::Caller => store::HangupBy::Caller,
            HangupBy::Callee => store::HangupBy::Callee,
            HangupBy::System => store::HangupBy::System,
        },
        hangup_cause: c.hangup_cause,
        codec: c.codec,
        a: stats(c.a),
        b: stats(c.b),
        route: store::CdrRoute {
            direction: match c.route.direction {
                Direction::Internal => store::Direction::Internal,
                Direction::Inbound => store::Direction::Inbound,
                Direction::Outbound => store::Direction::Outbound,
            },
            trunk: c.route.trunk,
            did: c.route.did,
            dialled: c.route.dialled,
            sent_number: c.route.sent_number,
            caller_id: c.route.caller_id,
        },
    }
}

/// IVR menus of every tenant, as call control needs them.
pub async fn apps(store: &Store) -> anyhow::Result<engine::config::Apps> {
    let menus = store
        .all_ivrs()
        .await?
        .into_iter()
        .map(|m| engine::config::IvrEntry {
            tenant: m.tenant_id,
            name: m.name,
            number: m.number,
            spec: m.spec,
        })
        .collect();
    let rooms = store
        .all_confs()
        .await?
        .into_iter()
        .map(|r| (r.tenant_id, r.number, r.spec))
        .collect();
    let mut apps = engine::config::Apps::with_rooms(menus, rooms);
    apps.hunt = hunt(store, &mut apps.numbers).await?;
    page_groups(store, &mut apps).await?;
    apps.vm_boxes = store
        .all_vm_boxes()
        .await?
        .into_iter()
        .map(|b| {
            let entry = engine::vm::VmBoxEntry {
                spec: b.spec,
                has_pin: b.has_pin,
            };
            ((b.tenant_id, b.number), entry)
        })
        .collect();
    apps.vm_counts = store.all_vm_counts().await?.into_iter().collect();
    Ok(apps)
}

/// Ring groups and per-extension forwarding; each group's number joins the application
/// numbers.
pub async fn hunt(
    store: &Store,
    numbers: &mut std::collections::HashMap<(i64, String), engine::dialplan::Destination>,
) -> anyhow::Result<engine::hunt::HuntConfig> {
    let mut h = engine::hunt::HuntConfig::default();
    for g in store.all_groups().await? {
        if !g.number.is_empty() {
            numbers.insert(
                (g.tenant_id, g.number.clone()),
                engine::dialplan::Destination::Group(g.name.clone()),
            );
        }
        h.groups.insert(
            (g.tenant_id, g.name.clone()),
            engine::hunt::GroupEntry {
                id: g.id,
                name: g.name,
                number: g.number,
                spec: g.spec,
                last: g.last_member,
            },
        );
    }
    h.forwarding = store.all_forwarding().await?.into_iter().collect();
    Ok(h)
}

/// Page groups; each group's number joins the application numbers.
pub async fn page_groups(store: &Store, apps: &mut engine::config::Apps) -> anyhow::Result<()> {
    for r in store.all_page_groups().await? {
        if !r.number.is_empty() {
            let dest = engine::dialplan::Destination::Page(r.name.clone());
            apps.numbers.insert((r.tenant_id, r.number), dest);
        }
        apps.pages.insert((r.tenant_id, r.name), r.group);
    }
    Ok(())
}

/// Media statistics of one relay leg, as the call record keeps them.
pub fn leg_stats(s: &media::LegStats) -> LegStats {
    LegStats {
        pkts_rx: s.packets_rx as i64,
        pkts_tx: s.packets_tx as i64,
        lost: s.lost as i64,
        jitter_ms: s.jitter_ms,
    }
}

/// The whole configuration snapshot the engine decides with (tenants, extensions, settings), as
/// `denwa route test` needs it without a running server.
pub async fn snapshot(store: &Store) -> anyhow::Result<engine::Snapshot> {
    Ok(engine::Snapshot {
        tenants: tenants(store).await?,
        extensions: extensions(store).await?,
        settings: settings(store).await,
        outside: outside_with(store, None).await?,
        apps: apps(store).await?,
        codes: crate::codes_load::load(store).await?,
    })
}

/// A call's transfer events as the store keeps them (numbered in order).
pub fn cdr_events(events: Vec<engine::transfer::TransferEvent>) -> Vec<store::CdrEvent> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| store::CdrEvent {
            seq: i64::try_from(i).unwrap_or(i64::MAX),
            at: e.at.into(),
            kind: e.kind.to_string(),
            by: e.by,
            party: e.party,
            target: e.to,
            status: i64::from(e.status),
        })
        .collect()
}
