//! OpenBao / HashiCorp Vault: passwords from KV v2, and short-lived roles
//! from the database secrets engine.
//!
//! Only a handful of endpoints, plain JSON over HTTPS (reqwest on rustls):
//! `auth/{approle}/login`, `auth/token/lookup-self` and `renew-self`,
//! `{kv}/data/{path}`, `{database}/creds/{role}`, `sys/leases/renew` and
//! `revoke`. The token is renewed once half its time is gone and the
//! broker logs in again when renewal fails or the token nears its maximum
//! time. Nothing here logs or returns a secret: errors carry the server's
//! own error messages (which never echo one), the path and the status.

use super::config::{substitute, AuthMethod, OpenbaoConfig};
use super::credentials::CredentialsProvider;
use super::{Password, PwfileProvider, SecretError};
use crate::sync::lock;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// A logged-in client of one OpenBao server, with its token, its KV cache
/// and what `status` shows about it.
pub struct OpenbaoClient {
    config: OpenbaoConfig,
    http: reqwest::Client,
    /// Where `role_id_credential` / `secret_id_credential` are.
    credentials: Option<CredentialsProvider>,
    token: tokio::sync::Mutex<Option<Token>>,
    cache: Mutex<HashMap<(String, String), Cached>>,
    health: Mutex<Health>,
}

struct Token {
    value: Password,
    /// When it was issued or last renewed, and for how long.
    since: Instant,
    ttl: Option<Duration>,
    renewable: bool,
    /// The ttl it had at login: a renewal that gives much less means the
    /// token is near its maximum time.
    first_ttl: Option<Duration>,
}

impl Token {
    fn remaining(&self) -> Option<Duration> {
        self.ttl.map(|ttl| ttl.saturating_sub(self.since.elapsed()))
    }

    /// Past half its time (renew now) — or gone.
    fn needs_renewal(&self) -> bool {
        match (self.ttl, self.remaining()) {
            (Some(ttl), Some(left)) => left < ttl / 2,
            _ => false,
        }
    }

    fn expired(&self) -> bool {
        self.remaining()
            .is_some_and(|left| left < Duration::from_millis(500))
    }
}

struct Cached {
    password: Password,
    fetched: Instant,
}

#[derive(Default)]
struct Health {
    last_ok: Option<Instant>,
    last_error: Option<(Instant, String)>,
    logins: u64,
    renewals: u64,
}

/// What a request to OpenBao answered.
enum Reply {
    Ok(Value),
    NotFound,
    Forbidden(String),
    Other(String),
}

