//! The backup/report server of the `standalone-backup` topology, end to end: two `denwa serve`
//! nodes in network namespaces this test creates (`dnwbk-pbx-*` with 10.231.0.1, `dnwbk-bak-*`
//! with 10.231.0.2, one veth between them; deleted on drop, also when the test fails).
//!
//! Pairing with a one-time code (refused without the licence topology, single use), a
//! scheduled backup that arrives and verifies, an on-demand one, keeping N generations, an
//! unpaired node's upload refused, corrupt uploads refused and counted, the backup node's
//! reports matching the PBX's call records (computed independently here), the server's disk
//! full (refused, counted, retried by the PBX's scheduler once space is back), a wiped PBX
//! reinstalled fresh, paired again and restored from the backup server (extensions, call
//! records and the prompt, voicemail, recording and music-on-hold files are back), and a
//! changed server certificate refused by the pinning.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::{Denwa, Opts};
use license::Topology;
use store::{Disposition, HangupBy, NewCdr, Store};
use testkit::netns::{Netns, in_netns};

const PBX_IP: &str = "10.231.0.1";
const BAK_IP: &str = "10.231.0.2";
const BAK_PORT: u16 = 8443;

/// A small tmpfs mounted over a directory in the mount namespace of process `pid` (`ip netns
/// exec` gives the node one of its own): a full disk for that process. Unmounted on drop.
struct Tmpfs {
    pid: u32,
    dir: std::path::PathBuf,
}

