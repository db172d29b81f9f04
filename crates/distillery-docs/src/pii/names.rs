//! Person-name detection: word tokens, capitalisation, the first-name dictionary lookup (with diacritics
//! folded), possessives and adjacency of name words; and the same word rules applied to the NER model's
//! per-piece scores.

use std::collections::HashSet;
use std::sync::OnceLock;

use super::checks::patterns;
use super::ner::PieceScore;
use super::words::{
    COMMON_CAPITALISED, MONTHS_AND_DAYS, NOT_NAMES, NOT_SURNAMES, PARTICLES, SURNAME_FIRST, TITLE_WORDS,
};
use super::{PiiKind, Redactor};

/// Mean person probability over a word's pieces at which the model makes it a name word.
pub(super) const MODEL_THRESHOLD: f32 = 0.5;

impl Redactor {
    /// Person names: a title followed by a name, or a dictionary first name (or a common East Asian
    /// surname written first) followed by capitalised name words, with particles (van der, de, bin) between.
    pub(super) fn people(&self, text: &str, push: &mut impl FnMut(PiiKind, usize, usize)) {
        let toks = word_tokens(text);
        let firsts = first_names();
        let mut titled: HashSet<usize> = HashSet::new();
        for m in patterns().titled_name.find_iter(text) {
            if let Some(mut i) = toks.iter().position(|t| t.0 == m.end()) {
                // "Prof. Dr. Hartmann", "Dr. med. Brückner": the name follows the last title word.
                while i + 1 < toks.len() && TITLE_WORDS.contains(&&text[toks[i].0..toks[i].1]) {
                    i += 1;
                }
                titled.insert(i);
            }
        }
        let mut i = 0;
        while i < toks.len() {
            let w = name_word(&text[toks[i].0..toks[i].1]);
            let is_titled = titled.contains(&i);
            let starts_name = is_titled
                || (is_capitalised(w)
                    && !NOT_NAMES.contains(&w)
                    && (is_first_name(firsts, w) || SURNAME_FIRST.contains(&w)));
            let saint =
                i > 0 && matches!(&text[toks[i - 1].0..toks[i - 1].1], "St" | "Saint" | "San" | "Santa" | "Sankt");
            if !starts_name || !is_capitalised(w) || MONTHS_AND_DAYS.contains(&w) || (saint && !is_titled) {
                i += 1;
                continue;
            }
            // Extend over adjacent capitalised words and particles.
            let mut last = i;
            let mut j = i + 1;
            while j < toks.len() && j <= i + 6 && adjacent(text, toks[j - 1], toks[j]) {
                let v = name_word(&text[toks[j].0..toks[j].1]);
                if PARTICLES.contains(&v) {
                    j += 1;
                    continue;
                }
                if is_capitalised(v)
                    && !NOT_SURNAMES.contains(&v)
                    && !MONTHS_AND_DAYS.contains(&v)
                    && !COMMON_CAPITALISED.contains(&v)
                {
                    last = j;
                    j += 1;
                    if ends_possessive(&text[toks[last].0..toks[last].1]) {
                        break;
                    }
                    continue;
                }
                break;
            }
            if last > i || is_titled {
                let start = toks[i].0;
                let raw_end = toks[last].1;
                let end = raw_end - possessive_len(&text[toks[last].0..raw_end]);
                push(PiiKind::Person, start, end);
                i = last + 1;
            } else {
                i += 1;
            }
        }
    }
}

