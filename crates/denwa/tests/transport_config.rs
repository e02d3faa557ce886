//! SIP transport limits from the config file's `[transport]` table: a running server uses them
//! (a per-source TCP cap of 2 resets the third connection) and shows them on `/metrics`; a
//! value out of range stops `denwa serve` before it binds anything, naming the key.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Denwa, Opts, bin};
use testkit::flood;

fn config_file(dir: &std::path::Path, text: &str) -> String {
    let f = dir.join("denwa.toml");
    std::fs::write(&f, text).expect("write config");
    f.display().to_string()
}

/// True when the server closed (reset or EOF) `c` within `wait`.
fn closed(c: &mut TcpStream, wait: Duration) -> bool {
    c.set_read_timeout(Some(wait)).expect("timeout");
    let mut b = [0u8; 16];
    match c.read(&mut b) {
        Ok(n) => n == 0,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn limits_from_the_config_file_are_in_force_and_on_metrics() {
    let conf = tempfile::tempdir().expect("tmp");
    let path = config_file(
        conf.path(),
        "[transport]\ntcp_max_per_source = 2\ntcp_idle_timeout_s = 600\nudp_send_queue = 128\n",
    );
    let d = Denwa::start_with(Opts {
        env: vec![("DENWA_CONFIG".into(), path)],
        ..Default::default()
    });
    let http: SocketAddr = format!("127.0.0.1:{}", d.http_port).parse().expect("addr");
    let metrics = flood::http_get(http, "/metrics", Duration::from_secs(5)).expect("/metrics");
    for (name, value) in [
        ("tcp_max_per_source", 2),
        ("tcp_idle_timeout_s", 600),
        ("udp_send_queue", 128),
        ("tcp_max_total", 4096),
        ("tcp_message_timeout_s", 30),
    ] {
        let line = format!("denwa_sip_transport_limit{{name=\"{name}\"}} {value}\n");
        assert!(metrics.contains(&line), "no {line:?} in:\n{metrics}");
    }
    assert!(
        d.logs().contains("tcp_max_per_source=2"),
        "the startup log shows the limits"
    );
    // The cap is the file's 2, not the default 32.
    let sip: SocketAddr = d.sip_addr().parse().expect("addr");
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..4 {
        // A refused connection is reset, which may already fail the connect.
        let Ok(mut c) = TcpStream::connect(sip) else {
            refused += 1;
            continue;
        };
        if closed(&mut c, Duration::from_millis(500)) {
            refused += 1;
        } else {
            open.push(c);
        }
    }
    assert_eq!((open.len(), refused), (2, 2), "two kept, two reset");
    let metrics = flood::http_get(http, "/metrics", Duration::from_secs(5)).expect("/metrics");
    assert_eq!(
        flood::metric(&metrics, "denwa_sip_tcp_refused_total"),
        Some(2),
        "{metrics}"
    );
}

#[test]
fn a_limit_out_of_range_stops_the_start_naming_the_key() {
    let conf = tempfile::tempdir().expect("tmp");
    let data = tempfile::tempdir().expect("tmp");
    let path = config_file(conf.path(), "[transport]\ntcp_idle_timeout_s = 5\n");
    let port = testkit::ports::free_port().expect("port");
    let mut child = std::process::Command::new(bin())
        .args(["--config", &path, "serve"])
        .args(["--data-dir", &data.path().display().to_string()])
        .args(["--sip-listen", &format!("127.0.0.1:{port}")])
        .args(["--http-listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn denwa");
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("denwa kept running with an idle timeout of 5 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(!status.success());
    assert!(
        err.contains("transport.tcp_idle_timeout_s = 5 is out of range 10..=86400"),
        "{err}"
    );
    assert!(err.contains("denwa.toml"), "the file is named: {err}");
}
