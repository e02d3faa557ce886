//! Drag-and-drop transfer in a real browser: `tests/browser/xfer_drag.test.mjs` drives Debian's
//! chromium (playwright-core) on the live calls page while real baresip phones talk: a
//! transfer to a number the remaining extension may not call is refused in the page and the
//! call kept; then the callee is dragged (playwright's `dragTo`, a real mouse drag) onto
//! extension 1003, confirmed, and the call lands on 1003's phone while the caller's phone is
//! released. The call record's events (API) say who handed whom to whom. This test owns the
//! server and the phones; the script asks for them on stdout. Needs node, `npm ci` in
//! tests/browser and chromium (scripts/test-deps.sh installs them).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::api::{api_get, api_token};
use common::browser::{add_admin, chromium, require_node, run_script};
use common::{Denwa, registered_phone};
use testkit::baresip::Phone;

const DEADLINE: Duration = Duration::from_secs(240);
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

fn phone(phones: &mut HashMap<String, Phone>, n: &str) -> Result<Phone, String> {
    phones.remove(n).ok_or_else(|| format!("no phone {n}"))
}

#[test]
fn dragging_a_party_onto_an_extension_transfers_it() {
    require_node();
    chromium();
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    testkit::require_binary("curl").unwrap_or_else(|e| panic!("{e}"));
    let d = Denwa::start();
    add_admin(&d);
    let token = api_token(&d);
    // An outbound route to a (silent) carrier that 1001 may not use.
    let carrier = testkit::ports::free_port().expect("a free port");
    d.cli_ok(&[
        "trunk",
        "add",
        "carrier",
        "--host",
        &format!("127.0.0.2:{carrier}"),
    ]);
    d.cli_ok(&[
        "route",
        "add",
        "national",
        "--pattern",
        "0|0ZXXXXXXXX",
        "--trunk",
        "carrier",
        "--cos",
        "national",
    ]);
    let silence = tempfile::tempdir().expect("tmp");
    let wav = common::tone_wav(silence.path(), "quiet.wav", &[], 0, 200_000);
    let mut phones: HashMap<String, Phone> = HashMap::new();
    for (n, pw) in [
        ("1001", "alice-secret-b"),
        ("1002", "bob-secret-cc"),
        ("1003", "carol-secret-d"),
    ] {
        d.add_extension(n, pw);
        phones.insert(n.to_string(), registered_phone(&d, n, pw, &wav));
    }
    d.cli_ok(&["extension", "edit", "1001", "--cos", "internal"]);
    d.wait_until("the route to be loaded", Duration::from_secs(20), || {
        d.logs().contains("trunks and routes loaded")
    });
    let mut moved = false;
    run_script(&d, "xfer_drag.test.mjs", &[], DEADLINE, |words| {
        match words {
            ["CALL", from, to] => {
                let mut a = phone(&mut phones, from)?;
                let mut b = phone(&mut phones, to)?;
                a.dial(&format!("sip:{to}@{}", d.sip_addr()))
                    .map_err(|e| e.to_string())?;
                a.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
                    .map_err(|e| format!("{from}: {e}"))?;
                b.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
                    .map_err(|e| format!("{to}: {e}"))?;
                phones.insert(from.to_string(), a);
                phones.insert(to.to_string(), b);
            }
            ["KEPT", a, b] => {
                // The refused transfer left the call alone.
                let calls = api_get(&d, &token, "/calls");
                let parties = &calls["items"][0]["parties"];
                if calls["total"] != 1 || *parties != serde_json::json!([a, b]) {
                    return Err(format!(
                        "the call changed after a refused transfer: {calls}"
                    ));
                }
            }
            ["MOVED", target, released] => {
                let t = phones
                    .get_mut(*target)
                    .ok_or_else(|| format!("no phone {target}"))?;
                t.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
                    .map_err(|e| format!("the call did not land on {target}: {e}"))?;
                let r = phones
                    .get_mut(*released)
                    .ok_or_else(|| format!("no phone {released}"))?;
                r.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
                    .map_err(|e| format!("{released} was not released: {e}"))?;
                moved = true;
            }
            _ => {}
        }
        Ok(())
    });
    assert!(moved, "the script transferred a call");
    // The call in progress now bridges 1002 and 1003 (the API's view of it).
    let calls = api_get(&d, &token, "/calls");
    let mut parties: Vec<String> = calls["items"][0]["parties"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    parties.sort();
    assert_eq!(parties, ["1002", "1003"], "{calls}");
    // 1002 hangs up; the record's events tell the transfer.
    phones
        .get_mut("1002")
        .expect("1002")
        .hangup()
        .expect("hang up");
    let mut cdrs = Vec::new();
    d.wait_until("the call record", Duration::from_secs(15), || {
        cdrs = d.cdrs();
        !cdrs.is_empty()
    });
    let cdr_id = cdrs[0]["id"].as_i64().expect("record id");
    let mut events = serde_json::Value::Null;
    d.wait_until("the call's events", Duration::from_secs(10), || {
        events = api_get(&d, &token, &format!("/cdrs/{cdr_id}/events"));
        events["total"] == 1
    });
    let e = &events["items"][0];
    assert_eq!(
        (
            e["kind"].as_str(),
            e["by"].as_str(),
            e["party"].as_str(),
            e["target"].as_str()
        ),
        (Some("blind"), Some("1001"), Some("1002"), Some("1003")),
        "{events}"
    );
}
