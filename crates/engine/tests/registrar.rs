//! The registrar on a fake clock: registration, refresh, expiry, `Contact: *`, 423, database
//! failures, digest uri forms, NAT keep-alives, bounded lookups of unknown users.

mod common;

use std::time::Duration;

use common::*;
use engine::db::DbOp;
use sip::HeaderName;

const PHONE: &str = "192.0.2.21:5060";

#[test]
fn register_refresh_and_expiry() {
    let mut h = Harness::new();
    let r = h.register(
        "1001",
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(120),
        PHONE,
        SEG1,
    );
    assert_eq!(r.status, 200);
    let contacts: Vec<_> = r.headers.get_all(&HeaderName::Contact).collect();
    assert_eq!(contacts.len(), 1);
    assert!(contacts[0].as_str().contains("expires=120"), "{contacts:?}");
    assert!(r.headers.contains(&HeaderName::Date));
    assert_eq!(h.memory(1), vec!["sip:1001@192.0.2.21:5060"]);
    assert_eq!(h.stored(1), h.memory(1));

    // A refresh 100 s later keeps one binding and pushes the expiry out.
    h.advance(Duration::from_secs(100));
    let r = h.register(
        "1001",
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(120),
        PHONE,
        SEG1,
    );
    assert_eq!(r.status, 200);
    assert_eq!(h.engine.usrloc().len(), 1);
    h.advance(Duration::from_secs(100));
    assert_eq!(
        h.memory(1).len(),
        1,
        "refreshed binding still alive at 200 s"
    );

    // Then it expires without a refresh.
    h.advance(Duration::from_secs(21));
    assert!(h.memory(1).is_empty());
    assert_eq!(h.engine.usrloc().len(), 0);
}

#[test]
fn query_and_unregister() {
    let mut h = Harness::new();
    h.register(
        "1001",
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(300),
        PHONE,
        SEG1,
    );
    h.register(
        "1001",
        Some("<sip:1001@192.0.2.22:5060>"),
        Some(300),
        "192.0.2.22:5060",
        SEG1,
    );
    let r = h.register("1001", None, None, PHONE, SEG1);
    assert_eq!(r.status, 200);
    assert_eq!(r.headers.get_all(&HeaderName::Contact).count(), 2);
    let r = h.register(
        "1001",
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(0),
        PHONE,
        SEG1,
    );
    assert_eq!(r.status, 200);
    assert_eq!(h.memory(1), vec!["sip:1001@192.0.2.22:5060"]);
    assert_eq!(h.stored(1), h.memory(1));
}

#[test]
fn contact_star_removes_bindings_of_every_domain() {
    let mut h = Harness::new();
    h.register(
        "1001",
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(300),
        PHONE,
        SEG1,
    );
    // The same extension registered under another domain (a single-company install accepts
    // every domain): a second AOR string for the same extension.
    let mut h2_contact = "<sip:1001@192.0.2.23:5060>";
    let call = "other-domain";
    let text = |cseq: u32, auth: Option<&str>| {
        let mut s = format!(
            "REGISTER sip:pbx.example.net SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.23:5060;branch=z9hG4bK-od{cseq}\nMax-Forwards: 70\nFrom: <sip:1001@pbx.example.net>;tag=od\nTo: <sip:1001@pbx.example.net>\nCall-ID: {call}\nCSeq: {cseq} REGISTER\nContact: {h2_contact}\nExpires: 300\n"
        );
        if let Some(a) = auth {
            s.push_str(&format!("Authorization: {a}\n"));
        }
        s.push_str("Content-Length: 0\n\n");
        s
    };
    h.recv(&text(1, None), "192.0.2.23:5060", SEG1);
    let ch = h.last_response();
    let creds = h.answer_challenge(
        "1001",
        &password("1001"),
        &ch,
        &HeaderName::WwwAuthenticate,
        "REGISTER",
        "sip:pbx.example.net",
    );
    h.recv(&text(2, Some(&creds)), "192.0.2.23:5060", SEG1);
    assert_eq!(h.last_response().status, 200);
    assert_eq!(h.memory(1).len(), 2);
    assert_eq!(h.stored(1).len(), 2);
    h2_contact = "*";
    let _ = h2_contact;

    let r = h.register("1001", Some("*"), Some(0), PHONE, SEG1);
    assert_eq!(r.status, 200);
    assert!(h.memory(1).is_empty(), "memory cleared");
    assert!(
        h.stored(1).is_empty(),
        "database cleared for every domain (a restart brings nothing back)"
    );

    // `*` with another contact or without Expires: 0 is refused.
    let r = h.register("1001", Some("*"), Some(60), PHONE, SEG1);
    assert_eq!(r.status, 400);
}

