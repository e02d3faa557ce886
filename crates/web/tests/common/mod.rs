//! Test harness: a real store (SQLite in a temp dir) and a fake call control (no SIP sockets, no
//! media relay), with the web router driven in-process through tower's `oneshot`.

#![allow(dead_code)]

pub mod browser;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;
use web::control::{BoxFuture, CallControl, CallState, CallSummary};

/// Call control as a test wants it: calls are whatever the test put in, hang-ups remove them,
/// the core is alive until the test says otherwise.
pub struct FakeControl {
    pub calls: Mutex<Vec<CallSummary>>,
    pub alive: AtomicBool,
    pub hangups: Mutex<Vec<u64>>,
    /// Transfers asked for: (call, number). `FORBIDDEN_NUMBER` is refused with 403.
    pub transfers: Mutex<Vec<(u64, String)>>,
    /// What `subscriptions` answers (filtered by tenant).
    pub subs: Mutex<Vec<web::engine::subs_list::SubscriptionInfo>>,
    /// Transfers that named the party they move (also in `transfers`).
    pub moved: Mutex<Vec<(u64, String, web::engine::xfer_party::Party)>>,
    /// What `trunk_statuses` answers (empty: the core reports no trunks).
    pub trunks: Mutex<Vec<web::engine::TrunkStatus>>,
    /// The active/standby driver, when a test makes this node clustered.
    pub cluster: std::sync::OnceLock<FakeCluster>,
    /// Conference rooms in progress; hang-ups and mutes act on them too.
    pub confs: Mutex<Vec<web::engine::control::ConfSummary>>,
    /// What `parked_calls` answers.
    pub parked: Mutex<Vec<web::engine::park::ParkedCall>>,
}

/// An active/standby driver as a test wants it: the report is whatever the test put in; a
/// switchover is refused with `refusal` when set, else counted.
pub struct FakeCluster {
    pub report: Mutex<ha::report::ClusterReport>,
    pub refusal: Mutex<Option<String>>,
    pub switchovers: std::sync::atomic::AtomicUsize,
}

impl web::cluster::ClusterControl for FakeCluster {
    fn report(&self) -> ha::report::ClusterReport {
        self.report.lock().unwrap().clone()
    }

