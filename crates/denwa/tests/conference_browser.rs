//! The live conference participant list in a real browser: `tests/browser/conference.test.mjs`
//! drives Debian's chromium (playwright-core) on the rooms page while real baresip phones join
//! room 800; the list shows them without a reload, mutes one and drops the other, whose phone
//! then sees its call end. This test starts the server, creates the administrator and the
//! room, and owns the phones; the script asks for them on stdout (`JOIN <number>`). Needs node,
//! `npm ci` in tests/browser and chromium (scripts/test-deps.sh installs them).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::browser::{add_admin, chromium, require_node, run_script};
use common::{Denwa, registered_phone};
use testkit::baresip::Phone;

/// The whole browser flow must finish within this.
const DEADLINE: Duration = Duration::from_secs(240);
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn conference_participants_live_in_the_panel() {
    require_node();
    chromium();
    testkit::require_binary("baresip").unwrap_or_else(|e| panic!("{e}"));
    let d = Denwa::start();
    add_admin(&d);
    d.cli_ok(&["conf", "add", "800", "--name", "Weekly"]);
    let silence = tempfile::tempdir().expect("tmp");
    // The phones send silence for longer than the test runs (the call must not end by itself).
    let wav = common::tone_wav(silence.path(), "quiet.wav", &[], 0, 200_000);
    let mut phones: HashMap<String, Phone> = HashMap::new();
    for (n, pw) in [("1001", "alice-secret-b"), ("1002", "bob-secret-cc")] {
        d.add_extension(n, pw);
        phones.insert(n.to_string(), registered_phone(&d, n, pw, &wav));
    }
    d.wait_until("the room loaded", Duration::from_secs(10), || {
        d.logs().contains("voice applications loaded")
    });
    let mut dropped = false;
    run_script(&d, "conference.test.mjs", &[], DEADLINE, |words| {
        match words {
            ["JOIN", number] => {
                let p = phones
                    .get_mut(*number)
                    .ok_or_else(|| format!("no phone {number}"))?;
                p.dial(&format!("sip:800@{}", d.sip_addr())).expect("dial");
                p.wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
                    .map_err(|e| format!("{number} did not join room 800: {e}"))?;
            }
            ["DROPPED", number] => {
                // Dropped from the panel: the phone's call ends.
                let p = phones
                    .get_mut(*number)
                    .ok_or_else(|| format!("no phone {number}"))?;
                p.wait_event("CALL_CLOSED", EVENT_TIMEOUT)
                    .map_err(|e| format!("{number} was not hung up: {e}"))?;
                dropped = true;
            }
            _ => {}
        }
        Ok(())
    });
    assert!(dropped, "the script dropped a participant");
}
