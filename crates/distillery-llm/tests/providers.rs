//! Provider request/response mappings against each provider's documented API, served by a local HTTP fake
//! (wiremock). Every test goes through the public API (`LlmClient` or `providers::build`).
//!
//! The fixtures under `tests/fixtures/` are response bodies holding only documented fields. What each follows:
//!
//! - `openai/*`: the Chat Completions object as typed in openai/openai-python
//!   `src/openai/types/chat/chat_completion.py` (`finish_reason` values `stop | length | tool_calls |
//!   content_filter | function_call`), `chat_completion_message.py` (`content` nullable, `refusal`),
//!   `completion_usage.py`; the refusal shape of OpenAI's Structured Outputs guide ("Refusals");
//!   the error envelope `{"error": ErrorObject}` of `src/openai/types/shared/error_object.py`.
//!   `reasoning_content.json` follows DeepSeek's API guide "Reasoning Model (deepseek-reasoner)"
//!   (api-docs.deepseek.com/guides/reasoning_model) and vLLM's "Reasoning Outputs" docs (`reasoning_content`
//!   next to `content`); `think_in_content.json` is an OpenAI-compatible server run without a reasoning parser
//!   (vLLM without `--reasoning-parser`, llama.cpp `--reasoning-format none`), where `<think>…</think>` stays in
//!   `content`.
//! - `ollama/*`: ollama/ollama `docs/api.md` "Generate a chat completion" (the non-streaming and "Structured
//!   outputs" examples), `api/types.go` (`ChatResponse`, `Message.Thinking`, `Metrics`),
//!   `docs/capabilities/thinking.mdx` (`message.thinking`), `llm/server.go` (`done_reason` "length"),
//!   `docs/api/errors.mdx` (`{"error": "..."}` with the HTTP status), `docs/api/authentication.mdx` (Bearer key).
//! - `anthropic/*`: anthropics/anthropic-sdk-python `src/anthropic/types/message.py`, `usage.py`,
//!   `stop_reason.py`, `tool_use_block.py`, `thinking_block.py`, `refusal_stop_details.py`; stop reasons per
//!   platform.claude.com/docs/en/build-with-claude/handling-stop-reasons (`model_context_window_exceeded`:
//!   "treat the response as truncated"); the error envelope `{"type": "error", "error": {"type", "message"},
//!   "request_id"}` and statuses (400 invalid_request_error, 429 rate_limit_error + retry-after,
//!   529 overloaded_error) of the Claude API errors page.
//! - `gemini/*`: googleapis/python-genai `google/genai/types.py` (`GenerateContentResponse`, `Candidate`,
//!   `FinishReason`, `Part.thought`, `GenerateContentResponseUsageMetadata.thoughts_token_count`,
//!   `GenerateContentResponsePromptFeedback.block_reason`) in the REST API's camelCase; the request field names
//!   (`systemInstruction`, `generationConfig.maxOutputTokens/responseMimeType/responseJsonSchema/seed`,
//!   `x-goog-api-key`) from `google/genai/models.py` `_GenerateContentConfig_to_mldev` and `_api_client.py`;
//!   the error envelope `{"error": {"code", "message", "status"}}` of Google's API error model (read by
//!   python-genai `errors.py`).

use std::path::Path;
use std::time::Duration;

use distillery_core::Metrics;
use distillery_core::config::Secret;
use distillery_llm::providers;
use distillery_llm::{
    ChatMessage, ChatRequest, ChatResponse, FinishReason, LlmClient, LlmConfig, LlmError, OutputSchema, ProviderKind,
    Usage,
};
use serde::Deserialize;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SYSTEM: &str = "Write one question-answer pair about the passage as JSON.";
const PASSAGE: &str = "Passage: Employees get 25 vacation days per year.";
const EARLIER_ANSWER: &str = "{\"question\": \"What do employees get?\"}";
const FOLLOW_UP: &str = "Make the question more specific.";

