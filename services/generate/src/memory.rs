//! The last questions asked about each document (bounded per document and in documents held), with their
//! sentence embeddings when the stage compares questions by meaning.
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

/// A question asked, and its embedding when one was computed.
type Asked = (String, Option<Vec<f32>>);

/// Questions per document, and the documents in the order they were first seen (for eviction).
#[derive(Debug, Default)]
struct Remembered {
    docs: BTreeMap<String, VecDeque<Asked>>,
    order: VecDeque<String>,
}

impl QuestionMemory {
    pub fn new(per_document: usize, max_documents: usize) -> Self {
        QuestionMemory { per_document, max_documents: max_documents.max(1), inner: Mutex::new(Remembered::default()) }
    }

    /// The questions remembered for a document, oldest first.
    pub fn recall(&self, document: &str) -> Vec<String> {
        let g = self.inner.lock().expect("memory lock");
        g.docs.get(document).map(|q| q.iter().map(|(q, _)| q.clone()).collect()).unwrap_or_default()
    }

    /// The questions remembered for a document that have an embedding, oldest first.
    pub fn recall_embedded(&self, document: &str) -> Vec<(String, Vec<f32>)> {
        let g = self.inner.lock().expect("memory lock");
        g.docs
            .get(document)
            .map(|q| q.iter().filter_map(|(q, v)| v.clone().map(|v| (q.clone(), v))).collect())
            .unwrap_or_default()
    }

    /// Remembers questions asked about a document (each with its embedding, if computed).
    pub fn remember(&self, document: &str, questions: impl IntoIterator<Item = Asked>) {
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
        for (question, vector) in questions {
            if !q.iter().any(|(old, _)| *old == question) {
                q.push_back((question, vector));
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
        m.remember("d1", [("a".into(), None), ("b".into(), Some(vec![1.0])), ("c".into(), None)]);
        assert_eq!(m.recall("d1"), vec!["b", "c"]);
        assert_eq!(m.recall_embedded("d1"), vec![("b".to_string(), vec![1.0])]);
        m.remember("d2", [("x".into(), None)]);
        m.remember("d3", [("y".into(), None)]);
        assert!(m.recall("d1").is_empty(), "the oldest document is forgotten");
        assert_eq!(m.recall("d3"), vec!["y"]);
    }
}
