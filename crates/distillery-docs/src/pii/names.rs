//! Person-name detection: word tokens, capitalisation, the first-name dictionary lookup (with diacritics
//! folded), possessives and adjacency of name words; and the same word rules applied to the NER model's
//! per-piece scores.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use super::checks::patterns;
use super::ner::PieceScore;
use super::words::{
    COMMON_CAPITALISED, MONTHS_AND_DAYS, NAMED_LIKE_PEOPLE, NOT_NAMES, NOT_SURNAMES, ORGANISATION_HEADS, PARTICLES,
    PERSON_ACTS, PERSON_COLUMNS, SURNAME_FIRST, TITLE_WORDS, WORD_SURNAMES,
};
use super::{PiiKind, Redactor};

/// Decoding of the NER model's per-piece scores, chosen on the development set (tests/data/pii_cases.jsonl;
/// never on the held-out sets). A word scores the highest person probability of its pieces.
/// A run of capitalised words holds a name where one word scores at least this.
pub(super) const WORD_STRONG: f32 = 0.8;
/// Words next to a strong one join its name down to this score (the model often gives a given name or a
/// surname beside a clear one a low score: "Georgia Papageorgiou", "Lars Nilsen").
pub(super) const WORD_WEAK: f32 = 0.1;
/// A name of two or more words from the rules stands only where its capitalised words score this on average
/// (the dictionary's "Ben Nevis", "Milton Keynes", "Bell Palsy" do not).
pub(super) const RULE_VETO: f32 = 0.5;
/// In a list (items between commas, semicolons, "and", table cells, lines) with a name the model found, the
/// other items of two or more capitalised words are names too where their words score this on average.
pub(super) const LIST_FLOOR: f32 = 0.01;

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

/// The words of a text with the model's score for each (the highest person probability of its pieces).
fn word_scores(text: &str, toks: &[(usize, usize)], scores: &[PieceScore]) -> Vec<f32> {
    let mut p = 0;
    toks.iter()
        .map(|&(s, e)| {
            while p < scores.len() && scores[p].end <= s {
                p += 1;
            }
            let _ = text;
            scores[p..].iter().take_while(|x| x.start < e).filter(|x| x.end > s).map(|x| x.person).fold(0.0, f32::max)
        })
        .collect()
}

/// Whether a word can be part of a name: capitalised ("Okafor", "O'Brien"), or a lower-case prefix on a
/// capitalised name ("al-Huda", "d'Aubigny").
fn is_name_word(w: &str) -> bool {
    let w = name_word(w);
    is_capitalised(w)
        || NAME_PREFIXES.iter().any(|p| {
            w.len() > p.len()
                && w.is_char_boundary(p.len())
                && w[..p.len()].eq_ignore_ascii_case(p)
                && is_capitalised(&w[p.len()..])
        })
}

/// Lower-case prefixes written onto a surname.
const NAME_PREFIXES: &[&str] =
    &["al-", "el-", "ad-", "as-", "ash-", "ar-", "an-", "ul-", "abu-", "bin-", "d'", "d’", "l'"];

/// Words that end a name in every detector: months and days, "Street", "Ltd", "The", titles.
fn ends_names(w: &str) -> bool {
    let w = name_word(w);
    MONTHS_AND_DAYS.contains(&w)
        || COMMON_CAPITALISED.contains(&w)
        || NOT_SURNAMES.contains(&w)
        || TITLE_WORDS.contains(&w)
}

/// Runs of adjacent name words with particles between them ("Jan van der Berg", "Seán Ó Ceallaigh"): token
/// indices, particles included, first and last a name word. A run ends at a possessive or a word that ends
/// names.
fn name_runs(text: &str, toks: &[(usize, usize)]) -> Vec<Vec<usize>> {
    let word = |i: usize| &text[toks[i].0..toks[i].1];
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if !is_name_word(word(i)) || ends_names(word(i)) {
            i += 1;
            continue;
        }
        let (mut run, mut last, mut j) = (vec![i], i, i + 1);
        if !ends_possessive(word(i)) {
            while j < toks.len() && adjacent(text, toks[j - 1], toks[j]) {
                let v = word(j);
                if PARTICLES.contains(&v) && j + 1 < toks.len() {
                    run.push(j);
                    j += 1;
                    continue;
                }
                if is_name_word(v) && !ends_names(v) {
                    run.push(j);
                    last = j;
                    j += 1;
                    if ends_possessive(v) {
                        break;
                    }
                    continue;
                }
                break;
            }
        }
        run.retain(|&k| k <= last);
        out.push(run);
        i = last + 1;
    }
    out
}