#[test]
fn interval_too_brief() {
    let mut h = Harness::new();
    let r = h.register(
        "1001",
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(10),
        PHONE,
        SEG1,
    );
    assert_eq!(r.status, 423);
    assert_eq!(
        r.headers.get(&HeaderName::MinExpires).map(|v| v.as_str()),
        Some("60")
    );
    assert!(
        r.to().and_then(|t| t.tag().map(str::to_string)).is_some(),
        "final responses carry a To tag"
    );
    assert!(h.memory(1).is_empty());
    assert!(h.stored(1).is_empty());
}

#[test]
fn a_failed_write_changes_nothing() {
    let mut h = Harness::new();
    h.register(
        "1001",
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(300),
        PHONE,
        SEG1,
    );
    h.db_mode = DbMode::Fail;
    let r = h.register(
        "1001",
        Some("<sip:1001@192.0.2.22:5060>"),
        Some(300),
        "192.0.2.22:5060",
        SEG1,
    );
    assert_eq!(r.status, 500);
    assert!(r.headers.contains(&HeaderName::RetryAfter));
    assert_eq!(
        h.memory(1),
        vec!["sip:1001@192.0.2.21:5060"],
        "memory untouched"
    );
    assert_eq!(h.stored(1), h.memory(1));
    let r = h.register("1001", Some("*"), Some(0), PHONE, SEG1);
    assert_eq!(r.status, 500);
    assert_eq!(
        h.memory(1).len(),
        1,
        "an unstored unregistration keeps the binding"
    );
    h.db_mode = DbMode::Ok;
    let r = h.register(
        "1001",
        Some("<sip:1001@192.0.2.22:5060>"),
        Some(300),
        "192.0.2.22:5060",
        SEG1,
    );
    assert_eq!(r.status, 200);
    assert_eq!(h.memory(1).len(), 2);
    assert_eq!(h.stored(1), h.memory(1));
}

#[test]
fn memory_changes_only_after_the_write() {
    let mut h = Harness::new();
    h.db_mode = DbMode::Hold;
    // The REGISTER without credentials is challenged without touching the database.
    let r = h.register(
        "1001",
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(300),
        PHONE,
        SEG1,
    );
    assert_eq!(
        r.status, 401,
        "no final answer yet: the last response is the challenge"
    );
    assert_eq!(h.held.len(), 1);
    assert!(matches!(h.held[0].1, DbOp::Location(_)));
    assert!(
        h.memory(1).is_empty(),
        "not in memory while the write is in flight"
    );
    h.sent.clear();
    h.release_db(DbMode::Ok);
    assert_eq!(h.last_response().status, 200);
    assert_eq!(h.memory(1).len(), 1);
}

#[test]
fn contact_limit_drops_the_oldest() {
    let mut h = Harness::new();
    // 1003 allows one contact: a phone that moved gets in, the old binding goes.
    h.register(
        "1003",
        Some("<sip:1003@192.0.2.21:5060>"),
        Some(300),
        PHONE,
        SEG1,
    );
    h.advance(Duration::from_secs(1));
    let r = h.register(
        "1003",
        Some("<sip:1003@192.0.2.31:5060>"),
        Some(300),
        "192.0.2.31:5060",
        SEG1,
    );
    assert_eq!(r.status, 200);
    assert_eq!(h.memory(3), vec!["sip:1003@192.0.2.31:5060"]);
    assert_eq!(h.stored(3), h.memory(3));
}

