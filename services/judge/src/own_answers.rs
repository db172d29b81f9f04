//! The judge's own short answers, kept by judge model, answer prompt, context and question, so that a draft
//! judged again with the same question (a regeneration or repair rewrites the answer, never the question) is
//! compared with the answer the judge gave the first time instead of paying another call for it. It also
//! keeps the comparison stable: the regenerated answer meets the very answer that failed the first one.
//!
//! Memory is bounded: at [`OwnAnswers::CAPACITY`] entries the map starts again empty (a miss costs one call,
//! never a wrong verdict). Each process keeps its own: a regeneration judged by another replica asks again.

use dashmap::DashMap;
use distillery_core::ids;

/// The kept answers, by [`OwnAnswers::key`].
#[derive(Debug, Default)]
pub struct OwnAnswers {
    answers: DashMap<String, String>,
}

impl OwnAnswers {
    /// Entries kept before the map starts again.
    pub const CAPACITY: usize = 100_000;

    /// The key of one question: the judge model, the answer prompt's hash, the context's text (not its id:
    /// drafts from elsewhere, `distillery judge` lines, carry ids of their own making) and the question.
    pub fn key(model: &str, prompt_hash: &str, context: &str, question: &str) -> String {
        ids::hash_parts(&["own-answer", model, prompt_hash, context, question.trim()])
    }

    /// The answers to every key, in order, when all are kept.
    pub fn get_all(&self, keys: &[String]) -> Option<Vec<String>> {
        keys.iter().map(|k| self.answers.get(k).map(|a| a.value().clone())).collect()
    }

    /// Keeps `answers[i]` under `keys[i]`.
    pub fn insert_all(&self, keys: &[String], answers: &[String]) {
        if self.answers.len() + keys.len() > Self::CAPACITY {
            self.answers.clear();
        }
        for (k, a) in keys.iter().zip(answers) {
            self.answers.insert(k.clone(), a.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_found_only_when_every_question_is_kept() {
        let kept = OwnAnswers::default();
        let (a, b) = (OwnAnswers::key("m", "p", "ctx", "How long?"), OwnAnswers::key("m", "p", "ctx", "Who?"));
        assert_eq!(kept.get_all(std::slice::from_ref(&a)), None);
        kept.insert_all(std::slice::from_ref(&a), &["Two days".to_string()]);
        assert_eq!(kept.get_all(std::slice::from_ref(&a)), Some(vec!["Two days".to_string()]));
        assert_eq!(kept.get_all(&[a.clone(), b]), None, "one question not kept: ask for all");
        // Another model, prompt or context is another key; surrounding spaces are not.
        assert_ne!(a, OwnAnswers::key("m2", "p", "ctx", "How long?"));
        assert_ne!(a, OwnAnswers::key("m", "p2", "ctx", "How long?"));
        assert_ne!(a, OwnAnswers::key("m", "p", "ctx2", "How long?"));
        assert_eq!(a, OwnAnswers::key("m", "p", "ctx", " How long? "));
    }
}