/// Lone capitalised words that act as a person does: one of [`PERSON_ACTS`] follows ("Okonkwo approved"), or
/// "and"/"or" and another such word does ("Nakamura and Ochieng both voted": "both", "also", "then" may come
/// before the verb). Not part of a longer run of capitalised words or after a particle ("de Vries"), and not a
/// word that ends names.
fn acting_words(text: &str, toks: &[(usize, usize)]) -> Vec<usize> {
    let word = |i: usize| &text[toks[i].0..toks[i].1];
    let spaced = |a: usize, b: usize| b < toks.len() && one_space(text, toks[a], toks[b]);
    let lone = |i: usize| {
        let w = word(i);
        is_capitalised(w)
            && !ends_names(w)
            && !NOT_NAMES.contains(&w)
            && !(i > 0
                && adjacent(text, toks[i - 1], toks[i])
                && (is_name_word(word(i - 1)) || PARTICLES.contains(&word(i - 1))))
            && !(i + 1 < toks.len() && adjacent(text, toks[i], toks[i + 1]) && is_name_word(word(i + 1)))
    };
    let acts = |i: usize| {
        let mut j = i + 1;
        if spaced(i, j) && ["both", "also", "then"].contains(&word(j)) {
            j += 1;
        }
        spaced(j - 1, j) && PERSON_ACTS.contains(&word(j))
    };
    let mut out = Vec::new();
    for i in 0..toks.len() {
        if !lone(i) {
            continue;
        }
        let joined = spaced(i, i + 1) && ["and", "or"].contains(&word(i + 1)) && spaced(i + 1, i + 2) && lone(i + 2);
        if acts(i) || (joined && acts(i + 2)) {
            out.push(i);
        }
    }
    out
}

/// The byte range of a run of words, without a final possessive.
fn span_of(text: &str, toks: &[(usize, usize)], first: usize, last: usize) -> (usize, usize) {
    let (s, e) = (toks[first].0, toks[last].1);
    (s, e - possessive_len(&text[toks[last].0..e]))
}

/// Initials just before a word ("J. Okafor", "J. R. Okoro", "M.K. Das", "H.-P. Weber", "Ö. Karagöz"): where
/// the name then starts. The last initial is followed by a space; each is an upper-case letter and a full
/// stop that starts a word (the text's start, or a space, punctuation or a hyphen between initials before it).
fn initial_before(text: &str, start: usize) -> Option<usize> {
    let mut head = text[..start].strip_suffix(' ')?;
    let mut found = None;
    while let Some(h) = head.strip_suffix('.') {
        let Some((i, c)) = h.char_indices().next_back() else { break };
        if !c.is_uppercase() || h[..i].chars().next_back().is_some_and(char::is_alphanumeric) {
            break;
        }
        found = Some(i);
        // The initial before: right before ("M.K."), after a space ("J. R.") or a hyphen ("H.-P.").
        head = &h[..i];
        head = head.strip_suffix(' ').or_else(|| head.strip_suffix('-')).unwrap_or(head);
    }
    found
}

/// Words that join list items.
const LIST_WORDS: &[&str] = &["and", "und", "et", "y", "e", "og", "och", "en", "i", "or", "&"];

/// Whether a span is a whole list item: a delimiter (or a joining word, or the text's edge) on each side.
fn whole_item(text: &str, start: usize, end: usize) -> bool {
    let delim = |c: char| ",;|:\n\t()[]/".contains(c);
    let head = text[..start].trim_end_matches(' ');
    let before = head.is_empty()
        || head.ends_with(delim)
        || head.rsplit_once([' ', '\t']).is_some_and(|(_, w)| LIST_WORDS.contains(&w))
        || LIST_WORDS.contains(&head);
    let tail = text[end..].trim_start_matches(' ');
    let after = tail.is_empty()
        || tail.starts_with(delim)
        || tail == "."
        || tail.starts_with(". ")
        || tail.starts_with(".\n")
        || tail.split([' ', '\t']).next().is_some_and(|w| LIST_WORDS.contains(&w));
    before && after
}

/// Whether a span is the last item of a list that the sentence goes on after: a joining word before it
/// ("..., Joana Sá Couto and Inês Queiroz de Sousa joined") and a lower-case word after it.
fn closes_list(text: &str, start: usize, end: usize) -> bool {
    let head = text[..start].trim_end_matches(' ');
    let joined = head.rsplit_once([' ', '\t']).is_some_and(|(_, w)| LIST_WORDS.contains(&w));
    let tail = text[end..].strip_prefix(' ').unwrap_or("");
    joined && tail.chars().next().is_some_and(char::is_lowercase)
}

/// A whole list item, or the last item of a list the sentence goes on after.
fn list_item(text: &str, start: usize, end: usize) -> bool {
    whole_item(text, start, end) || closes_list(text, start, end)
}

