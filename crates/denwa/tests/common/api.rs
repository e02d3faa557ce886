//! The REST API from an e2e test: a key made in the server's database, and `curl` GETs.

use super::Denwa;

/// A full-scope API key made in the server's database (as the panel would).
pub fn api_token(d: &Denwa) -> String {
    let db = d.data_dir().join(store::SQLITE_FILE);
    tokio::runtime::Builder::new_current_thread()
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
                .create_api_key(None, "e2e", store::ApiScope::Full)
                .await
                .expect("API key");
            s.close().await;
            token
        })
}

/// `GET /api/v1{path}` with `token`: the JSON body (`Null` when there is none).
pub fn api_get(d: &Denwa, token: &str, path: &str) -> serde_json::Value {
    let out = std::process::Command::new("curl")
        .args(["-s", "-m", "10"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("http://127.0.0.1:{}/api/v1{path}", d.http_port))
        .output()
        .expect("curl");
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}