#[derive(Debug, Deserialize, PartialEq)]
struct QaPair {
    question: String,
    answer: String,
}

fn expected_pair() -> QaPair {
    QaPair { question: "How many vacation days do employees get?".into(), answer: "25 days per year.".into() }
}

fn fixture(name: &str) -> Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn qa_schema() -> OutputSchema {
    OutputSchema {
        name: "qa_pair".into(),
        schema: json!({
            "type": "object",
            "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
            "required": ["question", "answer"],
            "additionalProperties": false
        }),
    }
}

fn config(provider: ProviderKind, base_url: String, model: &str, key: &str) -> LlmConfig {
    LlmConfig {
        provider,
        base_url,
        model: model.into(),
        api_key: Secret::new(key),
        temperature: 0.5,
        max_tokens: 256,
        max_concurrency: Some(1),
        max_retries: 0,
        initial_backoff_ms: 1,
        max_backoff_ms: 1,
        ..LlmConfig::default()
    }
}

async fn client(cfg: LlmConfig) -> LlmClient {
    LlmClient::connect(cfg, distillery_llm::LlmRole::Generator, Metrics::isolated()).await
}

/// System + user prompt with the output schema.
fn qa_request() -> ChatRequest {
    let mut req = ChatRequest::new(vec![ChatMessage::system(SYSTEM), ChatMessage::user(PASSAGE)]);
    req.schema = Some(qa_schema());
    req
}

/// System, user, assistant, user, with a seed and a token limit: checks role mapping and parameter placement.
fn conversation() -> ChatRequest {
    let mut req = ChatRequest::new(vec![
        ChatMessage::system(SYSTEM),
        ChatMessage::user(PASSAGE),
        ChatMessage::assistant(EARLIER_ANSWER),
        ChatMessage::user(FOLLOW_UP),
    ]);
    req.seed = Some(42);
    req.max_tokens = Some(300);
    req.schema = Some(qa_schema());
    req
}

/// A server answering `POST route` with `fixture` (HTTP `status`), expecting `times` calls.
async fn serve(route: &str, status: u16, fixture_name: &str, times: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(ResponseTemplate::new(status).set_body_json(fixture(fixture_name)))
        .expect(times)
        .mount(&server)
        .await;
    server
}

/// The JSON bodies of every request the server received, in order.
async fn bodies(server: &MockServer) -> Vec<Value> {
    let requests = server.received_requests().await.expect("request recording is on");
    requests.iter().map(|r| r.body_json::<Value>().expect("request body is JSON")).collect()
}

/// Reasoning is set, equal to `trace`, and nowhere in the content.
fn assert_reasoning_separated(r: &ChatResponse, trace: &str) {
    assert_eq!(r.reasoning.as_deref(), Some(trace));
    assert!(!r.content.contains(trace), "reasoning leaked into content: {:?}", r.content);
    assert!(!r.content.contains("<think>") && !r.content.contains("</think>"), "think tags in content");
    let parsed: QaPair = serde_json::from_str(&r.content).expect("content is exactly the JSON answer");
    assert_eq!(parsed, expected_pair());
}

// ---------------------------------------------------------------------------------------------------------------
// OpenAI Chat Completions (OpenAI, vLLM, llama.cpp)
// ---------------------------------------------------------------------------------------------------------------

const OPENAI_ROUTE: &str = "/v1/chat/completions";

fn openai_config(server: &MockServer, key: &str) -> LlmConfig {
    config(ProviderKind::Openai, format!("{}/v1", server.uri()), "gpt-4o-2024-08-06", key)
}

