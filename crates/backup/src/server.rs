//! The backup server: an HTTPS listener (its own self-signed certificate) that pairs nodes with
//! one-time codes, receives their backups, verifies each (whole-file checksum, then every member
//! against the manifest and every table row), keeps the newest N generations, imports their call
//! records into this node's database for the reports, and serves them back for a restore.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use chrono::{TimeDelta, Utc};
use futures_util::TryStreamExt;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use store::Store;
use store::backupsrv::{Generation, NewGeneration};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::Gate;
use crate::proto::{
    self, ErrorBody, GenerationInfo, NAME_HEADER, PairRequest, PairResponse, SHA_HEADER,
};
use crate::tls::Identity;

/// How long a pairing code lives.
pub const CODE_TTL: TimeDelta = TimeDelta::minutes(15);
/// Default largest upload.
pub const DEFAULT_MAX_UPLOAD: u64 = 16 << 30;
/// Connections served at once (more wait in the kernel's backlog).
const MAX_CONNECTIONS: usize = 32;
/// TLS handshake limit.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests refused for want of a valid token or pairing proof (since start).
static UNAUTHORIZED: AtomicU64 = AtomicU64::new(0);

/// Requests refused as unauthenticated since this process started.
pub fn unauthorized_total() -> u64 {
    UNAUTHORIZED.load(Ordering::Relaxed)
}

/// How the backup server runs.
#[derive(Clone)]
pub struct Config {
    /// This node's database (pairings, generations, imported call records).
    pub store: Store,
    /// `DATA_DIR/backup-server`: `tls/` (identity) and `generations/` (archives).
    pub dir: PathBuf,
    /// This node's name, told to paired nodes.
    pub name: String,
    /// Whether the licence allows serving (topology `standalone-backup`).
    pub gate: Gate,
    /// Largest upload accepted, in bytes.
    pub max_upload: u64,
}

/// The backup server's directory in a data dir.
pub fn dir_in(data_dir: &Path) -> PathBuf {
    data_dir.join("backup-server")
}

/// The identity directory under the server directory.
pub fn tls_dir(dir: &Path) -> PathBuf {
    dir.join("tls")
}

struct Srv {
    cfg: Config,
    gens: PathBuf,
    fingerprint: String,
    /// One upload is verified and imported at a time (bounds disk and CPU).
    upload: tokio::sync::Mutex<()>,
}

/// Makes a one-time pairing code (shown once; only its proof key's hash is kept).
pub async fn create_code(store: &Store) -> Result<(String, chrono::DateTime<Utc>)> {
    let code = proto::new_code(rand::random());
    let key = proto::code_key(&proto::normalize_code(&code).unwrap_or_default());
    let now = Utc::now();
    let until = now + CODE_TTL;
    store
        .create_pair_code(&hex::encode(key), now, until)
        .await?;
    Ok((code, until))
}

/// Binds `listen` and serves until the task is aborted; returns the bound address, the
/// certificate fingerprint, and the task.
pub async fn start(
    listen: SocketAddr,
    cfg: Config,
) -> Result<(SocketAddr, String, tokio::task::JoinHandle<()>)> {
    let id = Identity::load_or_create(&tls_dir(&cfg.dir))?;
    let gens = cfg.dir.join("generations");
    std::fs::create_dir_all(&gens).with_context(|| format!("creating {}", gens.display()))?;
    clean_incoming(&gens);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(id.server_config()?));
    let l = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the backup server on {listen}"))?;
    let addr = l.local_addr()?;
    let fingerprint = id.fingerprint.clone();
    let srv = Arc::new(Srv {
        cfg,
        gens,
        fingerprint: fingerprint.clone(),
        upload: tokio::sync::Mutex::new(()),
    });
    let app = router(srv);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let task = tokio::spawn(async move {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let (tcp, peer) = match l.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "backup server: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "backup server: TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let svc = hyper_util::service::TowerToHyperService::new(app);
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30))
                    .serve_connection(TokioIo::new(tls), svc)
                    .await
                {
                    tracing::debug!(%peer, error = %e, "backup server: connection ended");
                }
            });
        }
    });
    Ok((addr, fingerprint, task))
}

