//! The sources in their configured order: the first that has a password
//! for (instance, database user) wins.

use super::config::SourceKind;
use super::credentials::CredentialsProvider;
use super::openbao::{LeaseGuard, OpenbaoClient};
use super::{Password, PasswordProvider, PwfileProvider, SecretError};
use crate::config::Config;
use crate::sync::lock;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// A password and where it came from.
#[derive(Debug)]
pub struct Secret {
    /// The password.
    pub password: Password,
    /// `pwfile /path`, `credentials /run/credentials/…/name`,
    /// `openbao https://… KV secret/iam-pgbroker/czechidm/postgres`.
    pub source: String,
    /// Which kind of source.
    pub kind: SourceKind,
    /// From the KV cache: PostgreSQL refusing it means asking OpenBao again.
    pub cached: bool,
}

/// Short-lived credentials of the database secrets engine.
#[derive(Debug)]
pub struct DynamicLogin {
    /// The role OpenBao created.
    pub username: String,
    /// Its password.
    pub password: Password,
    /// Its lease: renewed while held, revoked when dropped.
    pub lease: LeaseGuard,
}

/// The broker's password sources. Long-lived (the OpenBao token and cache
/// survive sessions and reloads); the configuration of each call decides
/// the order and the settings.
#[derive(Default)]
pub struct SecretSources {
    openbao: Mutex<Option<Arc<OpenbaoClient>>>,
}

impl SecretSources {
    /// The OpenBao client for `config`, made anew when a reload changed
    /// `[secrets.openbao]`. `Ok(None)`: not configured.
    fn openbao(&self, config: &Config) -> Result<Option<Arc<OpenbaoClient>>, SecretError> {
        let Some(wanted) = &config.secrets.openbao else {
            return Ok(None);
        };
        let mut held = lock(&self.openbao);
        if let Some(client) = held.as_ref() {
            if client.config() == wanted {
                return Ok(Some(client.clone()));
            }
        }
        let client = Arc::new(OpenbaoClient::new(
            wanted,
            CredentialsProvider::new(&config.secrets.credentials),
        )?);
        *held = Some(client.clone());
        Ok(Some(client))
    }

    /// The password of `user` on `db` from the first source that has one.
    /// `fresh`: PostgreSQL refused the last one; skip the KV cache.
    pub async fn password(
        &self,
        config: &Config,
        db: &str,
        user: &str,
        fresh: bool,
    ) -> Result<Secret, SecretError> {
        let mut tried: Vec<SecretError> = Vec::new();
        let mut skipped: Vec<&str> = Vec::new();
        for kind in config.secret_sources(db) {
            match kind {
                SourceKind::Credentials => {
                    let Some(creds) = CredentialsProvider::new(&config.secrets.credentials) else {
                        skipped.push("credentials (no $CREDENTIALS_DIRECTORY)");
                        continue;
                    };
                    match creds.password(db, user) {
                        Ok(password) => {
                            return Ok(Secret {
                                password,
                                source: format!("credentials {}", creds.path(db, user).display()),
                                kind,
                                cached: false,
                            })
                        }
                        Err(e) if e.is_missing() => tried.push(e),
                        Err(e) => return Err(e),
                    }
                }
                SourceKind::Openbao => {
                    let Some(client) = self.openbao(config)? else {
                        skipped.push("openbao (not configured)");
                        continue;
                    };
                    match client.kv_password(db, user, fresh).await? {
                        Some((password, cached)) => {
                            return Ok(Secret {
                                password,
                                source: format!(
                                    "openbao {} KV {}",
                                    client.config().address,
                                    client.kv_location(db, user)
                                ),
                                kind,
                                cached,
                            })
                        }
                        None => tried.push(SecretError::Refused {
                            source_name: format!("openbao {}", client.config().address),
                            problem: format!("no KV entry {}", client.kv_location(db, user)),
                        }),
                    }
                }
                SourceKind::Pwfile => {
                    let path = config.pwfile(db, user);
                    match PwfileProvider::read(&path) {
                        Ok(password) => {
                            return Ok(Secret {
                                password,
                                source: format!("pwfile {}", path.display()),
                                kind,
                                cached: false,
                            })
                        }
                        Err(e) if e.is_missing() => tried.push(e),
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        // One source looked at: its own error, as before there were several.
        if tried.len() == 1 {
            if let Some(only) = tried.pop() {
                return Err(only);
            }
        }
        let mut where_: Vec<String> = tried.iter().map(ToString::to_string).collect();
        where_.extend(skipped.iter().map(|s| format!("skipped {s}")));
        Err(SecretError::NotFound {
            db: db.to_owned(),
            user: user.to_owned(),
            tried: where_.join("; "),
        })
    }

    /// Short-lived credentials for `user` on `db` from OpenBao's database
    /// secrets engine.
    pub async fn dynamic(
        &self,
        config: &Config,
        db: &str,
        user: &str,
    ) -> Result<DynamicLogin, SecretError> {
        let client = self.openbao(config)?.ok_or(SecretError::NoDynamicSource)?;
        let (username, password, lease) = client.database_credentials(db, user).await?;
        Ok(DynamicLogin {
            username,
            password,
            lease,
        })
    }

    /// Keeps the OpenBao token fresh; called every second.
    pub async fn maintain(&self, config: &Config) {
        let client = lock(&self.openbao).clone();
        if let Some(client) = client {
            if config.secrets.openbao.as_ref() == Some(client.config()) {
                client.maintain().await;
            }
        }
    }

    /// Per-source health for `status`.
    pub fn health(&self, config: &Config) -> Value {
        let mut list = Vec::new();
        let order: Vec<&str> = config
            .secret_sources_default()
            .iter()
            .map(|k| k.name())
            .collect();
        for kind in config.secret_sources_default() {
            list.push(match kind {
                SourceKind::Pwfile => json!({
                    "source": "pwfile",
                    "state": "ok",
                    "pattern": config.database.pwfile,
                }),
                SourceKind::Credentials => {
                    match CredentialsProvider::new(&config.secrets.credentials) {
                        Some(c) => json!({
                            "source": "credentials",
                            "state": if c.directory().is_dir() { "ok" } else { "error" },
                            "directory": c.directory().display().to_string(),
                        }),
                        None => json!({"source": "credentials", "state": "absent"}),
                    }
                }
                SourceKind::Openbao => match self.openbao(config) {
                    Ok(Some(client)) => client.health(),
                    Ok(None) => json!({"source": "openbao", "state": "absent"}),
                    Err(e) => {
                        json!({"source": "openbao", "state": "error", "last_error": e.to_string()})
                    }
                },
            });
        }
        json!({"order": order, "sources": list})
    }
}
