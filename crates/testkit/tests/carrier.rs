//! `testkit::carrier` against real peers: Kamailio as the carrier, sipp as the PBX, the public
//! phone and the PSTN. Each test starts its own carrier and peers on free ports.

use std::fs;
use std::net::SocketAddr;
use std::time::Duration;

use testkit::carrier::{Carrier, CarrierConfig, CarrierInvite, DidIn, Direction, scenario_path};
use testkit::ports;
use testkit::sipp::{RunningSipp, Sipp, SippOutcome, SippTransport, auth_csv};

/// Bound of every wait on the carrier's state.
const WAIT: Duration = Duration::from_secs(10);
const PSTN_NUMBER: &str = "0311112222";
const DID: &str = "0312345678";
const CALLER: &str = "09011112222";

fn require_peers() {
    for bin in ["sipp", "kamailio"] {
        if let Err(e) = testkit::require_binary(bin) {
            panic!("{e}");
        }
    }
}

fn sipp(scenario: impl AsRef<std::path::Path>, carrier: &Carrier) -> Sipp {
    let mut s = Sipp::uac(scenario, &carrier.host_port());
    s.timeout = Duration::from_secs(20);
    s
}

/// Registers `user` with register.xml (stays registered), from `port` if given.
fn register(carrier: &Carrier, user: &str, pass: &str, port: Option<u16>) -> SippOutcome {
    let mut s = sipp("register.xml", carrier);
    s.inject_text = Some(auth_csv([(user, pass)]));
    s.local_port = port;
    s.run().unwrap()
}

/// A sipp UAS answering one call (uas_answer.xml) on `port` (or a free one).
fn answering_uas(service: &str, port: Option<u16>) -> RunningSipp {
    let mut uas = Sipp::uas("uas_answer.xml");
    uas.service = Some(service.into());
    uas.local_port = port;
    uas.timeout = Duration::from_secs(30);
    let mut running = uas.spawn().unwrap();
    running.wait_listening(WAIT).unwrap();
    running
}

fn addr(uas: &RunningSipp) -> SocketAddr {
    uas.local_addr().parse().unwrap()
}

/// uac_call.xml from `user` (authenticating with `pass` if challenged) to `number`.
fn call(carrier: &Carrier, user: &str, pass: &str, number: &str) -> Sipp {
    let mut s = sipp("uac_call.xml", carrier);
    s.inject_text = Some(auth_csv([(user, pass)]));
    s.service = Some(number.into());
    s
}

/// carrier_uac_refused.xml from `user` to `number`; `extra` = display name and header lines.
fn refused_call(carrier: &Carrier, user: &str, pass: &str, number: &str, extra: [&str; 4]) -> Sipp {
    let mut s = sipp(scenario_path("carrier_uac_refused.xml"), carrier);
    s.inject_text = Some(format!(
        "SEQUENTIAL\n{user};[authentication username={user} password={pass}];{pass};{}\n",
        extra.join(";")
    ));
    s.service = Some(number.into());
    s
}

/// Runs a carrier_uac_refused.xml call that must get `status`, and returns the carrier's record
/// of it, which must show `decision` and the same status.
fn expect_refused(carrier: &Carrier, call: Sipp, status: u16, decision: &str) -> CarrierInvite {
    let outcome = call.run().unwrap();
    let received = outcome.message_count(&status.to_string(), "_Recv");
    assert_eq!(received, 1, "{:?}", outcome.counts);
    let inv = carrier
        .wait_invite(WAIT, |i| i.decision == decision)
        .unwrap();
    assert_eq!(inv.status, Some(status), "{inv:?}");
    inv
}

