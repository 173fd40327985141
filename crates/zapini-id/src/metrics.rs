//! `/metrics` in the Prometheus text format (version 0.0.4): requests by
//! route pattern and status, their latency as a histogram, sign-in checks
//! and tokens (counted by the web crates in `core::metrics::Counters`),
//! store errors and whether each store answers.
//!
//! A small registry of its own rather than a metrics crate: a few families
//! need a map behind a mutex, some atomics and a few lines of formatting.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use zapini_core::metrics::{Counters, Grant, SignInMethod};
use zapini_store::Store;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
struct Histogram {
    /// Observations at or below each bound (not cumulative; summed on output).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Debug, Default)]
struct Families {
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
}

/// The registry; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    families: Arc<Mutex<Families>>,
    counters: Arc<Counters>,
}

impl Metrics {
    /// A registry that also publishes `counters`.
    pub fn new(counters: Arc<Counters>) -> Self {
        Self {
            families: Arc::default(),
            counters,
        }
    }

    fn record(&self, route: &str, status: u16, seconds: f64) {
        let Ok(mut f) = self.families.lock() else {
            return;
        };
        *f.requests.entry((route.to_owned(), status)).or_default() += 1;
        f.latency
            .entry(route.to_owned())
            .or_default()
            .observe(seconds);
    }

    fn render(&self, out: &mut String) {
        self.render_counters(out);
        let Ok(f) = self.families.lock() else {
            return;
        };
        out.push_str(
            "# HELP zapini_http_requests_total HTTP requests by route pattern and status.\n",
        );
        out.push_str("# TYPE zapini_http_requests_total counter\n");
        for ((route, status), n) in &f.requests {
            let _ = writeln!(
                out,
                "zapini_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str(
            "# HELP zapini_http_request_duration_seconds Time to answer, by route pattern.\n",
        );
        out.push_str("# TYPE zapini_http_request_duration_seconds histogram\n");
        for (route, h) in &f.latency {
            let route = escape(route);
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "zapini_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "zapini_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\n\
                 zapini_http_request_duration_seconds_sum{{route=\"{route}\"}} {}\n\
                 zapini_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count, h.sum, h.count
            );
        }
    }
}

impl Metrics {
    /// Every label combination is written, zeros too, so that a rate over
    /// a family that has not moved yet reads 0 rather than nothing.
    fn render_counters(&self, out: &mut String) {
        let c = &self.counters;
        out.push_str(
            "# HELP zapini_sign_ins_total Sign-in checks by method and outcome.\n\
             # TYPE zapini_sign_ins_total counter\n",
        );
        for method in SignInMethod::ALL {
            for (outcome, success) in [("success", true), ("failure", false)] {
                let _ = writeln!(
                    out,
                    "zapini_sign_ins_total{{method=\"{}\",outcome=\"{outcome}\"}} {}",
                    method.as_str(),
                    c.sign_ins(method, success)
                );
            }
        }
        out.push_str(
            "# HELP zapini_tokens_issued_total Successful token responses by grant type.\n\
             # TYPE zapini_tokens_issued_total counter\n",
        );
        for grant in Grant::ALL {
            let _ = writeln!(
                out,
                "zapini_tokens_issued_total{{grant_type=\"{}\"}} {}",
                grant.as_str(),
                c.tokens(grant)
            );
        }
    }
}

/// Label values are route patterns, but escape them as the format asks.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware for matched routes: counts and times every request under its
/// route pattern (never the raw path, which may hold ids).
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.record(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`.
pub async fn scrape(State((metrics, store)): State<(Metrics, Store)>) -> Response {
    let mut out = String::new();
    metrics.render(&mut out);
    out.push_str("# HELP zapini_store_errors_total Failed database or Redis operations.\n");
    out.push_str("# TYPE zapini_store_errors_total counter\n");
    let _ = writeln!(
        out,
        "zapini_store_errors_total {}",
        zapini_store::error_count()
    );
    out.push_str("# HELP zapini_store_up Whether a store answered this scrape.\n");
    out.push_str("# TYPE zapini_store_up gauge\n");
    let (db, ephemeral) = tokio::join!(store.ping(), store.ping_ephemeral());
    let _ = writeln!(
        out,
        "zapini_store_up{{store=\"database\"}} {}",
        u8::from(db)
    );
    if store.ephemeral().backend_name() == "redis" {
        let _ = writeln!(
            out,
            "zapini_store_up{{store=\"redis\"}} {}",
            u8::from(ephemeral)
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_counters_labelled() {
        let m = Metrics::default();
        m.record("/token", 200, 0.003);
        m.record("/token", 200, 0.2);
        m.record("/token", 400, 20.0);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("zapini_http_requests_total{route=\"/token\",status=\"200\"} 2\n"));
        assert!(out.contains("zapini_http_requests_total{route=\"/token\",status=\"400\"} 1\n"));
        assert!(out.contains("_bucket{route=\"/token\",le=\"0.005\"} 1\n"));
        assert!(out.contains("_bucket{route=\"/token\",le=\"0.25\"} 2\n"));
        assert!(out.contains("_bucket{route=\"/token\",le=\"10\"} 2\n"));
        assert!(out.contains("_bucket{route=\"/token\",le=\"+Inf\"} 3\n"));
        assert!(out.contains("_count{route=\"/token\"} 3\n"));
    }

    #[test]
    fn sign_ins_and_tokens_are_published_with_zeros() {
        let counters = Arc::new(Counters::default());
        let m = Metrics::new(counters.clone());
        counters.sign_in(SignInMethod::RecoveryCode, true);
        counters.token_issued(Grant::ClientCredentials);
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains("zapini_sign_ins_total{method=\"recovery_code\",outcome=\"success\"} 1\n")
        );
        assert!(out.contains("zapini_sign_ins_total{method=\"passkey\",outcome=\"failure\"} 0\n"));
        assert!(out.contains("zapini_tokens_issued_total{grant_type=\"client_credentials\"} 1\n"));
        assert!(out.contains("# TYPE zapini_tokens_issued_total counter\n"));
    }
}