impl OpenbaoClient {
    /// A client for `config`; reads the CA file now.
    pub fn new(
        config: &OpenbaoConfig,
        credentials: Option<CredentialsProvider>,
    ) -> Result<OpenbaoClient, SecretError> {
        let source_name = format!("openbao {}", config.address);
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout())
            .connect_timeout(config.timeout())
            .use_rustls_tls()
            // A redirect could carry the token elsewhere.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca).map_err(|e| SecretError::Refused {
                source_name: source_name.clone(),
                problem: format!("CA file {} cannot be read: {e}", ca.display()),
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| SecretError::Refused {
                    source_name: source_name.clone(),
                    problem: format!("CA file {} is not PEM: {e}", ca.display()),
                })?;
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| SecretError::Refused {
            source_name,
            problem: format!("cannot set up the HTTP client: {e}"),
        })?;
        Ok(OpenbaoClient {
            config: config.clone(),
            http,
            credentials,
            token: Default::default(),
            cache: Default::default(),
            health: Default::default(),
        })
    }

    /// The configuration this client was made for.
    pub fn config(&self) -> &OpenbaoConfig {
        &self.config
    }

    fn name(&self, what: &str) -> String {
        format!("openbao {} {what}", self.config.address)
    }

    /// The KV path of (`db`, `user`), as shown in messages.
    pub fn kv_location(&self, db: &str, user: &str) -> String {
        format!(
            "{}/{}",
            self.config.kv_mount,
            substitute(&self.config.kv_path, db, user)
        )
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&Password>,
        body: Option<Value>,
        what: &str,
    ) -> Result<Reply, SecretError> {
        let url = format!("{}/v1/{path}", self.config.address.trim_end_matches('/'));
        let mut req = self.http.request(method, &url);
        if let Some(token) = token {
            req = req.header("X-Vault-Token", token.expose());
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let unavailable = |e: reqwest::Error| SecretError::Unavailable {
            source_name: self.name(what),
            cause: error_chain(&e.without_url()),
        };
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => {
                let err = unavailable(e);
                self.note_error(&err);
                return Err(err);
            }
        };
        let status = resp.status();
        let text = resp.text().await.map_err(|e| {
            let err = unavailable(e);
            self.note_error(&err);
            err
        })?;
        self.note_ok();
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        if status.is_success() {
            return Ok(Reply::Ok(value));
        }
        // OpenBao's own messages; they name paths and reasons, not values.
        let errors = value["errors"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        Ok(match status.as_u16() {
            404 => Reply::NotFound,
            403 => Reply::Forbidden(if errors.is_empty() {
                "permission denied".into()
            } else {
                errors
            }),
            code => Reply::Other(format!("HTTP {code}: {errors}")),
        })
    }

    fn refused(&self, what: &str, problem: impl Into<String>) -> SecretError {
        let err = SecretError::Refused {
            source_name: self.name(what),
            problem: problem.into(),
        };
        self.note_error(&err);
        err
    }

    /// A token that is valid now: the one held, renewed when half its time
    /// is gone, or a new login.
    async fn token(&self) -> Result<Password, SecretError> {
        let mut held = self.token.lock().await;
        if let Some(token) = held.as_ref() {
            if !token.needs_renewal() {
                return Ok(token.value.clone());
            }
        }
        if let Some(token) = held.take() {
            if token.renewable && !token.expired() {
                match self.renew_token(&token).await {
                    Ok(renewed) => {
                        let value = renewed.value.clone();
                        *held = Some(renewed);
                        return Ok(value);
                    }
                    Err(e) => {
                        warn!(cause = %e, "openbao token renewal failed; logging in again")
                    }
                }
            } else if self.config.auth == AuthMethod::Token && !token.expired() {
                // A token that cannot be renewed is used to its end; the
                // file may hold a newer one by then.
                let value = token.value.clone();
                if token
                    .remaining()
                    .is_some_and(|l| l > Duration::from_secs(2))
                {
                    *held = Some(token);
                    return Ok(value);
                }
            }
        }
        let token = self.login().await?;
        let value = token.value.clone();
        *held = Some(token);
        Ok(value)
    }

    /// Forgets the token (OpenBao refused it).
    async fn drop_token(&self) {
        *self.token.lock().await = None;
    }

    async fn renew_token(&self, token: &Token) -> Result<Token, SecretError> {
        let reply = self
            .request(
                reqwest::Method::POST,
                "auth/token/renew-self",
                Some(&token.value),
                Some(json!({})),
                "token renewal",
            )
            .await?;
        let Reply::Ok(body) = reply else {
            return Err(self.refused("token renewal", "the token cannot be renewed"));
        };
        let ttl = body["auth"]["lease_duration"]
            .as_u64()
            .map(Duration::from_secs);
        // Near its maximum time OpenBao renews for less and less; a fresh
        // login gives a full term again (AppRole). A token file cannot.
        if self.config.auth == AuthMethod::Approle {
            if let (Some(ttl), Some(first)) = (ttl, token.first_ttl) {
                if ttl < first / 2 {
                    return Err(self.refused(
                        "token renewal",
                        "the token is near its maximum time to live",
                    ));
                }
            }
        }
        lock(&self.health).renewals += 1;
        debug!(ttl_s = ttl.map(|t| t.as_secs()), "openbao token renewed");
        Ok(Token {
            value: token.value.clone(),
            since: Instant::now(),
            ttl,
            renewable: body["auth"]["renewable"].as_bool().unwrap_or(false),
            first_ttl: token.first_ttl,
        })
    }

    async fn login(&self) -> Result<Token, SecretError> {
        match self.config.auth {
            AuthMethod::Approle => {
                let role_id = self.id_secret(
                    self.config.role_id_file.as_deref(),
                    self.config.role_id_credential.as_deref(),
                )?;
                let secret_id = self.id_secret(
                    self.config.secret_id_file.as_deref(),
                    self.config.secret_id_credential.as_deref(),
                )?;
                let path = format!("auth/{}/login", self.config.approle_mount);
                let reply = self
                    .request(
                        reqwest::Method::POST,
                        &path,
                        None,
                        Some(json!({"role_id": role_id.expose(), "secret_id": secret_id.expose()})),
                        "AppRole login",
                    )
                    .await?;
                let body = match reply {
                    Reply::Ok(body) => body,
                    Reply::NotFound => {
                        return Err(self.refused("AppRole login", format!("no AppRole at {path}")))
                    }
                    Reply::Forbidden(m) | Reply::Other(m) => {
                        return Err(self.refused("AppRole login", m))
                    }
                };
                let Some(value) = body["auth"]["client_token"].as_str() else {
                    return Err(self.refused("AppRole login", "the answer holds no token"));
                };
                let ttl = body["auth"]["lease_duration"]
                    .as_u64()
                    .filter(|s| *s > 0)
                    .map(Duration::from_secs);
                lock(&self.health).logins += 1;
                info!(
                    ttl_s = ttl.map(|t| t.as_secs()),
                    address = %self.config.address,
                    "logged in to openbao with AppRole"
                );
                Ok(Token {
                    value: Password::derived(value.to_owned()),
                    since: Instant::now(),
                    ttl,
                    renewable: body["auth"]["renewable"].as_bool().unwrap_or(false),
                    first_ttl: ttl,
                })
            }
            AuthMethod::Token => {
                let file = self
                    .config
                    .token_file
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""));
                let value = PwfileProvider::read(file)?;
                let reply = self
                    .request(
                        reqwest::Method::GET,
                        "auth/token/lookup-self",
                        Some(&value),
                        None,
                        "token lookup",
                    )
                    .await?;
                let body = match reply {
                    Reply::Ok(body) => body,
                    Reply::NotFound | Reply::Forbidden(_) | Reply::Other(_) => {
                        return Err(self.refused(
                            "token lookup",
                            format!(
                                "the token in {} is not valid (expired or revoked)",
                                file.display()
                            ),
                        ))
                    }
                };
                let ttl = body["data"]["ttl"]
                    .as_u64()
                    .filter(|s| *s > 0)
                    .map(Duration::from_secs);
                lock(&self.health).logins += 1;
                info!(ttl_s = ttl.map(|t| t.as_secs()), file = %file.display(), "openbao token read");
                Ok(Token {
                    value,
                    since: Instant::now(),
                    ttl,
                    renewable: body["data"]["renewable"].as_bool().unwrap_or(false),
                    first_ttl: ttl,
                })
            }
        }
    }

    fn id_secret(
        &self,
        file: Option<&std::path::Path>,
        credential: Option<&str>,
    ) -> Result<Password, SecretError> {
        match (file, credential) {
            (Some(file), _) => PwfileProvider::read(file),
            (None, Some(name)) => match &self.credentials {
                Some(creds) => creds.named(name),
                None => Err(self.refused(
                    "AppRole login",
                    format!(
                        "credential {name} is configured but there is no $CREDENTIALS_DIRECTORY"
                    ),
                )),
            },
            (None, None) => {
                Err(self.refused("AppRole login", "no role_id or secret_id configured"))
            }
        }
    }

    /// A GET or POST with the token, logging in again once when OpenBao
    /// refuses the token (revoked or expired behind the broker's back).
    async fn authed(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        what: &str,
    ) -> Result<Reply, SecretError> {
        let token = self.token().await?;
        match self
            .request(method.clone(), path, Some(&token), body.clone(), what)
            .await?
        {
            Reply::Forbidden(_) => {
                debug!(what, "openbao refused the token; logging in again");
                self.drop_token().await;
                let token = self.token().await?;
                self.request(method, path, Some(&token), body, what).await
            }
            other => Ok(other),
        }
    }

    /// The KV password of (`db`, `user`): from the cache while it is
    /// younger than `cache_ms` (unless `fresh`), else from OpenBao.
    /// `Ok(None)`: no entry at that path (the next source may have one).
    /// The flag says whether it came from the cache.
    pub async fn kv_password(
        &self,
        db: &str,
        user: &str,
        fresh: bool,
    ) -> Result<Option<(Password, bool)>, SecretError> {
        let key = (db.to_owned(), user.to_owned());
        if !fresh {
            if let Some(hit) = lock(&self.cache).get(&key) {
                if hit.fetched.elapsed() < self.config.cache() {
                    return Ok(Some((hit.password.clone(), true)));
                }
            }
        }
        let location = self.kv_location(db, user);
        let what = format!("KV {location}");
        let path = format!(
            "{}/data/{}",
            self.config.kv_mount,
            substitute(&self.config.kv_path, db, user)
        );
        let body = match self
            .authed(reqwest::Method::GET, &path, None, &what)
            .await?
        {
            Reply::Ok(body) => body,
            Reply::NotFound => {
                lock(&self.cache).remove(&key);
                return Ok(None);
            }
            Reply::Forbidden(m) | Reply::Other(m) => return Err(self.refused(&what, m)),
        };
        let field = &self.config.kv_field;
        // A deleted latest version answers 404 too; a destroyed one
        // answers data = null.
        let Some(value) = body["data"]["data"][field.as_str()].as_str() else {
            return Err(self.refused(&what, format!("the entry has no string field {field:?}")));
        };
        if value.is_empty() {
            return Err(self.refused(&what, format!("field {field:?} is empty")));
        }
        let password = Password::derived(value.to_owned());
        lock(&self.cache).insert(
            key,
            Cached {
                password: password.clone(),
                fetched: Instant::now(),
            },
        );
        Ok(Some((password, false)))
    }

    /// Short-lived credentials from the database secrets engine's role for
    /// (`db`, `user`), their lease renewed until the returned guard is
    /// dropped, then revoked.
    pub async fn database_credentials(
        self: &Arc<Self>,
        db: &str,
        user: &str,
    ) -> Result<(String, Password, LeaseGuard), SecretError> {
        let role = substitute(&self.config.database_role, db, user);
        let path = format!("{}/creds/{role}", self.config.database_mount);
        let what = format!("database role {path}");
        let body = match self
            .authed(reqwest::Method::GET, &path, None, &what)
            .await?
        {
            Reply::Ok(body) => body,
            Reply::NotFound => {
                return Err(self.refused(&what, "no such role (or no database secrets engine)"))
            }
            Reply::Forbidden(m) | Reply::Other(m) => return Err(self.refused(&what, m)),
        };
        let (Some(lease_id), Some(username), Some(password)) = (
            body["lease_id"].as_str(),
            body["data"]["username"].as_str(),
            body["data"]["password"].as_str(),
        ) else {
            return Err(self.refused(&what, "the answer holds no lease, user or password"));
        };
        let duration = Duration::from_secs(body["lease_duration"].as_u64().unwrap_or(0));
        let lease_id = lease_id.to_owned();
        info!(lease = %lease_id, db_user = %username, ttl_s = duration.as_secs(), "dynamic database credentials issued");
        let renewer = if body["renewable"].as_bool().unwrap_or(false) && !duration.is_zero() {
            let client = self.clone();
            let lease = lease_id.clone();
            Some(tokio::spawn(async move {
                client.keep_lease(lease, duration).await
            }))
        } else {
            None
        };
        let guard = LeaseGuard {
            lease_id,
            client: self.clone(),
            renewer,
        };
        Ok((
            username.to_owned(),
            Password::derived(password.to_owned()),
            guard,
        ))
    }

    /// Renews `lease` at half its time, until aborted.
    async fn keep_lease(self: Arc<Self>, lease: String, mut duration: Duration) {
        loop {
            tokio::time::sleep((duration / 2).max(Duration::from_secs(1))).await;
            let body = json!({"lease_id": lease, "increment": duration.as_secs()});
            match self
                .authed(
                    reqwest::Method::PUT,
                    "sys/leases/renew",
                    Some(body),
                    "lease renewal",
                )
                .await
            {
                Ok(Reply::Ok(reply)) => {
                    if let Some(d) = reply["lease_duration"].as_u64().filter(|d| *d > 0) {
                        duration = Duration::from_secs(d);
                    }
                    debug!(lease = %lease, ttl_s = duration.as_secs(), "lease renewed");
                }
                Ok(_) => warn!(lease = %lease, "openbao refused to renew the lease"),
                Err(e) => warn!(lease = %lease, cause = %e, "lease renewal failed"),
            }
        }
    }

    async fn revoke(&self, lease: &str) {
        let body = json!({"lease_id": lease});
        match self
            .authed(
                reqwest::Method::PUT,
                "sys/leases/revoke",
                Some(body),
                "lease revocation",
            )
            .await
        {
            Ok(Reply::Ok(_)) => info!(lease, "lease revoked"),
            Ok(_) => warn!(
                lease,
                "openbao refused to revoke the lease; it ends at its ttl"
            ),
            Err(e) => warn!(lease, cause = %e, "lease revocation failed; it ends at its ttl"),
        }
    }

    /// Renews the token if half its time is gone (called every second, so
    /// an idle broker keeps a token-file token alive).
    pub async fn maintain(&self) {
        let due = {
            let held = self.token.lock().await;
            held.as_ref().is_some_and(Token::needs_renewal)
        };
        if due {
            if let Err(e) = self.token().await {
                warn!(cause = %e, "openbao token could not be kept fresh");
            }
        }
    }

    fn note_ok(&self) {
        lock(&self.health).last_ok = Some(Instant::now());
    }

    fn note_error(&self, err: &SecretError) {
        lock(&self.health).last_error = Some((Instant::now(), err.to_string()));
    }

    /// What `status` shows: reachable, last error, token time left.
    pub fn health(&self) -> Value {
        let health = lock(&self.health);
        let ok_after_error = match (&health.last_ok, &health.last_error) {
            (Some(ok), Some((err, _))) => ok > err,
            (Some(_), None) => true,
            _ => false,
        };
        let state = match (&health.last_ok, &health.last_error) {
            (None, None) => "unused",
            _ if ok_after_error => "ok",
            _ => "error",
        };
        let token_ttl_s = self
            .token
            .try_lock()
            .ok()
            .and_then(|t| t.as_ref().and_then(Token::remaining))
            .map(|d| d.as_secs());
        json!({
            "source": "openbao",
            "address": self.config.address,
            "state": state,
            "last_ok_s_ago": health.last_ok.map(|t| t.elapsed().as_secs()),
            "last_error": health.last_error.as_ref().map(|(_, m)| m.clone()),
            "logins": health.logins,
            "renewals": health.renewals,
            "token_ttl_s": token_ttl_s,
            "cached": lock(&self.cache).len(),
        })
    }
}

/// A lease of dynamic credentials: renewed while held, revoked on drop (in
/// the background; should the broker stop first, the lease ends at its
/// ttl).
pub struct LeaseGuard {
    lease_id: String,
    client: Arc<OpenbaoClient>,
    renewer: Option<tokio::task::JoinHandle<()>>,
}

impl LeaseGuard {
    /// The lease id (safe to log and audit: it is not a credential).
    pub fn lease_id(&self) -> &str {
        &self.lease_id
    }
}

impl std::fmt::Debug for LeaseGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseGuard")
            .field("lease_id", &self.lease_id)
            .finish()
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
        let lease = std::mem::take(&mut self.lease_id);
        let client = self.client.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move { client.revoke(&lease).await });
            }
            Err(_) => warn!(lease = %lease, "no runtime to revoke the lease; it ends at its ttl"),
        }
    }
}

/// An error and its causes, `: `-joined.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}