#[tokio::test]
async fn openai_request_follows_the_chat_completions_api() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(OPENAI_ROUTE))
        .and(header("authorization", "Bearer sk-test"))
        .and(header("content-type", "application/json"))
        .and(body_partial_json(json!({
            "model": "gpt-4o-2024-08-06",
            "stream": false,
            "max_tokens": 300,
            "temperature": 0.5,
            "seed": 42,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "qa_pair", "strict": true, "schema": qa_schema().schema}
            }
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("openai/success.json")))
        .expect(1)
        .mount(&server)
        .await;

    client(openai_config(&server, "sk-test")).await.chat(&conversation()).await.expect("request matched");

    let body = &bodies(&server).await[0];
    // The system prompt is the first message; every role keeps its name.
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": PASSAGE},
            {"role": "assistant", "content": EARLIER_ANSWER},
            {"role": "user", "content": FOLLOW_UP}
        ])
    );
}

#[tokio::test]
async fn openai_without_a_key_sends_no_authorization() {
    let server = serve(OPENAI_ROUTE, 200, "openai/success.json", 1).await;
    client(openai_config(&server, "")).await.chat(&qa_request()).await.unwrap();
    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn openai_structured_success_maps_content_usage_finish_and_model() {
    let server = serve(OPENAI_ROUTE, 200, "openai/success.json", 1).await;
    let out = client(openai_config(&server, "sk-test")).await.chat_json::<QaPair, _>(qa_request(), |_| Ok(())).await;
    let out = out.expect("structured answer");
    assert_eq!(out.value, expected_pair());
    assert_eq!(out.calls, 1);
    assert_eq!(out.usage, Usage { prompt_tokens: 1117, completion_tokens: 46 });
    let r = out.response;
    assert_eq!(r.usage, Usage { prompt_tokens: 1117, completion_tokens: 46 });
    assert_eq!(r.finish_reason, FinishReason::Stop);
    assert_eq!(r.model, "gpt-4o-2024-08-06");
    assert_eq!(r.reasoning, None);
    assert_eq!(r.refusal, None);
}

#[tokio::test]
async fn openai_reasoning_content_field_is_separated() {
    let server = serve(OPENAI_ROUTE, 200, "openai/reasoning_content.json", 1).await;
    let r = client(openai_config(&server, "sk-test")).await.chat(&qa_request()).await.unwrap();
    assert_reasoning_separated(
        &r,
        "The passage states the annual leave entitlement. The question should ask for it and the answer quote 25 days.",
    );
    // completion_tokens already includes the reasoning tokens.
    assert_eq!(r.usage, Usage { prompt_tokens: 310, completion_tokens: 212 });
    assert_eq!(r.model, "deepseek-reasoner");
    assert_eq!(r.finish_reason, FinishReason::Stop);
}

#[tokio::test]
async fn openai_think_block_in_content_is_split_out() {
    let server = serve(OPENAI_ROUTE, 200, "openai/think_in_content.json", 1).await;
    let r = client(openai_config(&server, "")).await.chat(&qa_request()).await.unwrap();
    assert_reasoning_separated(&r, "The passage gives the leave entitlement, so I ask about it.");
    assert_eq!(r.usage, Usage { prompt_tokens: 290, completion_tokens: 57 });
    assert_eq!(r.model, "Qwen/Qwen3-8B");
}

#[tokio::test]
async fn openai_length_is_truncation() {
    // One plain call, then a structured call and its repair round trip.
    let server = serve(OPENAI_ROUTE, 200, "openai/length.json", 3).await;
    let llm = client(openai_config(&server, "sk-test")).await;
    let r = llm.chat(&qa_request()).await.unwrap();
    assert_eq!(r.finish_reason, FinishReason::Length);
    assert_eq!(r.content, "{\"question\":\"How many vacation days do employees");
    assert_eq!(r.usage, Usage { prompt_tokens: 1117, completion_tokens: 16 });

    let err = llm.chat_json::<QaPair, _>(qa_request(), |_| Ok(())).await.unwrap_err();
    assert!(matches!(err, LlmError::Truncated { .. }), "{err:?}");
    // The repair asked for twice the tokens.
    let sent = bodies(&server).await;
    assert_eq!(sent[1]["max_tokens"], 256);
    assert_eq!(sent[2]["max_tokens"], 512);
}

#[tokio::test]
async fn openai_refusal_field_is_reported() {
    let server = serve(OPENAI_ROUTE, 200, "openai/refusal.json", 2).await;
    let llm = client(openai_config(&server, "sk-test")).await;
    let r = llm.chat(&qa_request()).await.unwrap();
    assert_eq!(r.refusal.as_deref(), Some("I'm sorry, I cannot assist with that request."));
    assert_eq!(r.content, "");
    assert_eq!(r.finish_reason, FinishReason::Stop);

    match llm.chat_json::<QaPair, _>(qa_request(), |_| Ok(())).await {
        Err(LlmError::Refusal { reason, .. }) => assert_eq!(reason, "I'm sorry, I cannot assist with that request."),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn openai_content_filter_is_a_refusal() {
    let server = serve(OPENAI_ROUTE, 200, "openai/content_filter.json", 2).await;
    let llm = client(openai_config(&server, "sk-test")).await;
    let r = llm.chat(&qa_request()).await.unwrap();
    assert_eq!(r.finish_reason, FinishReason::Refusal);
    assert_eq!(r.content, "");
    let err = llm.chat_json::<QaPair, _>(qa_request(), |_| Ok(())).await.unwrap_err();
    assert!(matches!(err, LlmError::Refusal { .. }), "{err:?}");
}

#[tokio::test]
async fn openai_error_envelopes_are_classified() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(OPENAI_ROUTE))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "2")
                .set_body_json(fixture("openai/error_rate_limit.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let api = providers::build(&openai_config(&server, "sk-test"), reqwest::Client::new());
    let err = api.chat(&qa_request()).await.unwrap_err();
    assert!(matches!(err, LlmError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(2)), "{err:?}");
    assert!(err.is_retryable());

    let server = serve(OPENAI_ROUTE, 400, "openai/error_invalid_request.json", 1).await;
    let err = client(openai_config(&server, "sk-test")).await.chat(&qa_request()).await.unwrap_err();
    match &err {
        LlmError::Client { status, body } => {
            assert_eq!(*status, 400);
            assert!(body.contains("context_length_exceeded"), "{body}");
        }
        other => panic!("expected a client error, got {other:?}"),
    }
    assert!(!err.is_retryable());
}

// ---------------------------------------------------------------------------------------------------------------
// Ollama native /api/chat
// ---------------------------------------------------------------------------------------------------------------

const OLLAMA_ROUTE: &str = "/api/chat";

fn ollama_config(server: &MockServer, key: &str) -> LlmConfig {
    config(ProviderKind::Ollama, server.uri(), "llama3.1", key)
}

#[tokio::test]
async fn ollama_request_follows_the_chat_api() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(OLLAMA_ROUTE))
        .and(header("authorization", "Bearer ollama-key"))
        .and(body_partial_json(json!({
            "model": "llama3.1",
            "stream": false,
            "format": qa_schema().schema,
            "options": {"temperature": 0.5, "num_predict": 300, "seed": 42}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("ollama/success.json")))
        .expect(1)
        .mount(&server)
        .await;

    client(ollama_config(&server, "ollama-key")).await.chat(&conversation()).await.expect("request matched");

    let body = &bodies(&server).await[0];
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": PASSAGE},
            {"role": "assistant", "content": EARLIER_ANSWER},
            {"role": "user", "content": FOLLOW_UP}
        ])
    );
    // Sampling and the token limit live in `options`, not at the top level.
    for key in ["temperature", "max_tokens", "num_predict", "seed", "response_format"] {
        assert!(body.get(key).is_none(), "unexpected top-level {key}");
    }
}

