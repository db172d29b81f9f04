//! `POST /events`: an S3 notification over HTTP (MinIO webhook target, Ceph RGW push endpoint). It answers
//! 200 only once the documents are in Kafka, so the store retries anything we could not take.
//!
//! Hardened: the service refuses to start with the webhook on but no token or no bucket list; the token is
//! taken from the `Authorization` header (`Bearer <token>` as MinIO sends it, or HTTP Basic with the token as
//! the password) or from the events themselves (Ceph RGW sends no custom header, but copies a topic's
//! `OpaqueData` attribute into every event: every record must carry the token), never from the URL, and
//! compared in constant time; an event naming a bucket outside `buckets` is refused; bodies, time and
//! requests in flight are bounded.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use bytes::Bytes;
use distillery_core::config::Secret;
use distillery_core::{Discovery, Metrics, ObjectRef, StoreKind};
use distillery_runtime::{Publisher, publish_counted};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::{Ingestor, NAME, events};

/// Object-store notifications over HTTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Serve `POST /events` on the ops endpoint (needs `token` and `buckets`).
    pub enabled: bool,
    /// The token the store sends in `Authorization: Bearer <token>` (MinIO's `auth_token`), as the password of
    /// HTTP Basic authentication, or as every event's `opaqueData` (Ceph RGW: the topic's `OpaqueData`
    /// attribute). Required when enabled (a secret: DISTILLERY__WEBHOOK__TOKEN).
    pub token: Secret,
    /// The buckets whose notifications are taken; an event naming another bucket is refused (403).
    pub buckets: Vec<String>,
    /// The largest notification body, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Time limit of one notification (reading the objects and publishing), in seconds (503 beyond).
    pub timeout_secs: u64,
    /// Notifications handled at once; more wait (within the time limit).
    pub max_concurrent: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            enabled: false,
            token: Secret::default(),
            buckets: Vec::new(),
            max_body_bytes: 1 << 20,
            timeout_secs: 60,
            max_concurrent: 16,
        }
    }
}

impl WebhookConfig {
    /// Adds one line per problem: the webhook does not start open.
    pub fn validate(&self, section: &str, errors: &mut Vec<String>) {
        if !self.enabled {
            return;
        }
        if self.token.expose().trim().is_empty() {
            errors.push(format!(
                "{section}.token must be set when {section}.enabled (or set DISTILLERY__WEBHOOK__TOKEN): the webhook \
                 never runs without authentication"
            ));
        }
        if self.buckets.iter().all(|b| b.trim().is_empty()) {
            errors.push(format!("{section}.buckets must list the buckets whose notifications are taken"));
        }
        if self.max_body_bytes == 0 || self.timeout_secs == 0 || self.max_concurrent == 0 {
            errors.push(format!("{section}.max_body_bytes, timeout_secs and max_concurrent must be positive"));
        }
    }
}

/// What the webhook handler shares.
pub struct WebhookState<P> {
    pub ingestor: Arc<Ingestor>,
    pub publisher: Arc<P>,
    /// SHA-256 of the token, compared in constant time.
    pub token: Arc<[u8; 32]>,
    pub buckets: Arc<Vec<String>>,
    pub metrics: Arc<Metrics>,
    pub cancel: CancellationToken,
}

impl<P> Clone for WebhookState<P> {
    fn clone(&self) -> Self {
        WebhookState {
            ingestor: self.ingestor.clone(),
            publisher: self.publisher.clone(),
            token: self.token.clone(),
            buckets: self.buckets.clone(),
            metrics: self.metrics.clone(),
            cancel: self.cancel.clone(),
        }
    }
}

impl<P> WebhookState<P> {
    pub fn new(
        cfg: &WebhookConfig,
        ingestor: Arc<Ingestor>,
        publisher: Arc<P>,
        metrics: Arc<Metrics>,
        cancel: CancellationToken,
    ) -> Self {
        WebhookState {
            ingestor,
            publisher,
            token: Arc::new(Sha256::digest(cfg.token.expose().as_bytes()).into()),
            buckets: Arc::new(cfg.buckets.clone()),
            metrics,
            cancel,
        }
    }

