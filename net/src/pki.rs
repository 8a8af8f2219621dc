//! The deployment's certificates: a local CA, the server's certificate and the connecting
//! systems' client certificates, all ECDSA P-256, kept as PEM files in `certs/` in the data
//! directory. `spine serve` creates the CA, a server certificate for the loopback names and a
//! demo client certificate on first start; `spine cert issue` adds a system.
//!
//! A client certificate names its system by the SHA-256 fingerprint of its DER bytes, which
//! the access directory lists under the system (`certificates`): the server maps the
//! certificate a connection presented to the system's ASID, and refuses one it does not know.

use std::fs;
use std::path::{Path, PathBuf};

pub use rcgen::KeyUsagePurpose;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// The folder of the certificates in the data directory.
pub const CERTS_DIR: &str = "certs";
const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server.key";
/// The demo system's certificate name.
pub const DEMO_CLIENT: &str = "demo-client";

/// Why certificates could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// Generating or signing failed, or a PEM file holds no usable key.
    #[error("{what}: {source}")]
    Rcgen {
        /// What was being done.
        what: String,
        /// The failure.
        source: rcgen::Error,
    },
    /// A PEM file holds no certificate or key.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A system name that cannot name files.
    #[error("system name {0:?} must be 1 to 64 letters, digits, '-' or '_'")]
    BadName(String),
}

/// A certificate and its key, as files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

impl CertFiles {
    fn in_dir(dir: &Path, name: &str) -> Self {
        Self {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        }
    }

    /// The certificate chain and key, for rustls.
    pub fn load(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PkiError> {
        let pem = |path: &Path, reason: String| PkiError::Pem {
            path: path.to_owned(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|error| pem(&self.cert, error.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| pem(&self.cert, error.to_string()))?;
        if certs.is_empty() {
            return Err(pem(&self.cert, "no certificate".into()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|error| pem(&self.key, error.to_string()))?;
        Ok((certs, key))
    }
}

/// The files of a deployment's certificates.
#[derive(Clone, Debug)]
pub struct Pki {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

fn rcgen(what: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |source| PkiError::Rcgen {
        what: what.to_owned(),
        source,
    }
}

/// Writes `text` to `path` whole (temporary file, then rename); keys readable by the owner only.
fn write_file(path: &Path, text: &str, private: bool) -> Result<(), PkiError> {
    let temporary = path.with_extension("tmp");
    fs::write(&temporary, text).map_err(io(&temporary))?;
    if private {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&temporary, fs::Permissions::from_mode(0o600))
            .map_err(io(&temporary))?;
    }
    fs::rename(&temporary, path).map_err(io(path))
}

/// The CA's parameters: always the same, so the CA can sign again from its key alone.
fn ca_params() -> Result<CertificateParams, PkiError> {
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(rcgen("CA parameters"))?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "Spine core local CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Spine core");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// The SHA-256 fingerprint of a certificate's DER bytes, in lower-case hex.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl Pki {
    /// The certificates under `data_dir/certs`, as they are (nothing is created): what a client
    /// on the same machine needs to find the CA and its certificate.
    pub fn at(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join(CERTS_DIR),
        }
    }

    /// The certificates under `data_dir/certs`, created if missing: a CA, a server certificate
    /// for `server_names` (DNS names or IP addresses) and the demo client certificate.
    pub fn open_or_create(data_dir: &Path, server_names: &[String]) -> Result<Self, PkiError> {
        let pki = Self {
            dir: data_dir.join(CERTS_DIR),
        };
        fs::create_dir_all(&pki.dir).map_err(io(&pki.dir))?;
        if !pki.dir.join(CA_KEY).exists() {
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen("CA key"))?;
            let cert = ca_params()?
                .self_signed(&key)
                .map_err(rcgen("CA certificate"))?;
            write_file(&pki.dir.join(CA_KEY), &key.serialize_pem(), true)?;
            write_file(&pki.dir.join(CA_CERT), &cert.pem(), false)?;
        }
        if !pki.dir.join(SERVER_KEY).exists() {
            pki.issue(
                SERVER_CERT,
                SERVER_KEY,
                "Spine core server",
                server_names,
                None,
            )?;
        }
        if !pki.client_files(DEMO_CLIENT)?.key.exists() {
            pki.issue_client(DEMO_CLIENT)?;
        }
        Ok(pki)
    }

    /// The folder the files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate's file.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join(CA_CERT)
    }

    /// The CA certificate, for trust stores.
    pub fn ca_der(&self) -> Result<CertificateDer<'static>, PkiError> {
        let path = self.ca_cert();
        CertificateDer::from_pem_file(&path).map_err(|error| PkiError::Pem {
            path,
            reason: error.to_string(),
        })
    }

    /// The server's certificate and key.
    pub fn server_files(&self) -> CertFiles {
        CertFiles {
            cert: self.dir.join(SERVER_CERT),
            key: self.dir.join(SERVER_KEY),
        }
    }

