//! The PBX side: pairing, shipping a backup, listing and fetching generations, and the
//! scheduler task that ships on the daily slot and retries failures.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use chrono::Utc;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Gate;
use crate::proto::{
    self, ErrorBody, GenerationInfo, NAME_HEADER, PairRequest, PairResponse, SHA_HEADER,
};
use crate::schedule::{self, Plan};
use crate::tls::{Pin, SERVER_NAME};

/// The default port of the backup server's HTTPS listener.
pub const DEFAULT_PORT: u16 = 8443;
/// Connect and TLS handshake limit.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A response must start within this: the server verifies an upload and imports its call
/// records before answering (measured: 200,000 records verify in 1.6 s and import in 9 s, so a
/// first upload of a year's 5 million takes a few minutes).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1800);
/// Largest archive fetched for a restore.
const MAX_DOWNLOAD: u64 = crate::server::DEFAULT_MAX_UPLOAD;
/// Largest error or JSON answer read.
const MAX_SMALL_BODY: usize = 1 << 20;
/// How often the scheduler looks at the clock and the shipping row.
pub const POLL: Duration = Duration::from_secs(2);

type Body = BoxBody<Bytes, std::io::Error>;

/// `host:port`, `https://host[:port][/]` → `https://host:port`.
pub fn normalize_url(s: &str) -> Result<String> {
    let s = s.trim();
    let rest = s.strip_prefix("https://").unwrap_or(s);
    if rest.contains("://") {
        bail!("the backup server address must be https://HOST[:PORT] or HOST[:PORT]");
    }
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains('@') || rest.contains(' ') {
        bail!("{s:?} is not a server address (HOST[:PORT])");
    }
    let has_port = if rest.starts_with('[') {
        rest.contains("]:")
    } else {
        rest.contains(':')
    };
    Ok(if has_port {
        let (_, p) = rest.rsplit_once(':').unwrap_or(("", ""));
        p.parse::<u16>()
            .map_err(|_| anyhow!("{p:?} is not a port number"))?;
        format!("https://{rest}")
    } else {
        format!("https://{rest}:{DEFAULT_PORT}")
    })
}

fn host_port(url: &str) -> &str {
    url.strip_prefix("https://").unwrap_or(url)
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

fn json_body(v: &impl serde::Serialize) -> Result<Body> {
    Ok(Full::new(Bytes::from(serde_json::to_vec(v)?))
        .map_err(|never| match never {})
        .boxed())
}

/// Sends one request on a new TLS connection verified by `pin`.
async fn send(url: &str, pin: &Arc<Pin>, req: Request<Body>) -> Result<Response<Incoming>> {
    let addr = host_port(url).to_string();
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr))
        .await
        .map_err(|_| anyhow!("backup server {addr} unreachable: no answer in 10 s"))?
        .with_context(|| format!("backup server {addr} unreachable"))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(pin.client_config()?));
    let name = rustls::pki_types::ServerName::try_from(SERVER_NAME)?.to_owned();
    let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
        .await
        .map_err(|_| anyhow!("backup server {addr}: TLS handshake timed out"))?
        .with_context(|| format!("backup server {addr}: TLS"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "backup connection ended");
        }
    });
    let resp = tokio::time::timeout(RESPONSE_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| anyhow!("backup server {addr}: no answer"))?
        .with_context(|| format!("backup server {addr}"))?;
    Ok(resp)
}

async fn small_body(resp: Response<Incoming>) -> Result<(StatusCode, Bytes)> {
    let status = resp.status();
    let limited = http_body_util::Limited::new(resp.into_body(), MAX_SMALL_BODY);
    let b = limited
        .collect()
        .await
        .map_err(|e| anyhow!("reading the answer: {e}"))?
        .to_bytes();
    Ok((status, b))
}

fn refusal(status: StatusCode, body: &[u8]) -> anyhow::Error {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => anyhow!(
            "backup server refused ({status}, {}): {}",
            e.error,
            e.message
        ),
        Err(_) => anyhow!("backup server answered {status}"),
    }
}

