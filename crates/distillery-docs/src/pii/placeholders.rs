//! Typed placeholders, consistent within a document: the same value gets the same `[KIND_n]`.

use std::collections::{BTreeMap, HashMap};

use super::PiiKind;

/// Per-document placeholder numbering: the same value gets the same placeholder (a person's name in any case,
/// and their surname alone after their full name).
#[derive(Default)]
pub(super) struct Placeholders {
    seen: HashMap<(PiiKind, String), String>,
    next: HashMap<PiiKind, u32>,
    pub(super) counts: BTreeMap<PiiKind, u64>,
}

impl Placeholders {
    pub(super) fn placeholder(&mut self, kind: PiiKind, value: &str) -> String {
        *self.counts.entry(kind).or_default() += 1;
        let key = (kind, normalize(kind, value));
        if let Some(p) = self.seen.get(&key) {
            return p.clone();
        }
        let n = self.next.entry(kind).or_default();
        *n += 1;
        let p = format!("[{}_{}]", kind.label(), n);
        self.seen.insert(key, p.clone());
        // The surname of a person's full name, found alone later, is the same person.
        if let Some(surname) = (kind == PiiKind::Person).then(|| super::names::surname_of(value)).flatten() {
            self.seen.entry((kind, surname.join(" "))).or_insert_with(|| p.clone());
        }
        p
    }
}

fn normalize(kind: PiiKind, value: &str) -> String {
    match kind {
        PiiKind::Phone | PiiKind::CreditCard | PiiKind::Ssn => value.chars().filter(char::is_ascii_digit).collect(),
        PiiKind::Iban => value.chars().filter(|c| !c.is_whitespace()).collect(),
        PiiKind::Email | PiiKind::IpAddress | PiiKind::Person => value.to_lowercase(),
        _ => value.to_string(),
    }
}