/// Person names from the NER model's scores, in runs of name words: the words around one the model is sure
/// of ([`WORD_STRONG`]) that it gives any weight ([`WORD_WEAK`]); two or more words, or one after an initial.
/// In a list where the model found a name, the other items that are runs of name words are names as well.
/// A lone word is left to the rules, which take a single name only after a title.
pub(super) fn model_people(text: &str, scores: &[PieceScore], push: &mut impl FnMut(PiiKind, usize, usize)) {
    let toks = word_tokens(text);
    let score = word_scores(text, &toks, scores);
    let mut found: Vec<(usize, usize)> = Vec::new();
    // Runs of two or more name words that are whole list items, with their mean score.
    let mut items: Vec<(usize, usize, f32)> = Vec::new();
    for run in name_runs(text, &toks) {
        let words: Vec<usize> =
            run.iter().copied().filter(|&k| !PARTICLES.contains(&&text[toks[k].0..toks[k].1])).collect();
        if let Some(pos) = words.iter().position(|&k| score[k] >= WORD_STRONG) {
            let (mut a, mut b) = (pos, pos);
            while a > 0 && score[words[a - 1]] >= WORD_WEAK {
                a -= 1;
            }
            while b + 1 < words.len() && score[words[b + 1]] >= WORD_WEAK {
                b += 1;
            }
            let (s, e) = span_of(text, &toks, words[a], words[b]);
            match (b > a, initial_before(text, s)) {
                (_, Some(i)) => found.push((i, e)),
                (true, None) => found.push((s, e)),
                (false, None) => {}
            }
        }
        // A run of particles alone ("Dear Nic,") holds no name.
        let (Some(&head), Some(&tail)) = (words.first(), words.last()) else { continue };
        let (s, e) = span_of(text, &toks, head, tail);
        let initial = initial_before(text, s);
        // An item with an initial ("T. Nakamura") starts at the initial, where the model gives its word some
        // weight (not "A. Finance, B. Legal").
        if words.len() >= 2 || initial.is_some_and(|_| score[head] >= WORD_WEAK) {
            let s = initial.unwrap_or(s);
            if list_item(text, s, e) {
                let mean = words.iter().map(|&k| score[k]).sum::<f32>() / words.len() as f32;
                items.push((s, e, mean));
            }
        }
    }
    // A lone word acting as a person does, where the model is sure of it ("Okonkwo approved the budget").
    for i in acting_words(text, &toks) {
        let (s, e) = span_of(text, &toks, i, i);
        if score[i] >= WORD_STRONG && !found.iter().any(|&(a, b)| a < e && s < b) {
            found.push((s, e));
        }
    }
    if items.len() >= 2 && found.iter().any(|&(s, e)| list_item(text, s, e)) {
        for &(s, e, mean) in &items {
            if mean >= LIST_FLOOR && !found.iter().any(|&(a, b)| a < e && s < b) {
                found.push((s, e));
            }
        }
    }
    for (s, e) in found {
        push(PiiKind::Person, s, e);
    }
}

/// The text as the name detectors read it: a run of two or more words in capitals ("MARGARETHA VAN ZYL",
/// "LIM WEI JIE" in a signature or a header, one space apart) written as a name is ("Margaretha Van Zyl"), for the model and
/// the rules know names by their case. Each letter keeps its byte length, so offsets hold in both; a word
/// with a letter whose lower case differs in length stays as it is. A lone word in capitals
/// ("CONFIDENTIAL") stays too, as do scripts without case.
pub(super) fn names_view(text: &str) -> Cow<'_, str> {
    let toks = word_tokens(text);
    let caps: Vec<bool> = toks
        .iter()
        .map(|&(s, e)| {
            let w = &text[s..e];
            w.chars().filter(|c| c.is_alphabetic()).count() >= 2
                && w.chars().any(char::is_uppercase)
                && !w.chars().any(char::is_lowercase)
        })
        .collect();
    // Words of a name are one space apart ("NAME: KIM SOO-YEON  TITLE" holds one name).
    let joined = |a: usize, b: usize| caps[a] && caps[b] && one_space(text, toks[a], toks[b]);
    let in_run: Vec<bool> =
        (0..toks.len()).map(|i| (i > 0 && joined(i - 1, i)) || (i + 1 < toks.len() && joined(i, i + 1))).collect();
    if !in_run.contains(&true) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for (&(s, e), _) in toks.iter().zip(&in_run).filter(|(_, r)| **r) {
        let raw = &text[s..e];
        let possessive = raw.ends_with("'S") || raw.ends_with("’S");
        let mut word = String::with_capacity(e - s);
        let mut after_letter = false;
        let mut same_length = true;
        for (i, c) in raw.char_indices() {
            // Upper-case after a hyphen or an apostrophe as at the start ("Mensah-Bonsu", "O'Halloran"), but
            // not a possessive's "S" ("OKAFOR'S").
            if (after_letter || (possessive && i + 1 == raw.len())) && c.is_alphabetic() {
                let mut lower = c.to_lowercase();
                match (lower.next(), lower.next()) {
                    (Some(l), None) if l.len_utf8() == c.len_utf8() => word.push(l),
                    _ => {
                        same_length = false;
                        break;
                    }
                }
            } else {
                word.push(c);
            }
            after_letter = c.is_alphabetic();
        }
        if same_length {
            out.replace_range(s..e, &word);
        }
    }
    Cow::Owned(out)
}