/// Pairs this node with the backup server at `address` using the one-time `code`; remembers
/// the server's certificate fingerprint and the token. Returns the server's name.
pub async fn pair(
    store: &Store,
    address: &str,
    code: &str,
    node_id: &str,
    node_name: &str,
) -> Result<String> {
    let url = normalize_url(address)?;
    let code = proto::normalize_code(code)
        .ok_or_else(|| anyhow!("that is not a pairing code (16 letters and digits)"))?;
    let key = proto::code_key(&code);
    let pin = Pin::new(None);
    // The proof needs the fingerprint, which the handshake reveals: connect once to learn it.
    let probe = Request::get("/backup/v1/hello")
        .header("host", SERVER_NAME)
        .body(empty())?;
    let _ = small_body(send(&url, &pin, probe).await?).await?;
    let fp = pin
        .seen()
        .ok_or_else(|| anyhow!("the server showed no certificate"))?;
    let pin = Pin::new(Some(fp.clone()));
    let req = PairRequest {
        node_id: node_id.to_string(),
        name: node_name.to_string(),
        proof: proto::client_proof(&key, &fp, node_id),
    };
    let r = Request::post("/backup/v1/pair")
        .header("host", SERVER_NAME)
        .header("content-type", "application/json")
        .body(json_body(&req)?)?;
    let (status, body) = small_body(send(&url, &pin, r).await?).await?;
    if !status.is_success() {
        return Err(refusal(status, &body));
    }
    let resp: PairResponse =
        serde_json::from_slice(&body).context("the pairing answer is not understood")?;
    if !proto::same(&resp.proof, &proto::server_proof(&key, &fp, &resp.token)) {
        bail!("the server could not prove it knows the code: not paired (wrong server?)");
    }
    store
        .set_ship_pairing(&url, &fp, &resp.token, &resp.server_name, Utc::now())
        .await?;
    Ok(resp.server_name)
}

struct Paired {
    url: String,
    fingerprint: String,
    pin: Arc<Pin>,
    token: String,
}

async fn paired(store: &Store) -> Result<Paired> {
    let st = store.ship_state().await?;
    if !st.paired() {
        bail!(
            "not paired with a backup server: pair first (panel Backup server, or `denwa backup pair`)"
        );
    }
    Ok(Paired {
        url: st.url,
        pin: Pin::new(Some(st.fingerprint.clone())),
        fingerprint: st.fingerprint,
        token: st.token,
    })
}

async fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).await?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex::encode(h.finalize())))
}

fn file_body(f: tokio::fs::File) -> Body {
    use futures_util::StreamExt;
    let frames = crate::file_chunks(f).map(|r| r.map(Frame::data));
    BodyExt::boxed(StreamBody::new(frames))
}

/// Uploads the archive at `path` (test helpers use this to send a damaged file too).
pub async fn upload_file(
    url: &str,
    fingerprint: &str,
    token: &str,
    node_name: &str,
    path: &Path,
    claimed_sha256: Option<&str>,
) -> Result<GenerationInfo> {
    let (size, sha) = hash_file(path).await?;
    let pin = Pin::new(Some(fingerprint.to_string()));
    let req = Request::put("/backup/v1/generations")
        .header("host", SERVER_NAME)
        .header("authorization", format!("Bearer {token}"))
        .header(SHA_HEADER, claimed_sha256.unwrap_or(&sha))
        .header(NAME_HEADER, node_name)
        .header("content-type", "application/x-tar")
        .header("content-length", size)
        .body(file_body(tokio::fs::File::open(path).await?))?;
    let (status, body) = small_body(send(url, &pin, req).await?).await?;
    if !status.is_success() {
        return Err(refusal(status, &body));
    }
    Ok(serde_json::from_slice(&body)?)
}

/// Makes a backup of this node and ships it; records the outcome (success or reason) for the
/// panel, the scheduler's retries and `/metrics`.
pub async fn ship(store: &Store, data_dir: &Path, node_name: &str) -> Result<GenerationInfo> {
    let res = ship_once(store, data_dir, node_name).await;
    let now = Utc::now();
    let rec = match &res {
        Ok(g) => store.record_ship_attempt(now, Ok(g.size)).await,
        Err(e) => store.record_ship_attempt(now, Err(&format!("{e:#}"))).await,
    };
    if let Err(e) = rec {
        tracing::warn!(error = %e, "could not record the backup shipping outcome");
    }
    res
}

async fn ship_once(store: &Store, data_dir: &Path, node_name: &str) -> Result<GenerationInfo> {
    let p = paired(store).await?;
    std::fs::create_dir_all(data_dir)?;
    // In the data dir: as large as the data, and /tmp may be small.
    let tmp = tempfile::Builder::new()
        .prefix(".ship-")
        .tempdir_in(data_dir)
        .with_context(|| format!("temporary directory in {}", data_dir.display()))?;
    let path = tmp.path().join("backup.tar");
    store::backup::create(store, data_dir, &path)
        .await
        .context("making the backup")?;
    upload_file(&p.url, &p.fingerprint, &p.token, node_name, &path, None).await
}