#[tokio::test]
async fn ollama_structured_success_maps_content_usage_finish_and_model() {
    let server = serve(OLLAMA_ROUTE, 200, "ollama/success.json", 1).await;
    let out = client(ollama_config(&server, "")).await.chat_json::<QaPair, _>(qa_request(), |_| Ok(())).await;
    let out = out.expect("structured answer");
    assert_eq!(out.value, expected_pair());
    assert_eq!(out.calls, 1);
    let r = out.response;
    assert_eq!(r.usage, Usage { prompt_tokens: 34, completion_tokens: 12 });
    assert_eq!(r.finish_reason, FinishReason::Stop);
    assert_eq!(r.model, "llama3.1");
    assert_eq!(r.reasoning, None);
    // A local server needs no key, and none is sent.
    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn ollama_thinking_field_is_separated() {
    let server = serve(OLLAMA_ROUTE, 200, "ollama/thinking.json", 1).await;
    let mut cfg = ollama_config(&server, "");
    cfg.model = "qwen3".into();
    cfg.extra.insert("think".into(), json!(true));
    let r = client(cfg).await.chat(&qa_request()).await.unwrap();
    assert_reasoning_separated(
        &r,
        "The passage states the leave entitlement, so the question asks for it and the answer is 25 days.",
    );
    assert_eq!(r.usage, Usage { prompt_tokens: 71, completion_tokens: 402 });
    assert_eq!(r.model, "qwen3");
    // `think` is a top-level request field.
    assert_eq!(bodies(&server).await[0]["think"], true);
}

#[tokio::test]
async fn ollama_done_reason_length_is_truncation() {
    let server = serve(OLLAMA_ROUTE, 200, "ollama/length.json", 1).await;
    let r = client(ollama_config(&server, "")).await.chat(&qa_request()).await.unwrap();
    assert_eq!(r.finish_reason, FinishReason::Length);
    assert_eq!(r.content, "{\"question\": \"How many vacation days do");
    assert_eq!(r.usage, Usage { prompt_tokens: 34, completion_tokens: 8 });
}

#[tokio::test]
async fn ollama_error_envelopes_are_classified() {
    let server = serve(OLLAMA_ROUTE, 404, "ollama/error_model_not_found.json", 1).await;
    let err = client(ollama_config(&server, "")).await.chat(&qa_request()).await.unwrap_err();
    match &err {
        LlmError::Client { status, body } => {
            assert_eq!(*status, 404);
            assert!(body.contains("not found, try pulling it first"), "{body}");
        }
        other => panic!("expected a client error, got {other:?}"),
    }
    assert!(!err.is_retryable());

    let server = serve(OLLAMA_ROUTE, 500, "ollama/error_server.json", 1).await;
    let api = providers::build(&ollama_config(&server, ""), reqwest::Client::new());
    let err = api.chat(&qa_request()).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::Server { status: 500, body, .. } if body.contains("failed to generate")),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

// ---------------------------------------------------------------------------------------------------------------
// Anthropic Messages API
// ---------------------------------------------------------------------------------------------------------------

const ANTHROPIC_ROUTE: &str = "/v1/messages";

fn anthropic_config(server: &MockServer) -> LlmConfig {
    config(ProviderKind::Anthropic, server.uri(), "claude-sonnet-4-5-20250929", "sk-ant-test")
}

#[tokio::test]
async fn anthropic_request_follows_the_messages_api() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(ANTHROPIC_ROUTE))
        .and(header("x-api-key", "sk-ant-test"))
        .and(header("anthropic-version", "2023-06-01"))
        .and(header("content-type", "application/json"))
        .and(body_partial_json(json!({
            "model": "claude-sonnet-4-5-20250929",
            "max_tokens": 300,
            "temperature": 0.5,
            "system": SYSTEM,
            "tool_choice": {"type": "tool", "name": "qa_pair"}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("anthropic/success_tool_use.json")))
        .expect(1)
        .mount(&server)
        .await;

    client(anthropic_config(&server)).await.chat(&conversation()).await.expect("request matched");

    let body = &bodies(&server).await[0];
    // The system prompt is the top-level `system`; `messages` holds only user and assistant turns.
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": PASSAGE},
            {"role": "assistant", "content": EARLIER_ANSWER},
            {"role": "user", "content": FOLLOW_UP}
        ])
    );
    // Structured output: one tool whose input_schema is the schema, forced by tool_choice.
    let tools = body["tools"].as_array().expect("tools array");
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0]["name"], "qa_pair");
    assert_eq!(tools[0]["input_schema"], qa_schema().schema);
    // The Messages API has no seed or response_format parameter.
    assert!(body.get("seed").is_none() && body.get("response_format").is_none());
}

