//! The last questions asked about each document (bounded per document and in documents held).
//!
//! It lives in the process that generates for a document: chunks are keyed by document, so on Kafka every
//! chunk of a document reaches the same generate consumer, and the one-process run has them all.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

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
}