/// The surname by which a person found in a text can be named alone elsewhere in the same document: from
/// the first particle to the end ("van der Berg" of "Jan van der Berg"), else the last word ("Okafor" of
/// "Dr. Amara Okafor", "Oyelaran-Fitzgerald"); the first word of a name written family name first ("Wang" of
/// "Wang Xiuying"); a generation ("Jr") is passed over. None for a single word (an initial before it
/// aside: "J. Okafor" gives "Okafor"), for a two-letter family name ("He", "Li"), where the surname is a word
/// that ends names (a month, "Street", a title), and where it is an everyday word ("Price", "Banks", "Sun":
/// [`WORD_SURNAMES`]).
pub(super) fn surname_of(name: &str) -> Option<Vec<String>> {
    let toks = word_tokens(name);
    let words: Vec<&str> = toks.iter().map(|&(s, e)| name_word(&name[s..e])).collect();
    let named: Vec<usize> = (0..words.len())
        .filter(|&i| !PARTICLES.contains(&words[i]) && !GENERATIONS.iter().any(|g| g.eq_ignore_ascii_case(words[i])))
        .collect();
    let last = *named.last()?;
    if named.len() < 2 || words[last].chars().count() < 2 {
        return None;
    }
    let everyday = |w: &str| WORD_SURNAMES.iter().any(|x| x.eq_ignore_ascii_case(w));
    // Family name first ("Wang Xiaoming"): the first word, where it is not a two-letter one ("He", "Li",
    // "Do" start too many sentences).
    let first = words[named[0]];
    if SURNAME_FIRST.iter().any(|x| x.eq_ignore_ascii_case(first)) {
        return (first.chars().count() > 2 && !everyday(first)).then(|| vec![first.to_lowercase()]);
    }
    let from = (named[named.len() - 2] + 1..last).find(|&i| PARTICLES.contains(&words[i])).unwrap_or(last);
    let surname: Vec<String> = words[from..=last].iter().map(|w| w.to_lowercase()).collect();
    let common = from == last && everyday(words[last]);
    (!ends_names(words[last]) && !common).then_some(surname)
}

/// Mentions of the surnames from [`surname_of`] in a text (keyed by their first word): the same words (case
/// aside), the first starting upper-case or a particle, as whole words, the longest surname where several
/// start at a word ("Van der Berg" before "Berg"); the span leaves out a possessive. One pass over the text.
pub(super) fn surname_mentions(text: &str, surnames: &HashMap<String, Vec<Vec<String>>>) -> Vec<(usize, usize)> {
    let toks = word_tokens(text);
    let lower: Vec<String> = toks.iter().map(|&(s, e)| name_word(&text[s..e]).to_lowercase()).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let first = &text[toks[i].0..toks[i].1];
        let starts = first.chars().next().is_some_and(char::is_uppercase) || PARTICLES.contains(&first);
        let matched = surnames.get(&lower[i]).filter(|_| starts).and_then(|candidates| {
            candidates
                .iter()
                .filter(|sn| {
                    i + sn.len() <= toks.len()
                        && (1..sn.len()).all(|k| {
                            adjacent(text, toks[i + k - 1], toks[i + k])
                                && !ends_possessive(&text[toks[i + k - 1].0..toks[i + k - 1].1])
                                && lower[i + k] == sn[k]
                        })
                })
                .map(Vec::len)
                .max()
        });
        match matched {
            Some(n) => {
                out.push(span_of(text, &toks, i, i + n - 1));
                i += n;
            }
            None => i += 1,
        }
    }
    out
}

/// The words of a text written in lower case, in running text: a surname that is one of them in a document
/// ("price" beside a "Price" found as a surname) is an everyday word there. A word inside an e-mail address,
/// a URL, a file name or a handle ("amara.okafor@example.com", "@okafor") does not count.
pub(super) fn lower_case_words(text: &str) -> impl Iterator<Item = &str> {
    word_tokens(text).into_iter().filter_map(move |(s, e)| {
        let w = &text[s..e];
        let before = text[..s].chars().next_back();
        let mut after = text[e..].chars();
        let prose_before = before.is_none_or(|c| c.is_whitespace() || "(\"'“‘[".contains(c));
        let prose_after = match after.next() {
            None => true,
            Some('.') => after.next().is_none_or(char::is_whitespace),
            Some(c) => c.is_whitespace() || ",;:!?)\"'”’]".contains(c),
        };
        (prose_before && prose_after && !w.chars().any(char::is_uppercase)).then_some(w)
    })
}