#[tokio::test]
async fn anthropic_tool_use_structured_success_maps_content_usage_finish_and_model() {
    let server = serve(ANTHROPIC_ROUTE, 200, "anthropic/success_tool_use.json", 1).await;
    let out = client(anthropic_config(&server)).await.chat_json::<QaPair, _>(qa_request(), |_| Ok(())).await;
    let out = out.expect("structured answer");
    assert_eq!(out.value, expected_pair());
    assert_eq!(out.calls, 1);
    let r = out.response;
    // The forced tool's input is the JSON answer.
    assert_eq!(
        serde_json::from_str::<Value>(&r.content).unwrap(),
        fixture("anthropic/success_tool_use.json")["content"][0]["input"]
    );
    assert_eq!(r.usage, Usage { prompt_tokens: 412, completion_tokens: 88 });
    assert_eq!(r.finish_reason, FinishReason::Stop);
    assert_eq!(r.model, "claude-sonnet-4-5-20250929");
    assert_eq!(r.reasoning, None);
    assert_eq!(r.refusal, None);
}

#[tokio::test]
async fn anthropic_thinking_block_is_separated() {
    let server = serve(ANTHROPIC_ROUTE, 200, "anthropic/thinking.json", 1).await;
    // Extended thinking does not allow a forced tool, so this request asks for plain text.
    let req = ChatRequest::new(vec![ChatMessage::system(SYSTEM), ChatMessage::user(PASSAGE)]);
    let r = client(anthropic_config(&server)).await.chat(&req).await.unwrap();
    assert_reasoning_separated(
        &r,
        "The passage states the leave entitlement. I will ask about it and answer with 25 days.",
    );
    assert_eq!(r.usage, Usage { prompt_tokens: 380, completion_tokens: 254 });
    assert_eq!(r.finish_reason, FinishReason::Stop);
    let body = &bodies(&server).await[0];
    assert!(body.get("tools").is_none() && body.get("tool_choice").is_none());
}

