//! Test harness: a real store (SQLite in a temp dir) and a real PBX core on 127.0.0.1, with
//! the web router driven in-process through tower's `oneshot`.

#![allow(dead_code)]

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

pub struct App {
    pub router: Router,
    pub web: web::Web,
    pub store: store::Store,
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
    // Relay ports are only bound when a call needs them; these tests place no calls.
    let relay = media::Relay::new(media::RelayConfig {
        port_min: 41000,
        port_max: 41039,
        ..Default::default()
    });
    let pcfg = pbx::PbxConfig {
        sip_listen: vec!["127.0.0.1:0".parse().unwrap()],
        ..Default::default()
    };
    // Port 0 picks a free UDP port; TCP then needs the same number, which another test may
    // hold at that moment: try a few times.
    let mut attempt = 0;
    let pbx = loop {
        match pbx::start(pcfg.clone(), store.clone(), relay.clone()).await {
            Ok(p) => break p,
            Err(e) if attempt < 5 => {
                attempt += 1;
                eprintln!("pbx start failed ({e:#}), retrying");
            }
            Err(e) => panic!("pbx start: {e:#}"),
        }
    };
    let info = web::NodeInfo {
        node: "test".into(),
        data_dir: data.path().to_path_buf(),
        database: "sqlite".into(),
        ..Default::default()
    };
    let web = web::Web::new(pbx, store.clone(), Instant::now(), info);
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
