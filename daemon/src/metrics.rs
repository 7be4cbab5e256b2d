//! Metrics in the OpenMetrics text format (what Prometheus scrapes), from
//! the broker's counters: `iam-pgbroker metrics` (root and the admin
//! group, over the socket, like `status`) and, when `[metrics] listen` is
//! set, a plain HTTP endpoint (`GET /metrics`, loopback only unless
//! configured otherwise).
//!
//! Encoded by `prometheus-client`, the Prometheus project's own crate, from
//! the same JSON `status` answers, so the two cannot disagree. Sessions are
//! counted per database instance only: the endpoint may be readable by
//! every local user, and who has a session open is the admin's to see
//! (`iam-pgbroker status`).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;

type Labels = Vec<(String, String)>;

/// A histogram whose buckets were counted elsewhere (the broker's
/// [`crate::stats::Histo`]), encoded as Prometheus' own histogram is.
#[derive(Debug)]
struct CountedHistogram {
    sum: f64,
    count: u64,
    /// Per-bucket counts (not cumulative; the encoder adds them up).
    buckets: Vec<(f64, u64)>,
}

impl CountedHistogram {
    fn of(json: &serde_json::Value) -> CountedHistogram {
        let bounds: Vec<f64> = json["bounds"]
            .as_array()
            .map(|a| a.iter().filter_map(|b| b.as_f64()).collect())
            .unwrap_or_default();
        let counts: Vec<u64> = json["counts"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c.as_u64()).collect())
            .unwrap_or_default();
        let mut buckets: Vec<(f64, u64)> =
            bounds.iter().zip(&counts).map(|(b, c)| (*b, *c)).collect();
        buckets.push((
            f64::INFINITY,
            counts.get(bounds.len()).copied().unwrap_or(0),
        ));
        CountedHistogram {
            sum: json["sum"].as_f64().unwrap_or(0.0),
            count: json["count"].as_u64().unwrap_or(0),
            buckets,
        }
    }
}

impl prometheus_client::encoding::EncodeMetric for CountedHistogram {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder,
    ) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            self.sum,
            self.count,
            &self.buckets,
            None,
        )
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Histogram
    }
}

/// The error codes that are refusals (the broker said no), as opposed to
/// failures (the database or the appliance did).
const REFUSALS: &[&str] = &[
    "denied",
    "forbidden_statement",
    "read_only",
    "limit",
    "busy",
    "bad_request",
    "audit_unavailable",
];

/// `[metrics]`: the HTTP endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the endpoint (`127.0.0.1:9187`); unset: no endpoint.
    pub listen: Option<SocketAddr>,
    /// Allow an address other than loopback (the metrics name instances
    /// and pool targets; the unit's `SocketBindDeny=any` must be opened
    /// too).
    pub allow_remote: bool,
}

impl MetricsConfig {
    /// Loopback only unless `allow_remote`.
    pub fn validate(&self) -> Result<(), String> {
        match self.listen {
            Some(addr) if !addr.ip().is_loopback() && !self.allow_remote => Err(format!(
                "metrics.listen {addr} is not a loopback address; set metrics.allow_remote = true to expose the metrics beyond this host"
            )),
            _ => Ok(()),
        }
    }
}

