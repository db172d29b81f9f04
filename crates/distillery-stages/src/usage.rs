//! Per-document token accounting and the per-document memory of questions already asked.
//!
//! Both live in the process that generates for a document: chunks are keyed by document, so on Kafka every
//! chunk of a document reaches the same generate consumer, and the one-process run has them all.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use dashmap::DashMap;
use distillery_llm::Usage;
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
    pub fn add(&self, document: &str, role: &str, usage: Usage, calls: u64) {
        let mut e = self.docs.entry(document.to_string()).or_default();
        match role {
            "judge" => {
                e.judge_prompt += usage.prompt_tokens as u64;
                e.judge_completion += usage.completion_tokens as u64;
            }
            _ => {
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

/// The last questions asked about each document (bounded per document and in documents held).
#[derive(Debug)]
pub struct QuestionMemory {
    per_document: usize,
    max_documents: usize,
    inner: Mutex<Remembered>,
}

/// Questions per document, and the documents in the order they were first seen (for eviction).
#[derive(Debug, Default)]
struct Remembered {
    docs: BTreeMap<String, VecDeque<String>>,
    order: VecDeque<String>,
}

impl QuestionMemory {
    pub fn new(per_document: usize, max_documents: usize) -> Self {
        QuestionMemory { per_document, max_documents: max_documents.max(1), inner: Mutex::new(Remembered::default()) }
    }

    /// The questions remembered for a document, oldest first.
    pub fn recall(&self, document: &str) -> Vec<String> {
        let g = self.inner.lock().expect("memory lock");
        g.docs.get(document).map(|q| q.iter().cloned().collect()).unwrap_or_default()
    }

    pub fn remember(&self, document: &str, questions: impl IntoIterator<Item = String>) {
        if self.per_document == 0 {
            return;
        }
        let mut g = self.inner.lock().expect("memory lock");
        let Remembered { docs, order } = &mut *g;
        if !docs.contains_key(document) {
            order.push_back(document.to_string());
            if order.len() > self.max_documents
                && let Some(old) = order.pop_front()
            {
                docs.remove(&old);
            }
        }
        let q = docs.entry(document.to_string()).or_default();
        for question in questions {
            if !q.contains(&question) {
                q.push_back(question);
            }
            while q.len() > self.per_document {
                q.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_bounded_per_document_and_in_documents() {
        let m = QuestionMemory::new(2, 2);
        m.remember("d1", ["a".into(), "b".into(), "c".into()]);
        assert_eq!(m.recall("d1"), vec!["b", "c"]);
        m.remember("d2", ["x".into()]);
        m.remember("d3", ["y".into()]);
        assert!(m.recall("d1").is_empty(), "the oldest document is forgotten");
        assert_eq!(m.recall("d3"), vec!["y"]);
    }

    #[test]
    fn ledger_adds_by_document_and_role() {
        let l = Ledger::default();
        l.add("d", "generator", Usage { prompt_tokens: 10, completion_tokens: 5 }, 1);
        l.add("d", "judge", Usage { prompt_tokens: 7, completion_tokens: 2 }, 2);
        let s = l.snapshot();
        assert_eq!(
            s["d"],
            DocUsage { generator_prompt: 10, generator_completion: 5, judge_prompt: 7, judge_completion: 2, calls: 3 }
        );
    }
}