/// Generations after a name, never its surname.
const GENERATIONS: &[&str] = &["Jr", "Jnr", "Snr", "Sr", "II", "III", "IV"];

/// Whether a name found at `start..end` is an organisation, a place or a thing named after a person: its
/// last word is one of [`ORGANISATION_HEADS`], or the next word is (after at most one capitalised word:
/// "Penhaligon Dental Clinic"), or an ampersand follows ("Holloway & Finch").
pub(super) fn names_an_organisation(text: &str, start: usize, end: usize) -> bool {
    if inside_a_known_name(text, start, end) {
        return true;
    }
    if text[start..end].split_whitespace().next_back().is_some_and(|w| ORGANISATION_HEADS.contains(&name_word(w)))
        || text[end..].trim_start().starts_with('&')
    {
        return true;
    }
    let after: Vec<&str> =
        text[end..].split_whitespace().take(2).map(|w| w.trim_end_matches(|c: char| !c.is_alphanumeric())).collect();
    match after.as_slice() {
        [first, ..] if ORGANISATION_HEADS.contains(first) => true,
        [first, second] => {
            is_capitalised(first) && ORGANISATION_HEADS.contains(second) && !text[end..].starts_with(',')
        }
        _ => false,
    }
}

/// [`names_an_organisation`] in the text or in its [`names_view`]: "DLA PIPER LLP" reads "Dla Piper Llp" in
/// the view, whose title case hides the "LLP" the list knows.
pub(super) fn names_an_organisation_in(text: &str, view: &str, start: usize, end: usize) -> bool {
    names_an_organisation(view, start, end) || names_an_organisation(text, start, end)
}

/// Whether `start..end` lies inside a mention of one of [`NAMED_LIKE_PEOPLE`] (a whole-word match around it).
fn inside_a_known_name(text: &str, start: usize, end: usize) -> bool {
    let offset = text.floor_char_boundary(start.saturating_sub(40));
    let window = &text[offset..text.ceil_char_boundary(end + 40)];
    NAMED_LIKE_PEOPLE.iter().any(|known| {
        window.match_indices(known).any(|(i, _)| {
            let (s, e) = (offset + i, offset + i + known.len());
            let word_edge = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
            s <= start && end <= e && word_edge(text[..s].chars().next_back()) && word_edge(text[e..].chars().next())
        })
    })
}

/// People in the person columns of comma-separated data: a header line with a column named as in
/// [`PERSON_COLUMNS`], then rows of as many fields, whose cell in that column is two to five name words.
pub(super) fn csv_people(text: &str, push: &mut impl FnMut(PiiKind, usize, usize)) {
    let mut columns: Option<(usize, Vec<usize>)> = None; // (fields, person columns)
    let mut next = 0;
    for raw in text.split_inclusive('\n') {
        let (offset, line) = (next, raw.trim_end_matches(['\n', '\r']));
        next += raw.len();
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() < 2 {
            columns = None;
            continue;
        }
        let person: Vec<usize> = fields
            .iter()
            .enumerate()
            .filter(|(_, f)| PERSON_COLUMNS.contains(&f.trim().to_lowercase().as_str()))
            .map(|(k, _)| k)
            .collect();
        // A header: a person column, no empty field and none starting with a digit ("employee_id,name").
        if !person.is_empty()
            && fields.iter().all(|f| !f.trim().is_empty() && !f.trim().starts_with(|c: char| c.is_ascii_digit()))
        {
            columns = Some((fields.len(), person));
            continue;
        }
        let Some((n, cols)) = &columns else { continue };
        if fields.len() != *n {
            columns = None;
            continue;
        }
        let mut cell_at = offset;
        for (k, f) in fields.iter().enumerate() {
            if cols.contains(&k) {
                let cell = f.trim();
                let words: Vec<&str> = cell.split_whitespace().collect();
                if (2..=5).contains(&words.len())
                    && words.iter().all(|w| is_name_word(w) || PARTICLES.contains(w))
                    && is_name_word(words[0])
                {
                    let s = cell_at + (f.len() - f.trim_start().len());
                    push(PiiKind::Person, s, s + cell.len());
                }
            }
            cell_at += f.len() + 1;
        }
    }
}

