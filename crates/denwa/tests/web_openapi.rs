//! `/api/v1` against its own OpenAPI document, with schemathesis (from PyPI) generating requests
//! from the document against a running `denwa serve`: no server errors, only documented status
//! codes and content types, and every response body matching its schema.
//! Needs `tests/openapi/.venv` (scripts/test-deps.sh creates it). Also `/healthz` and
//! `/metrics` of the running server, which see the SIP core through `web::CallControl`.

mod common;

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::Command;

use common::Denwa;

fn schemathesis() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/openapi/.venv/bin/schemathesis");
    assert!(
        p.exists(),
        "schemathesis is missing at {}: run scripts/test-deps.sh",
        p.display()
    );
    p
}

#[test]
fn api_matches_its_openapi_document() {
    let st = schemathesis();
    let d = Denwa::start();
    // A full-scope key, made directly in the server's database (as an operator's panel would).
    let db = d.data_dir().join(store::SQLITE_FILE);
    let token = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let s = store::Store::open(
                db.to_str().expect("utf-8 path"),
                store::OpenOptions::default(),
            )
            .await
            .expect("open the server's database");
            let (_, token) = s
                .create_api_key(None, "schemathesis", store::ApiScope::Full)
                .await
                .expect("API key");
            s.close().await;
            token
        });
    let base = format!("http://127.0.0.1:{}/api/v1", d.http_port);
    let out = Command::new(st)
        .args(["run", &format!("{base}/openapi.json"), "--url", &base])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        // Bounded: a fixed number of examples per operation, a fixed seed.
        .args(["--max-examples", "25", "--seed", "1", "--phases", "examples,coverage,fuzzing"])
        // These would lock the generator out (deleting its own key) or replace the database.
        .args(["--exclude-path", "/backup/restore", "--exclude-path-regex", "^/(admins|api-keys)"])
        .env("NO_COLOR", "1")
        // It writes a `.schemathesis/` cache into its working directory: keep that out of the tree.
        .current_dir(d.data_dir())
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        d.print_logs();
        panic!("schemathesis found problems (see above)");
    }
}

/// A plain HTTP/1.0 GET on the server's listener: the whole response as text.
fn http_get(port: u16, path: &str) -> String {
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect HTTP");
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    write!(c, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("send");
    let mut out = String::new();
    c.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn healthz_and_metrics_of_a_running_server_see_the_sip_core() {
    let d = Denwa::start();
    let h = http_get(d.http_port, "/healthz");
    assert!(h.starts_with("HTTP/1.0 200"), "{h}");
    assert!(h.contains("\"sip_core\":\"running\""), "{h}");
    assert!(h.contains(&d.sip_addr()), "{h}");
    let m = http_get(d.http_port, "/metrics");
    assert!(m.contains("\ndenwa_sip_core_up 1\n"), "{m}");
    assert!(m.contains("denwa_sip_requests_received_total"), "{m}");
    assert!(m.contains("\ndenwa_media_endpoints 0\n"), "{m}");
    assert!(m.contains("denwa_media_late_ticks_total"), "{m}");
}