#[tokio::test]
async fn anthropic_max_tokens_and_context_window_exceeded_are_truncation() {
    let server = serve(ANTHROPIC_ROUTE, 200, "anthropic/max_tokens.json", 1).await;
    let r = client(anthropic_config(&server)).await.chat(&qa_request()).await.unwrap();
    assert_eq!(r.finish_reason, FinishReason::Length);
    assert_eq!(r.content, "{\"question\": \"How many vacation days do");
    assert_eq!(r.usage, Usage { prompt_tokens: 380, completion_tokens: 10 });

    let server = serve(ANTHROPIC_ROUTE, 200, "anthropic/context_window_exceeded.json", 1).await;
    let r = client(anthropic_config(&server)).await.chat(&qa_request()).await.unwrap();
    assert_eq!(r.finish_reason, FinishReason::Length);
    assert_eq!(r.usage, Usage { prompt_tokens: 199_800, completion_tokens: 200 });
}

#[tokio::test]
async fn anthropic_refusal_stop_reason_is_a_refusal() {
    let server = serve(ANTHROPIC_ROUTE, 200, "anthropic/refusal.json", 2).await;
    let llm = client(anthropic_config(&server)).await;
    let r = llm.chat(&qa_request()).await.unwrap();
    assert_eq!(r.finish_reason, FinishReason::Refusal);
    assert!(r.refusal.is_some());
    assert_eq!(r.content, "");
    let err = llm.chat_json::<QaPair, _>(qa_request(), |_| Ok(())).await.unwrap_err();
    assert!(matches!(err, LlmError::Refusal { .. }), "{err:?}");
}

