//! `GET /metrics`: the coordinator's Prometheus metrics, encoded by
//! `prometheus-client` (the OpenMetrics text format), on the HTTP listener of
//! [`crate::web`] beside the dashboard, or alone.
//!
//! Label values are escaped as the exposition formats ask ([`LabelText`]:
//! backslash, double quote and line feed), whatever text they hold.
//!
//! The job and worker figures come from the shared
//! [`StatusCache`](crate::status_cache::StatusCache) snapshot
//! (at most one scheduler status read per second, however many scrapers), the
//! call counters from the service's atomics.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::scheduler::{StatusSnapshot, WorkerState};
use crate::service::{CoordinatorService, RpcCounters};
use crate::web::{self, HttpLimits};

/// Produces the current metrics text.
pub type MetricsSource = Arc<dyn Fn() -> futures::future::BoxFuture<'static, String> + Send + Sync>;

/// Routes served beside `/metrics` (the dashboard, see
/// [`crate::dashboard::Dashboard::fallback`]); without them every other path
/// is answered 404.
pub type HttpFallback = Router;

/// The content type of the metrics text (what `prometheus-client` encodes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    source: MetricsSource,
    shutdown: impl Future<Output = ()>,
) {
    serve_http(listener, source, None, shutdown).await;
}

/// Serves `GET /metrics` and the routes of `fallback` (404 for any other path
/// without one) on `listener` until `shutdown` resolves, with the default
/// [`HttpLimits`].
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    source: MetricsSource,
    fallback: Option<HttpFallback>,
    shutdown: impl Future<Output = ()>,
) {
    let limits = HttpLimits::default();
    web::serve(
        listener,
        router(source, fallback, &limits),
        limits,
        shutdown,
    )
    .await;
}

/// `/metrics` from `source`, merged with `fallback`.
pub fn router(
    source: MetricsSource,
    fallback: Option<HttpFallback>,
    limits: &HttpLimits,
) -> Router {
    let metrics = Router::new().route(
        "/metrics",
        web::timed(
            move || {
                let source = source.clone();
                async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], source().await) }
            },
            limits,
        ),
    );
    match fallback {
        Some(routes) => metrics.merge(routes),
        None => metrics.fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "not found\n",
            )
                .into_response()
        }),
    }
}

/// The metrics of `service`: job and worker figures from its status cache,
/// call counters from its atomics.
pub fn source(service: CoordinatorService) -> MetricsSource {
    Arc::new(move || {
        let service = service.clone();
        Box::pin(async move {
            let status = match service.status_cache().get().await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics without a status snapshot");
                    None
                }
            };
            render(status.as_deref(), service.counters())
        })
    })
}

/// The metrics text of a status snapshot (none: the counters only) and the
/// call counters.
pub fn render(status: Option<&StatusSnapshot>, counters: &RpcCounters) -> String {
    let mut registry = Registry::default();
    if let Some(s) = status {
        registry.register_collector(Box::new(StatusMetrics::of(s)));
    }
    let counters = [
        ("spikecv_leases", "Lease calls.", &counters.leases),
        (
            "spikecv_assignments",
            "Jobs handed out.",
            &counters.assignments,
        ),
        (
            "spikecv_heartbeats",
            "Heartbeat calls.",
            &counters.heartbeats,
        ),
        (
            "spikecv_completed",
            "Results accepted.",
            &counters.completed,
        ),
        (
            "spikecv_refused",
            "Reports refused (fenced, failed precondition).",
            &counters.fenced,
        ),
        (
            "spikecv_checkpoint_bytes_in",
            "Checkpoint bytes received.",
            &counters.checkpoint_bytes_in,
        ),
        (
            "spikecv_checkpoint_bytes_out",
            "Checkpoint bytes sent.",
            &counters.checkpoint_bytes_out,
        ),
    ];
    for (name, help, value) in counters {
        // Encoded as `<name>_total`.
        registry.register(name, help, ConstCounter::new(value.load(Ordering::Relaxed)));
    }
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        tracing::error!(error = %e, "cannot encode the metrics");
    }
    out
}