    fn switchover(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if let Some(r) = self.refusal.lock().unwrap().clone() {
                return Err(r);
            }
            self.switchovers.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

impl FakeControl {
    pub fn new() -> FakeControl {
        FakeControl {
            calls: Mutex::new(Vec::new()),
            alive: AtomicBool::new(true),
            hangups: Mutex::new(Vec::new()),
            transfers: Mutex::new(Vec::new()),
            moved: Mutex::new(Vec::new()),
            subs: Mutex::new(Vec::new()),
            trunks: Mutex::new(Vec::new()),
            cluster: std::sync::OnceLock::new(),
            confs: Mutex::new(Vec::new()),
            parked: Mutex::new(Vec::new()),
        }
    }

    /// Puts call `call` from `caller` into `tenant`'s conference room `number`.
    pub fn join_conf(&self, tenant: i64, number: &str, call: u64, caller: &str) {
        let member = web::engine::control::ConfMember {
            call,
            caller: caller.into(),
            caller_name: String::new(),
            muted: false,
            duration_s: 5,
            joined_at_s: 1_790_000_000 + call,
        };
        let mut confs = self.confs.lock().unwrap();
        match confs
            .iter_mut()
            .find(|c| c.tenant_id == tenant && c.number == number)
        {
            Some(c) => c.members.push(member),
            None => confs.push(web::engine::control::ConfSummary {
                tenant_id: tenant,
                number: number.into(),
                members: vec![member],
            }),
        }
    }

    /// Adds a call in progress.
    pub fn add_call(&self, id: u64, caller: &str, callee: &str, state: CallState) {
        self.calls.lock().unwrap().push(CallSummary {
            id,
            call_id: format!("call-{id}@test"),
            caller: caller.into(),
            callee: callee.into(),
            state,
            duration_s: 12,
            codec: if state == CallState::Up {
                "PCMU".into()
            } else {
                String::new()
            },
            tenant_id: 1,
            parties: if state == CallState::Up {
                vec![caller.into(), callee.into()]
            } else {
                Vec::new()
            },
        });
    }

    /// Makes the core report itself dead (or alive again).
    pub fn set_alive(&self, alive: bool) {
        self.alive.store(alive, Ordering::SeqCst);
    }
}

/// The number the fake's transfers refuse (class of service).
pub const FORBIDDEN_NUMBER: &str = "0044123456";

/// The SIP address the fake reports.
pub const FAKE_SIP: &str = "127.0.0.1:5060";

/// A metric the fake renders, so tests can see `/metrics` passes the core's text through.
pub const FAKE_METRIC: &str = "denwa_sip_requests_received_total{method=\"INVITE\"} 7";

impl CallControl for FakeControl {
    fn sip_addrs(&self) -> Vec<SocketAddr> {
        vec![FAKE_SIP.parse().unwrap()]
    }

    fn calls(&self) -> BoxFuture<'_, Vec<CallSummary>> {
        Box::pin(async move { self.calls.lock().unwrap().clone() })
    }

    fn hangup(&self, id: u64) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            self.hangups.lock().unwrap().push(id);
            let mut in_conf = false;
            for c in self.confs.lock().unwrap().iter_mut() {
                let before = c.members.len();
                c.members.retain(|m| m.call != id);
                in_conf |= c.members.len() != before;
            }
            let mut calls = self.calls.lock().unwrap();
            let before = calls.len();
            calls.retain(|c| c.id != id);
            calls.len() != before || in_conf
        })
    }

    fn conferences(&self) -> BoxFuture<'_, Vec<web::engine::control::ConfSummary>> {
        Box::pin(async move { self.confs.lock().unwrap().clone() })
    }

    fn conf_mute(&self, call: u64, muted: bool) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let mut confs = self.confs.lock().unwrap();
            let m = confs
                .iter_mut()
                .flat_map(|c| c.members.iter_mut())
                .find(|m| m.call == call);
            match m {
                Some(m) => {
                    m.muted = muted;
                    true
                }
                None => false,
            }
        })
    }

    fn transfer(
        &self,
        id: u64,
        to: String,
    ) -> BoxFuture<'_, Result<(), web::engine::transfer::TransferRefused>> {
        Box::pin(async move {
            let refuse = |status: u16, reason: &str| {
                Err(web::engine::transfer::TransferRefused {
                    status,
                    reason: reason.into(),
                })
            };
            match self.calls.lock().unwrap().iter().find(|c| c.id == id) {
                None => return refuse(404, "No such call"),
                Some(c) if c.state != CallState::Up => return refuse(409, "Call not answered"),
                Some(_) => {}
            }
            if to == FORBIDDEN_NUMBER {
                return refuse(
                    403,
                    "international calls not allowed (class of service mobile)",
                );
            }
            self.transfers.lock().unwrap().push((id, to));
            Ok(())
        })
    }

    fn subscriptions(
        &self,
        tenant: Option<i64>,
    ) -> BoxFuture<'_, Vec<web::engine::subs_list::SubscriptionInfo>> {
        Box::pin(async move {
            let all = self.subs.lock().unwrap().clone();
            all.into_iter()
                .filter(|s| tenant.is_none_or(|t| s.tenant_id == t))
                .collect()
        })
    }

    fn transfer_moving(
        &self,
        id: u64,
        to: String,
        moves: web::engine::xfer_party::Party,
    ) -> BoxFuture<'_, Result<(), web::engine::transfer::TransferRefused>> {
        Box::pin(async move {
            let r = self.transfer(id, to.clone()).await;
            if r.is_ok() {
                self.moved.lock().unwrap().push((id, to, moves));
            }
            r
        })
    }

    fn render_metrics(&self) -> String {
        format!(
            "# HELP denwa_sip_requests_received_total SIP requests.\n# TYPE denwa_sip_requests_received_total counter\n{FAKE_METRIC}\n"
        )
    }

    fn core_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    fn trunk_statuses(&self) -> Vec<web::engine::TrunkStatus> {
        self.trunks.lock().unwrap().clone()
    }

    fn parked_calls(&self, _tenant: i64) -> BoxFuture<'_, Vec<web::engine::park::ParkedCall>> {
        Box::pin(async move { self.parked.lock().unwrap().clone() })
    }

    fn cluster(&self) -> Option<&dyn web::cluster::ClusterControl> {
        self.cluster
            .get()
            .map(|c| c as &dyn web::cluster::ClusterControl)
    }
}

pub struct App {
    pub router: Router,
    pub web: web::Web,
    pub store: store::Store,
    pub control: Arc<FakeControl>,
    pub data: tempfile::TempDir,
    pub full: String,
    pub read: String,
}

pub async fn app() -> App {
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("denwa.db");
    let store = store::Store::open(db.to_str().unwrap(), store::OpenOptions::default())
        .await
        .unwrap();
    let control = Arc::new(FakeControl::new());
    let info = web::NodeInfo {
        node: "test".into(),
        data_dir: data.path().to_path_buf(),
        database: "sqlite".into(),
        ..Default::default()
    };
    let web = web::Web::new(control.clone(), store.clone(), Instant::now(), info);
    let (_, full) = store
        .create_api_key(None, "full", store::ApiScope::Full)
        .await
        .unwrap();
    let (_, read) = store
        .create_api_key(None, "read", store::ApiScope::Read)
        .await
        .unwrap();
    App {
        router: web::router(web.clone()),
        web,
        store,
        control,
        data,
        full,
        read,
    }
}

/// A response: status, headers, body bytes.
pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The stable error code of an API error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

impl App {
    pub async fn send(&self, req: Request<Body>) -> Resp {
        let r = self.router.clone().oneshot(req).await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    /// An API call with a key (or none) and an optional JSON body.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"));
        if let Some(k) = key {
            b = b.header(header::AUTHORIZATION, format!("Bearer {k}"));
        }
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        self.send(req).await
    }

    /// A raw API call (any body, any content type).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        key: &str,
        ctype: Option<&str>,
        body: Vec<u8>,
    ) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {key}"));
        if let Some(c) = ctype {
            b = b.header(header::CONTENT_TYPE, c);
        }
        self.send(b.body(Body::from(body)).unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self.api("GET", path, Some(&self.full), None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
        r.json()
    }
}