    /// Whether `given` is the token (constant time in the token).
    fn is_token(&self, given: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        bool::from(digest.ct_eq(&*self.token))
    }

    /// Whether the request carries the token: in its `Authorization` header, or as the opaque data of every
    /// event it holds.
    fn authorized(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        if self.header_authorized(headers) {
            return true;
        }
        events::opaque_data(body).is_some_and(|all| all.iter().all(|o| self.is_token(o)))
    }

    fn header_authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else { return false };
        let Some((scheme, rest)) = value.split_once(' ') else { return false };
        let given = if scheme.eq_ignore_ascii_case("bearer") {
            rest.trim().to_string()
        } else if scheme.eq_ignore_ascii_case("basic") {
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(rest.trim()) else { return false };
            let Ok(pair) = String::from_utf8(decoded) else { return false };
            match pair.split_once(':') {
                Some((_, password)) => password.to_string(),
                None => return false,
            }
        } else {
            return false;
        };
        self.is_token(&given)
    }
}

/// The `/events` route, with its body, time and concurrency limits.
pub fn router<P: Publisher + Send + Sync + 'static>(cfg: &WebhookConfig, state: WebhookState<P>) -> Router {
    Router::new()
        .route("/events", post(webhook::<P>))
        .with_state(state)
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(cfg.max_body_bytes))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(cfg.max_concurrent))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(cfg.timeout_secs),
        ))
}