/// The generations the backup server keeps, newest first.
pub async fn generations(store: &Store) -> Result<Vec<GenerationInfo>> {
    let p = paired(store).await?;
    let req = Request::get("/backup/v1/generations")
        .header("host", SERVER_NAME)
        .header("authorization", format!("Bearer {}", p.token))
        .body(empty())?;
    let (status, body) = small_body(send(&p.url, &p.pin, req).await?).await?;
    if !status.is_success() {
        return Err(refusal(status, &body));
    }
    Ok(serde_json::from_slice(&body)?)
}

/// Fetches generation `id` from the backup server, checks it, and restores it into this node
/// (database and data-dir files); nothing changes when anything is wrong.
pub async fn restore_remote(
    store: &Store,
    data_dir: &Path,
    id: i64,
) -> Result<store::backup::Manifest> {
    let p = paired(store).await?;
    std::fs::create_dir_all(data_dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(".fetch-")
        .tempdir_in(data_dir)?;
    let path = tmp.path().join("backup.tar");
    let req = Request::get(format!("/backup/v1/generations/{id}"))
        .header("host", SERVER_NAME)
        .header("authorization", format!("Bearer {}", p.token))
        .body(empty())?;
    let resp = send(&p.url, &p.pin, req).await?;
    let status = resp.status();
    if !status.is_success() {
        let (s, b) = small_body(resp).await?;
        return Err(refusal(s, &b));
    }
    let want = resp
        .headers()
        .get(SHA_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the server sent no checksum"))?;
    let mut body = resp.into_body();
    let mut f = tokio::fs::File::create(&path).await?;
    let mut h = Sha256::new();
    let mut size = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.context("the transfer broke off")?;
        if let Ok(data) = frame.into_data() {
            size += data.len() as u64;
            if size > MAX_DOWNLOAD {
                bail!("generation {id} is larger than {MAX_DOWNLOAD} bytes; nothing was changed");
            }
            h.update(&data);
            f.write_all(&data).await?;
        }
    }
    f.flush().await?;
    f.sync_all().await?;
    drop(f);
    let got = hex::encode(h.finalize());
    if !proto::same(&got, &want) {
        bail!("generation {id} arrived damaged (checksum mismatch); nothing was changed");
    }
    let m = store::backup::restore(store, data_dir, &path).await?;
    Ok(m)
}

/// The decision inputs from the shipping row.
pub fn plan_of(st: &store::backupsrv::ShipState) -> Plan {
    Plan {
        paired: st.paired(),
        paired_at: st.paired_at,
        daily_at: schedule::parse_daily_at(&st.daily_at).ok().flatten(),
        last_attempt_at: st.last_attempt_at,
        last_success_at: st.last_success_at,
        failures: st.failures,
    }
}

/// The zone of the `reports.timezone` setting (UTC when unset or unknown).
pub async fn report_zone(store: &Store) -> chrono_tz::Tz {
    store
        .setting::<String>(None, engine::settings::keys::REPORTS_TIMEZONE)
        .await
        .ok()
        .flatten()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(chrono_tz::UTC)
}

/// Ships on the daily slot (in the report time zone) and retries failures with backoff, while
/// `gate` allows it (the licence's topology). Runs until aborted.
pub fn spawn_scheduler(
    store: Store,
    data_dir: PathBuf,
    node_name: String,
    gate: Gate,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut told = false;
        loop {
            tokio::time::sleep(POLL).await;
            let st = match store.ship_state().await {
                Ok(st) => st,
                Err(e) => {
                    tracing::warn!(error = %e, "backup scheduler: reading the shipping state");
                    continue;
                }
            };
            let tz = report_zone(&store).await;
            if !schedule::due(Utc::now(), tz, &plan_of(&st)) {
                continue;
            }
            if let Err(why) = gate() {
                if !told {
                    tracing::warn!(reason = %why, "scheduled backup not shipped");
                    told = true;
                }
                continue;
            }
            told = false;
            match ship(&store, &data_dir, &node_name).await {
                Ok(g) => tracing::info!(generation = g.id, size = g.size, "backup shipped"),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "backup shipping failed; will retry")
                }
            }
        }
    })
}
