//! The QA chunks of one context share one generation call: a local HTTP fake of an OpenAI-compatible server
//! answers with a pair per planned sentence it is shown, and counts the calls. Each draft stays the draft of
//! the chunk its sentence is in; the drafts of the call are one judge batch; a call holds at most
//! `pairs_per_call` pairs; the context's last chunks do not wait for one already served; a chunk whose
//! context-mates never come goes alone after the wait; with gathering off every chunk has its own call.

use std::time::{Duration, Instant};

use distillery_core::codec::fixtures;
use distillery_core::{Chunk, Draft, Input, Metrics, Record, Topic};
use distillery_generate::{Generate, GenerateConfig, Mode};
use distillery_llm::{LlmClient, LlmConfig, LlmRole};
use distillery_prompts::LlmCaller;
use distillery_runtime::{PublishError, Publisher, RetryPolicy, handle};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// Three sections of a leave policy, two sentences each, and the question a pair about each sentence asks.
const SECTIONS: [[(&str, &str); 2]; 3] = [
    [
        ("Employees get 25 days of paid leave per year.", "How many days of paid leave do employees get per year?"),
        (
            "Unused leave can be carried over to March 31 of the next year.",
            "Until when can unused leave be carried over?",
        ),
    ],
    [
        (
            "Leave requests go to the employee's manager at least two weeks ahead.",
            "How far ahead must leave requests reach the manager?",
        ),
        (
            "The manager answers every request within five working days.",
            "How quickly does the manager answer a leave request?",
        ),
    ],
    [
        ("Sick leave needs a doctor's note after three days of absence.", "When does sick leave need a doctor's note?"),
        ("The note goes to the human resources office.", "Where does the doctor's note go?"),
    ],
];

fn section_text(k: usize) -> String {
    SECTIONS[k].iter().map(|(s, _)| *s).collect::<Vec<_>>().join(" ")
}

fn context() -> String {
    (0..3).map(|k| format!("[{}] {}", k + 1, section_text(k))).collect::<Vec<_>>().join("\n\n")
}

fn chunk(k: usize) -> Chunk {
    let text = section_text(k);
    Chunk {
        id: format!("chunk-{k}"),
        document_id: "doc-leave".into(),
        ordinal: k as i32,
        total: 3,
        char_start: 0,
        char_end: text.len() as i64,
        text,
        heading_path: vec!["Leave".into()],
        context_id: "ctx-leave".into(),
        context_chunk_ids: (0..3).map(|i| format!("chunk-{i}")).collect(),
        context_text: context(),
        ..fixtures::chunk()
    }
}

/// The fake server's answer: a right pair for every sentence of the policy that the request's task plans
/// a pair on (the task quotes the sentence), in the policy's order.
fn answer(req: &Request) -> ResponseTemplate {
    let body: Value = req.body_json().expect("a JSON request");
    let task = body["messages"].as_array().and_then(|m| m.last()).and_then(|m| m["content"].as_str()).unwrap_or("");
    // The context block quotes every sentence; the plan quotes them again, each in double quotes.
    let pairs: Vec<Value> = SECTIONS
        .iter()
        .flatten()
        .filter(|(s, _)| task.contains(&format!("\"{s}\"")))
        .map(|(s, q)| json!({"question": q, "answer": s}))
        .collect();
    let content = json!({ "pairs": pairs }).to_string();
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1_760_000_000, "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 300, "completion_tokens": 120, "total_tokens": 420}
    }))
}

async fn server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v1/chat/completions")).respond_with(answer).mount(&server).await;
    server
}

async fn generator(server: &MockServer, gather_wait_ms: u64, pairs_per_call: usize) -> Generate {
    let llm = LlmConfig {
        base_url: format!("{}/v1", server.uri()),
        model: "fake".into(),
        max_tokens: 600,
        timeout_secs: 5,
        max_concurrency: Some(4),
        max_retries: 0,
        ..LlmConfig::default()
    };
    // Questions are compared in words only (no encoder here).
    let cfg = GenerateConfig {
        modes: vec![Mode::Qa],
        pairs_per_chunk: 6,
        pairs_per_call,
        question_similarity: 0.0,
        gather_wait_ms,
        ..Default::default()
    };
    let llm = LlmClient::connect(llm, LlmRole::Generator, Metrics::global()).await;
    Generate::new(LlmCaller::new(std::sync::Arc::new(llm), None), cfg).expect("built-in templates are valid")
}

#[derive(Default, Clone)]
struct Collected(std::sync::Arc<std::sync::Mutex<Vec<Record>>>);

impl Publisher for Collected {
    async fn publish(&self, records: Vec<Record>) -> Result<(), PublishError> {
        self.0.lock().unwrap().extend(records);
        Ok(())
    }
}

/// Runs chunk `k` through generate the way a runtime does: the records it published.
async fn run(stage: &Generate, k: usize) -> Vec<Record> {
    let out = Collected::default();
    let input = Input::record(Topic::Chunks, Record::Chunk(chunk(k)));
    let retry = RetryPolicy { max_attempts: 1, initial_backoff_ms: 10, max_backoff_ms: 20 };
    handle(stage, input, &out, &Metrics::global(), &retry, &CancellationToken::new()).await.expect("published");
    out.0.lock().unwrap().clone()
}

