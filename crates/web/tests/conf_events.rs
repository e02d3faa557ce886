//! The conference participant list pushed to the panel as server-sent events: the list now,
//! then a new event on every join, mute and leave (without the page asking); only for a
//! signed-in session; at most `MAX_STREAMS` streams open, the next refused with 503 until one
//! closes.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::browser::{Browser, signed_in};
use common::{App, app};
use futures_util::StreamExt;
use tower::ServiceExt;

/// A bound on waiting for one event (the watcher asks call control every 250 ms).
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// `GET path` with `b`'s cookies: the response, body unread.
async fn open(a: &App, b: &Browser<'_>, path: &str) -> axum::response::Response {
    let cookies: Vec<String> = b.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let req = Request::get(path)
        .header(header::COOKIE, cookies.join("; "))
        .header(header::ACCEPT, "text/event-stream")
        .body(Body::empty())
        .expect("request");
    a.router.clone().oneshot(req).await.expect("response")
}

/// Reads server-sent events off a body.
struct Events {
    body: axum::body::BodyDataStream,
    buf: String,
}

impl Events {
    fn new(r: axum::response::Response) -> Events {
        Events {
            body: r.into_body().into_data_stream(),
            buf: String::new(),
        }
    }

    /// The data of the next `members` event (keep-alive comments skipped).
    async fn next(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let ev: String = self.buf.drain(..end + 2).collect();
                if ev.lines().any(|l| l == "event: members") {
                    return ev
                        .lines()
                        .filter_map(|l| l.strip_prefix("data: ").or(l.strip_prefix("data:")))
                        .collect::<Vec<_>>()
                        .join("\n");
                }
                continue;
            }
            let chunk = tokio::time::timeout(EVENT_WAIT, self.body.next())
                .await
                .expect("an event within the wait")
                .expect("the stream goes on")
                .expect("body bytes");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn room(a: &App) -> Browser<'_> {
    let mut b = signed_in(a, "admin", store::AdminRole::Admin).await;
    let page = b.get("/conferences").await;
    let token = common::browser::csrf(&page.text());
    let r = b
        .post(
            "/conferences",
            &[("csrf", token.as_str()), ("number", "800")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    b
}

#[tokio::test]
async fn joins_mutes_and_leaves_are_pushed_to_the_open_list() {
    let a = app().await;
    let b = room(&a).await;
    a.control.join_conf(1, "800", 7, "1001");
    let r = open(&a, &b, "/events/conferences/800").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()[header::CONTENT_TYPE],
        "text/event-stream",
        "{:?}",
        r.headers()
    );
    let mut ev = Events::new(r);
    let first = ev.next().await;
    assert!(first.contains("data-call=\"7\""), "the list now: {first}");
    assert!(
        first.contains("joined") && first.contains("UTC"),
        "the join time shown: {first}"
    );
    // A join elsewhere (another tenant's room 800) is not this list's business; a join here is
    // pushed.
    a.control.join_conf(2, "800", 13, "2001");
    a.control.join_conf(1, "800", 9, "1002");
    let joined = ev.next().await;
    assert!(
        joined.contains("data-call=\"7\"") && joined.contains("data-call=\"9\""),
        "{joined}"
    );
    assert!(!joined.contains("2001"), "another tenant's room: {joined}");
    // Muted from anywhere (here call control itself): pushed.
    for c in a.control.confs.lock().unwrap().iter_mut() {
        for m in c.members.iter_mut().filter(|m| m.call == 9) {
            m.muted = true;
        }
    }
    let muted = ev.next().await;
    assert!(
        muted.contains("data-call=\"9\" data-muted=\"true\""),
        "{muted}"
    );
    // Left: pushed.
    for c in a.control.confs.lock().unwrap().iter_mut() {
        c.members.retain(|m| m.call != 7);
    }
    let left = ev.next().await;
    assert!(
        !left.contains("data-call=\"7\"") && left.contains("data-call=\"9\""),
        "{left}"
    );
}

#[tokio::test]
async fn the_stream_needs_a_session_and_open_streams_are_capped() {
    let a = app().await;
    let b = room(&a).await;
    // Without a session: not a stream (the sign-in redirect).
    let anon = Browser::new(&a);
    let r = open(&a, &anon, "/events/conferences/800").await;
    assert_ne!(r.status(), StatusCode::OK);
    assert!(
        r.headers()
            .get(header::CONTENT_TYPE)
            .is_none_or(|v| v != "text/event-stream")
    );
    // Up to the cap every stream opens; the next is refused until one closes.
    let mut open_now = Vec::new();
    for _ in 0..web::conf_live::MAX_STREAMS {
        let r = open(&a, &b, "/events/conferences/800").await;
        assert_eq!(r.status(), StatusCode::OK);
        open_now.push(r);
    }
    let r = open(&a, &b, "/events/conferences/800").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    open_now.pop();
    let r = open(&a, &b, "/events/conferences/800").await;
    assert_eq!(r.status(), StatusCode::OK, "a slot came free");
    // The page names the stream and keeps the fragment for browsers without one.
    let mut b = b;
    let html = b.get("/conferences").await.text();
    assert!(
        html.contains("data-stream=\"/events/conferences/800\"")
            && html.contains("data-live=\"/fragments/conferences/800\""),
        "{html}"
    );
}