/// Whether the model backs a name the rules found: a single (titled) word always, a longer name where its
/// capitalised words score [`RULE_VETO`] on average.
pub(super) fn model_backs(text: &str, scores: &[PieceScore], start: usize, end: usize) -> bool {
    let toks: Vec<(usize, usize)> =
        word_tokens(&text[start..end]).into_iter().map(|(s, e)| (s + start, e + start)).collect();
    if toks.len() < 2 {
        return true;
    }
    let score = word_scores(text, &toks, scores);
    let capitalised: Vec<f32> = toks
        .iter()
        .zip(&score)
        .filter(|((s, e), _)| is_capitalised(name_word(&text[*s..*e])))
        .map(|(_, p)| *p)
        .collect();
    capitalised.is_empty() || capitalised.iter().sum::<f32>() / capitalised.len() as f32 >= RULE_VETO
}

/// Byte ranges where [`model_people`] can find a name (runs of two or more name words, one after an
/// initial, a lone word acting as a person does), so the model need not read the rest.
pub(super) fn name_candidates(text: &str) -> Vec<(usize, usize)> {
    let toks = word_tokens(text);
    let mut c: Vec<(usize, usize)> = name_runs(text, &toks)
        .into_iter()
        .filter_map(|run| {
            let (first, last) = (run[0], run[run.len() - 1]);
            let (s, e) = (toks[first].0, toks[last].1);
            (last > first || initial_before(text, s).is_some()).then_some((s, e))
        })
        .collect();
    c.extend(acting_words(text, &toks).into_iter().map(|i| toks[i]));
    c
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

/// Exactly one space between two words (a name's words; two spaces part the columns of a form).
fn one_space(text: &str, a: (usize, usize), b: (usize, usize)) -> bool {
    &text[a.1..b.0] == " "
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One piece per word, scored by `score(word)`.
    fn scored(text: &str, score: impl Fn(&str) -> f32) -> Vec<PieceScore> {
        word_tokens(text)
            .into_iter()
            .map(|(start, end)| PieceScore { start, end, person: score(&text[start..end]) })
            .collect()
    }

    fn names(text: &str, score: impl Fn(&str) -> f32) -> Vec<&str> {
        let mut out = Vec::new();
        model_people(text, &scored(text, score), &mut |_, s, e| out.push(&text[s..e]));
        out
    }

    #[test]
    fn weak_words_join_a_strong_neighbour() {
        let text = "Thanks again — Georgia Papageorgiou";
        let found = names(text, |w| match w {
            "Georgia" => 0.17,
            "Papageorgiou" => 0.99,
            _ => 0.0,
        });
        assert_eq!(found, ["Georgia Papageorgiou"]);
        // Without a strong word there is no name, and a word the model gives nothing ends it.
        assert!(names(text, |w| if w == "Papageorgiou" { 0.6 } else { 0.3 }).is_empty());
        assert!(names("Grant funding ends", |w| if w == "Grant" { 0.9 } else { 0.0 }).is_empty());
    }

    #[test]
    fn list_items_beside_a_found_name_are_names() {
        let text = "Attendees: Amara Okafor, Sione Tupou, Giorgi Kapanadze and Lê Thị Mai";
        let found = names(text, |w| if matches!(w, "Amara" | "Okafor") { 0.99 } else { 0.02 });
        assert_eq!(found, ["Amara Okafor", "Sione Tupou", "Giorgi Kapanadze", "Lê Thị Mai"]);
        // Not in a list, and not when the model found no name in it.
        assert_eq!(
            names("Amara Okafor met Sione Tupou there", |w| if w == "Amara" || w == "Okafor" { 0.99 } else { 0.02 }),
            ["Amara Okafor"]
        );
        assert!(names("Vendors: Goldman Sachs, Morgan Stanley", |_| 0.02).is_empty());
    }

    #[test]
    fn surnames_and_their_mentions() {
        let surname = |n: &str| surname_of(n).map(|s| s.join(" "));
        assert_eq!(surname("Amara Okafor").as_deref(), Some("okafor"));
        assert_eq!(surname("J. R. Okoro").as_deref(), Some("okoro"));
        assert_eq!(surname("Jan van der Berg").as_deref(), Some("van der berg"));
        assert_eq!(surname("AKOSUA MENSAH-BONSU").as_deref(), Some("mensah-bonsu"));
        // One word has no surname to look for alone, nor a two-letter family name written first.
        assert_eq!(surname("Okafor"), None);
        assert_eq!(surname("Wang Xiuying").as_deref(), Some("wang"));
        assert_eq!(surname("Li Wei"), None);
        assert_eq!(surname("Sarah Price"), None);
        assert_eq!(surname("SARAH PRICE"), None);
        // An everyday word after a particle is a surname still.
        assert_eq!(surname("Jan van der Wood").as_deref(), Some("van der wood"));
        assert_eq!(surname("Sun Li"), None);
        assert_eq!(surname("John Smith Jr").as_deref(), Some("smith"));
        let mut surnames: HashMap<String, Vec<Vec<String>>> = HashMap::new();
        for sn in [vec!["okafor"], vec!["berg"], vec!["van", "der", "berg"]] {
            surnames.entry(sn[0].to_string()).or_default().push(sn.into_iter().map(String::from).collect());
        }
        let text = "Okafor's draft: OKAFOR signed, okafor (a word) did not; Van der Berg, Berg and Okaforo agreed.";
        let found: Vec<&str> = surname_mentions(text, &surnames).into_iter().map(|(s, e)| &text[s..e]).collect();
        assert_eq!(found, ["Okafor", "OKAFOR", "Van der Berg", "Berg"]);
        let words: Vec<&str> =
            lower_case_words("the price rose; amara.okafor@x.com, @okafor, file okafor.pdf.").collect();
        assert_eq!(words, ["the", "price", "rose", "file"]);
    }

    #[test]
    fn particles_alone_and_lettered_lists_are_no_names() {
        // A run of particles alone ("Nic" is one) once panicked; "A. Finance, B. Legal" is a lettered list.
        assert!(names("Dear Nic, thanks. Ní raibh sé ann.", |_| 0.95).is_empty());
        let text = "Signed by Amara Okafor, A. Finance, B. Legal";
        assert_eq!(names(text, |w| if ["Amara", "Okafor"].contains(&w) { 0.95 } else { 0.0 }), ["Amara Okafor"]);
    }

    #[test]
    fn lone_words_acting_as_people() {
        let acting = |text: &str| -> Vec<String> {
            let toks = word_tokens(text);
            acting_words(text, &toks).into_iter().map(|i| text[toks[i].0..toks[i].1].to_string()).collect()
        };
        assert_eq!(acting("Okonkwo approved the budget."), ["Okonkwo"]);
        assert_eq!(acting("Nakamura and Ochieng both voted against it."), ["Nakamura", "Ochieng"]);
        // Part of a longer name, a word that ends names, or no act after it.
        assert!(
            acting("Chiamaka Nwankwo approved it; The board approved; de Vries signed; Okonkwo will sign.").is_empty()
        );
        // The model decides: a strong score makes it a name, a weak one does not.
        let text = "Lindqvist signed the NDA; Finance approved.";
        assert_eq!(names(text, |w| if w == "Lindqvist" { 0.95 } else { 0.3 }), ["Lindqvist"]);
        assert!(names(text, |_| 0.3).is_empty());
    }

    #[test]
    fn names_in_capitals_are_read_as_names() {
        let text = "SIGNED: MARGARETHA VAN ZYL  TITLE: CFO, O'HALLORAN-DIAZ JO. CONFIDENTIAL";
        let view = names_view(text);
        assert_eq!(view, "SIGNED: Margaretha Van Zyl  TITLE: CFO, O'Halloran-Diaz Jo. CONFIDENTIAL");
        assert_eq!(view.len(), text.len());
        assert!(matches!(names_view("Nothing in capitals, or ONE word."), Cow::Borrowed(_)));
        assert_eq!(names_view("FROM OKAFOR'S DESK"), "From Okafor's Desk");
        // Scripts without case are not capitals, and a letter whose lower case is longer keeps its word.
        assert!(matches!(names_view("삼성 SDS 보고서"), Cow::Borrowed(_)));
        assert_eq!(names_view("MAR\u{212A}US OFFICE"), "MAR\u{212A}US Office");
    }

    #[test]
    fn particles_prefixes_and_initials() {
        let text = "Seán Ó Ceallaigh met Noor al-Huda Khalil; signed J. Okwuosa.";
        let found = names(text, |w| {
            if w.chars().next().is_some_and(char::is_uppercase) || w.starts_with("al-") { 0.95 } else { 0.0 }
        });
        assert_eq!(found, ["Seán Ó Ceallaigh", "Noor al-Huda Khalil", "J. Okwuosa"]);
        assert_eq!(initial_before("J. Okwuosa", 3), Some(0));
        assert_eq!(initial_before("No. Okwuosa", 4), None);
        assert_eq!(initial_before("Ok", 0), None);
        assert_eq!(initial_before("by J. R. Okoro", 9), Some(3));
        assert_eq!(initial_before("M.K. Das", 5), Some(0));
        assert_eq!(initial_before("(H.-P. Weber)", 7), Some(1));
        assert_eq!(initial_before("Ö. Karagöz", "Ö. ".len()), Some(0));
        assert_eq!(initial_before("Dept. R. Okoro", 9), Some(6));
    }

    #[test]
    fn whole_list_items() {
        let text = "Sipho Ndlovu, Anneke Pretorius and Johannes du Plessis represented the team.";
        let at = |s: &str| text.find(s).map(|i| (i, i + s.len())).expect("in text");
        let (s, e) = at("Anneke Pretorius");
        assert!(whole_item(text, s, e));
        let (s, e) = at("Sipho Ndlovu");
        assert!(whole_item(text, s, e));
        let (s, e) = at("Johannes du Plessis");
        assert!(!whole_item(text, s, e));
        // ... but it closes the list: a joining word before it, the sentence going on after it.
        assert!(closes_list(text, s, e) && list_item(text, s, e));
        let (s, e) = at("Anneke Pretorius");
        assert!(!closes_list(text, s, e));
        let other = "The Pretoria team met Johannes du Plessis there.";
        let s = other.find("Johannes").expect("in text");
        assert!(!list_item(other, s, s + "Johannes du Plessis".len()));
        // The last item of a list whose sentence goes on is a name where the model found one in the list.
        let text = "Rui Carvalho, Joana Couto and Inês Queiroz de Sousa joined the Porto office.";
        let found = names(text, |w| if matches!(w, "Inês" | "Queiroz" | "Sousa") { 0.99 } else { 0.05 });
        assert_eq!(found, ["Inês Queiroz de Sousa", "Rui Carvalho", "Joana Couto"]);
    }

    #[test]
    fn the_model_vetoes_the_rules_where_it_gives_no_weight() {
        let text = "The hike up Ben Nevis starts at Glen Nevis; Ben Okafor leads it.";
        let scores = scored(text, |w| match w {
            "Okafor" => 0.99,
            "Ben" => 0.6,
            _ => 0.1,
        });
        let at = |s: &str, from: usize| text[from..].find(s).map(|i| (from + i, from + i + s.len())).expect("in text");
        let (s, e) = at("Ben Nevis", 0);
        assert!(!model_backs(text, &scores, s, e));
        let (s, e) = at("Ben Okafor", 0);
        assert!(model_backs(text, &scores, s, e));
        // A single titled word stands whatever the model says.
        let (s, e) = at("Nevis", 0);
        assert!(model_backs(text, &scores, s, e));
    }

    fn organisation(text: &str, name: &str) -> bool {
        let start = text.find(name).unwrap();
        names_an_organisation(text, start, start + name.len())
    }

    #[test]
    fn names_of_organisations_places_and_things_are_told_from_people() {
        assert!(organisation("Book the Einstein Room for Monday.", "Einstein Room"));
        assert!(organisation("Book the Curie Suite.", "Curie"));
        assert!(organisation("Our client Rheinmetall Zulieferteile GmbH paid.", "Rheinmetall Zulieferteile"));
        assert!(organisation("She joined Ardmore Dental Clinic in May.", "Ardmore"));
        assert!(organisation("Call Fenwick & Hale about the lease.", "Fenwick"));
        // Well-known firms, brands and places that read as a person's name, matched as whole words.
        assert!(organisation("Merrill Lynch advised the buyer.", "Merrill Lynch"));
        assert!(organisation("Stock Dr Oetker pizza.", "Oetker"));
        assert!(organisation("Fly to Addis Ababa on Monday.", "Addis Ababa"));
        assert!(!organisation("Ask Merrill Lynchburg-Hale.", "Merrill Lynchburg-Hale"));
        // A name a person could well have is a person, whatever brand shares it.
        assert!(!organisation("Ask John Lewis about the rota.", "John Lewis"));
        // A person beside such a word, or a surname that is also a common noun, stays a person.
        assert!(!organisation("Anna Lindqvist runs the Oslo Lab.", "Anna Lindqvist"));
        assert!(!organisation("Stuart Hall spoke, then Ji-woo Park.", "Stuart Hall"));
        assert!(!organisation("Stuart Hall spoke, then Ji-woo Park.", "Ji-woo Park"));
        assert!(!organisation("Ask Maria Gonzalez, Building Manager.", "Maria Gonzalez"));
    }

    #[test]
    fn people_in_the_person_columns_of_csv_data() {
        let text = "id,full_name,city\n7,Aroha Te Whata,Wellington\n8,Batbayar Dorj,Ulaanbaatar\n9,n/a,Oslo";
        let mut found = Vec::new();
        csv_people(text, &mut |_, s, e| found.push(&text[s..e]));
        assert_eq!(found, ["Aroha Te Whata", "Batbayar Dorj"]);
        // Without a person column, or with rows of another width, nothing.
        let mut found = Vec::new();
        let other = "sku,description,supplier\nA-1,Hex Bolt,Fenwick Fasteners\nname,city\n1,2,Jo Bloggs";
        csv_people(other, &mut |_, s, e| found.push(&other[s..e]));
        assert!(found.is_empty(), "{found:?}");
    }
}