/// Leftovers of uploads cut off by a crash.
fn clean_incoming(gens: &Path) {
    if let Ok(rd) = std::fs::read_dir(gens) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(".incoming-") {
                let p = e.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
    }
}

fn router(srv: Arc<Srv>) -> Router {
    let max = usize::try_from(srv.cfg.max_upload).unwrap_or(usize::MAX);
    Router::new()
        .route("/backup/v1/hello", get(hello))
        .route(
            "/backup/v1/pair",
            post(pair).layer(DefaultBodyLimit::max(4096)),
        )
        .route(
            "/backup/v1/generations",
            get(list).put(upload).layer(DefaultBodyLimit::max(max)),
        )
        .route("/backup/v1/generations/{id}", get(download))
        .with_state(srv)
}

fn err(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: code.to_string(),
        message: message.into(),
    };
    (status, axum::Json(body)).into_response()
}

fn unauthorized(msg: &str) -> Response {
    UNAUTHORIZED.fetch_add(1, Ordering::Relaxed);
    err(StatusCode::UNAUTHORIZED, "unauthorized", msg)
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "backup server error");
    err(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
}

async fn hello(State(s): State<Arc<Srv>>) -> Response {
    axum::Json(serde_json::json!({ "service": "denwa-backup", "name": s.cfg.name })).into_response()
}

async fn pair(State(s): State<Arc<Srv>>, body: Bytes) -> Response {
    if let Err(why) = (s.cfg.gate)() {
        return err(StatusCode::FORBIDDEN, "licence", why);
    }
    let Ok(req) = serde_json::from_slice::<PairRequest>(&body) else {
        return err(StatusCode::BAD_REQUEST, "invalid", "not a pairing request");
    };
    if req.name.is_empty()
        || req.name.len() > 100
        || req.node_id.is_empty()
        || req.node_id.len() > 100
        || req.proof.len() != 64
    {
        return err(
            StatusCode::BAD_REQUEST,
            "invalid",
            "bad pairing request fields",
        );
    }
    let now = Utc::now();
    let codes = match s.cfg.store.live_pair_codes(now).await {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    for hash in codes {
        let Ok(bytes) = hex::decode(&hash) else {
            continue;
        };
        let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) else {
            continue;
        };
        if !proto::same(
            &req.proof,
            &proto::client_proof(&key, &s.fingerprint, &req.node_id),
        ) {
            continue;
        }
        let token = proto::new_token(rand::random());
        return match s
            .cfg
            .store
            .pair_peer(
                &hash,
                &req.name,
                &req.node_id,
                &proto::sha256_hex(token.as_bytes()),
                now,
            )
            .await
        {
            Ok(Some(id)) => {
                tracing::info!(peer = id, name = %req.name, node = %req.node_id, "node paired");
                axum::Json(PairResponse {
                    proof: proto::server_proof(&key, &s.fingerprint, &token),
                    token,
                    server_name: s.cfg.name.clone(),
                })
                .into_response()
            }
            Ok(None) => unauthorized("the pairing code was used or expired meanwhile"),
            Err(store::Error::Invalid { reason, .. }) => {
                err(StatusCode::CONFLICT, "too_many_peers", reason)
            }
            Err(e) => internal(e),
        };
    }
    tracing::warn!(name = %req.name, "pairing refused: no live code matches");
    unauthorized("wrong or expired pairing code (or a certificate in between)")
}

/// The paired node presenting a valid bearer token.
async fn peer(s: &Srv, headers: &HeaderMap) -> Result<store::backupsrv::Peer, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| t.len() == 64);
    let Some(token) = token else {
        return Err(unauthorized("this node is not paired (no token)"));
    };
    match s
        .cfg
        .store
        .peer_by_token(&proto::sha256_hex(token.as_bytes()), Utc::now())
        .await
    {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(unauthorized(
            "this node is not paired (unknown or revoked token)",
        )),
        Err(e) => Err(internal(e)),
    }
}

fn info(g: &Generation) -> GenerationInfo {
    GenerationInfo {
        id: g.id,
        source: g.source.clone(),
        received_at: g.received_at.to_rfc3339(),
        created_at: g.created_at.map(|t| t.to_rfc3339()),
        size: g.size,
        sha256: g.sha256.clone(),
        status: g.status.clone(),
        detail: g.detail.clone(),
    }
}