/// The INVITE lines a sipp run received (its message trace).
fn received_invites(outcome: &SippOutcome) -> Vec<String> {
    let trace = fs::read_to_string(outcome.logs.path().join("messages.log")).unwrap_or_default();
    trace
        .lines()
        .filter(|l| l.starts_with("INVITE "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn registration_with_digest_succeeds_and_a_wrong_password_is_refused() {
    require_peers();
    let cfg = CarrierConfig {
        max_expires: 30,
        ..CarrierConfig::registration([("trunk1", "s3cret-1"), ("trunk2", "s3cret-2")])
    };
    let carrier = Carrier::start(cfg).unwrap();
    assert!(!carrier.registered("trunk1").unwrap());

    let reg = register(&carrier, "trunk1", "s3cret-1", None);
    let contacts = carrier.wait_registered("trunk1", WAIT).unwrap();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert!(
        contacts[0].contains(&format!("@127.0.0.1:{}", reg.local_port)),
        "{contacts:?}"
    );
    let regs = carrier.registers();
    let decisions: Vec<_> = regs
        .iter()
        .map(|r| (r.decision.as_str(), r.status))
        .collect();
    assert_eq!(decisions, [("challenge", 401), ("saved", 200)]);
    assert_eq!(regs[1].auth_user.as_deref(), Some("trunk1"));
    assert_eq!(regs[1].to_user.as_deref(), Some("trunk1"));
    assert_eq!(
        regs[1].expires.as_deref(),
        Some("300"),
        "what sipp asked for"
    );
    // The registrar granted at most max_expires (Kamailio's own view of the contact).
    let lookup = carrier
        .rpc("ul.lookup", serde_json::json!(["location", "trunk1"]))
        .unwrap();
    let granted = lookup["result"]["Contacts"][0]["Contact"]["Expires"]
        .as_i64()
        .unwrap();
    assert!((1..=30).contains(&granted), "{lookup}");

    // register_wrong_password.xml succeeds only when the carrier refuses (401 or 403).
    let mut wrong = sipp("register_wrong_password.xml", &carrier);
    wrong.inject_text = Some(auth_csv([("trunk2", "not-the-password")]));
    wrong.run().unwrap();
    let refused = carrier
        .wait_register(WAIT, |r| r.decision == "wrong-password")
        .unwrap();
    assert_eq!(refused.status, 403);
    assert_eq!(refused.auth_user.as_deref(), Some("trunk2"));
    assert!(!carrier.registered("trunk2").unwrap());
    assert!(carrier.registered("trunk1").unwrap());
}

#[test]
fn outbound_call_is_challenged_then_reaches_the_pstn() {
    require_peers();
    let pstn = answering_uas("pstn", None);
    let cfg = CarrierConfig::registration([("trunk1", "s3cret-1")]).with_pstn(addr(&pstn));
    let carrier = Carrier::start(cfg).unwrap();

    call(&carrier, "trunk1", "s3cret-1", PSTN_NUMBER)
        .run()
        .unwrap();
    let pstn = pstn.finish().unwrap();

    let invites = carrier.invites();
    assert_eq!(invites.len(), 2, "{invites:#?}");
    let (challenged, relayed) = (&invites[0], &invites[1]);
    assert_eq!(challenged.decision, "challenge");
    assert_eq!(challenged.status, Some(407));
    assert_eq!(challenged.auth_user, None);
    for inv in [challenged, relayed] {
        assert_eq!(inv.direction, Direction::Outbound);
        assert_eq!(inv.request_user.as_deref(), Some(PSTN_NUMBER));
        assert_eq!(inv.from_user.as_deref(), Some("trunk1"));
    }
    assert_eq!(relayed.decision, "forward");
    assert_eq!(relayed.status, Some(200));
    assert_eq!(relayed.auth_user.as_deref(), Some("trunk1"));
    let target = format!("sip:{PSTN_NUMBER}@{}", addr_of(&pstn));
    assert_eq!(relayed.forwarded_to.as_deref(), Some(target.as_str()));
    // What the PSTN side got: the number kept, host and port replaced.
    let got = received_invites(&pstn);
    assert!(
        got.iter()
            .any(|l| l.starts_with(&format!("INVITE {target} "))),
        "{got:?}"
    );
}

fn addr_of(outcome: &SippOutcome) -> String {
    format!("127.0.0.1:{}", outcome.local_port)
}

/// Registers `account` from a free port, then answers there with a sipp UAS (sipp cannot
/// register and answer in one run) while the public phone calls `did`; returns the UAS's run.
fn inbound_call(carrier: &Carrier, account: &str, pass: &str, did: &str) -> SippOutcome {
    let port = ports::free_port().unwrap();
    register(carrier, account, pass, Some(port));
    carrier.wait_registered(account, WAIT).unwrap();
    let pbx = answering_uas(account, Some(port));
    // The public phone is not challenged: calls to DIDs come from the public network.
    call(carrier, CALLER, "unused", did).run().unwrap();
    pbx.finish().unwrap()
}

#[test]
fn inbound_did_reaches_the_registered_contact_with_the_did_in_the_request_uri() {
    require_peers();
    let cfg = CarrierConfig::registration([("trunk1", "s3cret-1")]).with_did(DID, "trunk1");
    let carrier = Carrier::start(cfg).unwrap();
    let pbx = inbound_call(&carrier, "trunk1", "s3cret-1", DID);
    let port = pbx.local_port;

    let got = received_invites(&pbx);
    let prefix = format!("INVITE sip:{DID}@127.0.0.1:{port}");
    assert!(got.iter().any(|l| l.starts_with(&prefix)), "{got:?}");
    let inv = carrier
        .wait_invite(WAIT, |i| i.direction == Direction::Inbound)
        .unwrap();
    assert_eq!(inv.decision, "forward");
    assert_eq!(inv.status, Some(200));
    assert_eq!(inv.request_user.as_deref(), Some(DID));
    assert_eq!(inv.from_user.as_deref(), Some(CALLER));
    assert!(
        inv.forwarded_to
            .as_deref()
            .unwrap_or("")
            .starts_with(&prefix[7..]),
        "{inv:?}"
    );
}

#[test]
fn inbound_did_prefix_with_did_in_to_keeps_the_contact_and_unregistered_gets_480() {
    require_peers();
    let cfg = CarrierConfig {
        did_in: DidIn::To,
        ..CarrierConfig::registration([("trunk1", "s3cret-1"), ("trunk2", "s3cret-2")])
            .with_did("0312*", "trunk1")
            .with_did("0398765432", "trunk2")
    };
    let carrier = Carrier::start(cfg).unwrap();
    let pbx = inbound_call(&carrier, "trunk1", "s3cret-1", DID);
    let port = pbx.local_port;
    let got = received_invites(&pbx);
    // register.xml's contact is sip:trunk1@127.0.0.1:PORT;transport=UDP, sent as is.
    let prefix = format!("INVITE sip:trunk1@127.0.0.1:{port};transport=UDP ");
    assert!(got.iter().any(|l| l.starts_with(&prefix)), "{got:?}");
    let trace = fs::read_to_string(pbx.logs.path().join("messages.log")).unwrap();
    assert!(
        trace.contains(&format!("To: <sip:{DID}@")),
        "the DID must be in To"
    );

    // trunk2 has a DID but no registration: the carrier answers 480.
    refused_call(&carrier, CALLER, "unused", "0398765432", ["", "", "", ""])
        .run()
        .unwrap();
    let inv = carrier
        .wait_invite(WAIT, |i| i.request_user.as_deref() == Some("0398765432"))
        .unwrap();
    assert_eq!(
        (inv.direction, inv.decision.as_str(), inv.status),
        (Direction::Inbound, "not-registered", Some(480))
    );
}

#[test]
fn answer_mode_refuses_outbound_invites_with_503_and_records_identity_headers() {
    require_peers();
    let cfg = CarrierConfig {
        answer_invites: Some(503),
        ..CarrierConfig::registration([("trunk1", "s3cret-1")])
    };
    let carrier = Carrier::start(cfg).unwrap();

    let call = refused_call(
        &carrier,
        "trunk1",
        "s3cret-1",
        PSTN_NUMBER,
        [
            "Front Desk",
            "P-Asserted-Identity: <sip:+81312345678@pbx.test>",
            "P-Preferred-Identity: <sip:0312345678@pbx.test>",
            "Privacy: id",
        ],
    );
    let inv = expect_refused(&carrier, call, 503, "answered");
    assert_eq!(carrier.invites().len(), 1, "answered before any challenge");
    assert_eq!(inv.request_user.as_deref(), Some(PSTN_NUMBER));
    assert_eq!(inv.from_user.as_deref(), Some("trunk1"));
    assert_eq!(inv.from_display.as_deref(), Some("Front Desk"));
    assert_eq!(
        inv.p_asserted_identity.as_deref(),
        Some("<sip:+81312345678@pbx.test>")
    );
    assert_eq!(
        inv.p_preferred_identity.as_deref(),
        Some("<sip:0312345678@pbx.test>")
    );
    assert_eq!(inv.privacy.as_deref(), Some("id"));
}

#[test]
fn restart_loses_registrations_and_a_new_register_works() {
    require_peers();
    let cfg = CarrierConfig::registration([("trunk1", "s3cret-1")]);
    let mut carrier = Carrier::start(cfg).unwrap();
    register(&carrier, "trunk1", "s3cret-1", None);
    carrier.wait_registered("trunk1", WAIT).unwrap();

    let before = carrier.addr;
    carrier.restart().unwrap();
    assert_eq!(carrier.addr, before, "same address after restart");
    assert!(carrier.is_running());
    assert!(
        !carrier.registered("trunk1").unwrap(),
        "in-memory location must be empty"
    );

    register(&carrier, "trunk1", "s3cret-1", None);
    carrier.wait_registered("trunk1", WAIT).unwrap();
    // The record spans both runs.
    let saved = carrier
        .registers()
        .iter()
        .filter(|r| r.decision == "saved")
        .count();
    assert_eq!(saved, 2);
}

#[test]
fn ip_trust_refuses_untrusted_sources_and_routes_both_directions() {
    require_peers();
    let pstn = answering_uas("pstn", None);
    let pbx = answering_uas("pbx", None);
    let cfg = CarrierConfig::ip_trust(["127.0.0.1".parse().unwrap()], Some(addr(&pbx)))
        .with_pstn(addr(&pstn))
        .with_did(DID, "trunk1");
    let carrier = Carrier::start(cfg).unwrap();

    // Outbound from an untrusted source (127.0.0.2): 403.
    let mut untrusted = refused_call(&carrier, "intruder", "x", PSTN_NUMBER, ["", "", "", ""]);
    untrusted.local_ip = "127.0.0.2".into();
    let inv = expect_refused(&carrier, untrusted, 403, "untrusted");
    assert_eq!(inv.source.ip().to_string(), "127.0.0.2");

    // Outbound from the trusted PBX address: no challenge, straight to the PSTN.
    call(&carrier, "trunk1", "unused", PSTN_NUMBER)
        .run()
        .unwrap();
    pstn.finish().unwrap();
    let out = carrier
        .wait_invite(WAIT, |i| {
            i.direction == Direction::Outbound && i.decision == "forward"
        })
        .unwrap();
    assert_eq!((out.status, out.auth_user.as_deref()), (Some(200), None));

    // Inbound from the public network (the untrusted address is fine for DIDs) to the PBX.
    let mut public = call(&carrier, CALLER, "unused", DID);
    public.local_ip = "127.0.0.2".into();
    public.run().unwrap();
    let pbx_addr = addr(&pbx);
    let pbx = pbx.finish().unwrap();
    let got = received_invites(&pbx);
    assert!(
        got.iter()
            .any(|l| l.starts_with(&format!("INVITE sip:{DID}@{pbx_addr} "))),
        "{got:?}"
    );
    let inbound = carrier
        .wait_invite(WAIT, |i| i.direction == Direction::Inbound)
        .unwrap();
    assert_eq!(inbound.status, Some(200));
}

#[test]
fn registration_over_tcp() {
    require_peers();
    let carrier = Carrier::start(CarrierConfig::registration([("trunk1", "s3cret-1")])).unwrap();
    let mut s = sipp("register.xml", &carrier);
    s.inject_text = Some(auth_csv([("trunk1", "s3cret-1")]));
    s.transport = SippTransport::Tcp;
    s.run().unwrap();
    let contacts = carrier.wait_registered("trunk1", WAIT).unwrap();
    assert!(contacts[0].contains("transport=TCP"), "{contacts:?}");
}

#[test]
fn from_must_match_refuses_a_from_user_other_than_the_account() {
    require_peers();
    let cfg = CarrierConfig {
        from_must_match: true,
        ..CarrierConfig::registration([("trunk1", "s3cret-1")])
    };
    let carrier = Carrier::start(cfg).unwrap();
    // Authenticates as trunk1 but sends From: <sip:0312345678@...> (a DID as caller id).
    let mut s = refused_call(&carrier, DID, "s3cret-1", PSTN_NUMBER, ["", "", "", ""]);
    s.inject_text = Some(format!(
        "SEQUENTIAL\n{DID};[authentication username=trunk1 password=s3cret-1];s3cret-1;;;;\n"
    ));
    let inv = expect_refused(&carrier, s, 403, "user-mismatch");
    assert_eq!(inv.auth_user.as_deref(), Some("trunk1"));
    assert_eq!(inv.from_user.as_deref(), Some(DID));
}
