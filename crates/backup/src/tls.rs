//! TLS for the backup channel: the server's self-signed certificate (made at first start, kept
//! in its data dir) and the client's verifier, which accepts exactly the pinned certificate
//! (its SHA-256) and still checks the handshake signature, so only the key's holder passes.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::proto::{same, sha256_hex};

/// The name the certificate carries and clients ask for (the pin, not the name, is checked).
pub const SERVER_NAME: &str = "denwa-backup";

// ring, not aws-lc-rs: it builds without cmake; the pinned-certificate channel needs no
// post-quantum key exchange to be sound today.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's certificate and key (DER), made on first use in `dir` (`cert.der`, `key.der`).
pub struct Identity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    /// SHA-256 of the certificate, hex: what paired nodes pin.
    pub fingerprint: String,
}

impl Identity {
    /// Loads the identity in `dir`, or makes and saves a new one.
    pub fn load_or_create(dir: &Path) -> Result<Identity> {
        let (cp, kp) = (dir.join("cert.der"), dir.join("key.der"));
        if !cp.exists() || !kp.exists() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let ck = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])
                .context("making the backup server's certificate")?;
            write_private(&kp, &ck.key_pair.serialize_der())?;
            std::fs::write(&cp, ck.cert.der().as_ref())
                .with_context(|| format!("writing {}", cp.display()))?;
        }
        let cert = std::fs::read(&cp).with_context(|| format!("reading {}", cp.display()))?;
        let key = std::fs::read(&kp).with_context(|| format!("reading {}", kp.display()))?;
        Ok(Identity {
            fingerprint: sha256_hex(&cert),
            cert: CertificateDer::from(cert),
            key: PrivatePkcs8KeyDer::from(key),
        })
    }

    /// The fingerprint of the identity in `dir`, if one was made.
    pub fn fingerprint_in(dir: &Path) -> Option<String> {
        std::fs::read(dir.join("cert.der"))
            .ok()
            .map(|c| sha256_hex(&c))
    }

    /// A rustls server configuration presenting this identity.
    pub fn server_config(&self) -> Result<rustls::ServerConfig> {
        Ok(rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert.clone()],
                PrivateKeyDer::Pkcs8(self.key.clone_key()),
            )?)
    }
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(data)
        .with_context(|| format!("writing {}", path.display()))
}

/// Accepts only the certificate whose SHA-256 is `expect` (any, when pairing: then it records
/// what it saw for the pairing proof).
#[derive(Debug)]
pub struct Pin {
    expect: Option<String>,
    seen: Mutex<Option<String>>,
    provider: Arc<CryptoProvider>,
}

impl Pin {
    /// A verifier for a pinned fingerprint, or for pairing (`None`).
    pub fn new(expect: Option<String>) -> Arc<Pin> {
        Arc::new(Pin {
            expect,
            seen: Mutex::new(None),
            provider: provider(),
        })
    }

    /// The fingerprint of the certificate the server showed.
    pub fn seen(&self) -> Option<String> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A client configuration using this verifier.
    pub fn client_config(self: &Arc<Self>) -> Result<rustls::ClientConfig> {
        Ok(
            rustls::ClientConfig::builder_with_provider(self.provider.clone())
                .with_safe_default_protocol_versions()?
                .dangerous()
                .with_custom_certificate_verifier(self.clone())
                .with_no_client_auth(),
        )
    }
}

impl ServerCertVerifier for Pin {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = sha256_hex(end_entity.as_ref());
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(fp.clone());
        match &self.expect {
            Some(e) if !same(e, &fp) => Err(rustls::Error::General(format!(
                "the backup server's certificate changed (pinned {}…, shown {}…): pair again",
                &e[..e.len().min(16)],
                &fp[..16]
            ))),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
