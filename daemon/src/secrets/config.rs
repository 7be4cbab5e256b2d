//! `[secrets]`: which password sources, in which order, and how to reach
//! them.

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// A password source, as named in `[secrets] sources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// systemd credentials in `$CREDENTIALS_DIRECTORY`.
    Credentials,
    /// OpenBao / Vault KV v2.
    Openbao,
    /// The appliance's pwfiles (`[database] pwfile`).
    Pwfile,
}

impl SourceKind {
    /// The name used in the config, logs and `status`.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Credentials => "credentials",
            SourceKind::Openbao => "openbao",
            SourceKind::Pwfile => "pwfile",
        }
    }
}

/// The order used when `[secrets] sources` is not set: credentials an
/// administrator loaded into the unit on purpose first, then OpenBao when
/// it is configured, then the pwfiles of every appliance.
pub const DEFAULT_ORDER: [SourceKind; 3] = [
    SourceKind::Credentials,
    SourceKind::Openbao,
    SourceKind::Pwfile,
];

/// `[secrets]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// Sources in order; `None`: [`DEFAULT_ORDER`] (sources that are not
    /// set up are skipped).
    pub sources: Option<Vec<SourceKind>>,
    /// `[secrets.credentials]`.
    pub credentials: CredentialsConfig,
    /// `[secrets.openbao]`; `None`: no OpenBao.
    pub openbao: Option<OpenbaoConfig>,
}

/// `[secrets.credentials]`: systemd credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CredentialsConfig {
    /// Folder of the credentials; `None`: `$CREDENTIALS_DIRECTORY`, which
    /// systemd sets for a unit with `LoadCredential=`.
    pub directory: Option<PathBuf>,
    /// Credential name of (`{db}`, `{user}`).
    pub name: String,
}

impl Default for CredentialsConfig {
    fn default() -> Self {
        CredentialsConfig {
            directory: None,
            name: "pgbroker.{db}.{user}".into(),
        }
    }
}

/// How the broker logs in to OpenBao.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// AppRole: `role_id` and `secret_id`, from files or credentials.
    Approle,
    /// A token read from `token_file` (kept fresh by an agent, or renewed
    /// by the broker while it is renewable).
    Token,
}

/// `[secrets.openbao]`: OpenBao or HashiCorp Vault.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenbaoConfig {
    /// `https://host:8200` (`http://` only on loopback, for tests).
    pub address: String,
    /// PEM file of the CA that signed the server's certificate; `None`:
    /// the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Timeout of one HTTP request, ms.
    pub timeout_ms: u64,
    /// `approle` or `token`.
    pub auth: AuthMethod,
    /// Where AppRole is mounted.
    pub approle_mount: String,
    /// File holding the AppRole role_id.
    pub role_id_file: Option<PathBuf>,
    /// systemd credential holding the role_id (instead of a file).
    pub role_id_credential: Option<String>,
    /// File holding the AppRole secret_id.
    pub secret_id_file: Option<PathBuf>,
    /// systemd credential holding the secret_id (instead of a file).
    pub secret_id_credential: Option<String>,
    /// File holding a token (`auth = "token"`).
    pub token_file: Option<PathBuf>,
    /// Mount of the KV v2 engine.
    pub kv_mount: String,
    /// Path of a password inside the mount; `{db}` and `{user}`.
    pub kv_path: String,
    /// Field of the KV entry that holds the password.
    pub kv_field: String,
    /// How long a password read from KV is used without asking again, ms.
    /// A password PostgreSQL refuses is asked for again at once.
    pub cache_ms: u64,
    /// Mount of the database secrets engine.
    pub database_mount: String,
    /// Role of the database secrets engine for (`{db}`, `{user}`), for
    /// rules with `dynamic_credentials = true`.
    pub database_role: String,
}

impl Default for OpenbaoConfig {
    fn default() -> Self {
        OpenbaoConfig {
            address: String::new(),
            ca_file: None,
            timeout_ms: 5000,
            auth: AuthMethod::Approle,
            approle_mount: "approle".into(),
            role_id_file: None,
            role_id_credential: None,
            secret_id_file: None,
            secret_id_credential: None,
            token_file: None,
            kv_mount: "secret".into(),
            kv_path: "iam-pgbroker/{db}/{user}".into(),
            kv_field: "password".into(),
            cache_ms: 60_000,
            database_mount: "database".into(),
            database_role: "{db}-{user}".into(),
        }
    }
}

