//! Where database passwords come from.
//!
//! Three sources, tried in a configured order (`[secrets] sources`, per
//! instance `[database.instance.NAME] secrets`), the first that has a
//! password for (instance, database user) winning:
//!
//! - [`credentials`]: systemd credentials (`LoadCredential=`,
//!   `LoadCredentialEncrypted=`) in `$CREDENTIALS_DIRECTORY`;
//! - [`openbao`]: OpenBao / HashiCorp Vault, KV v2, with AppRole or a token
//!   file, cached for `cache_ms`; and its database secrets engine, whose
//!   short-lived roles a rule may ask for (`dynamic_credentials`);
//! - [`pwfile`]: the appliance's pwfiles.
//!
//! Clients never notice which one served them. Errors and logs name the
//! source and the path, never the content.

pub mod config;
pub mod credentials;
pub mod openbao;
pub mod pwfile;
mod sources;

pub use config::{SecretsConfig, SourceKind};
pub use pwfile::PwfileProvider;
pub use sources::{DynamicLogin, Secret, SecretSources};

use std::path::PathBuf;

/// A password, kept out of `Debug` output and logs.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// The secret itself. Only the PostgreSQL connector calls this.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A password the broker derived itself (a read role's, from its
    /// superuser's: [`crate::read_role`]) or read from a source.
    pub(crate) fn derived(secret: String) -> Password {
        Password(secret)
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Why a password could not be had. Messages name the source, never the
/// content.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The pwfile does not exist.
    #[error("password file {path} does not exist")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The pwfile exists but cannot be read.
    #[error("password file {path} cannot be read: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The pwfile holds no password (empty, not UTF-8, or several lines).
    #[error("password file {path} {problem}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, without the content.
        problem: &'static str,
    },
    /// No configured source has a password for (`db`, `user`).
    #[error("no password for database user {user} on {db}: {tried}")]
    NotFound {
        /// Instance.
        db: String,
        /// Database user.
        user: String,
        /// Where the broker looked, `; `-separated.
        tried: String,
    },
    /// A source that should answer cannot be reached (OpenBao down, its
    /// certificate refused, a timeout).
    #[error("password source {source_name} is unavailable: {cause}")]
    Unavailable {
        /// `openbao https://…` and what was asked.
        source_name: String,
        /// Why, without any secret.
        cause: String,
    },
    /// A source answered, but refused or said something unusable
    /// (permission denied, a bad AppRole, a KV entry without the field).
    #[error("password source {source_name}: {problem}")]
    Refused {
        /// `openbao https://…` and what was asked.
        source_name: String,
        /// What is wrong, without any secret.
        problem: String,
    },
    /// A rule asks for dynamic credentials but no OpenBao is configured.
    #[error("rule asks for dynamic credentials, but [secrets.openbao] is not configured")]
    NoDynamicSource,
}

impl SecretError {
    /// Whether the source could not be reached (the client gets
    /// `unavailable` and may try again) rather than being wrong.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, SecretError::Unavailable { .. })
    }

    /// The pwfile error of "there is none", which lets the next source try.
    fn is_missing(&self) -> bool {
        matches!(self, SecretError::Missing { .. })
    }
}

/// A local source of database passwords: one that answers at once, from a
/// file the broker may read (pwfiles, systemd credentials). OpenBao, which
/// needs the network, is [`openbao::OpenbaoClient`]; [`SecretSources`]
/// puts them in order.
pub trait PasswordProvider: Send + Sync {
    /// The password of database user `user` on instance `db`.
    fn password(&self, db: &str, user: &str) -> Result<Password, SecretError>;
}
