//! `POST /events`: an S3 notification over HTTP (MinIO webhook target, Ceph RGW push endpoint). It answers
//! 200 only once the documents are in Kafka, so the store retries anything we could not take.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use bytes::Bytes;
use distillery_core::config::Secret;
use distillery_core::{Discovery, Metrics, ObjectRef, StoreKind};
use distillery_runtime::{Publisher, publish_counted};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::{Ingestor, NAME, events};

/// Object-store notifications over HTTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Serve `POST /events` on the ops endpoint.
    pub enabled: bool,
    /// Shared token the store sends as `Authorization: Bearer <token>` (or `?token=`); empty disables the check.
    pub token: Secret,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig { enabled: true, token: Secret::default() }
    }
}

/// What the webhook handler shares.
pub struct WebhookState<P> {
    pub ingestor: Arc<Ingestor>,
    pub publisher: Arc<P>,
    pub token: Secret,
    pub metrics: Arc<Metrics>,
    pub cancel: CancellationToken,
}

impl<P> Clone for WebhookState<P> {
    fn clone(&self) -> Self {
        WebhookState {
            ingestor: self.ingestor.clone(),
            publisher: self.publisher.clone(),
            token: self.token.clone(),
            metrics: self.metrics.clone(),
            cancel: self.cancel.clone(),
        }
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The `/events` route.
pub fn router<P: Publisher + Send + Sync + 'static>(state: WebhookState<P>) -> Router {
    Router::new().route("/events", post(webhook::<P>)).with_state(state)
}

async fn webhook<P: Publisher + Send + Sync + 'static>(
    State(s): State<WebhookState<P>>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let stage = NAME.as_str();
    if !s.token.is_empty() {
        let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if bearer != Some(s.token.expose()) && q.token.as_deref() != Some(s.token.expose()) {
            s.metrics.errors.with_label_values(&[stage, "webhook_auth"]).inc();
            return (StatusCode::UNAUTHORIZED, "bad token".into());
        }
    }
    let created = match events::parse(&body) {
        Ok(c) => c,
        Err(e) => {
            s.metrics.errors.with_label_values(&[stage, "bad_event"]).inc();
            tracing::warn!(error = %e, "webhook body is not an S3 event");
            return (StatusCode::BAD_REQUEST, e);
        }
    };
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