async fn webhook<P: Publisher + Send + Sync + 'static>(
    State(s): State<WebhookState<P>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let stage = NAME.as_str();
    if query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("token="))) {
        // A token in the URL ends up in access logs: refused even when right.
        s.metrics.errors.with_label_values(&[stage, "webhook_auth"]).inc();
        return (
            StatusCode::UNAUTHORIZED,
            "the token goes in the Authorization header (Bearer, or Basic with the token as password), not the URL"
                .into(),
        );
    }
    if !s.authorized(&headers, &body) {
        s.metrics.errors.with_label_values(&[stage, "webhook_auth"]).inc();
        return (StatusCode::UNAUTHORIZED, "bad or missing token".into());
    }
    let created = match events::parse(&body) {
        Ok(c) => c,
        Err(e) => {
            s.metrics.errors.with_label_values(&[stage, "bad_event"]).inc();
            tracing::warn!(error = %e, "webhook body is not an S3 event");
            return (StatusCode::BAD_REQUEST, e);
        }
    };
    if let Some(other) = created.iter().find(|ev| !s.buckets.iter().any(|b| b == &ev.bucket)) {
        s.metrics.errors.with_label_values(&[stage, "webhook_bucket"]).inc();
        tracing::warn!(bucket = %other.bucket, "webhook event for a bucket outside webhook.buckets refused");
        return (StatusCode::FORBIDDEN, format!("bucket {} is not in webhook.buckets", other.bucket));
    }
    s.metrics.records_in.with_label_values(&[stage, "webhook"]).inc();
    let mut records = Vec::new();
    for ev in created {
        let source = ObjectRef {
            store: StoreKind::S3,
            bucket: ev.bucket,
            key: ev.key,
            version_id: ev.version_id,
            etag: ev.etag,
        };
        match s.ingestor.object(source, ev.size, &ev.event_id, Discovery::Webhook).await {
            Ok(outcome) => records.extend(outcome.into_record()),
            Err(e) => {
                s.metrics.errors.with_label_values(&[stage, e.kind]).inc();
                tracing::error!(error = %e, "webhook event failed");
                return (StatusCode::SERVICE_UNAVAILABLE, e.message);
            }
        }
    }
    let n = records.len();
    match publish_counted(stage, records, &*s.publisher, &s.metrics, &s.cancel).await {
        Ok(()) => (StatusCode::OK, format!("{n} record(s) published")),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distillery_component::Deps;
    use distillery_core::Record;
    use distillery_runtime::PublishError;
    use distillery_store::Stores;

    #[derive(Default)]
    struct Sent(std::sync::Mutex<Vec<Record>>);

    impl Publisher for Sent {
        async fn publish(&self, records: Vec<Record>) -> Result<(), PublishError> {
            self.0.lock().unwrap().extend(records);
            Ok(())
        }
    }

    fn event(bucket: &str, key: &str) -> String {
        serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put", "eventTime": "2026-01-01T00:00:00Z",
            "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 5}}}]})
        .to_string()
    }

    /// Issue 14, defect 8: the webhook was on by default with an empty token, took `?token=`, compared in
    /// variable time and let an event name any bucket.
    #[test]
    fn the_webhook_refuses_to_start_open() {
        let mut errors = Vec::new();
        WebhookConfig { enabled: true, ..WebhookConfig::default() }.validate("webhook", &mut errors);
        assert!(errors.iter().any(|e| e.contains("webhook.token")), "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("webhook.buckets")), "{errors:?}");
        let mut errors = Vec::new();
        WebhookConfig::default().validate("webhook", &mut errors);
        assert!(errors.is_empty(), "off by default: {errors:?}");
        assert!(!WebhookConfig::default().enabled);
    }

    #[tokio::test]
    async fn only_the_header_token_and_the_listed_buckets_get_in() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = WebhookConfig {
            enabled: true,
            token: Secret::new("s3cret-token"),
            buckets: vec!["docs".into()],
            max_body_bytes: 4096,
            ..WebhookConfig::default()
        };
        let deps = Deps::local(Metrics::isolated());
        let mut ingestor = Ingestor::new(&crate::IngestConfig::default(), &deps);
        // The "bucket" is a folder that does not exist: each object ends as a rejection ("no longer exists").
        ingestor.stores = Stores::with_s3(Arc::new(distillery_store::LocalStore));
        let sent = Arc::new(Sent::default());
        let state =
            WebhookState::new(&cfg, Arc::new(ingestor), sent.clone(), Metrics::isolated(), CancellationToken::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router(&cfg, state)).await.unwrap() });
        let http = reqwest::Client::new();
        let post = |auth: Option<String>, url: String, body: String| {
            let mut req = http.post(url).body(body);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            req.send()
        };
        let status = |r: reqwest::Response| r.status().as_u16();
        let basic =
            |pw: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("rgw:{pw}")));
        // No token, a wrong one, the right one in the URL: all refused.
        assert_eq!(status(post(None, url.clone(), event("docs", "a.md")).await.unwrap()), 401);
        assert_eq!(
            status(post(Some("Bearer s3cret-tokeN".into()), url.clone(), event("docs", "a.md")).await.unwrap()),
            401
        );
        assert_eq!(status(post(None, format!("{url}?token=s3cret-token"), event("docs", "a.md")).await.unwrap()), 401);
        assert_eq!(status(post(Some(basic("wrong")), url.clone(), event("docs", "a.md")).await.unwrap()), 401);
        // The right token, for a bucket not listed: refused; over the body limit: refused.
        let bearer = Some("Bearer s3cret-token".to_string());
        assert_eq!(status(post(bearer.clone(), url.clone(), event("elsewhere", "a.md")).await.unwrap()), 403);
        assert_eq!(status(post(bearer.clone(), url.clone(), "x".repeat(10_000)).await.unwrap()), 413);
        // Bearer (MinIO) and Basic (Ceph RGW) with the right token get in (the object does not exist here:
        // its rejection is published).
        assert_eq!(status(post(bearer, url.clone(), event("docs", "a.md")).await.unwrap()), 200);
        assert_eq!(status(post(Some(basic("s3cret-token")), url.clone(), event("docs", "b.md")).await.unwrap()), 200);
        // Ceph RGW: the token as the events' opaque data.
        let with_opaque = |token: &str| {
            let mut e: serde_json::Value = serde_json::from_str(&event("docs", "c.md")).unwrap();
            e["Records"][0]["opaqueData"] = serde_json::json!(token);
            e.to_string()
        };
        assert_eq!(status(post(None, url.clone(), with_opaque("s3cret-token")).await.unwrap()), 200);
        assert_eq!(status(post(None, url.clone(), with_opaque("s3cret")).await.unwrap()), 401);
        assert_eq!(sent.0.lock().unwrap().len(), 3);
        drop(dir);
    }
}
