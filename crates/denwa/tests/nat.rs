//! A phone behind a NAT router registers and has two-way audio, in both call directions.
//!
//! Hosts are network namespaces this test creates: `pbx` (Denwa and a public phone on
//! 10.77.x.1), `rtr` (10.77.x.2 outside, 192.168.x.1 inside, nftables masquerade) and `home`
//! (the NATed phone, 192.168.x.10). The NATed phone advertises its private address in Contact
//! and SDP; Denwa must use the real source (Via received/rport, binding, symmetric RTP).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{Denwa, Opts};
use testkit::baresip::{Phone, PhoneConfig};
use testkit::tone::{self, CALLEE_TONES, CALLER_TONES, ToneLayout};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

struct Net {
    names: Vec<String>,
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn run(args: &[&str]) -> Result<(), String> {
    let o = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("{args:?}: {}", String::from_utf8_lossy(&o.stderr)))
    }
}

fn in_ns(ns: &str, args: &[&str]) -> Result<(), String> {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    run(&v)
}

/// Builds the three hosts. `Ok(None)` when this machine cannot create namespaces at all (not
/// root); any later failure is a real error.
fn build(tag: u8) -> Result<Option<(Net, String, String, String)>, String> {
    let id = std::process::id();
    let pbx = format!("dwpbx{id}");
    let rtr = format!("dwrtr{id}");
    let home = format!("dwhome{id}");
    let mut net = Net { names: Vec::new() };
    if let Err(e) = run(&["ip", "netns", "add", &pbx]) {
        eprintln!("SKIPPED: cannot create network namespaces here: {e}");
        return Ok(None);
    }
    net.names.push(pbx.clone());
    for n in [&rtr, &home] {
        run(&["ip", "netns", "add", n])?;
        net.names.push(n.clone());
    }
    for n in [&pbx, &rtr, &home] {
        in_ns(n, &["ip", "link", "set", "lo", "up"])?;
    }
    let (w1, w2, l1, l2) = (
        format!("dwa{id}"),
        format!("dwb{id}"),
        format!("dwc{id}"),
        format!("dwd{id}"),
    );
    run(&[
        "ip", "link", "add", &w1, "netns", &pbx, "type", "veth", "peer", "name", &w2, "netns", &rtr,
    ])?;
    run(&[
        "ip", "link", "add", &l1, "netns", &rtr, "type", "veth", "peer", "name", &l2, "netns",
        &home,
    ])?;
    let public = format!("10.77.{tag}");
    let private = format!("192.168.{tag}");
    in_ns(
        &pbx,
        &["ip", "addr", "add", &format!("{public}.1/24"), "dev", &w1],
    )?;
    in_ns(&pbx, &["ip", "link", "set", &w1, "up"])?;
    in_ns(
        &rtr,
        &["ip", "addr", "add", &format!("{public}.2/24"), "dev", &w2],
    )?;
    in_ns(&rtr, &["ip", "link", "set", &w2, "up"])?;
    in_ns(
        &rtr,
        &["ip", "addr", "add", &format!("{private}.1/24"), "dev", &l1],
    )?;
    in_ns(&rtr, &["ip", "link", "set", &l1, "up"])?;
    in_ns(
        &home,
        &["ip", "addr", "add", &format!("{private}.10/24"), "dev", &l2],
    )?;
    in_ns(&home, &["ip", "link", "set", &l2, "up"])?;
    in_ns(
        &home,
        &[
            "ip",
            "route",
            "add",
            "default",
            "via",
            &format!("{private}.1"),
        ],
    )?;
    in_ns(&rtr, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    in_ns(&rtr, &["nft", "add table ip nat"])?;
    in_ns(
        &rtr,
        &[
            "nft",
            "add chain ip nat post { type nat hook postrouting priority 100 ; }",
        ],
    )?;
    in_ns(
        &rtr,
        &[
            "nft",
            &format!("add rule ip nat post oifname \"{w2}\" masquerade"),
        ],
    )?;
    Ok(Some((net, pbx, home, public)))
}

fn tone_file(dir: &std::path::Path, name: &str, freqs: &[u32]) -> PathBuf {
    let path = dir.join(name);
    tone::write_tone_wav(&path, freqs, &ToneLayout::default(), 0).expect("tone file");
    path
}

fn talk(
    d: &Denwa,
    caller: &mut Phone,
    callee: &mut Phone,
    uri: &str,
    caller_tones: &[u32],
    callee_tones: &[u32],
) {
    caller.dial(uri).expect("dial");
    caller
        .wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("caller: {e}")
        });
    callee
        .wait_event("CALL_ESTABLISHED", EVENT_TIMEOUT)
        .expect("callee established");
    let seq = ToneLayout::default().sequence_ms(caller_tones.len());
    std::thread::sleep(Duration::from_millis(u64::from(seq) + 1000));
    caller.hangup().expect("hang up");
    caller
        .wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("caller closed");
    callee
        .wait_event("CALL_CLOSED", EVENT_TIMEOUT)
        .expect("callee closed");
    tone::check_recording(
        &caller.last_recording().expect("rec"),
        callee_tones,
        caller_tones,
    )
    .unwrap_or_else(|e| panic!("caller did not hear the callee: {e}"));
    tone::check_recording(
        &callee.last_recording().expect("rec"),
        caller_tones,
        callee_tones,
    )
    .unwrap_or_else(|e| panic!("callee did not hear the caller: {e}"));
    caller.clear_events();
    callee.clear_events();
}