async fn list(State(s): State<Arc<Srv>>, headers: HeaderMap) -> Response {
    if let Err(r) = peer(&s, &headers).await {
        return r;
    }
    match s.cfg.store.list_generations(true, 1000).await {
        Ok(g) => axum::Json(g.iter().map(info).collect::<Vec<_>>()).into_response(),
        Err(e) => internal(e),
    }
}

async fn download(
    State(s): State<Arc<Srv>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<i64>,
) -> Response {
    if let Err(r) = peer(&s, &headers).await {
        return r;
    }
    let g = match s.cfg.store.generation(id).await {
        Ok(Some(g)) if g.status == "ok" && !g.file.is_empty() => g,
        Ok(_) => {
            return err(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no generation {id}"),
            );
        }
        Err(e) => return internal(e),
    };
    let path = s.gens.join(&g.file);
    let f = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => return internal(format!("{}: {e}", path.display())),
    };
    (
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (header::CONTENT_LENGTH, g.size.to_string()),
            (
                header::HeaderName::from_static(SHA_HEADER),
                g.sha256.clone(),
            ),
        ],
        Body::from_stream(crate::file_chunks(f)),
    )
        .into_response()
}

/// Why an upload was refused: the answer's status and code, and the reason recorded.
struct Refused(StatusCode, &'static str, String);

fn disk_full(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(28) || e.kind() == std::io::ErrorKind::StorageFull
}

fn io_refusal(what: &str, e: std::io::Error) -> Refused {
    if disk_full(&e) {
        Refused(
            StatusCode::INSUFFICIENT_STORAGE,
            "disk_full",
            format!("the backup server's disk is full ({what})"),
        )
    } else {
        Refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "io",
            format!("{what}: {e}"),
        )
    }
}

