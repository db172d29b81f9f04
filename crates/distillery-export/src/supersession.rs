//! Which records are current after edits and deletions: the one rule every reader of the dataset applies
//! (exports, and the sink rebuilding a folder from the store).
//!
//! A record of a replaced or deleted document is superseded, unless a current document still lists its
//! chunk: chunk ids are content-based, so a section an edit left unchanged keeps its id, and its records
//! stay current, under the current document.

use std::collections::HashMap;

/// Where a record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place<'a> {
    /// Current; `document_id` is the current document it belongs to (a newer version's, when an edit left
    /// its chunk unchanged).
    Current { document_id: Option<&'a str> },
    /// Superseded by `by` (a newer document's id, or [`distillery_core::DELETED`]).
    Superseded { by: &'a str },
}

/// What replaced what, and which chunks the current documents list.
#[derive(Debug, Clone, Default)]
pub struct Supersession {
    /// Document id -> the newer document that replaced it (or the deleted mark).
    replaced: HashMap<String, String>,
    /// Chunk id -> the current document that lists it.
    current_chunks: HashMap<String, String>,
}

impl Supersession {
    /// From the replaced documents (`id -> what replaced it`) and every document's chunk ids; documents in
    /// `replaced` list no current chunk.
    pub fn new(replaced: HashMap<String, String>, documents: impl IntoIterator<Item = (String, Vec<String>)>) -> Self {
        let mut current_chunks = HashMap::new();
        for (doc, chunks) in documents {
            if !replaced.contains_key(&doc) {
                for c in chunks {
                    current_chunks.insert(c, doc.clone());
                }
            }
        }
        Supersession { replaced, current_chunks }
    }

    /// Where a record of `document_id` and `chunk_id` stands; `marked`: what its line already says replaced
    /// it (a folder's line written after the edit), if anything.
    pub fn place<'a>(
        &'a self,
        document_id: Option<&'a str>,
        chunk_id: Option<&str>,
        marked: Option<&'a str>,
    ) -> Place<'a> {
        let by = marked.or_else(|| document_id.and_then(|d| self.replaced.get(d)).map(String::as_str));
        match by {
            None => Place::Current { document_id },
            Some(by) => match chunk_id.and_then(|c| self.current_chunks.get(c)) {
                Some(current) => Place::Current { document_id: Some(current.as_str()) },
                None => Place::Superseded { by },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_chunk_of_a_replaced_document_stays_current_under_the_new_one() {
        let replaced = HashMap::from([("d1".to_string(), "d2".to_string()), ("f".to_string(), "deleted".into())]);
        let s = Supersession::new(
            replaced,
            [
                ("d1".to_string(), vec!["kept".to_string(), "edited-old".to_string()]),
                ("d2".to_string(), vec!["kept".to_string(), "edited-new".to_string()]),
                ("f".to_string(), vec!["faq".to_string()]),
            ],
        );
        assert_eq!(s.place(Some("d1"), Some("kept"), None), Place::Current { document_id: Some("d2") });
        assert_eq!(s.place(Some("d1"), Some("edited-old"), None), Place::Superseded { by: "d2" });
        assert_eq!(s.place(Some("d2"), Some("edited-new"), None), Place::Current { document_id: Some("d2") });
        assert_eq!(s.place(Some("f"), Some("faq"), None), Place::Superseded { by: "deleted" });
        // A line marked superseded in the folder follows the same rule.
        assert_eq!(s.place(Some("d1"), Some("kept"), Some("d2")), Place::Current { document_id: Some("d2") });
        assert_eq!(s.place(Some("x"), None, Some("y")), Place::Superseded { by: "y" });
        assert_eq!(s.place(None, None, None), Place::Current { document_id: None });
    }
}
