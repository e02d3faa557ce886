//! `denwa`: the Denwa IP-PBX binary — CLI, configuration and wiring (the commands are in
//! `cli`, the configuration layers in `config`, the HTTP listener in `http`).

mod backup_cmd;
mod cli;
mod cluster_cmd;
mod codes_cmd;
mod conf_cmd;
mod config;
mod custom_prompt_cmd;
mod group_cmd;
mod http;
mod ivr_cmd;
mod license_cmd;
mod outside_cmd;
mod page_cmd;
mod park_cmd;
mod prompt_cmd;
mod recording_cmd;
mod report_cmd;
mod vm_cmd;

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Parser;
use store::{NewExtension, Store};
use web::engine::{policy, settings};

use crate::cli::*;
use crate::config::{Config, Overrides};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("denwa: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("denwa: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn overrides(g: &Global, serve: Option<&ServeArgs>) -> Overrides {
    let mut o = Overrides {
        config: g.config.clone(),
        data_dir: g.data_dir.clone(),
        database_url: g.database_url.clone(),
        log_level: g.log_level.clone(),
        ..Default::default()
    };
    if let Some(s) = serve {
        o.sip_listen = s.sip_listen.clone();
        o.http_listen = s.http_listen.clone();
        o.rtp_ports = s.rtp_ports.clone();
        o.advertise = s.advertise.clone();
        o.node_name = s.node_name.clone();
        o.sip_t1_ms = s.sip_t1_ms;
        o.relay_threads = s.relay_threads;
    }
    o
}

/// Lets `serve` change the log filter once it has read the node settings from the database.
static LOG_FILTER: std::sync::OnceLock<
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>,
> = std::sync::OnceLock::new();

fn init_logging(level: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(ansi);
    if tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = LOG_FILTER.set(handle);
    }
}

fn set_log_level(level: &str) {
    if let (Some(h), Ok(f)) = (
        LOG_FILTER.get(),
        tracing_subscriber::EnvFilter::try_new(level),
    ) {
        let _ = h.reload(f);
    }
}

async fn open_store(cfg: &Config) -> Result<Store> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
    Store::open(&cfg.database_url, store::OpenOptions::default())
        .await
        .with_context(|| format!("opening database {}", redact(&cfg.database_url)))
}

