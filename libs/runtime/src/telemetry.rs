//! Logs and traces. `tracing` with JSON or pretty logs; an OpenTelemetry layer always keeps W3C trace
//! ids (so events carry a traceparent) and exports over OTLP when an endpoint is set. Only ids go
//! into logs and span fields: never patient data.

use crate::config::TelemetrySettings;
use crate::metrics::Metrics;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Flushes and shuts the trace exporter down when dropped.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Installs the global subscriber. Call once, from main.
pub fn init(service: &'static str, settings: &TelemetrySettings) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if !settings.otlp_endpoint.is_empty() {
        builder = builder.with_batch_exporter(otlp_exporter(settings)?);
    }
    let provider = builder.build();
    let tracer = provider.tracer(service);
    opentelemetry::global::set_tracer_provider(provider.clone());

    let filter = EnvFilter::try_new(&settings.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = if settings.log_format == "json" {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer().boxed()
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init()?;
    Ok(TelemetryGuard { provider })
}

/// The OTLP span exporter: TLS for an https collector (verified with `otlp_ca_file`, or the
/// system's roots without one), plaintext only for http.
pub fn otlp_exporter(
    settings: &TelemetrySettings,
) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    let endpoint = settings.otlp_endpoint.clone();
    let builder = opentelemetry_otlp::SpanExporter::builder().with_tonic();
    let builder = if endpoint.starts_with("https://") {
        let roots = if settings.otlp_ca_file.is_empty() {
            crate::tls::system_roots()
        } else {
            crate::tls::read_roots(std::path::Path::new(&settings.otlp_ca_file))?
        };
        let none = crate::config::TlsSettings::ca_only(String::new());
        let config = crate::tls::client_config_with_roots(&none, roots, true)?;
        let channel = tonic::transport::Endpoint::from_shared(endpoint)?
            .connect_with_connector_lazy(crate::client::TlsDialer::new(config));
        builder.with_channel(channel)
    } else if endpoint.starts_with("http://") {
        builder.with_endpoint(endpoint)
    } else {
        anyhow::bail!("telemetry.otlp_endpoint must start with https:// or http://");
    };
    Ok(builder.build()?)
}

/// For tests: logs only when TEST_LOG is set; trace ids are kept either way. Safe to call repeatedly.
pub fn init_for_tests() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let tracer = provider.tracer("test");
        let otel = tracing_opentelemetry::layer().with_tracer(tracer);
        let registry = tracing_subscriber::registry().with(otel);
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = registry
                .with(EnvFilter::new(
                    "debug,sqlx=warn,h2=warn,hyper=warn,tower=warn",
                ))
                .with(tracing_subscriber::fmt::layer().with_test_writer())
                .try_init();
        } else {
            let _ = registry.try_init();
        }
    });
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct MapInjector<'a>(&'a mut HashMap<String, String>);

impl Injector for MapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct MapExtractor<'a>(&'a HashMap<String, String>);

impl Extractor for MapExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The trace id of the current span (32 hex digits), for audit rows; `None` outside a trace.
pub fn current_trace_id() -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let cx = tracing::Span::current().context();
    let span_context = cx.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// The W3C traceparent of the current span, for event envelopes and outgoing calls.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let mut map = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut MapInjector(&mut map));
    map.remove("traceparent")
}

/// Makes `span` a child of the trace named by `traceparent` (from an event envelope).
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    if traceparent.is_empty() {
        return;
    }
    let map = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&MapExtractor(&map));
    let _ = span.set_parent(cx);
}

/// A tower layer for the gRPC server: one span per call that continues the caller's trace, and the
/// request counter and latency histogram per method and status code.
#[derive(Clone)]
pub struct RequestLayer {
    metrics: Arc<Metrics>,
    known: Arc<std::collections::HashSet<String>>,
}

impl RequestLayer {
    /// `known`: the paths the server answers; any other path is labelled `unknown`.
    pub fn new(metrics: Arc<Metrics>, known: Arc<std::collections::HashSet<String>>) -> Self {
        Self { metrics, known }
    }
}

impl<S> tower::Layer<S> for RequestLayer {
    type Service = RequestService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestService {
            inner,
            metrics: Arc::clone(&self.metrics),
            known: Arc::clone(&self.known),
        }
    }
}

#[derive(Clone)]
pub struct RequestService<S> {
    inner: S,
    metrics: Arc<Metrics>,
    known: Arc<std::collections::HashSet<String>>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for RequestService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let method = if self.known.contains(path) {
            path.to_owned()
        } else {
            "unknown".to_owned()
        };
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
        let span = tracing::info_span!("grpc", rpc.method = %method, otel.kind = "server", rpc.grpc.status_code = tracing::field::Empty);
        let _ = span.set_parent(parent);
        // Take the service that was made ready, leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let metrics = Arc::clone(&self.metrics);
        let started = Instant::now();
        let record_span = span.clone();
        Box::pin(
            async move {
                let result = inner.call(request).await;
                let code = match &result {
                    Ok(response) => response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("0")
                        .to_owned(),
                    Err(_) => "transport".to_owned(),
                };
                record_span.record("rpc.grpc.status_code", code.as_str());
                metrics
                    .grpc_requests
                    .with_label_values(&[&method, &code])
                    .inc();
                metrics
                    .grpc_latency
                    .with_label_values(&[&method])
                    .observe(started.elapsed().as_secs_f64());
                result
            }
            .instrument(span),
        )
    }
}
