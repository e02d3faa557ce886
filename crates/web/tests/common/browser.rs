//! A cookie jar over the in-process router: the panel as a browser without JavaScript uses it.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use super::{App, Resp};

/// A cookie jar over the in-process router.
pub struct Browser<'a> {
    pub app: &'a App,
    pub cookies: HashMap<String, String>,
    pub lang: Option<&'static str>,
    pub https: bool,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a App) -> Self {
        Browser {
            app,
            cookies: HashMap::new(),
            lang: None,
            https: false,
        }
    }

    pub async fn send(&mut self, b: axum::http::request::Builder, body: Body) -> Resp {
        let mut b = b;
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            b = b.header(header::COOKIE, c.join("; "));
        }
        if let Some(l) = self.lang {
            b = b.header(header::ACCEPT_LANGUAGE, l);
        }
        if self.https {
            b = b.header("x-forwarded-proto", "https");
        }
        let r = self.app.send(b.body(body).unwrap()).await;
        for v in r.headers.get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            let (kv, _) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = kv.split_once('=').unwrap();
            if v.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), val.to_string());
            }
        }
        r
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        self.send(Request::get(path), Body::empty()).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Resp {
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        self.send(
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
            Body::from(body.join("&")),
        )
        .await
    }
}

pub fn pairs(f: &[(String, String)]) -> Vec<(&str, &str)> {
    f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The value of the first `name="csrf"` hidden field of a page.
pub fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
    page[at..at + 64].to_string()
}

pub async fn signed_in<'a>(a: &'a App, user: &str, role: store::AdminRole) -> Browser<'a> {
    a.store
        .create_admin(user, "correct horse", role)
        .await
        .unwrap();
    let mut b = Browser::new(a);
    let p = b.get("/login").await;
    let token = csrf(&p.text());
    let r = b
        .post(
            "/login",
            &[
                ("csrf", &token),
                ("username", user),
                ("password", "correct horse"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    b
}
