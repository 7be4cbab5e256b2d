//! systemd credentials: `LoadCredential=pgbroker.czechidm.postgres:/path`
//! or `LoadCredentialEncrypted=` (made with `systemd-creds encrypt`) in the
//! unit; systemd decrypts them at start into `$CREDENTIALS_DIRECTORY`
//! (a private, read-only ramfs only this service sees), one file per
//! credential, named by the credential. Format as a pwfile.

use super::config::{substitute, CredentialsConfig};
use super::{Password, PasswordProvider, PwfileProvider, SecretError};
use std::path::PathBuf;

/// Reads `{directory}/{name}` with `name` from the configured pattern.
pub struct CredentialsProvider {
    directory: PathBuf,
    name: String,
}

impl CredentialsProvider {
    /// The provider for `config`; `None` when there is no credentials
    /// folder (not started by systemd with credentials, and none
    /// configured), so the source is skipped.
    pub fn new(config: &CredentialsConfig) -> Option<CredentialsProvider> {
        let directory = match &config.directory {
            Some(dir) => dir.clone(),
            None => PathBuf::from(std::env::var_os("CREDENTIALS_DIRECTORY")?),
        };
        Some(CredentialsProvider {
            directory,
            name: config.name.clone(),
        })
    }

    /// The file of (`db`, `user`).
    pub fn path(&self, db: &str, user: &str) -> PathBuf {
        self.directory.join(substitute(&self.name, db, user))
    }

    /// The folder.
    pub fn directory(&self) -> &std::path::Path {
        &self.directory
    }

    /// A credential by name (an AppRole's ids).
    pub fn named(&self, name: &str) -> Result<Password, SecretError> {
        PwfileProvider::read(&self.directory.join(name))
    }
}

impl PasswordProvider for CredentialsProvider {
    fn password(&self, db: &str, user: &str) -> Result<Password, SecretError> {
        PwfileProvider::read(&self.path(db, user))
    }
}