impl Tmpfs {
    fn mount(pid: u32, dir: &Path, size: &str) -> Tmpfs {
        let ok = Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-m", "--"])
            .args([
                "mount",
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .expect("nsenter mount");
        assert!(ok.success(), "mount tmpfs on {}", dir.display());
        Tmpfs {
            pid,
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("nsenter")
            .args(["-t", &self.pid.to_string(), "-m", "--", "umount"])
            .arg(&self.dir)
            .status();
    }
}

/// The two hosts; `None` when namespaces cannot be made here (not root).
fn lab() -> Option<(Netns, Netns)> {
    let pbx = match Netns::create("dnwbk-pbx") {
        Ok(n) => n,
        Err(e) => {
            eprintln!("SKIPPED: cannot create network namespaces here: {e}");
            return None;
        }
    };
    let bak = Netns::create("dnwbk-bak").expect("second namespace");
    let ok = Command::new("ip")
        .args(["link", "add", "bk0", "netns", pbx.name(), "type", "veth"])
        .args(["peer", "name", "bk1", "netns", bak.name()])
        .status()
        .expect("ip link add");
    assert!(ok.success(), "veth pair");
    pbx.exec(&["ip", "addr", "add", &format!("{PBX_IP}/24"), "dev", "bk0"])
        .expect("address");
    pbx.exec(&["ip", "link", "set", "bk0", "up"]).expect("up");
    bak.exec(&["ip", "addr", "add", &format!("{BAK_IP}/24"), "dev", "bk1"])
        .expect("address");
    bak.exec(&["ip", "link", "set", "bk1", "up"]).expect("up");
    Some((pbx, bak))
}

fn node(ns: &Netns, ip: &str, name: &str, extra: &[&str]) -> Denwa {
    let (k, v) = testkit::licence::DEV_ENV;
    // By environment, so the CLI run for this node has the same name as its server.
    Denwa::start_with(Opts {
        ip: Some(ip.into()),
        netns: Some(ns.name().into()),
        env: vec![
            (k.into(), v.into()),
            ("DENWA_NODE_NAME".into(), name.into()),
        ],
        extra: extra.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
}

/// Runs the CLI inside the node's namespace (it talks to the other node over the veth).
fn cli_in(ns: &Netns, d: &Denwa, args: &[&str]) -> Output {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns.name()])
        .arg(common::bin())
        .args(args)
        .args(["--data-dir", d.data_dir().to_str().expect("UTF-8")]);
    for (k, v) in &d.opts.env {
        c.env(k, v);
    }
    c.output().expect("run denwa")
}

fn cli_in_ok(ns: &Netns, d: &Denwa, args: &[&str]) -> String {
    let o = cli_in(ns, d, args);
    assert!(
        o.status.success(),
        "denwa {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Installs one TEST-key licence with topology standalone-backup bound to `nodes`.
fn install_backup_licence(d: &Denwa, nodes: &[String]) {
    let mut t = testkit::licence::terms(&nodes[0], testkit::licence::GENEROUS, 30);
    t.topology = Topology::StandaloneBackup;
    t.nodes = nodes.to_vec();
    let file = d.data_dir().join("backup-licence.lic");
    std::fs::write(&file, testkit::licence::mint(&t)).expect("write licence");
    d.cli_ok(&["license", "install", file.to_str().expect("UTF-8")]);
}

/// Waits until the running server has loaded the licence (it re-reads the file every few
/// seconds and logs what is in force).
fn wait_topology(d: &Denwa) {
    d.wait_until("the licence to apply", Duration::from_secs(15), || {
        d.logs().contains("licence loaded") && d.logs().contains("standalone-backup")
    });
}

/// A plain HTTP GET from inside `ns`; the body of a 200 answer.
fn http_get(ns: &Netns, addr: SocketAddr, path: &str) -> Option<String> {
    let path = path.to_string();
    in_netns(ns.name(), move || {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })
    .ok()
    .filter(|r| r.starts_with("HTTP/1.1 200"))
    .and_then(|r| r.split_once("\r\n\r\n").map(|(_, b)| b.to_string()))
}

/// Requires `name` to have `value` in the Prometheus text `body`.
fn expect_metric(body: &str, name: &str, value: i64) {
    assert_eq!(metric(body, name), Some(value), "{name} in\n{body}");
}

fn metric(body: &str, name: &str) -> Option<i64> {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// Runs an async backup-client call on a thread inside `ns`.
fn in_ns_async<T: Send>(
    ns: &Netns,
    f: impl std::future::Future<Output = anyhow::Result<T>> + Send,
) -> anyhow::Result<T> {
    in_netns(ns.name(), move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(rt.block_on(f))
    })
    .expect("thread in namespace")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn open(d: &Denwa) -> Store {
    Store::open(
        &store::default_url(d.data_dir()),
        store::OpenOptions::default(),
    )
    .await
    .expect("open the node's database")
}

/// Call records with known outcomes on two days: (caller, callee, disposition, start, billsec).
fn fixtures(now: DateTime<Utc>) -> Vec<NewCdr> {
    let day = TimeDelta::days(1);
    let rows: &[(&str, &str, Disposition, i64, i64)] = &[
        ("1001", "1002", Disposition::Answered, 0, 65),
        ("1002", "1001", Disposition::Answered, 0, 5),
        ("1001", "1002", Disposition::NoAnswer, 0, 0),
        ("1002", "1001", Disposition::Busy, 1, 0),
        ("1001", "1002", Disposition::Canceled, 1, 0),
        ("1001", "1002", Disposition::Answered, 1, 120),
        ("1002", "1001", Disposition::Failed, 1, 0),
    ];
    rows.iter()
        .enumerate()
        .map(|(i, (a, b, disp, days_ago, bill))| {
            let start = now - day * (*days_ago as i32) - TimeDelta::minutes(30 + i as i64);
            let answer = (*disp == Disposition::Answered).then(|| start + TimeDelta::seconds(3));
            let end = start + TimeDelta::seconds(3 + bill);
            NewCdr {
                tenant_id: 1,
                call_id: format!("bk-call-{i}@test"),
                caller: a.to_string(),
                callee: b.to_string(),
                caller_name: String::new(),
                start_time: start,
                answer_time: answer,
                end_time: end,
                duration_s: 3 + bill,
                billsec: *bill,
                disposition: *disp,
                hangup_by: HangupBy::Caller,
                hangup_cause: String::new(),
                codec: "PCMU".into(),
                a: Default::default(),
                b: Default::default(),
                route: Default::default(),
            }
        })
        .collect()
}

/// Data-dir files of every kind the archive carries.
fn write_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for (i, rel) in [
        "prompts/en/welcome.wav",
        "voicemail/1001/msg0001.wav",
        "recordings/2026/call-1.wav",
        "moh/default/track1.wav",
    ]
    .iter()
    .enumerate()
    {
        let data: Vec<u8> = (0..4096u32).map(|x| (x * 7 + i as u32) as u8).collect();
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, &data).expect("write");
        m.insert(rel.to_string(), data);
    }
    m
}

/// A one-time pairing code made on the backup server.
fn pair_code(ns: &Netns, bak: &Denwa) -> String {
    let out = cli_in_ok(ns, bak, &["backup", "pair-code"]);
    out.split_whitespace()
        .find(|w| w.len() == 19 && w.matches('-').count() == 3)
        .expect("a code in the output")
        .to_string()
}

fn received(ns: &Netns, bak: &Denwa) -> Vec<serde_json::Value> {
    serde_json::from_str(&cli_in_ok(ns, bak, &["backup", "received", "--json"])).expect("JSON")
}

#[test]
fn pbx_ships_to_the_backup_server_and_a_fresh_install_restores_from_it() {
    let Some((pbx_ns, bak_ns)) = lab() else {
        return;
    };
    let rt = rt();
    let mut bak = node(
        &bak_ns,
        BAK_IP,
        "bak1",
        &["--backup-listen", &format!("{BAK_IP}:{BAK_PORT}")],
    );
    let mut pbx = node(&pbx_ns, PBX_IP, "pbx1", &[]);
    let pbx_http: SocketAddr = format!("{PBX_IP}:{}", pbx.http_port).parse().expect("addr");
    let bak_http: SocketAddr = format!("{BAK_IP}:{}", bak.http_port).parse().expect("addr");
    let server = format!("{BAK_IP}:{BAK_PORT}");

    // Without a standalone-backup licence nothing pairs, and the reason names the topology.
    let o = cli_in(&bak_ns, &bak, &["backup", "pair-code"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("standalone-backup"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ids = vec![
        testkit::licence::node_id(pbx.data_dir()),
        testkit::licence::node_id(bak.data_dir()),
    ];
    install_backup_licence(&bak, &ids);
    install_backup_licence(&pbx, &ids);
    wait_topology(&bak);
    wait_topology(&pbx);

    // The PBX's data: extensions, files, call records.
    pbx.add_extension("1001", "Tiger-Lily-77a");
    pbx.add_extension("1002", "Ocean-Breeze-88b");
    let files = write_files(pbx.data_dir());
    let now = Utc::now();
    let cdrs = fixtures(now);
    rt.block_on(async {
        let s = open(&pbx).await;
        for c in &cdrs {
            s.insert_cdr(c.clone()).await.expect("insert CDR");
        }
        s.close().await;
    });

    // An unpaired node's upload is refused (a made-up token), and counted.
    let bogus_archive = pbx.data_dir().join("bogus.tar");
    std::fs::write(&bogus_archive, b"not even a tar file").expect("write");
    let fp = backup::proto::sha256_hex(
        &std::fs::read(bak.data_dir().join("backup-server/tls/cert.der")).expect("server cert"),
    );
    let url = format!("https://{server}");
    let r = in_ns_async(&pbx_ns, {
        let (url, fp, f) = (url.clone(), fp.clone(), bogus_archive.clone());
        async move {
            backup::client::upload_file(&url, &fp, &"ab".repeat(32), "intruder", &f, None).await
        }
    });
    let e = r.expect_err("an unpaired upload must be refused");
    assert!(format!("{e:#}").contains("not paired"), "{e:#}");
    assert!(
        received(&bak_ns, &bak).is_empty(),
        "nothing kept from an unpaired node"
    );

    // Pairing with a one-time code; the code works once.
    let code = pair_code(&bak_ns, &bak);
    let wrong = cli_in(
        &pbx_ns,
        &pbx,
        &["backup", "pair", &server, "0000-0000-0000-0000"],
    );
    assert!(!wrong.status.success(), "a wrong code pairs nothing");
    let out = cli_in_ok(&pbx_ns, &pbx, &["backup", "pair", &server, &code]);
    assert!(out.contains("paired with backup server bak1"), "{out}");
    assert!(
        out.contains(&fp),
        "the pinned fingerprint is the server's: {out}"
    );
    let again = cli_in(&pbx_ns, &pbx, &["backup", "pair", &server, &code]);
    assert!(!again.status.success(), "a used code pairs nothing");
    let peers: Vec<serde_json::Value> =
        serde_json::from_str(&cli_in_ok(&bak_ns, &bak, &["backup", "peers", "--json"]))
            .expect("JSON");
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0]["name"], "pbx1");

    // A scheduled backup: the daily slot a few seconds from now (UTC, the report zone).
    let slot = (Utc::now() + TimeDelta::seconds(4))
        .format("%H:%M:%S")
        .to_string();
    cli_in_ok(&pbx_ns, &pbx, &["backup", "schedule", &slot]);
    bak.wait_until("the scheduled backup", Duration::from_secs(60), || {
        received(&bak_ns, &bak).iter().any(|g| g["status"] == "ok")
    });
    let gens = received(&bak_ns, &bak);
    assert_eq!(gens.len(), 1, "{gens:?}");
    assert_eq!(gens[0]["source"], "pbx1");
    assert_eq!(gens[0]["cdrs_imported"], cdrs.len() as i64, "{gens:?}");
    assert!(
        gens[0]["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("verified"),
        "{gens:?}"
    );
    let status: serde_json::Value =
        serde_json::from_str(&cli_in_ok(&pbx_ns, &pbx, &["backup", "status", "--json"]))
            .expect("JSON");
    assert_eq!(status["failures"], 0, "{status}");
    assert!(status["last_success_at"].is_string(), "{status}");

    // The backup node's reports show the PBX's calls, as computed here from the fixtures.
    let want = |d: Disposition| cdrs.iter().filter(|c| c.disposition == d).count() as i64;
    let talk: i64 = cdrs.iter().map(|c| c.billsec).sum();
    let q = store::report::ReportQuery {
        tenant_id: 1,
        period: store::report::Period::Day,
        dimension: store::report::Dimension::All,
        from: (now - TimeDelta::days(3)).date_naive(),
        to: (now + TimeDelta::days(1)).date_naive(),
        key: None,
    };
    let bak_store = rt.block_on(open(&bak));
    bak.wait_until(
        "reports on the backup node",
        Duration::from_secs(30),
        || {
            rt.block_on(bak_store.report_totals(&q))
                .ok()
                .and_then(|r| r.first().map(|r| r.counts.offered))
                == Some(cdrs.len() as i64)
        },
    );
    let totals = rt.block_on(bak_store.report_totals(&q)).expect("totals")[0].counts;
    assert_eq!(totals.answered, want(Disposition::Answered));
    assert_eq!(totals.missed, want(Disposition::NoAnswer));
    assert_eq!(totals.busy, want(Disposition::Busy));
    assert_eq!(totals.abandoned, want(Disposition::Canceled));
    assert_eq!(totals.failed, want(Disposition::Failed));
    assert_eq!(totals.talk_s, talk);
    let days = rt.block_on(bak_store.report(&q)).expect("days");
    let mut per_day: BTreeMap<String, i64> = BTreeMap::new();
    for c in &cdrs {
        *per_day
            .entry(c.start_time.date_naive().to_string())
            .or_default() += 1;
    }
    let got: BTreeMap<String, i64> = days
        .iter()
        .map(|r| (r.bucket.clone(), r.counts.offered))
        .collect();
    assert_eq!(got, per_day);

    // On demand, twice, with 2 generations kept: the oldest goes; records are not imported twice.
    cli_in_ok(&bak_ns, &bak, &["backup", "keep", "2"]);
    cli_in_ok(&pbx_ns, &pbx, &["backup", "ship"]);
    let out = cli_in_ok(&pbx_ns, &pbx, &["backup", "ship"]);
    assert!(out.contains("backup shipped"), "{out}");
    let gens = received(&bak_ns, &bak);
    let ok: Vec<_> = gens.iter().filter(|g| g["status"] == "ok").collect();
    assert_eq!(ok.len(), 2, "{gens:?}");
    assert!(ok.iter().all(|g| g["cdrs_imported"] == 0), "{gens:?}");
    let kept = std::fs::read_dir(bak.data_dir().join("backup-server/generations"))
        .expect("generations dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".tar"))
        })
        .count();
    assert_eq!(kept, 2, "pruned archives are deleted");

    // Corrupt uploads from the paired node: a transfer that does not match its checksum, and
    // an archive whose member does not match the manifest. Both refused, recorded, counted.
    let token = rt.block_on(async {
        let s = open(&pbx).await;
        let t = s.ship_state().await.expect("ship state").token;
        s.close().await;
        t
    });
    let good = pbx.data_dir().join("good.tar");
    pbx.cli_ok(&["backup", "create", good.to_str().expect("UTF-8")]);
    let mut bytes = std::fs::read(&good).expect("read");
    let damaged = pbx.data_dir().join("damaged.tar");
    // Inside the first member's data (after its 512-byte header).
    bytes[600] ^= 0x55;
    std::fs::write(&damaged, &bytes).expect("write");
    let r = in_ns_async(&pbx_ns, {
        let (url, fp, t, f) = (url.clone(), fp.clone(), token.clone(), good.clone());
        async move {
            backup::client::upload_file(&url, &fp, &t, "pbx1", &f, Some(&"0".repeat(64))).await
        }
    });
    let e = r.expect_err("checksum mismatch refused");
    assert!(format!("{e:#}").contains("corrupt transfer"), "{e:#}");
    let r = in_ns_async(&pbx_ns, {
        let (url, fp, t, f) = (url.clone(), fp.clone(), token.clone(), damaged.clone());
        async move { backup::client::upload_file(&url, &fp, &t, "pbx1", &f, None).await }
    });
    let e = r.expect_err("a damaged archive is refused");
    assert!(format!("{e:#}").contains("failed verification"), "{e:#}");
    let gens = received(&bak_ns, &bak);
    assert_eq!(
        gens.iter().filter(|g| g["status"] == "rejected").count(),
        2,
        "{gens:?}"
    );
    assert_eq!(
        gens.iter().filter(|g| g["status"] == "ok").count(),
        2,
        "refusals keep nothing"
    );
    let m = http_get(&bak_ns, bak_http, "/metrics").expect("metrics");
    expect_metric(&m, "denwa_backup_server_rejected_total", 2);
    // The unpaired upload, the wrong code and the used code.
    expect_metric(&m, "denwa_backup_server_unauthorized_total", 3);
    expect_metric(&m, "denwa_backup_server_generations", 2);
    let pm = http_get(&pbx_ns, pbx_http, "/metrics").expect("PBX metrics");
    expect_metric(&pm, "denwa_backup_shipped_total", 3);
    assert!(
        metric(&pm, "denwa_backup_last_success_timestamp_seconds").unwrap_or(0) >= now.timestamp()
    );

    // The backup server's disk is full (a tiny tmpfs over its generations directory): the
    // upload is refused as such and counted, the PBX records the failure, shows it in
    // /metrics, and its scheduler retries by itself until the space is back.
    let gens_dir = bak.data_dir().join("backup-server/generations");
    let bak_pid = bak.proc.as_ref().expect("running").pid();
    let full = Tmpfs::mount(bak_pid, &gens_dir, "8k");
    let o = cli_in(&pbx_ns, &pbx, &["backup", "ship"]);
    assert!(!o.status.success(), "shipping to a full disk fails");
    let refused = received(&bak_ns, &bak);
    assert!(
        refused[0]["status"] == "rejected"
            && refused[0]["detail"]
                .as_str()
                .unwrap_or("")
                .contains("disk is full"),
        "{refused:?}"
    );
    let pm = http_get(&pbx_ns, pbx_http, "/metrics").expect("PBX metrics");
    expect_metric(&pm, "denwa_backup_consecutive_failures", 1);
    expect_metric(&pm, "denwa_backup_failures_total", 1);
    drop(full);
    pbx.wait_until("the automatic retry", Duration::from_secs(90), || {
        http_get(&pbx_ns, pbx_http, "/metrics")
            .is_some_and(|m| metric(&m, "denwa_backup_consecutive_failures") == Some(0))
    });
    let pm = http_get(&pbx_ns, pbx_http, "/metrics").expect("PBX metrics");
    expect_metric(&pm, "denwa_backup_shipped_total", 4);
    let m = http_get(&bak_ns, bak_http, "/metrics").expect("metrics");
    expect_metric(&m, "denwa_backup_server_rejected_total", 3);
    expect_metric(&m, "denwa_backup_server_generations", 2);
    rt.block_on(bak_store.close());

    // Hardware failure: the PBX's data dir and database are gone; a fresh install (new node
    // id, new licence) pairs and restores the newest generation.
    pbx.terminate();
    for e in std::fs::read_dir(pbx.data_dir()).expect("data dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).expect("wipe");
        } else {
            std::fs::remove_file(&p).expect("wipe");
        }
    }
    pbx.spawn();
    assert!(
        pbx.cli_ok(&["extension", "list", "--json"]).trim() == "[]",
        "wiped"
    );
    let new_id = testkit::licence::node_id(pbx.data_dir());
    assert_ne!(new_id, ids[0], "a fresh install has a new node id");
    install_backup_licence(&pbx, &[new_id, ids[1].clone()]);
    let code = pair_code(&bak_ns, &bak);
    cli_in_ok(&pbx_ns, &pbx, &["backup", "pair", &server, &code]);
    let list: Vec<serde_json::Value> = serde_json::from_str(&cli_in_ok(
        &pbx_ns,
        &pbx,
        &["backup", "generations", "--json"],
    ))
    .expect("JSON");
    assert_eq!(list.len(), 2, "{list:?}");
    let newest = list[0]["id"].as_i64().expect("id");
    let out = cli_in_ok(
        &pbx_ns,
        &pbx,
        &["backup", "restore-remote", &newest.to_string()],
    );
    assert!(
        out.contains(&format!("restored generation {newest}")),
        "{out}"
    );

    let exts: Vec<serde_json::Value> =
        serde_json::from_str(&pbx.cli_ok(&["extension", "list", "--json"])).expect("JSON");
    let numbers: Vec<&str> = exts.iter().filter_map(|e| e["number"].as_str()).collect();
    assert_eq!(numbers, ["1001", "1002"]);
    let back = pbx.cdrs();
    assert_eq!(back.len(), cdrs.len());
    for (rel, data) in &files {
        let got = std::fs::read(pbx.data_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(&got, data, "{rel} restored byte for byte");
    }
    let status: serde_json::Value =
        serde_json::from_str(&cli_in_ok(&pbx_ns, &pbx, &["backup", "status", "--json"]))
            .expect("JSON");
    assert_eq!(
        status["paired"], true,
        "a restore keeps this node's pairing: {status}"
    );
    // And it keeps shipping.
    cli_in_ok(&pbx_ns, &pbx, &["backup", "ship"]);

    // Another certificate at the server's address (a new identity, or someone in between) is
    // not the pinned one: nothing is sent, and the reason says to pair again.
    bak.terminate();
    std::fs::remove_dir_all(bak.data_dir().join("backup-server/tls")).expect("remove identity");
    bak.spawn();
    let o = cli_in(&pbx_ns, &pbx, &["backup", "ship"]);
    assert!(!o.status.success(), "a changed certificate is refused");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("certificate changed"), "{err}");
    let gens = received(&bak_ns, &bak);
    assert_eq!(
        gens.iter().filter(|g| g["status"] == "ok").count(),
        2,
        "{gens:?}"
    );
    pbx.terminate();
    bak.terminate();
}