    /// The files of system `name`'s client certificate.
    pub fn client_files(&self, name: &str) -> Result<CertFiles, PkiError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(PkiError::BadName(name.to_owned()));
        }
        Ok(CertFiles::in_dir(&self.dir.join("clients"), name))
    }

    /// Issues a client certificate for system `name` (replacing an earlier one); returns its
    /// files and its fingerprint.
    pub fn issue_client(&self, name: &str) -> Result<(CertFiles, String), PkiError> {
        self.issue_client_with_key_usages(name, &[KeyUsagePurpose::DigitalSignature])
    }

    /// As [`Pki::issue_client`], with these key usages rather than `digitalSignature`: to test
    /// that the server refuses a certificate not fit for a TLS 1.3 client.
    pub fn issue_client_with_key_usages(
        &self,
        name: &str,
        key_usages: &[KeyUsagePurpose],
    ) -> Result<(CertFiles, String), PkiError> {
        let files = self.client_files(name)?;
        let clients = self.dir.join("clients");
        fs::create_dir_all(&clients).map_err(io(&clients))?;
        let cert_name = files
            .cert
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_default();
        let key_name = files.key.file_name().map(PathBuf::from).unwrap_or_default();
        let fingerprint = self.issue(
            &Path::new("clients").join(cert_name).to_string_lossy(),
            &Path::new("clients").join(key_name).to_string_lossy(),
            name,
            &[],
            Some(key_usages),
        )?;
        Ok((files, fingerprint))
    }

    /// Signs a new key's certificate with the CA: a server's (`client_key_usages` none, key
    /// usage `digitalSignature`) or a client's with those key usages; returns the certificate's
    /// fingerprint.
    fn issue(
        &self,
        cert_file: &str,
        key_file: &str,
        common_name: &str,
        names: &[String],
        client_key_usages: Option<&[KeyUsagePurpose]>,
    ) -> Result<String, PkiError> {
        let server = client_key_usages.is_none();
        let ca_key_path = self.dir.join(CA_KEY);
        let ca_key_pem = fs::read_to_string(&ca_key_path).map_err(io(&ca_key_path))?;
        let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(rcgen("reading the CA key"))?;
        let issuer = Issuer::new(ca_params()?, ca_key);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen("key"))?;
        let mut params =
            CertificateParams::new(names.to_vec()).map_err(rcgen("certificate names"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = client_key_usages
            .map_or_else(|| vec![KeyUsagePurpose::DigitalSignature], <[_]>::to_vec);
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(rcgen("signing a certificate"))?;
        write_file(&self.dir.join(key_file), &key.serialize_pem(), true)?;
        write_file(&self.dir.join(cert_file), &cert.pem(), false)?;
        Ok(fingerprint(cert.der()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_gets_a_ca_a_server_and_a_demo_client_once() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let pki = Pki::open_or_create(dir.path(), &names).unwrap();
        let (server_chain, _) = pki.server_files().load().unwrap();
        let (client_chain, _) = pki.client_files(DEMO_CLIENT).unwrap().load().unwrap();
        let demo = fingerprint(&client_chain[0]);
        let again = Pki::open_or_create(dir.path(), &names).unwrap();
        let (client_again, _) = again.client_files(DEMO_CLIENT).unwrap().load().unwrap();
        assert_eq!(fingerprint(&client_again[0]), demo, "kept, not made again");
        let (files, issued) = pki.issue_client("pharmacy-1").unwrap();
        assert_ne!(issued, demo);
        assert!(files.key.exists());
        assert_ne!(fingerprint(&server_chain[0]), demo);
        assert!(matches!(
            pki.issue_client("../escape"),
            Err(PkiError::BadName(_))
        ));
    }
}

/// A data directory ready to serve: the certificates (made on first use, for the loopback
/// names) and the access directory, with the demo client's certificate registered to the demo
/// system when the directory is first written.
pub fn prepare_deployment(data_dir: &Path) -> Result<Pki, DeploymentError> {
    std::fs::create_dir_all(data_dir).map_err(|source| DeploymentError::DataDir {
        path: data_dir.to_owned(),
        source,
    })?;
    let pki = Pki::open_or_create(data_dir, &["localhost".into(), "127.0.0.1".into()])?;
    let (demo_chain, _) = pki.client_files(DEMO_CLIENT)?.load()?;
    let demo_fingerprint = fingerprint(&demo_chain[0]);
    let with_demo_client = |mut directory: spine_domain::access::Directory| {
        directory.systems[0]
            .certificates
            .push(demo_fingerprint.clone());
        directory
    };
    let directory = spine_domain::access::directory_file::load_or_create_with(data_dir, || {
        with_demo_client(spine_domain::access::directory_file::demo())
    })?;
    // An engine run in process (a benchmark, a test) writes the demo directory as it is when it
    // finds none: the demo client's certificate joins it, as on a first start. A directory that
    // differs from the demo one in anything is the operator's, and left as it is.
    if directory == spine_domain::access::directory_file::demo() {
        spine_domain::access::directory_file::save(data_dir, &with_demo_client(directory))?;
    }
    Ok(pki)
}

/// Why a data directory could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// The data directory could not be created.
    #[error("creating the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The certificates.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The access directory.
    #[error(transparent)]
    Directory(#[from] spine_domain::access::directory_file::DirectoryFileError),
}
