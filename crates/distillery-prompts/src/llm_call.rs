//! The one path of a stage's LLM call: the request (the shared system prompt, then the context block, then
//! the task, so every call about a context shares the server's cached prefix), the call with its tokens
//! charged to the document whatever the outcome, the per-request seed, and the record of the call
//! ([`ModelCall`]) that travels with what it produced.

use std::sync::Arc;
use std::time::Duration;

use distillery_core::{Draft, DraftKind, ModelCall, Role, StageError, ids};
use distillery_llm::{ChatMessage, ChatRequest, Ledger, LlmClient, OutputSchema, Structured, Usage};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::templates::{Templates, context_block};

/// A per-request seed derived from an id: a replay asks the server the same question the same way.
pub fn seed_of(id: &str) -> u64 {
    u64::from_str_radix(&ids::hash_parts(&[id])[..15], 16).unwrap_or(0)
}

/// How a draft reads to a model (the critic, or the generator asked to improve it).
pub fn transcript(draft: &Draft) -> String {
    match draft.kind {
        DraftKind::Qa => format!("Question: {}\nAnswer: {}", draft.question(), draft.answer()),
        DraftKind::Conversation => draft
            .messages
            .iter()
            .filter(|m| m.role != Role::System)
            .map(|m| format!("{}: {}", if m.role == Role::User { "User" } else { "Assistant" }, m.content))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// A stage's access to its model: the client, the prompts in force, the ledger tokens are charged to, and
/// the sampling temperature the stage asks for (unset: the model's configured one).
#[derive(Debug, Clone)]
pub struct LlmCaller {
    pub llm: Arc<LlmClient>,
    pub templates: Templates,
    pub ledger: Option<Arc<Ledger>>,
    pub temperature: Option<f32>,
}

impl LlmCaller {
    /// A caller with the built-in templates at the model's temperature (a stage's `new` sets its own).
    pub fn new(llm: Arc<LlmClient>, ledger: Option<Arc<Ledger>>) -> LlmCaller {
        LlmCaller { llm, templates: Templates::builtin(), ledger, temperature: None }
    }

    /// The request: system prompt, then the context block and the task in one user message, seeded, with
    /// its output constrained by `schema`.
    pub fn request(&self, context: &str, task: String, seed: u64, schema_name: &str, schema: Value) -> ChatRequest {
        let mut req = ChatRequest::new(vec![
            ChatMessage::system(self.templates.system.clone()),
            ChatMessage::user(format!("{}{task}", context_block(context))),
        ]);
        req.seed = Some(seed);
        req.temperature = self.temperature;
        req.schema = Some(OutputSchema { name: schema_name.into(), schema });
        req
    }

    /// A follow-up in the same conversation: `prev`'s messages, the model's `reply` to them, then `task` as
    /// the next user message. Everything before the new task is a prefix the server has just processed,
    /// so its cache serves it.
    pub fn follow_up(
        &self,
        prev: &ChatRequest,
        reply: &str,
        task: String,
        seed: u64,
        schema_name: &str,
        schema: Value,
    ) -> ChatRequest {
        let mut messages = prev.messages.clone();
        messages.push(ChatMessage::assistant(reply.to_string()));
        messages.push(ChatMessage::user(task));
        let mut req = ChatRequest::new(messages);
        req.seed = Some(seed);
        req.temperature = self.temperature;
        req.schema = Some(OutputSchema { name: schema_name.into(), schema });
        req
    }

    /// Calls the model for a structured answer, charging the tokens to `document` whatever the outcome.
    pub async fn call<T, F>(&self, document: &str, req: ChatRequest, check: F) -> Result<Structured<T>, StageError>
    where
        T: DeserializeOwned,
        F: Fn(&T) -> Result<(), String>,
    {
        let mut usage = Usage::default();
        let out = self.llm.chat_json_metered(req, check, &mut usage).await;
        if let Some(l) = &self.ledger {
            l.add(document, self.llm.role(), usage, out.as_ref().map_or(1, |s| s.calls as u64));
        }
        out.map_err(StageError::from)
    }

    /// The record of a call: model, parameters, template and what it cost.
    pub fn model_call(
        &self,
        template: &str,
        template_hash: &str,
        seed: u64,
        usage: Usage,
        latency: Duration,
    ) -> ModelCall {
        let c = self.llm.config();
        ModelCall {
            provider: c.provider.as_str().to_string(),
            model: c.model.clone(),
            temperature: self.temperature.unwrap_or(c.temperature),
            max_tokens: c.max_tokens as i32,
            seed: Some(seed as i64),
            template: template.to_string(),
            template_hash: template_hash.to_string(),
            prompt_tokens: usage.prompt_tokens as i32,
            completion_tokens: usage.completion_tokens as i32,
            latency_ms: latency.as_millis().min(i32::MAX as u128) as i32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_stable_and_distinct() {
        assert_eq!(seed_of("a"), seed_of("a"));
        assert_ne!(seed_of("a"), seed_of("b"));
    }
}