#[tokio::test]
async fn anthropic_error_envelopes_are_classified() {
    let server = serve(ANTHROPIC_ROUTE, 529, "anthropic/error_overloaded.json", 1).await;
    let err = client(anthropic_config(&server)).await.chat(&qa_request()).await.unwrap_err();
    assert!(matches!(&err, LlmError::Server { status: 529, body, .. } if body.contains("overloaded_error")), "{err:?}");
    assert!(err.is_retryable());

    let server = serve(ANTHROPIC_ROUTE, 400, "anthropic/error_invalid_request.json", 1).await;
    let err = client(anthropic_config(&server)).await.chat(&qa_request()).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::Client { status: 400, body } if body.contains("invalid_request_error")),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(ANTHROPIC_ROUTE))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "30")
                .set_body_json(fixture("anthropic/error_rate_limit.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = providers::build(&anthropic_config(&server), reqwest::Client::new()).chat(&qa_request()).await;
    let err = err.unwrap_err();
    assert!(matches!(err, LlmError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(30)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn anthropic_overloaded_is_retried_by_the_client() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(ANTHROPIC_ROUTE))
        .respond_with(ResponseTemplate::new(529).set_body_json(fixture("anthropic/error_overloaded.json")))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(ANTHROPIC_ROUTE))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("anthropic/success_tool_use.json")))
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    let mut cfg = anthropic_config(&server);
    cfg.max_retries = 1;
    let out = client(cfg).await.chat_json::<QaPair, _>(qa_request(), |_| Ok(())).await.expect("retried");
    assert_eq!(out.value, expected_pair());
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

// ---------------------------------------------------------------------------------------------------------------
// Gemini generateContent
// ---------------------------------------------------------------------------------------------------------------

const GEMINI_ROUTE: &str = "/v1beta/models/gemini-2.5-flash:generateContent";

fn gemini_config(server: &MockServer) -> LlmConfig {
    config(ProviderKind::Gemini, server.uri(), "gemini-2.5-flash", "AIza-test")
}

#[tokio::test]
async fn gemini_request_follows_the_generate_content_api() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(GEMINI_ROUTE))
        .and(header("x-goog-api-key", "AIza-test"))
        .and(header("content-type", "application/json"))
        .and(body_partial_json(json!({
            "systemInstruction": {"parts": [{"text": SYSTEM}]},
            "generationConfig": {
                "temperature": 0.5,
                "maxOutputTokens": 300,
                "seed": 42,
                "responseMimeType": "application/json",
                "responseJsonSchema": qa_schema().schema
            }
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("gemini/success.json")))
        .expect(1)
        .mount(&server)
        .await;

    client(gemini_config(&server)).await.chat(&conversation()).await.expect("request matched");

    let requests = server.received_requests().await.unwrap();
    // The key goes in the header, not the query string.
    assert_eq!(requests[0].url.query(), None);
    let body: Value = requests[0].body_json().unwrap();
    // No system turn in `contents`; the assistant role is `model`.
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": PASSAGE}]},
            {"role": "model", "parts": [{"text": EARLIER_ANSWER}]},
            {"role": "user", "parts": [{"text": FOLLOW_UP}]}
        ])
    );
    assert!(body.get("model").is_none() && body.get("messages").is_none());
}

#[tokio::test]
async fn gemini_structured_success_maps_content_usage_finish_and_model() {
    let server = serve(GEMINI_ROUTE, 200, "gemini/success.json", 1).await;
    let out = client(gemini_config(&server)).await.chat_json::<QaPair, _>(qa_request(), |_| Ok(())).await;
    let out = out.expect("structured answer");
    assert_eq!(out.value, expected_pair());
    assert_eq!(out.calls, 1);
    let r = out.response;
    assert_eq!(r.usage, Usage { prompt_tokens: 58, completion_tokens: 21 });
    assert_eq!(r.finish_reason, FinishReason::Stop);
    assert_eq!(r.model, "gemini-2.5-flash");
    assert_eq!(r.reasoning, None);
    assert_eq!(r.refusal, None);
}

