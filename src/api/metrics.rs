//! Prometheus text metrics: requests by route and status, latency histograms by route, token pool
//! in-use/waiting, token errors, signatures by key, the audit head. Hand-rolled: a handful of
//! counters does not justify a metrics framework.

use crate::token::{Health, PoolStats};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

/// The daemon's metrics.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    signatures: Mutex<BTreeMap<String, u64>>,
    request_ids: AtomicU64,
}

impl Metrics {
    /// A new request id for the logs and the `x-request-id` header: this process's random prefix and
    /// a counter, so that ids do not repeat across restarts.
    pub fn next_request_id(&self) -> String {
        static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let prefix = PREFIX.get_or_init(|| {
            let mut b = [0u8; 4];
            let _ = getrandom::getrandom(&mut b);
            hex::encode(b)
        });
        format!("{prefix}-{}", self.request_ids.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Counts a finished request.
    pub fn observe(&self, route: &'static str, status: u16, took: Duration) {
        *self.requests.lock().unwrap_or_else(|p| p.into_inner()).entry((route, status)).or_insert(0) += 1;
        let mut lat = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = lat.entry(route).or_insert_with(|| Histogram { counts: vec![0; BUCKETS.len()], sum: 0.0, count: 0 });
        let s = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += s;
        h.count += 1;
    }

    /// Counts a signature.
    pub fn signed(&self, key: &str) {
        *self.signatures.lock().unwrap_or_else(|p| p.into_inner()).entry(key.to_string()).or_insert(0) += 1;
    }

    /// The exposition text.
    /// `registry`: (filings overdue, seals expiring, appliance keys expiring within the reminder
    /// period), when there is one.
    pub fn render(
        &self,
        pool: &PoolStats,
        health: &Health,
        audit_head: u64,
        registry: Option<(u64, u64, u64)>,
    ) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP seald_requests_total Requests by route and status.\n# TYPE seald_requests_total counter"
        );
        for ((route, status), n) in self.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "seald_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP seald_request_duration_seconds Request latency.\n# TYPE seald_request_duration_seconds histogram"
        );
        for (route, h) in self.latency.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            for (b, c) in BUCKETS.iter().zip(&h.counts) {
                let _ = writeln!(out, "seald_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {c}");
            }
            let _ = writeln!(out, "seald_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "seald_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
            let _ = writeln!(out, "seald_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
        }
        let _ = writeln!(
            out,
            "# HELP seald_signatures_total Signatures returned, by key.\n# TYPE seald_signatures_total counter"
        );
        for (key, n) in self.signatures.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "seald_signatures_total{{key=\"{key}\"}} {n}");
        }
        let gauges = [
            ("seald_token_sessions_in_use", "Token sessions lent out.", pool.in_use as u64),
            ("seald_token_sessions_waiting", "Callers waiting for a token session.", pool.waiting as u64),
            ("seald_token_sessions_open", "Token sessions open.", pool.open as u64),
            (
                "seald_token_ready",
                "1 when the token is ready or degraded, 0 when down.",
                u64::from(!matches!(health, Health::Down(_))),
            ),
            ("seald_audit_head_seq", "Highest durable audit journal seq.", audit_head),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        if let Some((overdue, expiring, keys)) = registry {
            let _ = writeln!(
                out,
                "# HELP seald_keys_expiring Appliance keys (issuing CA, seal maker) whose certificate ends within the reminder period.\n# TYPE seald_keys_expiring gauge\nseald_keys_expiring {keys}"
            );
            let _ = writeln!(
                out,
                "# HELP seald_filings_overdue Filings pending with the police system past the deadline (24 h).\n# TYPE seald_filings_overdue gauge\nseald_filings_overdue {overdue}"
            );
            let _ = writeln!(
                out,
                "# HELP seald_seals_expiring Seals whose certificate ends within the reminder period (90 days).\n# TYPE seald_seals_expiring gauge\nseald_seals_expiring {expiring}"
            );
        }
        let counters = [
            ("seald_token_errors_total", "Token failures seen.", pool.errors),
            ("seald_token_busy_total", "Callers told the token is busy.", pool.busy),
            (
                "seald_token_session_recoveries_total",
                "Sessions replaced after a session-level failure.",
                pool.session_recoveries,
            ),
            ("seald_token_reinitializations_total", "Module re-initializations.", pool.reinitializations),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        out
    }

    /// The cluster's database: this node's id, statements sent (each one round trip) and journal
    /// batches committed.
    pub fn render_db(out: &mut String, node: u16, (trips, batches): (u64, u64)) {
        let _ = writeln!(
            out,
            "# HELP seald_cluster_node This node's id in the cluster.\n# TYPE seald_cluster_node gauge\nseald_cluster_node {node}\n\
             # HELP seald_db_round_trips_total Statements sent to the cluster's database, each one round trip.\n\
             # TYPE seald_db_round_trips_total counter\nseald_db_round_trips_total {trips}\n\
             # HELP seald_db_batches_total Journal batches committed to the cluster's database.\n\
             # TYPE seald_db_batches_total counter\nseald_db_batches_total {batches}"
        );
    }

    /// The listener's part: connections by state, connections closed by reason, and the CRLs.
    pub fn render_door(out: &mut String, door: &crate::listener::DoorStats, crls: &[crate::tls::CrlStatus], now: u64) {
        let _ = writeln!(
            out,
            "# HELP seald_connections Connections open, by state.\n# TYPE seald_connections gauge\nseald_connections{{state=\"handshake\"}} {}\nseald_connections{{state=\"established\"}} {}",
            door.handshaking(),
            door.established()
        );
        let _ = writeln!(
            out,
            "# HELP seald_connections_closed_total Connections closed or refused by the listener, by reason.\n# TYPE seald_connections_closed_total counter"
        );
        for (reason, n) in door.closed() {
            let _ = writeln!(out, "seald_connections_closed_total{{reason=\"{reason}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP seald_crl_next_update_seconds When each client-CA CRL must be replaced (its nextUpdate), Unix seconds.\n# TYPE seald_crl_next_update_seconds gauge"
        );
        for c in crls {
            let _ = writeln!(
                out,
                "seald_crl_next_update_seconds{{file=\"{}\"}} {}",
                c.path.display().to_string().replace(['"', '\\', '\n'], "_"),
                c.next_update.unwrap_or(0)
            );
        }
        let stale = crls.iter().filter(|c| c.stale_at(now)).count();
        let _ = writeln!(
            out,
            "# HELP seald_crl_stale Client-CA CRLs past their nextUpdate.\n# TYPE seald_crl_stale gauge\nseald_crl_stale {stale}"
        );
    }
}
