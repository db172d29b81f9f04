//! Provider request/response mappings. Each turns a [`ChatRequest`] into the provider's documented body and
//! the provider's documented response into a [`ChatResponse`].

pub mod anthropic;
pub mod gemini;
pub mod ollama;
pub mod openai;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::HeaderMap;

use crate::config::{LlmConfig, ProviderKind};
use crate::error::LlmError;
use crate::types::{ChatRequest, ChatResponse};

/// One provider's API.
#[async_trait]
pub trait ChatApi: Send + Sync {
    /// Sends one request (no retries: the client does those).
    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, LlmError>;

    /// Parallel slots the server reports, if it reports any (llama.cpp does).
    async fn server_slots(&self) -> Option<usize> {
        None
    }
}

/// Builds the API for a config.
pub fn build(cfg: &LlmConfig, http: reqwest::Client) -> Box<dyn ChatApi> {
    match cfg.provider {
        ProviderKind::Openai => Box::new(openai::OpenAi::new(cfg.clone(), http)),
        ProviderKind::Ollama => Box::new(ollama::Ollama::new(cfg.clone(), http)),
        ProviderKind::Anthropic => Box::new(anthropic::Anthropic::new(cfg.clone(), http)),
        ProviderKind::Gemini => Box::new(gemini::Gemini::new(cfg.clone(), http)),
    }
}

/// Sends a JSON body and returns the JSON response, mapping transport and status failures to [`LlmError`].
pub(crate) async fn post_json(
    http: &reqwest::Client,
    url: &str,
    headers: HeaderMap,
    body: &serde_json::Value,
    timeout: Duration,
) -> Result<(serde_json::Value, Duration), LlmError> {
    let started = Instant::now();
    let resp =
        http.post(url).headers(headers).json(body).timeout(timeout).send().await.map_err(|e| transport(e, timeout))?;
    let status = resp.status();
    let retry_after = parse_retry_after(resp.headers());
    let text = resp.text().await.map_err(|e| transport(e, timeout))?;
    let latency = started.elapsed();
    if status.as_u16() == 429 {
        return Err(LlmError::RateLimited { retry_after });
    }
    if status.is_server_error() {
        return Err(LlmError::Server { status: status.as_u16(), body: truncate(&text, 500), retry_after });
    }
    if !status.is_success() {
        return Err(LlmError::Client { status: status.as_u16(), body: truncate(&text, 500) });
    }
    let json =
        serde_json::from_str(&text).map_err(|e| LlmError::InvalidResponse(format!("{e}: {}", truncate(&text, 300))))?;
    Ok((json, latency))
}

fn transport(e: reqwest::Error, timeout: Duration) -> LlmError {
    // Without its URL: a base URL's credentials would otherwise be in every logged connection error.
    let e = e.without_url();
    if e.is_timeout() { LlmError::Timeout(timeout) } else { LlmError::Connect(e.to_string()) }
}

/// The longest `Retry-After` taken from a server (the client caps its waits lower still, at
/// `max_backoff_ms`).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// `Retry-After` as seconds or an HTTP date, at most [`MAX_RETRY_AFTER`]. A value that is not a finite
/// non-negative number (`inf`, `NaN`, `-1`) is ignored (it used to panic in `Duration::from_secs_f64`).
pub(crate) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return None;
        }
        return Some(Duration::try_from_secs_f64(secs).unwrap_or(MAX_RETRY_AFTER).min(MAX_RETRY_AFTER));
    }
    let when = httpdate_to_unix(v)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64;
    Some(Duration::from_secs((when - now).max(0) as u64).min(MAX_RETRY_AFTER))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) to Unix seconds.
fn httpdate_to_unix(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: i64 = parts[1].parse().ok()?;
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| *m == parts[2])? as i64
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<i64> = parts[4].split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    if hms.len() != 3 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2])
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Merges configured extra fields into a request body.
pub(crate) fn merge_extra(body: &mut serde_json::Value, cfg: &LlmConfig) {
    if let Some(obj) = body.as_object_mut() {
        for (k, v) in &cfg.extra {
            obj.insert(k.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(parse_retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap());
        assert_eq!(parse_retry_after(&h), Some(Duration::ZERO));
        assert_eq!(httpdate_to_unix("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(parse_retry_after(&h), None);
    }

    /// Issue 14, defect 3: `Retry-After: inf` (or 1e20) panicked in `Duration::from_secs_f64`; large finite
    /// values were slept in full.
    #[test]
    fn retry_after_is_bounded_and_never_panics() {
        let mut h = HeaderMap::new();
        for (value, want) in [
            ("inf", None),
            ("infinity", None),
            ("NaN", None),
            ("-1", None),
            ("1e20", Some(MAX_RETRY_AFTER)),
            ("1e400", None),
            ("86400", Some(MAX_RETRY_AFTER)),
            ("Fri, 31 Dec 9999 23:59:59 GMT", Some(MAX_RETRY_AFTER)),
            ("2.5", Some(Duration::from_millis(2500))),
        ] {
            h.insert("retry-after", value.parse().unwrap());
            assert_eq!(parse_retry_after(&h), want, "{value}");
        }
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
