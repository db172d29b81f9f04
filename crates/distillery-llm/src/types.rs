//! Provider-neutral request and response types.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Chat role of a request message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    User,
    Assistant,
}

impl ChatRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatRole::System => "system",
            ChatRole::User => "user",
            ChatRole::Assistant => "assistant",
        }
    }
}

/// One message of a chat request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
}

impl ChatMessage {
    pub fn system(c: impl Into<String>) -> Self {
        ChatMessage { role: ChatRole::System, content: c.into() }
    }
    pub fn user(c: impl Into<String>) -> Self {
        ChatMessage { role: ChatRole::User, content: c.into() }
    }
    pub fn assistant(c: impl Into<String>) -> Self {
        ChatMessage { role: ChatRole::Assistant, content: c.into() }
    }
}

/// A JSON schema the output must follow.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSchema {
    /// A short identifier (`[a-zA-Z0-9_-]`), required by some providers.
    pub name: String,
    pub schema: serde_json::Value,
}

/// A chat request. Unset parameters take the client's configured defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub seed: Option<u64>,
    pub schema: Option<OutputSchema>,
}

impl ChatRequest {
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        ChatRequest { messages, ..Default::default() }
    }
    /// Rough size of the prompt in tokens (chars / 4), for the token rate limiter.
    pub fn estimated_prompt_tokens(&self) -> u32 {
        (self.messages.iter().map(|m| m.content.len()).sum::<usize>() / 4) as u32 + 8
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    /// The token limit cut the output.
    Length,
    /// The provider filtered the output or refused.
    Refusal,
    Other(String),
}

/// Token usage as the provider reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
    }
}

/// A provider-neutral chat response.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The answer text, with any `<think>` block moved to `reasoning`.
    pub content: String,
    /// The reasoning trace (`<think>`, `reasoning_content`, thinking blocks), if the model produced one.
    pub reasoning: Option<String>,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    /// The model that answered, as the provider names it.
    pub model: String,
    /// A refusal message the provider reported in its own field.
    pub refusal: Option<String>,
    pub latency: Duration,
    /// Prompt tokens the server took from its prefix cache instead of processing (llama.cpp's
    /// `timings.cache_n`, OpenAI's `usage.prompt_tokens_details.cached_tokens`), when it says.
    pub cached_prompt_tokens: Option<u32>,
}

/// Splits `<think>…</think>` out of a content string. An unclosed `<think>` means the whole remainder is
/// reasoning (the output was cut off while thinking).
pub fn split_think(content: &str) -> (String, Option<String>) {
    let trimmed = content.trim_start();
    let Some(rest) = trimmed.strip_prefix("<think>") else {
        // Some servers strip the opening tag and leave only `</think>`.
        if let Some(idx) = content.find("</think>") {
            let reasoning = content[..idx].trim().to_string();
            let answer = content[idx + "</think>".len()..].trim().to_string();
            return (answer, (!reasoning.is_empty()).then_some(reasoning));
        }
        return (content.to_string(), None);
    };
    match rest.find("</think>") {
        Some(end) => {
            let reasoning = rest[..end].trim().to_string();
            let answer = rest[end + "</think>".len()..].trim().to_string();
            (answer, (!reasoning.is_empty()).then_some(reasoning))
        }
        None => (String::new(), Some(rest.trim().to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn think_blocks_are_split_out() {
        assert_eq!(split_think("<think>a\nb</think>\n{\"x\":1}"), ("{\"x\":1}".into(), Some("a\nb".into())));
        assert_eq!(split_think("plain"), ("plain".into(), None));
        assert_eq!(split_think("  <think>cut off"), ("".into(), Some("cut off".into())));
        assert_eq!(
            split_think("reasoning only closed</think> answer"),
            ("answer".into(), Some("reasoning only closed".into()))
        );
        assert_eq!(split_think("<think></think>answer"), ("answer".into(), None));
    }
}
