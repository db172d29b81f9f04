//! What each QA pair of a call is about, chosen before the call: one informative sentence of the chunk per
//! pair (two for a multi-hop pair), spread over the chunk, and the kind of question to ask about it. A small
//! model left to choose writes two pairs about the most salient sentence, or copies questions it is shown;
//! with the sentence and kind assigned, the pairs of a reply are distinct, each carries its evidence, and
//! the dataset gets its mix of question types without a token spent on choosing them.

use distillery_quality::text;

/// The kind of question a pair asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuestionKind {
    /// What, who, when, how much: a fact the sentence states.
    Factual,
    /// Why or how: the reason, condition or procedure the sentence gives.
    Explanatory,
    /// How facts of the sentence relate (compare, distinguish, what applies to whom).
    Analytical,
    /// What two sentences say together.
    MultiHop,
}

impl QuestionKind {
    /// The `question_type` recorded on a draft.
    pub fn as_str(self) -> &'static str {
        match self {
            QuestionKind::Factual => "factual",
            QuestionKind::Explanatory => "explanatory",
            QuestionKind::Analytical => "analytical",
            QuestionKind::MultiHop => "multi_hop",
        }
    }

    /// The `difficulty` recorded on a draft: what the kind asks of the answer.
    pub fn difficulty(self) -> &'static str {
        match self {
            QuestionKind::Factual => "easy",
            QuestionKind::Explanatory | QuestionKind::Analytical => "medium",
            QuestionKind::MultiHop => "hard",
        }
    }

    /// How the prompt names the kind.
    fn prompt(self) -> &'static str {
        match self {
            QuestionKind::Factual => "factual question",
            QuestionKind::Explanatory => "explanatory question (why or how: the reason it gives)",
            QuestionKind::Analytical => "analytical question (how its facts relate)",
            QuestionKind::MultiHop => "multi-hop question (needs both sentences)",
        }
    }
}

/// One pair's assignment: its kind and the sentences (indices into the chunk's sentences) it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FocusItem {
    pub kind: QuestionKind,
    pub sentences: Vec<usize>,
}

impl FocusItem {
    /// How the prompt names the item's kind: an explanatory question asks why only where its sentence gives
    /// a reason.
    fn prompt(&self, sentences: &[String]) -> &'static str {
        let reason = || self.sentences.iter().filter_map(|&i| sentences.get(i)).any(|s| gives_reason(s));
        match self.kind {
            QuestionKind::Explanatory if !reason() => {
                "explanatory question (how, when or on what condition: the sentence gives no reason to ask why)"
            }
            kind => kind.prompt(),
        }
    }

    /// The evidence of the pair: its sentences, in order, joined.
    pub fn evidence(&self, sentences: &[String]) -> String {
        self.sentences.iter().filter_map(|&i| sentences.get(i)).map(|s| unlabelled(s)).collect::<Vec<_>>().join(" ")
    }
}

/// A sentence without the context's `[n] ` member label it may start with.
fn unlabelled(sentence: &str) -> &str {
    let s = sentence.trim();
    match s.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((n, rest)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => rest.trim_start(),
        _ => s,
    }
}

/// Words that mark a reason, condition or procedure.
const EXPLAINS: &[&str] = &[
    "because",
    "so",
    "unless",
    "if",
    "when",
    "until",
    "must",
    "ensure",
    "therefore",
    "order",
    "otherwise",
    "after",
    "before",
    "requires",
    "required",
    "allowed",
    "only",
];

/// Words that give a reason: only a sentence with one of them answers a "why". The other words of
/// [`EXPLAINS`] mark a rule, condition or procedure ("must", "only", "before"), about which 1.5B, told to ask
/// "why or how", asked why and made the reason up ("because it ensures compliance with security policies and
/// regulations": 4 of the 11 `ungrounded` drafts of a side-by-side run were explanatory questions).
const REASONS: &[&str] = &["because", "so", "therefore", "order", "ensure", "ensures", "otherwise", "since", "reason"];

/// Whether a sentence gives a reason.
fn gives_reason(sentence: &str) -> bool {
    text::words(sentence).iter().any(|w| REASONS.contains(&w.as_str()))
}

/// A sentence worth a question: a statement of some length with several content words (not a heading, a
/// label, a fragment of a list, or a question the document asks: it states no fact to ask about).
fn informative(sentence: &str) -> bool {
    let s = unlabelled(sentence);
    if s.starts_with('#') || s.ends_with(':') || s.ends_with('?') || title(s) {
        return false;
    }
    text::words(s).len() >= 5 && text::content_words(s).len() >= 3
}

/// A line in title case without a full stop: a document's title or a heading the extractor read as text
/// ("Larkspur FM-400 Ultrasonic Flow Meter: Frequently Asked Questions" was planned as a pair's sentence,
/// and the pair rejected for straying from it).
fn title(s: &str) -> bool {
    if s.ends_with(['.', '!', ';', ')', '"']) {
        return false;
    }
    let words: Vec<&str> = s.split_whitespace().filter(|w| w.chars().next().is_some_and(char::is_alphabetic)).collect();
    let capitalised = words.iter().filter(|w| w.chars().next().is_some_and(char::is_uppercase)).count();
    words.len() >= 3 && capitalised * 4 >= words.len() * 3
}

fn has_number(sentence: &str) -> bool {
    sentence.chars().any(|c| c.is_ascii_digit())
}

fn kind_of(sentence: &str, position: usize) -> QuestionKind {
    let words = text::words(sentence);
    if words.iter().any(|w| EXPLAINS.contains(&w.as_str())) && !has_number(sentence) {
        QuestionKind::Explanatory
    } else if has_number(sentence) || position % 3 != 2 {
        QuestionKind::Factual
    } else {
        QuestionKind::Analytical
    }
}