fn drafts(records: &[Record]) -> Vec<&Draft> {
    records.iter().filter_map(|r| if let Record::Draft(d) = r { Some(d) } else { None }).collect()
}

/// Every record of chunk `k` is a draft about one of its own sentences, linked to it.
fn assert_own(k: usize, records: &[Record]) {
    let d = drafts(records);
    assert_eq!(d.len(), 2, "two drafts for chunk {k}: {records:#?}");
    for draft in d {
        assert_eq!(draft.chunk_id, format!("chunk-{k}"));
        assert!(section_text(k).contains(draft.answer()), "{:?} is not about chunk {k}", draft.answer());
        assert_eq!(draft.messages[0].chunk_ids, vec![format!("chunk-{k}")]);
        assert_eq!(draft.parent_ids, vec![format!("chunk-{k}")]);
    }
}

/// The context's three chunks run at once (out of order), none waiting out the gather, each with drafts
/// of its own: their records, by chunk.
async fn the_whole_context(stage: &Generate) -> [Vec<Record>; 3] {
    let started = Instant::now();
    let (c, a, b) = tokio::join!(run(stage, 2), run(stage, 0), run(stage, 1));
    assert!(started.elapsed() < Duration::from_secs(20), "nobody waited out the gather");
    let records = [a, b, c];
    for (k, r) in records.iter().enumerate() {
        assert_own(k, r);
    }
    records
}

#[tokio::test]
async fn the_chunks_of_a_context_share_one_call_and_keep_their_own_drafts() {
    let server = server().await;
    let [a, b, c] = the_whole_context(&generator(&server, 30_000, 6).await).await;
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "one call for the three chunks of the context");
    let task = requests[0].body_json::<Value>().unwrap()["messages"][1]["content"].as_str().unwrap().to_string();
    assert_eq!(task.matches(&context()).count(), 1, "the context is sent once");
    // One judge batch over the call's six drafts, each with its own id, the call's tokens shared out.
    let all: Vec<&Draft> = [&a, &b, &c].into_iter().flat_map(|r| drafts(r)).collect();
    let batch = all[0].batch.clone().expect("a batch");
    assert_eq!(batch.size, 6);
    assert!(all.iter().all(|d| d.batch.as_ref().is_some_and(|b| b.id == batch.id && b.size == 6)));
    let mut indices: Vec<i32> = all.iter().map(|d| d.batch.as_ref().unwrap().index).collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..6).collect::<Vec<_>>());
    let mut ids: Vec<&str> = all.iter().map(|d| d.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6, "distinct draft ids");
    assert_eq!(all.iter().map(|d| d.generator.prompt_tokens).sum::<i32>(), 300);
    assert_eq!(all.iter().map(|d| d.generator.completion_tokens).sum::<i32>(), 120);
}

#[tokio::test]
async fn a_call_holds_at_most_pairs_per_call_pairs() {
    let server = server().await;
    // Three chunks of two pairs each, calls of four pairs: two calls.
    let [a, b, c] = the_whole_context(&generator(&server, 30_000, 4).await).await;
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    let batch = |r: &[Record]| drafts(r)[0].batch.as_ref().unwrap().id.clone();
    assert_eq!(batch(&a), batch(&b), "chunks 0 and 1 share a call");
    assert_ne!(batch(&c), batch(&a), "chunk 2 has the second");
}

#[tokio::test]
async fn the_last_chunks_of_a_context_do_not_wait_for_one_already_served() {
    let server = server().await;
    let stage = generator(&server, 2_000, 6).await;
    // Chunk 0 comes alone and goes alone after the wait ...
    assert_own(0, &run(&stage, 0).await);
    // ... then chunks 1 and 2 complete the context at once: one call, no wait.
    let started = Instant::now();
    let (b, c) = tokio::join!(run(&stage, 1), run(&stage, 2));
    assert!(started.elapsed() < Duration::from_millis(1_500), "they did not wait for chunk 0");
    assert_own(1, &b);
    assert_own(2, &c);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_chunk_whose_context_mates_never_come_goes_alone_after_the_wait() {
    let server = server().await;
    let stage = generator(&server, 300, 6).await;
    let started = Instant::now();
    let records = run(&stage, 1).await;
    assert!(started.elapsed() >= Duration::from_millis(300), "it waited for the rest of its context");
    assert_own(1, &records);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let task = requests[0].body_json::<Value>().unwrap()["messages"][1]["content"].as_str().unwrap().to_string();
    assert!(!task.contains(&format!("\"{}\"", SECTIONS[0][0].0)), "no pair planned on another chunk's sentence");
}

#[tokio::test]
async fn with_gathering_off_every_chunk_has_its_own_call() {
    let server = server().await;
    let stage = generator(&server, 0, 6).await;
    let (a, b, c) = tokio::join!(run(&stage, 0), run(&stage, 1), run(&stage, 2));
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
    for (k, records) in [(0, &a), (1, &b), (2, &c)] {
        assert_own(k, records);
        let batch = drafts(records)[0].batch.clone().expect("a batch");
        assert!(drafts(records).iter().all(|d| d.batch.as_ref().is_some_and(|b| b.id == batch.id && b.size == 2)));
    }
}
