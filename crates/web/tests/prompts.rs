//! Prompts and music on hold through the REST API and the panel: upload (converted by the real
//! sox), list, play/download, reset; refusals carry the reason next to the file field.

mod common;

use std::process::Command;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::browser::{csrf, signed_in};
use common::{App, Resp, app};

const BOUNDARY: &str = "denwa-test-boundary";

/// A multipart body with text fields and one `file` field.
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut b = Vec::new();
    for (k, v) in fields {
        b.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    if let Some((name, bytes)) = file {
        b.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        b.extend_from_slice(bytes);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    b
}

fn ctype() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// A 1.5 s tone at 44.1 kHz stereo, in the format the extension names, made by sox.
fn tone_file(ext: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join(format!("tone.{ext}"));
    let st = Command::new("sox")
        .args(["-n", "-r", "44100", "-c", "2"])
        .arg(&p)
        .args(["synth", "1.5", "sine", "600", "vol", "0.5"])
        .status()
        .expect("run sox");
    assert!(st.success());
    std::fs::read(&p).expect("read")
}

/// A multipart API request.
async fn api_form(
    a: &App,
    key: &str,
    method: &str,
    path: &str,
    fields: &[(&str, &str)],
    file: Option<(&str, &[u8])>,
) -> Resp {
    a.raw(method, path, key, Some(&ctype()), multipart(fields, file))
        .await
}

async fn api_upload(
    a: &App,
    key: &str,
    method: &str,
    path: &str,
    name: &str,
    bytes: &[u8],
) -> Resp {
    api_form(a, key, method, path, &[], Some((name, bytes))).await
}

#[tokio::test]
async fn api_upload_list_play_and_reset() {
    let a = app().await;
    // Nothing installed yet: listed, but missing.
    let l = a.get("/prompts?lang=ja").await;
    let n = l["total"].as_u64().expect("total");
    assert_eq!(n as usize, apps::prompt::CATALOGUE.len());
    let first = &l["items"][0];
    assert_eq!(first["lang"], "ja");
    assert_eq!(first["source"], "missing");
    assert_eq!(first["present"], false);
    assert_eq!(a.get("/prompts").await["total"].as_u64(), Some(2 * n));
    let r = a.api("GET", "/prompts?lang=fr", Some(&a.full), None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());

    // Upload a 44.1 kHz stereo WAV: stored as 16 kHz mono, listed as uploaded.
    let wav = tone_file("wav");
    let r = api_upload(
        &a,
        &a.full,
        "PUT",
        "/prompts/ja/vm-enter-pin",
        "pin.wav",
        &wav,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["source"], "uploaded");
    assert_eq!(j["lang"], "ja");
    assert!(
        (j["duration_s"].as_f64().expect("duration") - 1.5).abs() < 0.05,
        "{j}"
    );
    let one = a.get("/prompts/ja/vm-enter-pin").await;
    assert_eq!(one["source"], "uploaded");

    let r = a
        .api("GET", "/prompts/ja/vm-enter-pin/audio", Some(&a.read), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "audio/wav");
    assert!(
        r.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("inline")
    );
    let w = media::wav::parse(&r.body).expect("16-bit mono WAV");
    assert_eq!(w.sample_rate, 16_000);
    assert!((w.samples.len() as i64 - 24_000).abs() < 200);
    let r = a
        .api(
            "GET",
            "/prompts/ja/vm-enter-pin/audio?download=1",
            Some(&a.read),
            None,
        )
        .await;
    assert!(
        r.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );

    // An MP3 too (format from the bytes).
    let mp3 = tone_file("mp3");
    let r = api_upload(&a, &a.full, "PUT", "/prompts/en/goodbye", "bye.bin", &mp3).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // Refusals: garbage (422 with the reason, field file), no file, read scope, unknown id.
    let r = api_upload(
        &a,
        &a.full,
        "PUT",
        "/prompts/en/goodbye",
        "x.wav",
        b"hello, not audio",
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let e = r.json();
    assert_eq!(e["error"]["field"], "file");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("not a recognised audio file"),
        "{e}"
    );
    let r = api_form(
        &a,
        &a.full,
        "PUT",
        "/prompts/en/goodbye",
        &[("x", "y")],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.json()["error"]["message"],
        "no audio file in the `file` field"
    );
    let r = api_upload(&a, &a.read, "PUT", "/prompts/en/goodbye", "bye.wav", &wav).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api_upload(&a, &a.full, "PUT", "/prompts/en/no-such", "bye.wav", &wav).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = api_upload(&a, &a.full, "PUT", "/prompts/fr/goodbye", "bye.wav", &wav).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Bounded: a body past the limit is refused before it is converted.
    let huge = vec![0u8; web::api::prompts::MAX_UPLOAD_BODY + 1];
    let r = api_upload(&a, &a.full, "PUT", "/prompts/en/goodbye", "big.wav", &huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.text());
    assert_eq!(r.code(), "too_large");
    // Not multipart at all: a JSON error.
    let r = a
        .raw(
            "PUT",
            "/prompts/en/goodbye",
            &a.full,
            Some("text/plain"),
            b"x".to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "bad_request");
    // The earlier upload is untouched by the refused one.
    assert_eq!(a.get("/prompts/en/goodbye").await["source"], "uploaded");

    // Reset: back to "missing" here (no defaults installed), a second reset is 404.
    let r = a
        .api("DELETE", "/prompts/ja/vm-enter-pin", Some(&a.full), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["source"], "missing");
    let r = a
        .api("DELETE", "/prompts/ja/vm-enter-pin", Some(&a.full), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a
        .api("GET", "/prompts/ja/vm-enter-pin/audio", Some(&a.full), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn api_music_on_hold_classes() {
    let a = app().await;
    apps::moh::install_default(a.data.path(), false).expect("default class");
    let l = a.get("/moh").await;
    assert_eq!(l["total"], 1);
    assert_eq!(l["items"][0]["name"], "default");
    assert_eq!(l["items"][0]["scope"], "default");

    let flac = tone_file("flac");
    let r = api_form(
        &a,
        &a.full,
        "POST",
        "/moh/jazz",
        &[("name", "Take Five")],
        Some(("t5.flac", &flac)),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["name"], "take-five.wav");
    let l = a.get("/moh").await;
    assert_eq!(l["total"], 2);
    assert_eq!(l["items"][1]["name"], "jazz");
    assert_eq!(l["items"][1]["files"][0]["name"], "take-five.wav");
    let r = a
        .api("GET", "/moh/jazz/take-five.wav/audio", Some(&a.read), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(media::wav::parse(&r.body).is_ok());
    let r = a
        .api(
            "GET",
            "/moh/default/denwa-default.wav/audio",
            Some(&a.read),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let r = api_form(
        &a,
        &a.full,
        "POST",
        "/moh/Bad%20Class",
        &[],
        Some(("a.flac", &flac)),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let r = api_form(
        &a,
        &a.full,
        "POST",
        "/moh/jazz",
        &[],
        Some(("a.wav", b"RIFF....WAVEjunk")),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not be decoded")
    );

    let r = a
        .api("DELETE", "/moh/jazz/take-five.wav", Some(&a.full), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["removed"], 1);
    let r = a.api("DELETE", "/moh/jazz", Some(&a.full), None).await;
    assert_eq!(r.status, StatusCode::OK);
    // The installed class cannot be deleted through the API.
    let r = a.api("DELETE", "/moh/default", Some(&a.full), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(a.get("/moh").await["total"], 1);
}

async fn panel_upload(
    b: &mut common::browser::Browser<'_>,
    path: &str,
    fields: &[(&str, &str)],
    file: (&str, &[u8]),
) -> Resp {
    b.send(
        Request::post(path).header(header::CONTENT_TYPE, ctype()),
        Body::from(multipart(fields, Some(file))),
    )
    .await
}

#[tokio::test]
async fn panel_prompts_and_music_on_hold_pages() {
    let a = app().await;
    let mut b = signed_in(&a, "admin", store::AdminRole::Admin).await;
    b.lang = Some("ja");
    let p = b.get("/prompts?lang=ja").await;
    assert_eq!(p.status, StatusCode::OK);
    let page = p.text();
    assert!(page.contains("音声ガイダンス"), "{page}");
    assert!(page.contains("id=\"p-vm-enter-pin\""));
    assert!(page.contains("暗証番号を入力し"), "Japanese catalogue text");
    assert!(page.contains("id=\"prompts-missing\""));
    let token = csrf(&page);

    // A refused file: 422, the reason next to that row's file field.
    let r = panel_upload(
        &mut b,
        "/prompts/upload",
        &[("csrf", &token), ("lang", "ja"), ("id", "vm-enter-pin")],
        ("junk.mp3", b"definitely not audio"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let t = r.text();
    let row = &t[t.find("id=\"p-vm-enter-pin\"").expect("row")..];
    let row = &row[..row.find("</tr>").expect("end of row")];
    assert!(row.contains("id=\"upload-error\""), "{row}");
    assert!(row.contains("not a recognised audio file"), "{row}");

    // A good one: redirected back, row says uploaded, with a player.
    let wav = tone_file("wav");
    let r = panel_upload(
        &mut b,
        "/prompts/upload",
        &[("csrf", &token), ("lang", "ja"), ("id", "vm-enter-pin")],
        ("pin.wav", &wav),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let p = b.get("/prompts?lang=ja&saved=vm-enter-pin").await.text();
    assert!(p.contains("id=\"prompt-saved\""));
    let row = &p[p.find("id=\"p-vm-enter-pin\"").expect("row")..];
    let row = &row[..row.find("</tr>").expect("end")];
    assert!(row.contains("data-source=\"uploaded\""), "{row}");
    assert!(
        row.contains("<audio controls preload=\"none\" src=\"/prompts/audio/ja/vm-enter-pin\""),
        "{row}"
    );
    let r = b.get("/prompts/audio/ja/vm-enter-pin").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "audio/wav");

    // A bad CSRF token changes nothing.
    let r = b
        .post(
            "/prompts/reset",
            &[("csrf", "x"), ("lang", "ja"), ("id", "vm-enter-pin")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = b
        .post(
            "/prompts/reset",
            &[("csrf", &token), ("lang", "ja"), ("id", "vm-enter-pin")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        !apps::prompt_files::tenant_path(a.data.path(), 1, apps::prompt::Lang::Ja, "vm-enter-pin")
            .exists()
    );

    // Music on hold.
    apps::moh::install_default(a.data.path(), false).expect("default class");
    let m = b.get("/moh").await.text();
    assert!(m.contains("保留音"), "{m}");
    assert!(m.contains("id=\"moh-default\""));
    assert!(m.contains("/moh/audio/default/denwa-default.wav"));
    let r = panel_upload(
        &mut b,
        "/moh/upload",
        &[("csrf", &token), ("class", "lobby")],
        ("Lobby Song.wav", &wav),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let t = r.text();
    assert!(t.contains("id=\"moh-added\""), "{t}");
    assert!(t.contains("id=\"moh-lobby\""));
    let r = panel_upload(
        &mut b,
        "/moh/upload",
        &[("csrf", &token), ("class", "lobby")],
        ("x.wav", b"nope"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("id=\"upload-error\""));
    let r = b
        .post("/moh/delete", &[("csrf", &token), ("class", "lobby")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!b.get("/moh").await.text().contains("id=\"moh-lobby\""));

    // A viewer sees the pages but no upload forms.
    let mut v = signed_in(&a, "viewer", store::AdminRole::Viewer).await;
    let p = v.get("/prompts").await.text();
    assert!(!p.contains("action=\"/prompts/upload\""));
}
