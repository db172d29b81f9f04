//! Words and stems: how the checks and the evidence tracing of generated text split it into comparable
//! words. Two word sets with different purposes live side by side here: content words (no function words,
//! four letters or more) for what an answer or question is about, and significant words (three letters or
//! more) for matching an answer to the context sentence that supports it.

use std::collections::HashSet;

use unicode_segmentation::UnicodeSegmentation;

pub const STOPWORDS: &[&str] = &[
    "about", "above", "after", "again", "also", "because", "been", "before", "being", "below", "between", "both",
    "could", "does", "doing", "down", "during", "each", "from", "further", "have", "having", "here", "into", "itself",
    "just", "more", "most", "must", "only", "other", "over", "same", "should", "some", "such", "than", "that", "their",
    "them", "then", "there", "these", "they", "this", "those", "through", "under", "until", "very", "were", "what",
    "when", "where", "which", "while", "will", "with", "would", "your", "yes", "within", "without", "using", "used",
];

/// Lowercased alphanumeric words.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// Words of four letters or more that are not function words: what a sentence is about.
pub fn content_words(text: &str) -> Vec<String> {
    words(text).into_iter().filter(|w| w.chars().count() >= 4 && !STOPWORDS.contains(&w.as_str())).collect()
}

/// Crude stem so that "carried"/"carry", "employees"/"employee" or "reimburses"/"reimburse" match: one
/// inflection off, then final "e"s, else a final "y" (while four letters remain).
pub fn stem(w: &str) -> &str {
    let mut s = w;
    for suffix in ["ing", "ied", "ies", "ed", "es", "s"] {
        if let Some(rest) = w.strip_suffix(suffix)
            && rest.chars().count() >= 4
        {
            s = rest;
            break;
        }
    }
    let rest = match s.trim_end_matches('e') {
        t if t.len() < s.len() => t,
        _ => s.strip_suffix('y').unwrap_or(s),
    };
    if rest.chars().count() >= 4 { rest } else { s }
}

/// The stems of a text's content words.
pub fn stems(text: &str) -> HashSet<String> {
    content_words(text).iter().map(|w| stem(w).to_string()).collect()
}

/// Words of three letters or more, function words included: what sentence matching compares.
pub fn significant_words(s: &str) -> HashSet<String> {
    s.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() > 2).map(str::to_lowercase).collect()
}

/// The commonest English function words: a text where they are frequent is written in English.
const ENGLISH_MARKERS: &[&str] =
    &["the", "and", "of", "to", "in", "is", "are", "for", "on", "with", "as", "by", "be", "or", "it", "that", "this"];

/// Whether a text reads as English: at least one word in eight is one of its commonest function words
/// (English prose runs at about one in three; German, French or Spanish prose, whose articles differ, at a
/// few percent). Too short a text (under 8 words) is not judged English.
pub fn looks_english(text: &str) -> bool {
    let words = words(text);
    if words.len() < 8 {
        return false;
    }
    let markers = words.iter().filter(|w| ENGLISH_MARKERS.contains(&w.as_str())).count();
    markers * 8 >= words.len()
}

/// Most sentences a QA prompt numbers; a longer chunk's later sentences are left to its neighbours'
/// contexts.
pub const MAX_FOCUS_SENTENCES: usize = 40;

/// The sentences of a chunk's text, in order: lines first (list items and table rows end without a full
/// stop), then Unicode sentence boundaries; pieces without a letter or a digit are dropped.
pub fn sentences(text: &str) -> Vec<String> {
    every_sentence(text).take(MAX_FOCUS_SENTENCES).collect()
}

/// Every sentence of a text, in order, split as [`sentences`] splits them.
pub fn every_sentence(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines()
        .flat_map(|line| line.unicode_sentences())
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| s.chars().any(char::is_alphanumeric))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_follow_lines_and_full_stops() {
        let text = "## Leave\nEmployees get 25 days. Part-time staff get a share.\n- Carry-over: 5 days\n\n---";
        assert_eq!(
            sentences(text),
            vec!["## Leave", "Employees get 25 days.", "Part-time staff get a share.", "- Carry-over: 5 days"]
        );
        assert!(sentences("  \n--\n").is_empty());
    }

    #[test]
    fn stems_match_inflections() {
        assert_eq!(stem("reading"), "read");
        assert_eq!(stem("carried"), "carr");
        assert_eq!(stem("days"), "days", "a stem keeps four letters");
        assert_eq!(stem("employees"), stem("employee"));
        assert_eq!(stem("reimburses"), stem("reimburse"));
        assert_eq!(stem("carried"), stem("carry"));
        assert!(stems("Employees carried leave").contains("employ"));
        assert_eq!(content_words("the days that were used"), vec!["days"]);
    }

    #[test]
    fn english_prose_is_told_from_other_languages() {
        assert!(looks_english("The meter runs on an internal lithium battery pack rated for 15 years at one second."));
        assert!(looks_english("Employees with at least six months of service receive full pay for the first weeks."));
        assert!(!looks_english("Der Zähler läuft mit einem internen Lithium-Akku, der für 15 Jahre ausgelegt ist."));
        assert!(!looks_english("Le compteur fonctionne avec une batterie au lithium interne prévue pour quinze ans."));
        assert!(!looks_english("El medidor funciona con una batería de litio interna prevista para quince años."));
        assert!(!looks_english("Too short to say."));
    }
}