/// Hides a password in a database URL for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((u, _)) => format!("{}{u}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The SIP password rules of `engine::policy`, exactly as the panel and the API apply them
/// (including: not containing the extension's number).
fn check_sip_password(number: &str, p: &str) -> Result<()> {
    policy::check_extension_password(number, p).map_err(anyhow::Error::new)
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let serve_args = match &cli.command {
        Command::Serve(a) => Some(a),
        _ => None,
    };
    let cfg = Config::load(&overrides(&cli.global, serve_args))?;
    match cli.command {
        Command::Serve(ref a) => {
            init_logging(&cfg.log_level);
            let backup_listen = a.backup_listen;
            let cluster = a.cluster.clone();
            serve(
                cfg,
                overrides(&cli.global, serve_args),
                backup_listen,
                cluster,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cluster(cmd) => {
            init_logging(cli.global.log_level.as_deref().unwrap_or("warn"));
            let ok = cluster_cmd::run(cmd, &cfg.data_dir, &mut std::io::stdout().lock()).await?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Sip(SipCmd::Lint { files, json }) => Ok(lint(&files, json)),
        // Run at install time (./scripts/run.sh), before any database exists.
        Command::Prompt(cmd) if prompt_cmd::needs_no_database(Some(&cmd), None) => {
            prompt_cmd::install_defaults(&cfg.data_dir, cmd, &mut std::io::stdout().lock())
        }
        Command::Moh(prompt_cmd::MohCmd::InstallDefault { force }) => {
            prompt_cmd::install_default_moh(&cfg.data_dir, force, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        other => {
            init_logging(cli.global.log_level.as_deref().unwrap_or("warn"));
            admin_command(&cfg, other).await
        }
    }
}

async fn admin_command(cfg: &Config, cmd: Command) -> Result<ExitCode> {
    if let Command::Db(DbCmd::Migrate) = cmd {
        std::fs::create_dir_all(&cfg.data_dir).ok();
        let applied = Store::migrate(&cfg.database_url).await?;
        if applied.is_empty() {
            println!("database is up to date");
        } else {
            println!("applied migrations: {applied:?}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Backup(BackupCmd::Verify { file }) = &cmd {
        let m = store::backup::verify(file).await?;
        println!(
            "{}: valid backup (schema {}, created {})",
            file.display(),
            m.schema_version,
            m.created_at
        );
        return Ok(ExitCode::SUCCESS);
    }
    let store = open_store(cfg).await?;
    let licensing = license_cmd::open(cfg)?;
    license_cmd::guard(&cmd, &store, &licensing).await?;
    let tenant = store.default_tenant().await?;
    let out = std::io::stdout();
    let mut out = out.lock();
    match cmd {
        Command::License(cmd) => license_cmd::run(cmd, &store, &licensing, &mut out).await?,
        Command::Report(cmd) => report_cmd::run(cmd, &store, &mut out).await?,
        Command::Prompt(cmd) => {
            prompt_cmd::run_prompt(&cfg.data_dir, &store, cmd, &mut out).await?
        }
        Command::Moh(cmd) => prompt_cmd::run_moh(&cfg.data_dir, &store, cmd, &mut out).await?,
        Command::Extension(ExtensionCmd::Add {
            number,
            password,
            name,
            language,
        }) => {
            let language = language.map(|l| prompt_cmd::cli_language(&l)).transpose()?;
            let generated = password.is_none();
            let password = password.unwrap_or_else(|| web::api::generate_password(&number));
            check_sip_password(&number, &password)?;
            let e = store
                .create_extension_capped(
                    tenant.id,
                    NewExtension {
                        number: number.clone(),
                        display_name: name.unwrap_or_default(),
                        password: Some(password.clone()),
                        ..Default::default()
                    },
                    // Re-checked in the insert's transaction (`guard` counted before).
                    licensing
                        .entitlement()
                        .limits()
                        .get(web::license::LimitKind::Extensions)
                        .map(u64::from),
                )
                .await?;
            if let Some(l) = language.filter(|l| !l.is_empty()) {
                let upd = store::ExtensionUpdate {
                    language: Some(l),
                    ..Default::default()
                };
                store.update_extension(tenant.id, &e.number, upd).await?;
            }
            if generated {
                writeln!(
                    out,
                    "extension {} added; SIP password: {password}",
                    e.number
                )?;
            } else {
                writeln!(out, "extension {} added", e.number)?;
            }
        }
        Command::Route(RouteCmd::Test {
            from,
            number,
            at,
            json,
        }) => {
            let explicit_at = at.is_some();
            let at = match at {
                Some(t) => chrono::DateTime::parse_from_rfc3339(t.trim())
                    .map_err(|e| {
                        anyhow::anyhow!("--at {t:?} is not an RFC 3339 time ({e}); e.g. 2026-12-24T18:30:00+09:00")
                    })?
                    .with_timezone(&chrono::Utc),
                None => chrono::Utc::now(),
            };
            let mut snap = pbx::load::snapshot(&store).await?;
            if explicit_at {
                // --at is the time the time conditions see (no test clock shift).
                snap.codes.clock_offset_s = 0;
            }
            if !snap.extensions.contains_key(&(tenant.id, from.clone())) {
                anyhow::bail!("no extension {from}");
            }
            let decision = engine::dialplan::route(
                &engine::dialplan::RouteRequest {
                    tenant: tenant.id,
                    caller: &from,
                    digits: &number,
                    at: at.into(),
                },
                &snap,
            );
            if json {
                let mut v = serde_json::to_value(&decision)?;
                if let Some(o) = v.as_object_mut()
                    && let engine::dialplan::Decision::Outside { .. } = &decision
                {
                    o.insert("destination".into(), "route".into());
                }
                if let (Some(o), engine::dialplan::Decision::Route { destination, .. }) =
                    (v.as_object_mut(), &decision)
                {
                    o.insert("destination".into(), destination.to_string().into());
                }
                if let Some(o) = v.as_object_mut() {
                    o.insert("from".into(), from.clone().into());
                    o.insert("number".into(), number.clone().into());
                    o.insert("at".into(), at.to_rfc3339().into());
                }
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                outside_cmd::print_decision(&mut out, &from, &number, &decision)?;
            }
        }
        Command::Route(cmd) => outside_cmd::route(cmd, &store, tenant.id, &mut out).await?,
        Command::Trunk(cmd) => outside_cmd::trunk(cmd, &store, tenant.id, &mut out).await?,
        Command::Did(cmd) => outside_cmd::did(cmd, &store, tenant.id, &mut out).await?,
        Command::Ivr(cmd) => ivr_cmd::run(cmd, &store, tenant.id, &mut out).await?,
        Command::Conf(cmd) => conf_cmd::run(cmd, &store, tenant.id, &mut out).await?,
        Command::Features(cmd) => codes_cmd::features(cmd, &store, tenant.id, &mut out).await?,
        Command::Timecond(cmd) => codes_cmd::timecond(cmd, &store, tenant.id, &mut out).await?,
        Command::Pickup(cmd) => codes_cmd::pickup(cmd, &store, tenant.id, &mut out).await?,
        Command::Park(cmd) => park_cmd::run(cmd, &store, tenant.id, &mut out).await?,
        Command::Group(cmd) => group_cmd::group(cmd, &store, tenant.id, &mut out).await?,
        Command::Page(cmd) => page_cmd::run(cmd, &store, tenant.id, &mut out).await?,
        Command::Forward(cmd) => group_cmd::forward(cmd, &store, tenant.id, &mut out).await?,
        Command::Dnd(a) => group_cmd::dnd(a, &store, tenant.id, &mut out).await?,
        Command::Voicemail(cmd) => {
            vm_cmd::run(cmd, &store, &cfg.data_dir, tenant.id, &mut out).await?
        }
        Command::Recording(cmd) => {
            recording_cmd::run(cmd, &store, &cfg.data_dir, tenant.id, &mut out).await?
        }
        Command::Outbound(cmd) => outside_cmd::outbound(cmd, &store, tenant.id, &mut out).await?,
        Command::Extension(ExtensionCmd::Edit {
            number,
            name,
            cos,
            outbound_cid,
            anonymous,
            max_outbound_calls,
            max_calls_per_hour,
            intl_minutes,
            enabled,
            language,
        }) => {
            if let Some(l) = language {
                let upd = store::ExtensionUpdate {
                    language: Some(prompt_cmd::cli_language(&l)?),
                    ..Default::default()
                };
                let e = store.update_extension(tenant.id, &number, upd).await?;
                let shown = if e.language.is_empty() {
                    "inherit"
                } else {
                    &e.language
                };
                writeln!(out, "extension {}: prompt language {shown}", e.number)?;
            }
            outside_cmd::extension_edit(
                &store,
                tenant.id,
                &number,
                name,
                cos,
                outbound_cid,
                anonymous,
                (max_outbound_calls, max_calls_per_hour, intl_minutes),
                enabled,
                &mut out,
            )
            .await?
        }
        Command::Extension(ExtensionCmd::List { json }) => {
            let mut all = Vec::new();
            let mut offset = 0;
            loop {
                let page = store
                    .list_extensions(
                        tenant.id,
                        None,
                        store::Page {
                            limit: 1000,
                            offset,
                        },
                    )
                    .await?;
                let n = page.len();
                all.extend(page);
                if n < 1000 {
                    break;
                }
                offset += 1000;
            }
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
            } else {
                writeln!(
                    out,
                    "{:<12} {:<24} {:<8} {:<8}",
                    "NUMBER", "NAME", "ENABLED", "CONTACTS"
                )?;
                for e in all {
                    writeln!(
                        out,
                        "{:<12} {:<24} {:<8} {:<8}",
                        e.number, e.display_name, e.enabled, e.max_contacts
                    )?;
                }
            }
        }
        Command::Extension(ExtensionCmd::Remove { number }) => {
            store.delete_extension(tenant.id, &number).await?;
            writeln!(out, "extension {number} removed")?;
        }
        Command::Extension(ExtensionCmd::Passwd { number, password }) => {
            let generated = password.is_none();
            let password = password.unwrap_or_else(|| web::api::generate_password(&number));
            check_sip_password(&number, &password)?;
            store
                .set_extension_password(tenant.id, &number, &password)
                .await?;
            if generated {
                writeln!(out, "extension {number}: new SIP password: {password}")?;
            } else {
                writeln!(out, "extension {number}: password changed")?;
            }
        }
        Command::Registration(RegistrationCmd::List { json }) => {
            let now = chrono::Utc::now();
            let mut all = Vec::new();
            let mut offset = 0;
            loop {
                let page = store
                    .list_bindings(store::Page {
                        limit: 1000,
                        offset,
                    })
                    .await?;
                let n = page.len();
                all.extend(page.into_iter().filter(|r| r.expires_at > now));
                if n < 1000 {
                    break;
                }
                offset += 1000;
            }
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
            } else {
                writeln!(
                    out,
                    "{:<28} {:<44} {:<22} {:<5} {:>7}  USER-AGENT",
                    "AOR", "CONTACT", "SOURCE", "PROTO", "EXPIRES"
                )?;
                for r in all {
                    let left = (r.expires_at - now).num_seconds();
                    writeln!(
                        out,
                        "{:<28} {:<44} {:<22} {:<5} {:>7}  {}",
                        r.aor,
                        r.contact_uri,
                        r.received_addr,
                        r.transport.as_str(),
                        left,
                        r.user_agent
                    )?;
                }
            }
        }
        Command::Cdr(CdrCmd::List {
            json,
            limit,
            direction,
            trunk,
            did,
        }) => {
            let direction = match direction {
                Some(d) => Some(d.to_ascii_lowercase().parse::<store::Direction>().map_err(
                    |_| anyhow::anyhow!("--direction: one of internal, inbound, outbound"),
                )?),
                None => None,
            };
            let q = store::CdrQuery {
                page: store::Page {
                    limit: i64::from(limit),
                    offset: 0,
                },
                direction,
                trunk,
                did,
                ..Default::default()
            };
            let rows = store.list_cdrs(&q).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
            } else {
                writeln!(
                    out,
                    "{:<20} {:<9} {:<12} {:<12} {:<10} {:>6} {:>7}  {:<7} {:<12} CAUSE",
                    "START",
                    "DIR",
                    "CALLER",
                    "CALLEE",
                    "RESULT",
                    "DUR",
                    "BILLSEC",
                    "CODEC",
                    "TRUNK"
                )?;
                for c in rows {
                    let r = &c.record;
                    writeln!(
                        out,
                        "{:<20} {:<9} {:<12} {:<12} {:<10} {:>6} {:>7}  {:<7} {:<12} {}",
                        r.start_time.format("%Y-%m-%d %H:%M:%S"),
                        r.route.direction.as_str(),
                        r.caller,
                        r.callee,
                        r.disposition.as_str(),
                        r.duration_s,
                        r.billsec,
                        r.codec,
                        if r.route.trunk.is_empty() {
                            "-"
                        } else {
                            &r.route.trunk
                        },
                        r.hangup_cause
                    )?;
                }
            }
        }
        Command::Admin(AdminCmd::Add {
            user,
            password,
            role,
        }) => {
            let role: store::AdminRole = role.parse()?;
            let generated = password.is_none();
            let password = password.unwrap_or_else(web::api::generate_admin_password);
            web::api::check_admin(&user, &password)?;
            store.create_admin(user.trim(), &password, role).await?;
            if generated {
                writeln!(out, "administrator {user} added; password: {password}")?;
            } else {
                writeln!(out, "administrator {user} added")?;
            }
        }
        Command::Setting(SettingCmd::List { json }) => {
            let mut rows = Vec::new();
            for s in settings::SPECS {
                let v: Option<serde_json::Value> = store.setting(None, s.key).await?;
                let shown = match &v {
                    Some(serde_json::Value::String(x)) => x.clone(),
                    Some(x) => x.to_string(),
                    None => s.default.to_string(),
                };
                rows.push(serde_json::json!({
                    "key": s.key, "value": shown, "default": s.default.to_json(), "set": v.is_some(),
                    "applies": if s.restart_required { "after restart" } else { "at once" }, "help": s.help,
                }));
            }
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
            } else {
                for r in rows {
                    writeln!(
                        out,
                        "{:<28} {:<12} ({}) {}",
                        r["key"].as_str().unwrap_or(""),
                        r["value"].as_str().unwrap_or(""),
                        r["applies"].as_str().unwrap_or(""),
                        r["help"].as_str().unwrap_or("")
                    )?;
                }
            }
        }
        Command::Setting(SettingCmd::Set {
            key,
            value,
            tenant: true,
        }) => {
            tenant_setting_key(&key)?;
            let v = settings::parse(&key, &value).map_err(anyhow::Error::msg)?;
            store.set_setting(Some(tenant.id), &key, &v).await?;
            writeln!(out, "{key} = {v} for tenant {}", tenant.name)?;
        }
        Command::Setting(SettingCmd::Unset { key, tenant: true }) => {
            tenant_setting_key(&key)?;
            store.delete_setting(Some(tenant.id), &key).await?;
            writeln!(
                out,
                "{key} of tenant {} back to the node's value",
                tenant.name
            )?;
        }
        Command::Setting(SettingCmd::Set { key, value, .. }) => {
            let v = settings::parse(&key, &value).map_err(anyhow::Error::msg)?;
            store.set_setting(None, &key, &v).await?;
            let live = settings::spec(&key).is_some_and(|s| !s.restart_required);
            writeln!(
                out,
                "{key} = {v}{}",
                if live {
                    ""
                } else {
                    " (applies after a restart of denwa serve)"
                }
            )?;
        }
        Command::Setting(SettingCmd::Unset { key, .. }) => {
            if settings::spec(&key).is_none() {
                bail!("unknown setting {key:?}");
            }
            store.delete_setting(None, &key).await?;
            writeln!(out, "{key} back to its default")?;
        }
        Command::Backup(BackupCmd::Create { file }) => {
            let m = store::backup::create(&store, &cfg.data_dir, &file).await?;
            writeln!(
                out,
                "backup written to {} ({} entries, schema {})",
                file.display(),
                m.entries.len(),
                m.schema_version
            )?;
        }
        Command::Backup(BackupCmd::Restore { file }) => {
            let m = store::backup::restore(&store, &cfg.data_dir, &file).await?;
            writeln!(
                out,
                "restored backup of {} (schema {})",
                m.created_at, m.schema_version
            )?;
        }
        Command::Backup(cmd) => {
            backup_cmd::run(cmd, cfg, &store, &licensing, &mut out).await?;
        }
        Command::Serve(_) | Command::Cluster(_) | Command::Sip(_) | Command::Db(_) => {}
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

fn lint(files: &[std::path::PathBuf], json: bool) -> ExitCode {
    let mut all_ok = true;
    let mut reports = Vec::new();
    for f in files {
        let report = match std::fs::read(f) {
            Ok(data) => sip::lint(&data),
            Err(e) => {
                eprintln!("{}: cannot read: {e}", f.display());
                all_ok = false;
                continue;
            }
        };
        all_ok &= report.valid;
        if json {
            reports.push(serde_json::json!({ "file": f.display().to_string(), "report": report }));
        } else {
            println!("{}: {report}", f.display());
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(reports));
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn serve(
    mut cfg: Config,
    o: Overrides,
    backup_listen: Option<std::net::SocketAddr>,
    cluster: Option<std::path::PathBuf>,
) -> Result<()> {
    if let Some(file) = &cluster {
        cluster_cmd::start_local_postgres(file).await?;
    }
    let store = open_store(&cfg).await?;
    if cluster.is_some() {
        // The pair's shared SIP digest secret is made (if it is missing) before the fence is
        // up, as a standalone start does; from then on nothing writes until the cluster driver
        // grants an epoch (store::fence).
        pbx::load::digest_secret(&store).await?;
        store.fence().enable();
    }
    let licensing = license_cmd::start(&cfg)?;
    let cluster_cfg = match &cluster {
        Some(file) => {
            let mut c = cluster_cmd::prepare(file, &licensing)?;
            c.data_dir = Some(cfg.data_dir.clone());
            Some(c)
        }
        None => None,
    };
    // What a crash left behind (recordings marked running, old scratch files); on a cluster
    // node it runs when the node becomes active (pbx::cluster_epoch), since the peer may be
    // recording into the same database.
    if cluster_cfg.is_none() {
        pbx::stale::at_start(&store, &cfg.data_dir).await;
    }
    // Node settings saved from the panel/API/CLI override the configuration file (flags and
    // DENWA_* variables still win).
    let mut saved = config::NodeSettings::default();
    for (key, slot) in [
        (settings::keys::NODE_SIP_LISTEN, &mut saved.sip_listen),
        (settings::keys::NODE_ADVERTISE, &mut saved.advertise),
        (settings::keys::NODE_RTP_PORTS, &mut saved.rtp_ports),
        (settings::keys::NODE_LOG_LEVEL, &mut saved.log_level),
    ] {
        *slot = store
            .setting::<String>(None, key)
            .await?
            .filter(|v| !v.trim().is_empty());
    }
    let applied = cfg
        .apply_saved(&o, &saved)
        .context("node settings saved in the database")?;
    if applied.contains(&"log_level") {
        set_log_level(&cfg.log_level);
    }
    if !applied.is_empty() {
        tracing::info!(settings = ?applied, "node settings from the database applied");
    }
    let media_timeout = settings::effective_int(
        settings::keys::MEDIA_TIMEOUT,
        store
            .setting::<u64>(None, settings::keys::MEDIA_TIMEOUT)
            .await
            .ok()
            .flatten(),
    );
    let relay = media::Relay::new(media::RelayConfig {
        port_min: cfg.rtp_ports.0,
        port_max: cfg.rtp_ports.1,
        media_timeout: std::time::Duration::from_secs(media_timeout),
        workers: cfg.relay_threads.unwrap_or(0),
        ..Default::default()
    });
    let mut pcfg = pbx::PbxConfig {
        sip_listen: cfg.sip_listen.clone(),
        advertise: cfg.advertise,
        node_name: cfg.node_name.clone(),
        data_dir: cfg.data_dir.clone(),
        media_timeout: std::time::Duration::from_secs(media_timeout),
        transport: cfg.transport.clone(),
        ..Default::default()
    };
    if let Some(ms) = cfg.sip_t1_ms {
        let t1 = std::time::Duration::from_millis(ms);
        // T2 and T4 keep their RFC 3261 ratios to T1 (4 s and 5 s at the default 500 ms), and
        // Timer J stays at T4.
        pcfg.timers.t1 = t1;
        pcfg.timers.t2 = t1 * 8;
        pcfg.timers.t4 = t1 * 10;
        pcfg.timers.d = (t1 * 64).max(std::time::Duration::from_secs(1));
        pcfg.timers.j = pcfg.timers.t4;
    }
    if let Some(c) = &cluster_cfg {
        cluster_cmd::extend_listen(&mut pcfg, c);
        pcfg.clustered = true;
    }
    let relay_threads = relay.workers();
    let pbx = pbx::start(pcfg, store.clone(), relay).await?;
    let cluster = match cluster_cfg {
        Some(c) => {
            let cl = pbx::cluster::Cluster::start(c, pbx.clone(), store.clone()).await?;
            let control = cl
                .clone()
                .serve_control(cluster_cmd::control_socket(&cfg.data_dir));
            tokio::spawn(async move {
                if let Err(e) = control.await {
                    tracing::error!(error = %format!("{e:#}"), "`denwa cluster` will not reach this server");
                }
            });
            Some(cl)
        }
        None => None,
    };
    let http = http::bind(cfg.http_listen).await?;
    let http_addr = http.local_addr()?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        sip = ?pbx.sip_addrs(),
        http = %http_addr,
        rtp = ?cfg.rtp_ports,
        relay_threads,
        database = %redact(&cfg.database_url),
        backend = store.backend().as_str(),
        "denwa serving"
    );
    let gate = backup_cmd::gate(&licensing);
    let backup_server = match backup_listen {
        Some(addr) => Some(backup_cmd::start_server(addr, &cfg, &store, gate.clone()).await?),
        None => None,
    };
    let shipper = backup::client::spawn_scheduler(
        store.clone(),
        cfg.data_dir.clone(),
        cfg.node_name.clone(),
        gate,
    );
    let started = std::time::Instant::now();
    let state = http::State {
        pbx: pbx.clone(),
        store: store.clone(),
        started,
        config: cfg.clone(),
        licensing,
        backup_listen: backup_server.as_ref().map(|b| b.0),
        cluster: cluster.clone(),
    };
    // A clustered node serves HTTP on its application addresses too (bound with IP_FREEBIND,
    // answering there only while it holds them): API clients need not know which node is active.
    let mut extra_http = Vec::new();
    if let Some(c) = &cluster {
        for a in &c.report().app_addrs {
            let Some(ip) = a
                .split('/')
                .next()
                .and_then(|s| s.parse::<std::net::IpAddr>().ok())
            else {
                continue;
            };
            let at = std::net::SocketAddr::new(ip, http_addr.port());
            if at == http_addr {
                continue;
            }
            let l = pbx::transport::freebind_tcp_listener(at)
                .and_then(tokio::net::TcpListener::from_std)
                .with_context(|| format!("binding HTTP on the application address {at}"))?;
            extra_http.push(l);
        }
    }
    let server = tokio::spawn(http::serve_also(http, extra_http, state));
    let reports = report_cmd::spawn_periodic(store.clone());
    wait_for_signal().await;
    reports.abort();
    shipper.abort();
    if let Some((_, t)) = backup_server {
        t.abort();
    }
    tracing::info!("shutting down: ending calls");
    if let Some(c) = &cluster {
        c.stop().await;
    }
    pbx.shutdown().await;
    server.abort();
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Refuses a key a tenant may not override (`denwa setting set|unset --tenant`).
fn tenant_setting_key(key: &str) -> anyhow::Result<()> {
    if engine::tenant_settings::TENANT_KEYS.contains(&key) {
        Ok(())
    } else {
        bail!(
            "{key:?} is not a setting a tenant may override (those are: {})",
            engine::tenant_settings::TENANT_KEYS.join(", ")
        )
    }
}