async fn upload(State(s): State<Arc<Srv>>, req: Request) -> Response {
    let headers = req.headers().clone();
    let p = match peer(&s, &headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(why) = (s.cfg.gate)() {
        return err(StatusCode::FORBIDDEN, "licence", why);
    }
    let claimed = headers
        .get(SHA_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    let Some(claimed) = claimed else {
        return err(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("the {SHA_HEADER} header (SHA-256 of the archive, hex) is required"),
        );
    };
    let source = headers
        .get(NAME_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|n| n.chars().take(100).collect::<String>())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| p.name.clone());
    let _one = s.upload.lock().await;
    let mut g = NewGeneration {
        peer_id: Some(p.id),
        source,
        sha256: claimed.clone(),
        ..Default::default()
    };
    let outcome = receive(&s, req.into_body(), &claimed, &mut g).await;
    let now = Utc::now();
    match outcome {
        Ok(()) => {
            g.ok = true;
            let id = match s.cfg.store.add_generation(g.clone(), now).await {
                Ok(id) => id,
                Err(e) => {
                    let _ = std::fs::remove_file(s.gens.join(&g.file));
                    return internal(e);
                }
            };
            prune(&s).await;
            let store = s.cfg.store.clone();
            tokio::spawn(async move {
                let tz = crate::client::report_zone(&store).await;
                if let Err(e) = store.aggregate_reports(tz.name(), 5_000, None).await {
                    tracing::warn!(error = %e, "reports after an import");
                }
            });
            tracing::info!(
                generation = id,
                size = g.size,
                cdrs = g.cdrs_imported,
                "backup received and verified"
            );
            match s.cfg.store.generation(id).await {
                Ok(Some(row)) => (StatusCode::CREATED, axum::Json(info(&row))).into_response(),
                Ok(None) => internal("the generation vanished"),
                Err(e) => internal(e),
            }
        }
        Err(Refused(status, code, reason)) => {
            tracing::warn!(source = %g.source, %reason, "backup upload refused");
            g.ok = false;
            g.detail = reason.clone();
            g.file.clear();
            if let Err(e) = s.cfg.store.add_generation(g, now).await {
                tracing::warn!(error = %e, "recording a refused upload");
            }
            // Keeps the list of refusals bounded however often a paired node fails.
            prune(&s).await;
            err(status, code, reason)
        }
    }
}

/// Streams the body to a temporary file, checks it, imports its call records, and moves it
/// into place; fills `g`.
async fn receive(s: &Srv, body: Body, claimed: &str, g: &mut NewGeneration) -> Result<(), Refused> {
    let work = tempfile::Builder::new()
        .prefix(".incoming-")
        .tempdir_in(&s.gens)
        .map_err(|e| io_refusal("temporary directory", e))?;
    let file = work.path().join("upload.tar");
    let mut f = tokio::fs::File::create(&file)
        .await
        .map_err(|e| io_refusal("creating the upload file", e))?;
    let mut h = Sha256::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    loop {
        let chunk = match stream.try_next().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                g.size = size as i64;
                let too_large = e.to_string().contains("length limit");
                return Err(if too_large {
                    Refused(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too_large",
                        format!("the upload exceeds {} bytes", s.cfg.max_upload),
                    )
                } else {
                    Refused(
                        StatusCode::BAD_REQUEST,
                        "corrupt",
                        format!("the transfer broke off after {size} bytes: {e}"),
                    )
                });
            }
        };
        size += chunk.len() as u64;
        if size > s.cfg.max_upload {
            g.size = size as i64;
            return Err(Refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the upload exceeds {} bytes", s.cfg.max_upload),
            ));
        }
        h.update(&chunk);
        f.write_all(&chunk)
            .await
            .map_err(|e| io_refusal("writing the upload", e))?;
    }
    f.sync_all()
        .await
        .map_err(|e| io_refusal("writing the upload", e))?;
    drop(f);
    g.size = size as i64;
    let got = hex::encode(h.finalize());
    if !proto::same(&got, claimed) {
        return Err(Refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "corrupt",
            format!("corrupt transfer: SHA-256 {got} is not the {claimed} sent"),
        ));
    }
    let scratch = work.path().join("x");
    let (arch, dir) = (file.clone(), scratch.clone());
    let m = tokio::task::spawn_blocking(move || store::backup::verify_into(&arch, &dir))
        .await
        .map_err(|e| Refused(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(|e| match e {
            store::Error::Io { source, .. } if disk_full(&source) => {
                io_refusal("verifying", source)
            }
            e => Refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "corrupt",
                format!("the archive failed verification: {e}"),
            ),
        })?;
    g.created_at = Some(m.created_at);
    g.schema_version = Some(m.schema_version);
    g.entries = m.entries.len() as i64;
    let files = m
        .entries
        .iter()
        .filter(|e| e.path.starts_with("files/"))
        .count();
    match s
        .cfg
        .store
        .import_backup_cdrs(&scratch, m.schema_version)
        .await
    {
        Ok(o) => {
            g.cdrs_imported = o.imported as i64;
            g.detail = format!(
                "verified: {} members ({files} files), {} call records imported{}",
                g.entries,
                o.imported,
                if o.rewound {
                    " (ids went back: compared all)"
                } else {
                    ""
                }
            );
        }
        Err(e) => {
            // The backup itself is good: keep it, and say the reports could not use it.
            tracing::warn!(error = %e, "importing call records for the reports");
            g.detail = format!("verified; call records not imported: {e}");
        }
    }
    let name = format!(
        "gen-{}-{}.tar",
        Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        hex::encode(rand::random::<[u8; 4]>())
    );
    std::fs::rename(&file, s.gens.join(&name)).map_err(|e| io_refusal("keeping the upload", e))?;
    g.file = name;
    Ok(())
}

async fn prune(s: &Srv) {
    let keep = match s.cfg.store.backup_server_state().await {
        Ok(st) => st.keep,
        Err(e) => {
            tracing::warn!(error = %e, "reading how many generations to keep");
            return;
        }
    };
    match s.cfg.store.prune_generations(keep).await {
        Ok(files) => {
            for f in files.iter().filter(|f| !f.is_empty()) {
                if let Err(e) = std::fs::remove_file(s.gens.join(f)) {
                    tracing::warn!(file = %f, error = %e, "removing an old generation");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "pruning generations"),
    }
}
