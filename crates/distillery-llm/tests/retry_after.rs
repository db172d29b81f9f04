//! Issue 14, defect 3: a server's `Retry-After` can say anything. `inf` used to panic the client (and with it
//! the run), and a large finite value was slept in full. The client waits at most `max_backoff_ms`. The
//! server is a local HTTP fake answering 429 once, then a completion.

use std::time::Duration;

use distillery_core::Metrics;
use distillery_llm::{ChatMessage, ChatRequest, LlmClient, LlmConfig};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn answered_after_a_429(retry_after: &str) -> Result<String, String> {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", retry_after))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "c", "object": "chat.completion", "created": 1, "model": "fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        })))
        .with_priority(2)
        .mount(&server)
        .await;
    let cfg = LlmConfig {
        base_url: format!("{}/v1", server.uri()),
        model: "fake".into(),
        max_concurrency: Some(1),
        max_retries: 2,
        initial_backoff_ms: 10,
        max_backoff_ms: 200,
        timeout_secs: 5,
        ..LlmConfig::default()
    };
    let client = LlmClient::connect(cfg, distillery_llm::LlmRole::Generator, Metrics::isolated()).await;
    let req = ChatRequest::new(vec![ChatMessage::user("hello")]);
    // Spawned: a panic in the client shows as a failed join, not as this test's own panic.
    let call = tokio::spawn(async move { client.chat(&req).await.map(|r| r.content).map_err(|e| e.to_string()) });
    match tokio::time::timeout(Duration::from_secs(60), call).await {
        Err(_) => Err(format!("Retry-After: {retry_after} was slept (no answer within 60 s)")),
        Ok(Err(join)) => Err(format!("Retry-After: {retry_after} crashed the client: {join}")),
        Ok(Ok(result)) => result,
    }
}

#[tokio::test]
async fn any_retry_after_is_capped_and_never_panics() {
    for value in ["inf", "1e20", "NaN", "-5", "86400", "Fri, 31 Dec 9999 23:59:59 GMT"] {
        assert_eq!(answered_after_a_429(value).await.as_deref(), Ok("ok"), "Retry-After: {value}");
    }
}
