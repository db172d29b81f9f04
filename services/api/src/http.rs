//! What every route of the API shares: the JSON error body `{"error": {"code", "message"}}`, the route
//! table a router is built from (and the OpenAPI document checked against), the bearer check, and the
//! mapping of the bare errors of the limit layers (413, 405, timeouts) to the JSON body.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use distillery_core::config::Secret;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A failed request: a status and `{"error": {"code", "message"}}`.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    /// A stable machine-readable code (`unauthorized`, `not_found`, `payload_too_large`, ...).
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Problem {
        Problem { status, code, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn not_found(message: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn internal(message: impl Into<String>) -> Problem {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
    pub fn unavailable(message: impl Into<String>) -> Problem {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    pub fn too_large(limit: u64) -> Problem {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is over the limit of {limit} bytes"),
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: &self.message } };
        (self.status, Json(body)).into_response()
    }
}

/// One route: what the router serves and the OpenAPI document must describe.
pub struct Route {
    pub method: Method,
    /// The axum path (`/v1/documents/{id}`), the same syntax as OpenAPI's.
    pub path: &'static str,
    /// Behind the bearer token.
    pub protected: bool,
    pub handler: MethodRouter,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}{}", self.method, self.path, if self.protected { " (bearer)" } else { "" })
    }
}

/// The expected bearer token, kept as its SHA-256 so that comparing takes the same time whatever the
/// token's length and content.
#[derive(Clone)]
pub struct Bearer(Arc<[u8; 32]>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(<redacted>)")
    }
}

impl Bearer {
    pub fn new(token: &Secret) -> Bearer {
        Bearer(Arc::new(Sha256::digest(token.expose().as_bytes()).into()))
    }

    /// Whether an `Authorization` header value carries the token (constant time in the token).
    pub fn accepts(&self, header: Option<&HeaderValue>) -> bool {
        let Some(given) = header.and_then(|h| h.to_str().ok()).and_then(|h| {
            let (scheme, token) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
        }) else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        bool::from(digest.ct_eq(&*self.0))
    }
}

/// The bearer check of the protected routes: 401 with a JSON error and `WWW-Authenticate` otherwise.
pub async fn require_bearer(State(bearer): State<Bearer>, req: Request, next: Next) -> Response {
    if bearer.accepts(req.headers().get(header::AUTHORIZATION)) {
        return next.run(req).await;
    }
    let mut res = Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this route needs the header `Authorization: Bearer <token>` with the API's token",
    )
    .into_response();
    res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    res
}

/// Gives the bare error responses of axum and the tower layers (413 of the body limit, 405, the
/// timeout's 503, an empty 404) the JSON error body. JSON and HTML answers (the review page's sign-in
/// form is a 401) are left as they are.
pub async fn json_errors(res: Response) -> Response {
    let status = res.status();
    let answered = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || answered {
        return res;
    }
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is over the limit".to_string()),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this route does not take that method".to_string()),
        StatusCode::NOT_FOUND => ("not_found", "no such route".to_string()),
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => {
            ("unavailable", "the request took longer than the time limit or the service is busy".to_string())
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "expected a JSON body".to_string()),
        s if s.is_client_error() => ("bad_request", format!("invalid request ({s})")),
        s => ("internal", format!("internal error ({s})")),
    };
    let (parts, _) = res.into_parts();
    let mut out = Problem::new(status, code, message).into_response();
    for name in [header::ALLOW, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

/// The answer to a route that does not exist.
pub async fn no_route() -> Problem {
    Problem::not_found("no such route (see /openapi.json)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bare_errors_get_a_json_body_html_pages_stay_html() {
        let bare = (StatusCode::PAYLOAD_TOO_LARGE, "too big").into_response();
        let out = json_errors(bare).await;
        assert_eq!(out.headers()[header::CONTENT_TYPE], "application/json");
        let page = (StatusCode::UNAUTHORIZED, axum::response::Html("<form name=\"token\"></form>")).into_response();
        let out = json_errors(page).await;
        assert_eq!(out.status(), StatusCode::UNAUTHORIZED);
        assert!(out.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    }

    #[test]
    fn bearer_accepts_only_the_token() {
        let b = Bearer::new(&Secret::new("s3cret"));
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert!(b.accepts(Some(&h("Bearer s3cret"))));
        assert!(b.accepts(Some(&h("bearer s3cret"))));
        assert!(!b.accepts(Some(&h("Bearer s3cre"))));
        assert!(!b.accepts(Some(&h("Bearer s3cret2"))));
        assert!(!b.accepts(Some(&h("Basic s3cret"))));
        assert!(!b.accepts(Some(&h("s3cret"))));
        assert!(!b.accepts(None));
        assert_eq!(format!("{b:?}"), "Bearer(<redacted>)");
    }
}