/// The OpenMetrics text of a `status` answer.
pub fn render(status: &serde_json::Value) -> String {
    let mut registry = Registry::with_prefix("iam_pgbroker");
    let info = Family::<Labels, Gauge>::default();
    info.get_or_create(&vec![(
        "version".into(),
        status["version"].as_str().unwrap_or("?").to_owned(),
    )])
    .set(1);
    registry.register("build_info", "The broker's version", info);

    let uptime = Gauge::<i64>::default();
    uptime.set(status["uptime_s"].as_i64().unwrap_or(0));
    registry.register("uptime_seconds", "Seconds since the broker started", uptime);

    let open = Family::<Labels, Gauge>::default();
    let mut per_db: BTreeMap<String, i64> = BTreeMap::new();
    for o in status["open"].as_array().into_iter().flatten() {
        *per_db
            .entry(o["db"].as_str().unwrap_or("?").to_owned())
            .or_default() += o["sessions"].as_i64().unwrap_or(0);
    }
    for (db, n) in per_db {
        open.get_or_create(&vec![("db".into(), db), ("state".into(), "open".into())])
            .set(n);
    }
    registry.register("sessions", "Client sessions by instance and state", open);

    let opened = Counter::<u64>::default();
    opened.inc_by(status["sessions_total"].as_u64().unwrap_or(0));
    registry.register("sessions_opened", "Sessions opened since start", opened);

    let statements = Counter::<u64>::default();
    statements.inc_by(status["statements"].as_u64().unwrap_or(0));
    registry.register("statements", "Statements served since start", statements);

    let errors = Family::<Labels, Counter>::default();
    for (code, n) in status["errors"].as_object().into_iter().flatten() {
        errors
            .get_or_create(&vec![("code".into(), code.clone())])
            .inc_by(n.as_u64().unwrap_or(0));
    }
    registry.register("errors", "Requests answered with an error, by code", errors);

    let idle = Family::<Labels, Gauge>::default();
    for p in status["pools"].as_array().into_iter().flatten() {
        idle.get_or_create(&vec![(
            "target".into(),
            p["target"].as_str().unwrap_or("?").to_owned(),
        )])
        .set(p["idle"].as_i64().unwrap_or(0));
    }
    registry.register(
        "pool_idle_connections",
        "Idle server connections in the pool, by target",
        idle,
    );

    let refusals = Family::<Labels, Counter>::default();
    for (code, n) in status["errors"].as_object().into_iter().flatten() {
        if REFUSALS.contains(&code.as_str()) {
            refusals
                .get_or_create(&vec![("reason".into(), code.clone())])
                .inc_by(n.as_u64().unwrap_or(0));
        }
    }
    registry.register(
        "refusals",
        "Requests the broker refused, by reason",
        refusals,
    );

    let by_rule = Family::<Labels, Gauge>::default();
    for s in status["live"].as_array().into_iter().flatten() {
        by_rule
            .get_or_create(&vec![
                ("rule".into(), s["rule"].as_str().unwrap_or("?").to_owned()),
                (
                    "state".into(),
                    s["state"].as_str().unwrap_or("?").to_owned(),
                ),
            ])
            .set(s["sessions"].as_i64().unwrap_or(0));
    }
    registry.register(
        "sessions_by_rule",
        "Open sessions by granting rule and state (active, idle in transaction, idle)",
        by_rule,
    );

    let in_use = Family::<Labels, Gauge>::default();
    for s in status["in_use"].as_array().into_iter().flatten() {
        in_use
            .get_or_create(&vec![
                ("db".into(), s["db"].as_str().unwrap_or("?").to_owned()),
                (
                    "db_user".into(),
                    s["db_user"].as_str().unwrap_or("?").to_owned(),
                ),
            ])
            .set(s["connections"].as_i64().unwrap_or(0));
    }
    registry.register(
        "pool_in_use_connections",
        "Server connections held by open sessions, by instance and database user",
        in_use,
    );

    let waits = Counter::<u64>::default();
    waits.inc_by(status["connect_waits"].as_u64().unwrap_or(0));
    registry.register(
        "pool_connect_waits",
        "New server connections that waited for a connecting slot",
        waits,
    );

    registry.register(
        "statement_duration_seconds",
        "Statements from request to answer",
        CountedHistogram::of(&status["statement_latency"]),
    );

    let audit_bytes = Counter::<u64>::default();
    audit_bytes.inc_by(status["audit"]["bytes"].as_u64().unwrap_or(0));
    registry.register(
        "audit_written_bytes",
        "Bytes written to the audit file",
        audit_bytes,
    );
    registry.register(
        "audit_fsync_duration_seconds",
        "The audit file's flushes to disk",
        CountedHistogram::of(&status["audit"]["fsync"]),
    );

    let approvals = Family::<Labels, Gauge>::default();
    for (state, n) in status["approvals"].as_object().into_iter().flatten() {
        approvals
            .get_or_create(&vec![("state".into(), state.clone())])
            .set(n.as_i64().unwrap_or(0));
    }
    registry.register("approval_requests", "Change requests by state", approvals);

    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

/// Serves `GET /metrics` on `listener` until the future is dropped.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    status: impl Fn() -> serde_json::Value + Send + Sync + 'static,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let status = std::sync::Arc::new(status);
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let status = status.clone();
        tokio::spawn(async move {
            // One request head, at most 8 KiB, within 5 s.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            let read = async {
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                true
            };
            let complete = matches!(
                tokio::time::timeout(std::time::Duration::from_secs(5), read).await,
                Ok(true)
            );
            let answer = if !complete {
                return;
            } else if head.starts_with(b"GET /metrics ") || head.starts_with(b"GET /metrics?") {
                let body = render(&status());
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
            };
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openmetrics_without_user_names() {
        let status = serde_json::json!({
            "version": "0.1.0", "uptime_s": 5, "sessions_open": 3, "sessions_total": 9,
            "statements": 42,
            "open": [{"uid": 1004, "user": "jnovak", "db": "czechidm", "sessions": 2},
                     {"uid": 0, "user": "root", "db": "czechidm", "sessions": 1}],
            "errors": {"denied": 3},
            "pools": [{"target": "postgres@172.18.0.2:5432/czechidm", "idle": 2}],
        });
        let text = render(&status);
        for want in [
            "iam_pgbroker_sessions{db=\"czechidm\",state=\"open\"} 3",
            "iam_pgbroker_sessions_opened_total 9",
            "iam_pgbroker_statements_total 42",
            "iam_pgbroker_errors_total{code=\"denied\"} 3",
            "iam_pgbroker_pool_idle_connections{target=\"postgres@172.18.0.2:5432/czechidm\"} 2",
            "# EOF",
        ] {
            assert!(text.contains(want), "{want} missing:\n{text}");
        }
        assert!(!text.contains("jnovak"), "{text}");
    }

    #[test]
    fn only_loopback_unless_allowed() {
        let c = |listen: &str, allow_remote| MetricsConfig {
            listen: Some(listen.parse().unwrap()),
            allow_remote,
        };
        assert!(c("127.0.0.1:9187", false).validate().is_ok());
        assert!(c("[::1]:9187", false).validate().is_ok());
        assert!(c("0.0.0.0:9187", false).validate().is_err());
        assert!(c("0.0.0.0:9187", true).validate().is_ok());
    }
}
