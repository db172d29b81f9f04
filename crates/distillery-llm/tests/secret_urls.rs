//! Issue 14 ("also"): the LLM base URL was logged (the client's Debug, connection errors), so credentials
//! in it (`https://user:key@host/v1`, `?key=`) leaked into logs and dead letters.

use distillery_core::Metrics;
use distillery_llm::{ChatMessage, ChatRequest, LlmClient, LlmConfig};

#[tokio::test]
async fn credentials_in_the_base_url_never_reach_a_message() {
    // Nothing listens on port 9 (discard): every call fails to connect.
    let cfg = LlmConfig {
        base_url: "http://svc-user:hunter2-pass@127.0.0.1:9/v1?key=sk-live-123".into(),
        model: "m".into(),
        max_concurrency: Some(1),
        max_retries: 0,
        timeout_secs: 2,
        ..LlmConfig::default()
    };
    let checked = distillery_llm::check_server(&cfg).await.unwrap_err();
    let client = LlmClient::connect(cfg, distillery_llm::LlmRole::Generator, Metrics::isolated()).await;
    let failed = client.chat(&ChatRequest::new(vec![ChatMessage::user("hi")])).await.unwrap_err().to_string();
    for shown in [format!("{client:?}"), failed, checked] {
        assert!(!shown.contains("hunter2") && !shown.contains("sk-live") && !shown.contains("svc-user"), "{shown}");
    }
    assert!(format!("{client:?}").contains("127.0.0.1:9"), "the host is still shown");
}