/// The plan of a QA call: at most `max_pairs` items over distinct sentences, spread evenly over the chunk's
/// informative sentences (all sentences when none is informative, at least one item). When a plan of three
/// or more has sentences left over, the last item becomes a multi-hop question over its sentence and a
/// left-over one that shares a content word with it.
pub fn plan(sentences: &[String], max_pairs: usize) -> Vec<FocusItem> {
    let mut candidates: Vec<usize> = (0..sentences.len()).filter(|&i| informative(&sentences[i])).collect();
    if candidates.is_empty() {
        candidates = (0..sentences.len()).filter(|&i| !sentences[i].trim().is_empty()).collect();
    }
    if candidates.is_empty() {
        return Vec::new();
    }
    let n = max_pairs.max(1).min(candidates.len());
    // Evenly spread: item k takes the candidate at k * len / n.
    let chosen: Vec<usize> = (0..n).map(|k| candidates[k * candidates.len() / n]).collect();
    let mut items: Vec<FocusItem> = chosen
        .iter()
        .enumerate()
        .map(|(k, &i)| FocusItem { kind: kind_of(&sentences[i], k), sentences: vec![i] })
        .collect();
    if n >= 3 && candidates.len() > n {
        let last = chosen[n - 1];
        let stems = text::stems(&sentences[last]);
        let partner = candidates
            .iter()
            .copied()
            .filter(|i| !chosen.contains(i))
            .find(|&i| !text::stems(&sentences[i]).is_disjoint(&stems));
        if let Some(p) = partner {
            let mut pair = vec![last, p];
            pair.sort_unstable();
            items[n - 1] = FocusItem { kind: QuestionKind::MultiHop, sentences: pair };
        }
    }
    items
}

/// The `{focus}` of the QA template: one numbered line per item with its kind and quoted sentence(s).
pub fn render(items: &[FocusItem], sentences: &[String]) -> String {
    items
        .iter()
        .enumerate()
        .map(|(k, item)| {
            let quoted: Vec<String> = item
                .sentences
                .iter()
                .filter_map(|&i| sentences.get(i))
                .map(|s| format!("\"{}\"", distillery_prompts::templates::neutralize(unlabelled(s))))
                .collect();
            format!("{}. {}: {}", k + 1, item.prompt(sentences), quoted.join(" + "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn titles_and_the_documents_own_questions_are_not_planned_on() {
        let sentences = s(&[
            "Larkspur FM-400 Ultrasonic Flow Meter: Frequently Asked Questions",
            "[2] What does the FM-400 measure in closed pipes?",
            "The FM-400 measures the volumetric flow of clean water in closed pipes.",
            "Hardware security keys are preferred over authenticator apps",
            "Annual Leave And Sick Leave Rules For Employees",
        ]);
        let planned: Vec<usize> = plan(&sentences, 5).iter().flat_map(|i| i.sentences.clone()).collect();
        assert_eq!(planned, vec![2, 3], "a fact stated with or without a full stop; no title, no question");
    }

    #[test]
    fn one_distinct_informative_sentence_per_pair_spread_over_the_chunk() {
        let sentences = s(&[
            "# Leave policy",
            "Full-time employees receive 27 days of paid annual leave per calendar year.",
            "Up to 5 unused days may be carried over into the next year.",
            "Carried-over days must be taken by 31 March or they are lost.",
            "Employees who are ill must inform their line manager before 09:30.",
            "Employees need a medical certificate from the fourth consecutive day of sickness.",
            "Contact:",
        ]);
        let p = plan(&sentences, 3);
        assert_eq!(p.len(), 3);
        let firsts: Vec<usize> = p.iter().map(|i| i.sentences[0]).collect();
        assert_eq!(firsts, vec![1, 2, 4], "evenly spread over the five informative sentences");
        assert!(p.iter().all(|i| !i.sentences.contains(&0) && !i.sentences.contains(&6)), "no heading or label");
        // Left-over sentences: the last pair combines its sentence with one sharing a content word.
        assert_eq!(p[2], FocusItem { kind: QuestionKind::MultiHop, sentences: vec![4, 5] });
        // Numbers make factual questions.
        assert_eq!(p[0].kind, QuestionKind::Factual);
    }

    #[test]
    fn no_more_pairs_than_sentences_and_at_least_one() {
        let two = s(&["The kettle holds 1.7 litres of water.", "It switches off when the water boils."]);
        let p = plan(&two, 6);
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|i| i.sentences.len() == 1), "nothing left over: no multi-hop");
        assert_eq!(p[1].kind, QuestionKind::Explanatory);
        let short = s(&["Yes.", "See above."]);
        assert_eq!(plan(&short, 3).len(), 2, "nothing informative: every non-empty sentence");
        assert!(plan(&[], 3).is_empty());
    }

    #[test]
    fn the_focus_quotes_each_sentence_beside_its_kind() {
        let sentences = s(&[
            "The kettle holds 1.7 litres of water.",
            "It switches off when the water boils.",
            "Descale it every month because limescale slows the heating.",
        ]);
        let p = plan(&sentences, 3);
        let r = render(&p, &sentences);
        // A why only where the sentence gives the reason.
        assert_eq!(
            r,
            "1. factual question: \"The kettle holds 1.7 litres of water.\"\n\
             2. explanatory question (how, when or on what condition: the sentence gives no reason to ask why): \
             \"It switches off when the water boils.\"\n\
             3. explanatory question (why or how: the reason it gives): \"Descale it every month because limescale \
             slows the heating.\""
        );
        assert_eq!(p[0].evidence(&sentences), "The kettle holds 1.7 litres of water.");
        assert_eq!(QuestionKind::MultiHop.difficulty(), "hard");
    }
}
