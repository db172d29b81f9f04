//! Per-document token accounting: what every LLM call cost, charged to the document it was made for,
//! failed and retried calls included.

use std::collections::BTreeMap;

use crate::role::LlmRole;
use crate::types::Usage;
use dashmap::DashMap;
use serde::Serialize;

/// Tokens spent for one document, by role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DocUsage {
    pub generator_prompt: u64,
    pub generator_completion: u64,
    pub judge_prompt: u64,
    pub judge_completion: u64,
    pub calls: u64,
}

/// Tokens per document, failed calls included.
#[derive(Debug, Default)]
pub struct Ledger {
    docs: DashMap<String, DocUsage>,
}

impl Ledger {
    pub fn add(&self, document: &str, role: LlmRole, usage: Usage, calls: u64) {
        let mut e = self.docs.entry(document.to_string()).or_default();
        match role {
            LlmRole::Judge => {
                e.judge_prompt += usage.prompt_tokens as u64;
                e.judge_completion += usage.completion_tokens as u64;
            }
            LlmRole::Generator | LlmRole::Schema => {
                e.generator_prompt += usage.prompt_tokens as u64;
                e.generator_completion += usage.completion_tokens as u64;
            }
        }
        e.calls += calls;
    }

    pub fn snapshot(&self) -> BTreeMap<String, DocUsage> {
        self.docs.iter().map(|e| (e.key().clone(), *e.value())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_adds_by_document_and_role() {
        let l = Ledger::default();
        l.add("d", LlmRole::Generator, Usage { prompt_tokens: 10, completion_tokens: 5 }, 1);
        l.add("d", LlmRole::Judge, Usage { prompt_tokens: 7, completion_tokens: 2 }, 2);
        let s = l.snapshot();
        assert_eq!(
            s["d"],
            DocUsage { generator_prompt: 10, generator_completion: 5, judge_prompt: 7, judge_completion: 2, calls: 3 }
        );
    }
}