/// Person names from the NER model's scores: runs of two or more adjacent capitalised words the model reads
/// as part of a name (particles such as "van der" may stand between them), ending at a possessive. A lone
/// word is left to the rules, which take a single name only after a title; words that end names in the rules
/// (months, days, "Street", "The", titles) end them here too.
pub(super) fn model_people(text: &str, scores: &[PieceScore], push: &mut impl FnMut(PiiKind, usize, usize)) {
    let toks = word_tokens(text);
    let mut p = 0;
    let named: Vec<bool> = toks
        .iter()
        .map(|&(s, e)| {
            while p < scores.len() && scores[p].end <= s {
                p += 1;
            }
            let inside: Vec<f32> =
                scores[p..].iter().take_while(|x| x.start < e).filter(|x| x.end > s).map(|x| x.person).collect();
            let mean = if inside.is_empty() { 0.0 } else { inside.iter().sum::<f32>() / inside.len() as f32 };
            let w = name_word(&text[s..e]);
            mean >= MODEL_THRESHOLD
                && is_capitalised(w)
                && !MONTHS_AND_DAYS.contains(&w)
                && !COMMON_CAPITALISED.contains(&w)
                && !NOT_SURNAMES.contains(&w)
                && !TITLE_WORDS.contains(&w)
        })
        .collect();
    let mut i = 0;
    while i < toks.len() {
        if !named[i] {
            i += 1;
            continue;
        }
        let (mut last, mut words, mut j) = (i, 1, i + 1);
        if !ends_possessive(&text[toks[i].0..toks[i].1]) {
            while j < toks.len() && adjacent(text, toks[j - 1], toks[j]) {
                if PARTICLES.contains(&&text[toks[j].0..toks[j].1]) {
                    j += 1;
                    continue;
                }
                if !named[j] {
                    break;
                }
                last = j;
                words += 1;
                j += 1;
                if ends_possessive(&text[toks[last].0..toks[last].1]) {
                    break;
                }
            }
        }
        if words >= 2 {
            let end = toks[last].1 - possessive_len(&text[toks[last].0..toks[last].1]);
            push(PiiKind::Person, toks[i].0, end);
        }
        i = last + 1;
    }
}

/// Byte ranges of two or more adjacent capitalised words (particles may stand between): the only places
/// [`model_people`] can find a name, so the model need not read the rest.
pub(super) fn name_candidates(text: &str) -> Vec<(usize, usize)> {
    let toks = word_tokens(text);
    let cap: Vec<bool> = toks.iter().map(|&(s, e)| is_capitalised(name_word(&text[s..e]))).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if !cap[i] {
            i += 1;
            continue;
        }
        let (mut last, mut j) = (i, i + 1);
        while j < toks.len() && adjacent(text, toks[j - 1], toks[j]) {
            if cap[j] {
                last = j;
            } else if !PARTICLES.contains(&&text[toks[j].0..toks[j].1]) {
                break;
            }
            j += 1;
        }
        if last > i {
            out.push((toks[i].0, toks[last].1));
        }
        i = last + 1;
    }
    out
}

fn first_names() -> &'static HashSet<String> {
    static N: OnceLock<HashSet<String>> = OnceLock::new();
    N.get_or_init(|| {
        let mut s: HashSet<String> = crate::names::first_names().map(fold).collect();
        // Words that are first names but far more often something else at the start of a capitalised pair.
        for w in NOT_NAMES {
            s.remove(*w);
        }
        s
    })
}

/// Byte spans of words (letters, with inner apostrophes and hyphens).
fn word_tokens(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let inner = (c == '\'' || c == '’' || c == '-')
            && start.is_some()
            && chars.peek().is_some_and(|(_, n)| n.is_alphabetic());
        if c.is_alphabetic() || inner {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            out.push((s, i));
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// A word without a possessive ending.
fn name_word(w: &str) -> &str {
    &w[..w.len() - possessive_len(w)]
}

fn possessive_len(w: &str) -> usize {
    if w.ends_with("'s") {
        2
    } else if w.ends_with("’s") {
        "’s".len()
    } else {
        0
    }
}

fn ends_possessive(w: &str) -> bool {
    possessive_len(w) > 0
}

/// Capitalised like a name: an uppercase letter, then at least one lowercase one.
fn is_capitalised(w: &str) -> bool {
    let mut cs = w.chars();
    cs.next().is_some_and(char::is_uppercase) && w.chars().any(char::is_lowercase)
}

/// Only spaces or tabs between two words.
fn adjacent(text: &str, a: (usize, usize), b: (usize, usize)) -> bool {
    let gap = &text[a.1..b.0];
    !gap.is_empty() && gap.len() <= 2 && gap.chars().all(|c| c == ' ' || c == '\t')
}

fn is_first_name(firsts: &HashSet<String>, w: &str) -> bool {
    let folded = fold(w);
    firsts.contains(&folded) || (folded.contains('-') && folded.split('-').next().is_some_and(|p| firsts.contains(p)))
}

/// Strips diacritics (Siobhán → Siobhan, Zoë → Zoe, Åsmund → Asmund) for dictionary lookups.
fn fold(w: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    w.nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .map(|c| match c {
            'ø' => 'o',
            'Ø' => 'O',
            'æ' => 'a',
            'Æ' => 'A',
            'ð' => 'd',
            'þ' => 't',
            'ł' => 'l',
            'Ł' => 'L',
            'ı' => 'i',
            c => c,
        })
        .collect()
}