/// The figures of one status snapshot, as labelled gauges in a fixed order.
#[derive(Debug)]
struct StatusMetrics {
    jobs: [(&'static str, i64); 7],
    workers: [(&'static str, i64); 3],
    succeeded_last_hour: i64,
    eta_seconds: Option<f64>,
}

impl StatusMetrics {
    fn of(s: &StatusSnapshot) -> Self {
        let c = &s.counts;
        let mut workers = [("alive", 0), ("draining", 0), ("lost", 0)];
        for w in &s.workers {
            let i = match w.state {
                WorkerState::Alive => 0,
                WorkerState::Draining => 1,
                WorkerState::Lost => 2,
            };
            workers[i].1 += 1;
        }
        Self {
            jobs: c.by_state().map(|(state, n)| (state, i64::from(n))),
            workers,
            succeeded_last_hour: i64::from(s.succeeded_last_hour),
            eta_seconds: s.eta_seconds,
        }
    }
}

/// A label value, escaped as the Prometheus and OpenMetrics text formats ask:
/// `\` as `\\`, `"` as `\"` and a line feed as `\n` (`prometheus-client`
/// writes label values as they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelText<'a>(pub &'a str);

impl EncodeLabelValue for LabelText<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Encodes `samples` as one gauge `name` with a `state` label.
fn by_state(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: &[(&'static str, i64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (state, n) in samples {
        let labels = [("state", LabelText(state))];
        ConstGauge::new(*n).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for StatusMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        by_state(&mut encoder, "spikecv_jobs", "Jobs by state.", &self.jobs)?;
        by_state(
            &mut encoder,
            "spikecv_workers",
            "Workers by state.",
            &self.workers,
        )?;
        let gauge = ConstGauge::new(self.succeeded_last_hour);
        gauge.encode(encoder.encode_descriptor(
            "spikecv_jobs_succeeded_last_hour",
            "Jobs that succeeded in the last hour.",
            None,
            gauge.metric_type(),
        )?)?;
        if let Some(eta) = self.eta_seconds {
            let gauge = ConstGauge::new(eta);
            gauge.encode(encoder.encode_descriptor(
                "spikecv_eta_seconds",
                "Estimated seconds until every job is done.",
                None,
                gauge.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::StatusCounts;

    #[test]
    fn the_text_has_every_metric_under_its_old_name() {
        let counters = RpcCounters::default();
        counters.leases.store(7, Ordering::Relaxed);
        counters
            .checkpoint_bytes_in
            .store(1 << 20, Ordering::Relaxed);
        let status = StatusSnapshot {
            now_ms: 0,
            counts: StatusCounts {
                pending: 4,
                succeeded: 2,
                ..StatusCounts::default()
            },
            experiments: Vec::new(),
            workers: Vec::new(),
            running: Vec::new(),
            succeeded_last_hour: 2,
            eta_seconds: Some(12.5),
            waiting_for_trainers: Vec::new(),
        };
        let text = render(Some(&status), &counters);
        for line in [
            "# TYPE spikecv_jobs gauge",
            "spikecv_jobs{state=\"pending\"} 4",
            "spikecv_jobs{state=\"succeeded\"} 2",
            "spikecv_jobs{state=\"cancelled\"} 0",
            "spikecv_jobs{state=\"pruned\"} 0",
            "spikecv_workers{state=\"alive\"} 0",
            "spikecv_jobs_succeeded_last_hour 2",
            "spikecv_eta_seconds 12.5",
            "# TYPE spikecv_leases counter",
            "spikecv_leases_total 7",
            "spikecv_assignments_total 0",
            "spikecv_refused_total 0",
            "spikecv_checkpoint_bytes_in_total 1048576",
            "spikecv_checkpoint_bytes_out_total 0",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in\n{text}"
            );
        }
        // Without a snapshot: the counters only, no stale job figures.
        let text = render(None, &counters);
        assert!(!text.contains("spikecv_jobs"), "{text}");
        assert!(text.contains("spikecv_leases_total 7"), "{text}");
    }

    /// A collector with one hostile label value.
    #[derive(Debug)]
    struct Hostile;

    impl Collector for Hostile {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
            by_state(
                &mut encoder,
                "spikecv_test",
                "A test.",
                &[("x\"\ny\\z <img src=x onerror=alert(1)>", 1)],
            )
        }
    }

    #[test]
    fn label_values_are_escaped_as_the_text_format_asks() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Hostile));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .unwrap_or_else(|e| panic!("{e}"));
        // The exposition format: backslash, double quote and line feed escaped.
        let want = r#"spikecv_test{state="x\"\ny\\z <img src=x onerror=alert(1)>"} 1"#;
        assert!(text.lines().any(|l| l == want), "no {want:?} in\n{text}");
        assert!(!text.contains("x\"\ny"), "{text}");
    }
}
