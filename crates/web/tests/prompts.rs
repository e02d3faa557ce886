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

/// An extension (so it has a mailbox) and an IVR menu `main` whose greeting is `greeting`.
async fn menu_with_greeting(a: &App, greeting: &str) {
    a.store
        .create_extension(
            1,
            store::NewExtension {
                number: "1001".into(),
                ..Default::default()
            },
        )
        .await
        .expect("extension");
    let spec = apps::ivr::MenuSpec {
        greeting: greeting.into(),
        options: [('1', "ext:1001".to_string())].into_iter().collect(),
        ..Default::default()
    };
    a.store
        .put_ivr(1, "main", "500", &spec, true)
        .await
        .expect("menu");
}

#[tokio::test]
async fn api_custom_prompts_upload_list_play_rename_and_delete_in_use_refused() {
    let a = app().await;
    assert_eq!(a.get("/custom-prompts").await["total"], 0);
    // A good file (44.1 kHz stereo MP3): 201 for a new name, converted, listed.
    let mp3 = tone_file("mp3");
    let r = api_form(
        &a,
        &a.full,
        "PUT",
        "/custom-prompts/main-greeting",
        &[("description", "Weekday greeting")],
        Some(("hello.mp3", &mp3)),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let j = r.json();
    assert_eq!(j["name"], "main-greeting");
    assert_eq!(j["description"], "Weekday greeting");
    assert_eq!(j["variants"][0]["lang"], "any");
    assert_eq!(j["variants"][0]["original_format"], "MP3");
    assert_eq!(j["variants"][0]["present"], true);
    assert!(
        (j["variants"][0]["duration_s"].as_f64().expect("s") - 1.5).abs() < 0.06,
        "{j}"
    );
    // A Japanese variant: 200 (the name exists), listed after `any`.
    let wav = tone_file("wav");
    let r = api_upload(
        &a,
        &a.full,
        "PUT",
        "/custom-prompts/main-greeting?lang=ja",
        "ja.wav",
        &wav,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["variants"][1]["lang"], "ja");
    let file = apps::custom_prompt::path(
        a.data.path(),
        1,
        apps::custom_prompt::Variant::Lang(apps::prompt::Lang::Ja),
        "main-greeting",
    );
    assert_eq!(
        media::wav::read_file(&file).expect("wav").sample_rate,
        16_000
    );
    // Played as the media engine resolves it for a Japanese caller.
    assert_eq!(
        apps::prompt_files::resolve(
            a.data.path(),
            Some(1),
            apps::prompt::Lang::Ja,
            "main-greeting"
        ),
        Some(file)
    );
    let r = a
        .api(
            "GET",
            "/custom-prompts/main-greeting/audio?lang=ja",
            Some(&a.read),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "audio/wav");
    assert_eq!(media::wav::parse(&r.body).expect("wav").sample_rate, 16_000);

    // Refusals: an unreadable file (422 with the reason, field file; nothing stored), a bad
    // name, a catalogue id, a bad language, read scope.
    let r = api_upload(
        &a,
        &a.full,
        "PUT",
        "/custom-prompts/holiday",
        "x.wav",
        b"<html>not audio</html>",
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let e = r.json();
    assert_eq!(e["error"]["field"], "file");
    assert!(
        e["error"]["message"]
            .as_str()
            .expect("message")
            .starts_with("not a recognised audio file"),
        "{e}"
    );
    assert!(
        a.api("GET", "/custom-prompts/holiday", Some(&a.full), None)
            .await
            .status
            == StatusCode::NOT_FOUND,
        "a refused upload stores nothing"
    );
    for (path, field) in [
        ("/custom-prompts/Bad%20Name", "name"),
        ("/custom-prompts/goodbye", "name"),
        ("/custom-prompts/holiday?lang=fr", "lang"),
    ] {
        let r = api_upload(&a, &a.full, "PUT", path, "t.wav", &wav).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert_eq!(r.json()["error"]["field"], field, "{path}");
    }
    let r = api_upload(&a, &a.read, "PUT", "/custom-prompts/holiday", "t.wav", &wav).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // An IVR plays it: delete and rename are refused naming the menu; listed as used.
    menu_with_greeting(&a, "main-greeting").await;
    assert_eq!(
        a.get("/custom-prompts").await["items"][0]["used_by"][0],
        "main"
    );
    let r = a
        .api(
            "DELETE",
            "/custom-prompts/main-greeting",
            Some(&a.full),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    assert_eq!(r.code(), "in_use");
    assert!(r.text().contains("ivr:main"), "{}", r.text());
    let r = a
        .api(
            "PATCH",
            "/custom-prompts/main-greeting",
            Some(&a.full),
            Some(serde_json::json!({ "name": "weekday" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // One variant of two may go; the file goes with it.
    let r = a
        .api(
            "DELETE",
            "/custom-prompts/main-greeting?lang=ja",
            Some(&a.full),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    assert_eq!(
        apps::custom_prompt::present(a.data.path(), 1, "main-greeting"),
        [apps::custom_prompt::Variant::Any]
    );

    // Unused: renamed (files follow), described, deleted (files removed).
    api_upload(&a, &a.full, "PUT", "/custom-prompts/holiday", "t.wav", &wav).await;
    let r = a
        .api(
            "PATCH",
            "/custom-prompts/holiday",
            Some(&a.full),
            Some(serde_json::json!({ "name": "closed", "description": "Closed days" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["description"], "Closed days");
    assert_eq!(
        apps::custom_prompt::present(a.data.path(), 1, "closed"),
        [apps::custom_prompt::Variant::Any]
    );
    let r = a
        .api("DELETE", "/custom-prompts/closed", Some(&a.full), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(apps::custom_prompt::present(a.data.path(), 1, "closed").is_empty());
}

#[tokio::test]
async fn api_voicemail_greetings_upload_play_and_delete() {
    let a = app().await;
    menu_with_greeting(&a, "ivr-welcome").await;
    let g = a.get("/voicemail/1001/greetings").await;
    assert_eq!(g["total"], 3);
    assert_eq!(g["items"][2]["kind"], "name");
    assert_eq!(g["items"][2]["present"], false);
    let mp3 = tone_file("mp3");
    let r = api_upload(
        &a,
        &a.full,
        "PUT",
        "/voicemail/1001/greetings/name",
        "name.mp3",
        &mp3,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["present"], true);
    assert_eq!(a.get("/voicemail/1001").await["greeting_name"], true);
    let path = a.data.path().join(engine::vm::greeting_path(
        1,
        "1001",
        apps::vmail::Greeting::Name,
    ));
    assert_eq!(
        media::wav::read_file(&path).expect("wav").sample_rate,
        16_000
    );
    let r = a
        .api(
            "GET",
            "/voicemail/1001/greetings/name/audio",
            Some(&a.read),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers[header::CONTENT_TYPE], "audio/wav");

    // Refused with the reason; the box is unchanged.
    let r = api_upload(
        &a,
        &a.full,
        "PUT",
        "/voicemail/1001/greetings/busy",
        "b.wav",
        b"RIFF\x00\x00\x00\x00WAVEjunk",
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    assert_eq!(r.json()["error"]["field"], "file");
    assert_eq!(a.get("/voicemail/1001").await["greeting_busy"], false);
    for (path, status) in [
        ("/voicemail/1001/greetings/weekend", StatusCode::NOT_FOUND),
        ("/voicemail/4040/greetings/busy", StatusCode::NOT_FOUND),
    ] {
        let r = api_upload(&a, &a.full, "PUT", path, "n.mp3", &mp3).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
    }
    // The settings PUT still refuses the flags, pointing at the upload.
    let r = a
        .api(
            "PUT",
            "/voicemail/1001",
            Some(&a.full),
            Some(serde_json::json!({ "greeting_busy": true })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("greetings"), "{}", r.text());

    let r = a
        .api(
            "DELETE",
            "/voicemail/1001/greetings/name",
            Some(&a.full),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(!path.exists());
    assert_eq!(a.get("/voicemail/1001").await["greeting_name"], false);
    let r = a
        .api(
            "DELETE",
            "/voicemail/1001/greetings/name",
            Some(&a.full),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn panel_custom_prompts_and_mailbox_greetings() {
    let a = app().await;
    menu_with_greeting(&a, "ivr-welcome").await;
    let mut b = signed_in(&a, "admin", store::AdminRole::Admin).await;
    b.lang = Some("ja");
    let p = b.get("/prompts/custom").await;
    assert_eq!(p.status, StatusCode::OK);
    let page = p.text();
    assert!(page.contains("独自ガイダンス"), "{page}");
    assert!(page.contains("id=\"no-custom-prompts\""));
    let token = csrf(&page);
    // Refused: the reason is shown.
    let r = panel_upload(
        &mut b,
        "/prompts/custom/upload",
        &[("csrf", &token), ("name", "holiday"), ("lang", "any")],
        ("junk.mp3", b"definitely not audio"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.text().contains("not a recognised audio file"),
        "{}",
        r.text()
    );
    let wav = tone_file("wav");
    let r = panel_upload(
        &mut b,
        "/prompts/custom/upload",
        &[("csrf", &token), ("name", "holiday"), ("lang", "en")],
        ("h.wav", &wav),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let p = b.get("/prompts/custom?saved=holiday").await.text();
    assert!(p.contains("id=\"custom-saved\""));
    assert!(p.contains("id=\"c-holiday-en\""), "{p}");
    assert!(p.contains("/prompts/custom/audio/holiday/en"));
    let r = b.get("/prompts/custom/audio/holiday/en").await;
    assert_eq!(r.status, StatusCode::OK);

    // Mailbox page: the greetings section, upload then delete.
    let p = b.get("/voicemail/1001").await.text();
    assert!(p.contains("id=\"vm-greetings\""), "{p}");
    assert!(p.contains("応答メッセージ"));
    let r = panel_upload(
        &mut b,
        "/voicemail/1001/greetings/unavailable/upload",
        &[("csrf", &token)],
        ("u.wav", &wav),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let p = b
        .get("/voicemail/1001?greeting_saved=unavailable")
        .await
        .text();
    assert!(p.contains("id=\"vm-greeting_saved\""), "{p}");
    assert!(p.contains("/voicemail/1001/greetings/unavailable/audio"));
    let r = b.get("/voicemail/1001/greetings/unavailable/audio").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = panel_upload(
        &mut b,
        "/voicemail/1001/greetings/busy/upload",
        &[("csrf", &token)],
        ("junk.wav", b"not audio at all"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("not a recognised audio file"));
    let r = b
        .post(
            "/voicemail/1001/greetings/unavailable/delete",
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(
        a.get("/voicemail/1001").await["greeting_unavailable"],
        false
    );
}