#[test]
fn digest_uri_in_another_form_is_accepted() {
    let mut h = Harness::new();
    // sipp writes host:port into the digest uri while its Request-URI has no port.
    let r = h.register_as(
        "1001",
        &password("1001"),
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(300),
        PHONE,
        SEG1,
        Some("sip:example.com:5060"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    // Our own address in the digest uri is ours too.
    let r = h.register_as(
        "1002",
        &password("1002"),
        Some("<sip:1002@192.0.2.22:5060>"),
        Some(300),
        "192.0.2.22:5060",
        SEG1,
        Some("sip:192.0.2.100"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    // A digest uri naming some other server is refused (a single-company install accepts
    // every domain name, so "another server" is an address that is not ours).
    let r = h.register_as(
        "1001",
        &password("1001"),
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(300),
        PHONE,
        SEG1,
        Some("sip:203.0.113.77:5060"),
    );
    assert_eq!(r.status, 403);
    assert!(r.to().and_then(|t| t.tag().map(str::to_string)).is_some());
}

#[test]
fn wrong_password_is_refused_and_counted() {
    let mut h = Harness::new();
    let r = h.register_as(
        "1001",
        "wrong",
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(300),
        PHONE,
        SEG1,
        None,
    );
    assert_eq!(r.status, 403);
    assert_eq!(h.engine.counters().auth_failures, 1);
    assert!(h.memory(1).is_empty());
}

#[test]
fn brute_force_source_is_banned() {
    let mut h = Harness::new();
    for _ in 0..10 {
        h.register_as(
            "1001",
            "wrong",
            Some("<sip:1001@192.0.2.21:5060>"),
            Some(300),
            PHONE,
            SEG1,
            None,
        );
    }
    h.sent.clear();
    h.recv(
        "OPTIONS sip:example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bK-opt1\nMax-Forwards: 70\nFrom: <sip:x@example.com>;tag=o\nTo: <sip:example.com>\nCall-ID: opt-banned\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n",
        PHONE,
        SEG1,
    );
    assert!(h.sent.is_empty(), "a banned source gets no answer");
    assert!(h.engine.counters().throttled > 0);
    // Another source is served.
    let r = h.register(
        "1002",
        Some("<sip:1002@192.0.2.22:5060>"),
        Some(300),
        "192.0.2.22:5060",
        SEG1,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn a_new_extension_is_found_by_a_lookup() {
    let mut h = Harness::new();
    h.db_extensions
        .insert((1, "1050".into()), ext(50, "1050", 1));
    let r = h.register(
        "1050",
        Some("<sip:1050@192.0.2.50:5060>"),
        Some(300),
        "192.0.2.50:5060",
        SEG1,
    );
    assert_eq!(r.status, 200);
    assert_eq!(h.lookups, 1);
    assert_eq!(h.memory(50).len(), 1);
}

#[test]
fn unknown_users_cost_one_lookup_each_and_are_bounded() {
    let mut h = Harness::new();
    // The same unknown user many times: one lookup, then the negative cache answers.
    for i in 0..20 {
        let src = format!("203.0.113.{}:5060", i + 1);
        let r = h.register_as(
            "7777",
            "guess",
            Some("<sip:7777@203.0.113.1>"),
            Some(300),
            &src,
            SEG1,
            None,
        );
        assert_eq!(r.status, 403);
    }
    assert_eq!(h.lookups, 1, "one database lookup for one unknown user");

    // Many different unknown users while the database is slow: at most `max_lookups` (4 here)
    // in flight, one per user; the rest are refused with 503 at once.
    h.db_mode = DbMode::Hold;
    let mut refused = 0;
    for i in 0..10 {
        let user = format!("80{i:02}");
        let src = format!("203.0.113.{}:5070", 100 + i);
        let r = h.register_as(
            &user,
            "guess",
            Some("<sip:x@203.0.113.1>"),
            Some(300),
            &src,
            SEG1,
            None,
        );
        if r.status == 503 {
            refused += 1;
        }
    }
    let in_flight = h
        .held
        .iter()
        .filter(|(_, op)| matches!(op, DbOp::LookupExtension { .. }))
        .count();
    assert_eq!(in_flight, 4);
    assert_eq!(refused, 6);
    assert_eq!(h.engine.counters().lookups_refused, 6);
    h.release_db(DbMode::Ok);
    assert_eq!(h.last_response().status, 403);
}

#[test]
fn nat_keepalive_misses_remove_the_contact() {
    let mut h = Harness::new();
    // Contact is a private address, packets come from the NAT's public one.
    let r = h.register(
        "1001",
        Some("<sip:1001@10.0.0.5:5060>"),
        Some(3600),
        "203.0.113.9:40000",
        SEG1,
    );
    assert_eq!(r.status, 200);
    h.sent.clear();
    h.advance(Duration::from_secs(31));
    let pings = h.requests("OPTIONS");
    assert!(!pings.is_empty(), "a keep-alive after the interval");
    assert!(
        pings
            .iter()
            .all(|p| p.to.to_string() == "203.0.113.9:40000"),
        "sent to the NAT binding"
    );
    // Nobody answers: each keep-alive times out (Timer F); after three the contact goes.
    h.advance(Duration::from_secs(300));
    assert!(
        h.memory(1).is_empty(),
        "removed after three unanswered keep-alives"
    );
    assert!(h.stored(1).is_empty());
}

#[test]
fn nat_keepalive_answered_keeps_the_contact() {
    let mut h = Harness::new();
    h.register(
        "1001",
        Some("<sip:1001@10.0.0.5:5060>"),
        Some(3600),
        "203.0.113.9:40000",
        SEG1,
    );
    for _ in 0..5 {
        h.sent.clear();
        h.advance(Duration::from_secs(31));
        for p in h.requests("OPTIONS") {
            let ok = sip::Response::for_request(p.request(), 200, None).with_to_tag("k");
            h.recv_message(sip::Message::Response(ok), "203.0.113.9:40000", SEG1);
        }
    }
    assert_eq!(h.memory(1).len(), 1);
}

#[test]
fn honest_allow_and_to_tags() {
    let mut h = Harness::new();
    h.recv(
        "MESSAGE sip:1002@example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bK-msg1\nMax-Forwards: 70\nFrom: <sip:1001@example.com>;tag=m\nTo: <sip:1002@example.com>\nCall-ID: msg-1\nCSeq: 1 MESSAGE\nContent-Length: 0\n\n",
        PHONE,
        SEG1,
    );
    let r = h.last_response();
    assert_eq!(r.status, 405);
    let allow = r
        .headers
        .get(&HeaderName::Allow)
        .map(|v| v.as_str().to_string())
        .unwrap_or_default();
    assert!(
        !allow.contains("MESSAGE") && allow.contains("REFER"),
        "{allow}"
    );
    assert!(r.to().and_then(|t| t.tag().map(str::to_string)).is_some());
    h.recv(
        "OPTIONS sip:example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bK-opt2\nMax-Forwards: 70\nFrom: <sip:x@example.com>;tag=o\nTo: <sip:example.com>\nCall-ID: opt-2\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n",
        PHONE,
        SEG1,
    );
    let r = h.last_response();
    assert_eq!(r.status, 200);
    assert!(
        !r.headers.contains(&HeaderName::Supported),
        "no option tags we do not implement"
    );
}

#[test]
fn digest_uri_of_another_tenants_domain_is_refused() {
    let mut snap = snapshot();
    snap.tenants.realms.insert(2, "other".into());
    snap.tenants.by_domain.insert("example.com".into(), 1);
    snap.tenants.by_domain.insert("other.example".into(), 2);
    let mut h = Harness::with(snap);
    let r = h.register_as(
        "1001",
        &password("1001"),
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(300),
        PHONE,
        SEG1,
        Some("sip:example.com;transport=udp"),
    );
    assert_eq!(r.status, 200, "the tenant's own domain, in another form");
    let r = h.register_as(
        "1001",
        &password("1001"),
        Some("<sip:1001@192.0.2.21:5060>"),
        Some(300),
        PHONE,
        SEG1,
        Some("sip:other.example"),
    );
    assert_eq!(r.status, 403);
}

#[test]
fn refused_registers_leave_the_bindings_as_they_were() {
    let mut h = Harness::new();
    let r = h.register(
        "1001",
        Some("<sip:1001@192.0.2.1:5070>"),
        Some(3600),
        PHONE,
        SEG1,
    );
    assert_eq!(r.status, 200);
    let r = h.register(
        "1001",
        Some("<sip:1001@192.0.2.2:5070>;expires=100"),
        Some(3600),
        PHONE,
        SEG1,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.headers.get_all(&HeaderName::Contact).count(), 2);
    let before = (h.memory(1), h.stored(1));
    // A 423 for one contact of two: the acceptable one is not added either.
    let r = h.register(
        "1001",
        Some("<sip:1001@192.0.2.3:5070>, <sip:1001@192.0.2.1:5070>;expires=5"),
        Some(3600),
        PHONE,
        SEG1,
    );
    assert_eq!(r.status, 423);
    assert_eq!((h.memory(1), h.stored(1)), before);
    // An older CSeq of the same Call-ID: 500, nothing changes.
    let stale = "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bK-stale\nMax-Forwards: 70\nFrom: <sip:1001@example.com>;tag=f1001\nTo: <sip:1001@example.com>\nCall-ID: reg-1001-192.0.2.21:5060\nCSeq: 1 REGISTER\nContact: <sip:1001@192.0.2.1:5070>\nExpires: 60\nContent-Length: 0\n\n";
    h.recv(stale, PHONE, SEG1);
    let ch = h.last_response();
    let creds = h.answer_challenge(
        "1001",
        &password("1001"),
        &ch,
        &HeaderName::WwwAuthenticate,
        "REGISTER",
        "sip:example.com",
    );
    h.recv(
        &stale
            .replace("branch=z9hG4bK-stale", "branch=z9hG4bK-stale2")
            .replace(
                "Expires: 60\n",
                &format!("Expires: 60\nAuthorization: {creds}\n"),
            ),
        PHONE,
        SEG1,
    );
    assert_eq!(h.last_response().status, 500);
    assert_eq!((h.memory(1), h.stored(1)), before);
    // The 100 s binding expires by itself; the other stays.
    h.advance(Duration::from_secs(101));
    assert_eq!(h.memory(1), vec!["sip:1001@192.0.2.1:5070"]);
}

#[test]
fn a_stuck_database_bounds_the_registrations_waiting_for_it() {
    let mut h = Harness::new();
    h.db_mode = DbMode::Hold;
    let mut busy = 0;
    // 50 writes may wait (the harness's `max_pending_db`; 20,000 by default); the ones past that
    // are refused at once.
    for i in 0..60u32 {
        let contact = format!("<sip:1001@192.0.2.{}:5060>", 1 + i);
        h.sent.clear();
        let r = h.register_as(
            "1001",
            &password("1001"),
            Some(&contact),
            Some(300),
            PHONE,
            SEG1,
            None,
        );
        if r.status == 503 {
            busy += 1;
            assert!(r.headers.contains(&HeaderName::RetryAfter));
        }
        if i == 0 {
            assert_eq!(h.held.len(), 1);
        }
    }
    assert_eq!(h.held.len(), 50);
    assert_eq!(busy, 10);
    assert_eq!(h.engine.counters().db_overload, 10);
}