#[tokio::test]
async fn gemini_thought_parts_are_separated_and_counted() {
    let server = serve(GEMINI_ROUTE, 200, "gemini/thinking.json", 1).await;
    let r = client(gemini_config(&server)).await.chat(&qa_request()).await.unwrap();
    assert_reasoning_separated(
        &r,
        "**Locating the entitlement**\n\nThe passage states the annual leave, so the question asks for it.",
    );
    // Completion tokens = candidatesTokenCount + thoughtsTokenCount (both are billed output).
    assert_eq!(r.usage, Usage { prompt_tokens: 58, completion_tokens: 21 + 310 });
    assert_eq!(r.finish_reason, FinishReason::Stop);
}

#[tokio::test]
async fn gemini_max_tokens_is_truncation() {
    let server = serve(GEMINI_ROUTE, 200, "gemini/max_tokens.json", 1).await;
    let r = client(gemini_config(&server)).await.chat(&qa_request()).await.unwrap();
    assert_eq!(r.finish_reason, FinishReason::Length);
    assert_eq!(r.content, "{\"question\": \"How many vacation days do");
    assert_eq!(r.usage, Usage { prompt_tokens: 58, completion_tokens: 9 });
}

#[tokio::test]
async fn gemini_safety_finish_and_blocked_prompt_are_refusals() {
    let server = serve(GEMINI_ROUTE, 200, "gemini/safety.json", 2).await;
    let llm = client(gemini_config(&server)).await;
    let r = llm.chat(&qa_request()).await.unwrap();
    assert_eq!(r.finish_reason, FinishReason::Refusal);
    assert!(r.refusal.as_deref().is_some_and(|s| s.contains("SAFETY")), "{:?}", r.refusal);
    assert_eq!(r.content, "");
    assert_eq!(r.usage, Usage { prompt_tokens: 61, completion_tokens: 0 });
    let err = llm.chat_json::<QaPair, _>(qa_request(), |_| Ok(())).await.unwrap_err();
    assert!(matches!(err, LlmError::Refusal { .. }), "{err:?}");

    let server = serve(GEMINI_ROUTE, 200, "gemini/prompt_blocked.json", 1).await;
    let r = client(gemini_config(&server)).await.chat(&qa_request()).await.unwrap();
    assert_eq!(r.finish_reason, FinishReason::Refusal);
    assert!(r.refusal.as_deref().is_some_and(|s| s.contains("PROHIBITED_CONTENT")), "{:?}", r.refusal);
    assert_eq!(r.usage, Usage { prompt_tokens: 64, completion_tokens: 0 });
    assert_eq!(r.model, "gemini-2.5-flash");
}

#[tokio::test]
async fn gemini_error_envelopes_are_classified() {
    let server = serve(GEMINI_ROUTE, 400, "gemini/error_invalid_argument.json", 1).await;
    let err = client(gemini_config(&server)).await.chat(&qa_request()).await.unwrap_err();
    assert!(matches!(&err, LlmError::Client { status: 400, body } if body.contains("INVALID_ARGUMENT")), "{err:?}");
    assert!(!err.is_retryable());

    let server = serve(GEMINI_ROUTE, 429, "gemini/error_resource_exhausted.json", 1).await;
    let err = client(gemini_config(&server)).await.chat(&qa_request()).await.unwrap_err();
    assert!(matches!(err, LlmError::RateLimited { retry_after: None }), "{err:?}");
    assert!(err.is_retryable());

    let server = serve(GEMINI_ROUTE, 503, "gemini/error_unavailable.json", 1).await;
    let err = client(gemini_config(&server)).await.chat(&qa_request()).await.unwrap_err();
    assert!(matches!(&err, LlmError::Server { status: 503, body, .. } if body.contains("UNAVAILABLE")), "{err:?}");
    assert!(err.is_retryable());
}
