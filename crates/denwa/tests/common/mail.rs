//! SMTP sinks for the voicemail e-mail tests: aiosmtpd from Debian, plain (its command line) or
//! with TLS and AUTH (a small script on Debian's python3, where aiosmtpd lives), writing what
//! it receives into a Maildir; and the parts of a received e-mail a test checks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Debian's interpreter, which has `python3-aiosmtpd` (a `python3` earlier in PATH may not).
const PYTHON: &str = "/usr/bin/python3";

/// An aiosmtpd sink with STARTTLS (or implicit TLS) and required AUTH PLAIN/LOGIN.
const TLS_SINK: &str = r#"
import signal, ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

mode, port, maildir, cert, key, user, password = sys.argv[1:8]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)

def auth(server, session, envelope, mechanism, data):
    ok = (isinstance(data, LoginPassword) and data.login == user.encode()
          and data.password == password.encode())
    print(f"AUTH {mechanism} {'accepted' if ok else 'refused'}", flush=True)
    return AuthResult(success=ok)

kw = dict(authenticator=auth, auth_required=True)
if mode == "starttls":
    c = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port), tls_context=ctx,
                   require_starttls=True, auth_require_tls=True, **kw)
else:
    c = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port), ssl_context=ctx,
                   auth_require_tls=False, **kw)
c.start()
print("READY", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
c.stop()
"#;

fn wait_listening(port: u16) {
    let end = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < end,
            "the SMTP sink did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A plain SMTP sink on a free port writing into `maildir`.
pub fn smtp_sink(maildir: &Path) -> (testkit::proc::Proc, u16) {
    let port = testkit::ports::free_port().expect("free port");
    (smtp_sink_on(maildir, port), port)
}

/// A plain SMTP sink on `port` writing into `maildir`.
pub fn smtp_sink_on(maildir: &Path, port: u16) -> testkit::proc::Proc {
    testkit::require_binary("aiosmtpd").unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = std::process::Command::new("aiosmtpd");
    cmd.args([
        "-n",
        "-l",
        &format!("127.0.0.1:{port}"),
        "-c",
        "aiosmtpd.handlers.Mailbox",
    ])
    .arg(maildir);
    let p = testkit::proc::Proc::spawn("aiosmtpd", cmd).expect("aiosmtpd starts");
    wait_listening(port);
    p
}

/// How a TLS sink is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Plain connection upgraded by STARTTLS (required before AUTH and MAIL).
    StartTls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

/// A sink on a free port with TLS (`cert`/`key` PEM files) and AUTH required as `user`.
pub fn tls_sink(
    maildir: &Path,
    tls: Tls,
    cert: &Path,
    key: &Path,
    user: &str,
    password: &str,
) -> (testkit::proc::Proc, u16) {
    testkit::require_binary("aiosmtpd").unwrap_or_else(|e| panic!("{e}"));
    let port = testkit::ports::free_port().expect("free port");
    let script = maildir.with_extension("sink.py");
    std::fs::write(&script, TLS_SINK).expect("write the sink script");
    let mut cmd = std::process::Command::new(PYTHON);
    cmd.arg(&script)
        .arg(if tls == Tls::StartTls {
            "starttls"
        } else {
            "implicit"
        })
        .arg(port.to_string())
        .arg(maildir)
        .arg(cert)
        .arg(key)
        .args([user, password]);
    let p = testkit::proc::Proc::spawn("aiosmtpd-tls", cmd).expect("the TLS sink starts");
    wait_listening(port);
    (p, port)
}

/// A private CA and a server certificate it signed for 127.0.0.1, written into `dir`:
/// (CA PEM, server certificate PEM, server key PEM).
pub fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Denwa test private CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let key = KeyPair::generate().expect("server key");
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    leaf.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let cert = leaf
        .signed_by(&key, &ca_cert, &ca_key)
        .expect("server certificate");
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).expect("write");
    std::fs::write(&paths.1, cert.pem()).expect("write");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write");
    paths
}

/// The e-mails the sink has written so far.
pub fn received(maildir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(maildir.join("new"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The base64 `audio/wav` part of a received e-mail, decoded.
pub fn wav_attachment(mail: &str) -> Vec<u8> {
    use base64::Engine as _;
    let start = mail.find("Content-Type: audio/wav").expect("a WAV part");
    let part = &mail[start..];
    let body_at = part
        .find("\n\n")
        .or_else(|| part.find("\r\n\r\n"))
        .expect("part body");
    let b64: String = part[body_at..]
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty() && !l.starts_with("--"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64 attachment")
}