#[test]
fn phone_behind_nat_registers_and_talks_both_ways() {
    for bin in ["ip", "nft", "baresip"] {
        testkit::require_binary(bin).unwrap_or_else(|e| panic!("{e}"));
    }
    let tag = (std::process::id() % 200) as u8 + 20;
    let (_net, pbx_ns, home_ns, public) = match build(tag) {
        Ok(Some(v)) => v,
        Ok(None) => return,
        Err(e) => panic!("building the NAT topology failed: {e}"),
    };
    let pbx_ip = format!("{public}.1");
    let d = Denwa::start_with(Opts {
        ip: Some(pbx_ip.clone()),
        netns: Some(pbx_ns.clone()),
        ..Default::default()
    });
    d.add_extension("2001", "home-secret-b");
    d.add_extension("2002", "office-secret-c");

    let audio = tempfile::tempdir().expect("tmp");
    let home_wav = tone_file(audio.path(), "home.wav", &CALLER_TONES);
    let office_wav = tone_file(audio.path(), "office.wav", &CALLEE_TONES);
    let mut home_cfg = PhoneConfig::new("2001")
        .registering(&d.sip_addr(), "home-secret-b", 600)
        .with_audio(&home_wav);
    home_cfg.ip = format!("192.168.{tag}.10").parse().expect("ip");
    home_cfg.netns = Some(home_ns);
    let mut office_cfg = PhoneConfig::new("2002")
        .registering(&d.sip_addr(), "office-secret-c", 600)
        .with_audio(&office_wav);
    office_cfg.ip = pbx_ip.parse().expect("ip");
    office_cfg.netns = Some(pbx_ns);
    let mut home = Phone::start(home_cfg).expect("home phone");
    let mut office = Phone::start(office_cfg).expect("office phone");
    home.wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .unwrap_or_else(|e| {
            d.print_logs();
            panic!("NATed phone did not register: {e}")
        });
    office
        .wait_event("REGISTER_OK", EVENT_TIMEOUT)
        .expect("office registers");

    // The binding holds the router's public address, not the phone's private one.
    let regs = d.registrations();
    let home_reg = regs
        .iter()
        .find(|r| r["aor"].as_str().unwrap_or("").contains("2001"))
        .expect("home binding");
    let received = home_reg["received_addr"].as_str().unwrap_or("");
    assert!(
        received.starts_with(&format!("{public}.2:")),
        "binding should hold the NAT address: {home_reg}"
    );
    assert!(
        home_reg["contact_uri"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("192.168.{tag}.10"))
    );

    // Outbound from behind the NAT, then inbound to the NATed phone.
    talk(
        &d,
        &mut home,
        &mut office,
        &format!("sip:2002@{}", d.sip_addr()),
        &CALLER_TONES,
        &CALLEE_TONES,
    );
    talk(
        &d,
        &mut office,
        &mut home,
        &format!("sip:2001@{}", d.sip_addr()),
        &CALLEE_TONES,
        &CALLER_TONES,
    );

    let cdrs = d.cdrs();
    assert_eq!(cdrs.len(), 2);
    assert!(
        cdrs.iter().all(|c| c["disposition"] == "ANSWERED"),
        "{cdrs:?}"
    );
}