impl OpenbaoConfig {
    /// Timeout of one request.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// How long a KV password is cached.
    pub fn cache(&self) -> Duration {
        Duration::from_millis(self.cache_ms)
    }
}

impl SecretsConfig {
    /// Checks what the types cannot say.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(sources) = &self.sources {
            check_order("secrets.sources", sources)?;
            if sources.contains(&SourceKind::Openbao) && self.openbao.is_none() {
                return Err(
                    "secrets.sources names openbao, but there is no [secrets.openbao]".into(),
                );
            }
        }
        if !self.credentials.name.contains("{user}") {
            return Err("secrets.credentials.name must contain {user}".into());
        }
        if let Some(bao) = &self.openbao {
            bao.validate()?;
        }
        Ok(())
    }
}

/// A list of sources: not empty, each once.
pub fn check_order(key: &str, sources: &[SourceKind]) -> Result<(), String> {
    if sources.is_empty() {
        return Err(format!("{key} must name at least one source"));
    }
    for (i, s) in sources.iter().enumerate() {
        if sources[..i].contains(s) {
            return Err(format!("{key} names {} twice", s.name()));
        }
    }
    Ok(())
}

impl OpenbaoConfig {
    fn validate(&self) -> Result<(), String> {
        let rest = if let Some(rest) = self.address.strip_prefix("https://") {
            rest
        } else if let Some(rest) = self.address.strip_prefix("http://") {
            // Plain HTTP sends the token in the clear: only on loopback.
            let host = rest.split([':', '/']).next().unwrap_or_default();
            if !matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "") {
                return Err(format!(
                    "secrets.openbao.address {:?}: plain http:// is only allowed on loopback; use https://",
                    self.address
                ));
            }
            rest
        } else {
            return Err(format!(
                "secrets.openbao.address {:?} must start with https:// (or http:// on loopback)",
                self.address
            ));
        };
        if rest.is_empty() {
            return Err("secrets.openbao.address names no host".into());
        }
        if self.timeout_ms == 0 || self.timeout_ms > 600_000 {
            return Err("secrets.openbao.timeout_ms must be 1 to 600000".into());
        }
        if !self.kv_path.contains("{user}") {
            return Err("secrets.openbao.kv_path must contain {user}".into());
        }
        if !self.database_role.contains("{user}") && !self.database_role.contains("{db}") {
            // A fixed role is allowed on purpose only through a pattern
            // that names at least one of them; otherwise every rule would
            // get the same role whatever user it grants.
            return Err("secrets.openbao.database_role must contain {db} or {user}".into());
        }
        for (key, v) in [
            ("kv_mount", &self.kv_mount),
            ("kv_field", &self.kv_field),
            ("approle_mount", &self.approle_mount),
            ("database_mount", &self.database_mount),
        ] {
            if v.is_empty() || v.contains("..") || v.starts_with('/') {
                return Err(format!("secrets.openbao.{key} {v:?} is not a plain name"));
            }
        }
        match self.auth {
            AuthMethod::Approle => {
                if self.role_id_file.is_some() == self.role_id_credential.is_some() {
                    return Err("secrets.openbao: auth = \"approle\" needs exactly one of role_id_file, role_id_credential".into());
                }
                if self.secret_id_file.is_some() == self.secret_id_credential.is_some() {
                    return Err("secrets.openbao: auth = \"approle\" needs exactly one of secret_id_file, secret_id_credential".into());
                }
            }
            AuthMethod::Token => {
                if self.token_file.is_none() {
                    return Err("secrets.openbao: auth = \"token\" needs token_file".into());
                }
            }
        }
        Ok(())
    }
}

/// `{db}` and `{user}` substituted.
pub fn substitute(pattern: &str, db: &str, user: &str) -> String {
    pattern.replace("{db}", db).replace("{user}", user)
}
