//! The judge's cheap, deterministic checks, at both ends of its model call.
//!
//! Before the call, a draft is screened for what no critic should be asked to score: an answer cut off
//! mid-sentence or left as a fragment (a generator that hit its length cap writes "In a"), and a question or
//! answer that copies the task's own instructions back. A draft stopped here costs no judge tokens.
//!
//! After the call, the critic's rationale is read against its scores. A small model echoes the template
//! ("One short sentence naming the main weakness, or why it is good.") instead of judging, praises an
//! example and scores it 1, or names an invented fact and scores it 5: such a verdict cannot be trusted, and
//! the judge asks again (see the crate's resolution) instead of acting on it.

use std::collections::HashSet;

use distillery_core::RejectReason;
use serde::{Deserialize, Serialize};

use crate::draft::{self, QualityConfig};

/// What the judge checks without a model, before and after its call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerdictChecks {
    /// Stop answers cut off mid-sentence (no final punctuation, ending on "the", an open quote) before any
    /// judge call.
    pub truncation: bool,
    /// Answers shorter than this many words are fragments ("In a") and stopped before any judge call.
    pub min_answer_words: usize,
    /// A run of this many words copied from a task's template (and not in the context) marks a draft or a
    /// rationale as an echo of the instructions (0 turns the check off).
    pub echo_words: usize,
    /// Times a verdict that cannot be trusted (placeholder rationale, rationale contradicting the scores) is
    /// asked again with another seed; still distrusted after them, it does not pass.
    pub reasks: u32,
    /// The draft checks generate applies (grounding, stated numbers, copied or source-bound questions),
    /// applied again so that a draft from anywhere gets them before a judge call.
    pub draft: QualityConfig,
}

impl Default for VerdictChecks {
    fn default() -> Self {
        VerdictChecks {
            truncation: true,
            min_answer_words: 3,
            echo_words: 6,
            reasks: 1,
            draft: QualityConfig::default(),
        }
    }
}

impl VerdictChecks {
    pub fn validate(&self, section: &str, errors: &mut Vec<String>) {
        if self.reasks > 4 {
            errors.push(format!("{section}.reasks must be at most 4 (got {})", self.reasks));
        }
        if self.echo_words != 0 && self.echo_words < 4 {
            errors.push(format!(
                "{section}.echo_words must be 0 (off) or at least 4 (got {}): shorter runs are common phrases",
                self.echo_words
            ));
        }
        self.draft.validate(&format!("{section}.draft"), errors);
    }
}

/// Lowercased alphanumeric words.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// Every run of `n` consecutive words of `text`, joined by spaces.
fn ngrams(words: &[String], n: usize) -> HashSet<String> {
    if n == 0 || words.len() < n {
        return HashSet::new();
    }
    words.windows(n).map(|w| w.join(" ")).collect()
}

/// What a draft was stopped for before any judge call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screened {
    /// The metric label and `check` field: `truncated`, `fragment`, `echoed_template`, or the reason of a
    /// draft check (`ungrounded`, `invalid_record`, ...).
    pub check: &'static str,
    /// The rejection reason a last attempt ends with.
    pub reason: RejectReason,
    /// What was found, in words the generator can act on.
    pub finding: String,
    /// The flaw is in an answer, so a rewrite of the answers can mend it (else only the question can).
    pub in_answer: bool,
}

/// Words a sentence does not end on, even with a full stop after them.
const DANGLING: &[&str] = &["a", "an", "the", "and", "or", "but", "nor", "of"];

/// Words a complete sentence rarely ends on without punctuation: articles, conjunctions, prepositions,
/// auxiliaries and relative pronouns.
const OPEN_ENDED: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "nor", "of", "to", "in", "on", "at", "by", "for", "with", "from", "into",
    "through", "than", "as", "is", "are", "was", "were", "be", "been", "has", "have", "had", "will", "can", "must",
    "may", "should", "which", "that", "who", "whose", "when", "where", "if", "because", "while", "until", "within",
    "after", "before", "per", "its", "their", "his", "her", "our", "your", "this", "these", "those", "such",
];

/// Every bracket and double quote `a` opens is closed.
fn closes_what_it_opens(a: &str) -> bool {
    let open = |o: char, c: char| a.chars().filter(|&x| x == o).count() > a.chars().filter(|&x| x == c).count();
    !(open('(', ')') || open('[', ']') || a.chars().filter(|&c| c == '"').count() % 2 == 1)
}

/// Answers of at most this many words may name a value without a sentence around it.
const SHORT_ANSWER_WORDS: usize = 3;

/// Why an answer looks cut off, if it does: it ends without a sentence's final punctuation, on a word no
/// sentence ends on, or inside an open quote or bracket; or it is shorter than `min_words` without naming a
/// value (a short answer such as "600 euros" is complete).
pub fn truncation(answer: &str, min_words: usize) -> Option<(&'static str, String)> {
    let a = answer.trim();
    if a.is_empty() {
        return Some(("fragment", "the answer is empty".into()));
    }
    let ws = words(a);
    let last = ws.last().map(String::as_str).unwrap_or("");
    let balanced = closes_what_it_opens(a);
    // A short answer naming a value ("600 euros", "Lyon", "Every 90 days") is complete without a full
    // stop; a short one ending on an article or a preposition ("In a") is a fragment.
    let short_value = ws.len() <= SHORT_ANSWER_WORDS
        && balanced
        && !OPEN_ENDED.contains(&last)
        && ws.iter().any(|w| !OPEN_ENDED.contains(&w.as_str()));
    if short_value {
        return None;
    }
    if ws.len() < min_words {
        return Some(("fragment", format!("the answer is a fragment of {} word(s): {a:?}", ws.len())));
    }
    let tail: String = a.chars().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
    let mut chars = a.chars().rev();
    let end = chars.next().unwrap_or(' ');
    let before = chars.next().unwrap_or(' ');
    let closed = matches!(end, '.' | '!' | '?' | '…')
        || (matches!(end, ')' | ']' | '"' | '\'' | '”' | '’' | '»') && matches!(before, '.' | '!' | '?' | '…'));
    if !closed {
        let why = if OPEN_ENDED.contains(&last) {
            format!("the answer ends mid-sentence on {last:?}: \"...{tail}\"")
        } else {
            format!("the answer ends mid-sentence, without a full stop: \"...{tail}\"")
        };
        return Some(("truncated", why));
    }
    if DANGLING.contains(&last) && a.ends_with(['.', '!', '?']) {
        return Some(("truncated", format!("the answer breaks off after {last:?}: \"...{tail}\"")));
    }
    if !balanced {
        return Some(("truncated", format!("the answer leaves a quote or bracket open: \"...{tail}\"")));
    }
    None
}

/// [`truncation`], read against the context: an answer without a final full stop whose last words end a
/// sentence or a clause of the context ("... rotated every 90 days" where the context says "rotated every
/// 90 days.") is complete (small models often drop the full stop); one whose last words run on in the
/// context ("... within 2 business" of "within 2 business days") is cut off.
pub fn truncation_in(answer: &str, context: &str, min_words: usize) -> Option<(&'static str, String)> {
    let found = truncation(answer, min_words)?;
    let a = answer.trim();
    let unpunctuated = !a.ends_with(['.', '!', '?', '…', ')', ']', '"', '\'', '”', '’', '»', ',', ';', ':', '-']);
    let ws = words(a);
    let balanced = closes_what_it_opens(a);
    if found.0 != "truncated"
        || !unpunctuated
        || !balanced
        || ws.len() < 2
        || OPEN_ENDED.contains(&ws[ws.len() - 1].as_str())
    {
        return Some(found);
    }
    let tail = (&ws[ws.len() - 2], &ws[ws.len() - 1]);
    let ends_in_context = context_words(context).windows(2).any(|w| (&w[0].0, &w[1].0) == tail && w[1].1);
    if ends_in_context { None } else { Some(found) }
}

/// The context's lowercased words, each with whether a sentence or clause ends after it (punctuation, a
/// line break or the end of the text).
fn context_words(context: &str) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    let mut word = String::new();
    let mut chars = context.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
            continue;
        }
        if !word.is_empty() {
            // The next character that is not a space decides: ".", "!", "?", ";", ":", "," or a line end.
            let mut boundary = matches!(c, '.' | '!' | '?' | ';' | ':' | ',' | '\n');
            if c == ' ' || c == '\t' {
                while let Some(&n) = chars.peek() {
                    if n == ' ' || n == '\t' {
                        chars.next();
                    } else {
                        boundary = matches!(n, '.' | '!' | '?' | ';' | ':' | ',' | '\n');
                        break;
                    }
                }
            }
            out.push((std::mem::take(&mut word), boundary));
        }
    }
    if !word.is_empty() {
        out.push((word, true));
    }
    out
}

/// Template text a draft or a rationale must not copy: the instructions of every task the models are
/// given. A run of `n` words that is also in the context does not count (a template may quote it).
#[derive(Debug, Clone)]
pub struct Echo {
    runs: HashSet<String>,
    placeholders: Vec<String>,
    n: usize,
}

impl Echo {
    /// Runs of `n` words of `templates` (0 disables the check).
    pub fn new<'a>(templates: impl IntoIterator<Item = &'a str>, placeholders: &[&str], n: usize) -> Echo {
        let mut runs = HashSet::new();
        for t in templates {
            // `{name}` placeholders and the delimiters are not template words.
            let mut text = t.to_string();
            for p in placeholders {
                text = text.replace(&format!("{{{p}}}"), " | ");
            }
            for part in text.split(['|', '<', '>', '\n']) {
                runs.extend(ngrams(&words(part), n));
            }
        }
        let placeholders = placeholders.iter().map(|p| format!("{{{p}}}")).collect();
        Echo { runs, placeholders, n }
    }

    /// The first copied run of `text` (a placeholder left in it, or `n` words of a template that are not
    /// in `context`), if any.
    pub fn copied(&self, text: &str, context: &str) -> Option<String> {
        if self.n == 0 {
            return None;
        }
        if let Some(p) = self.placeholders.iter().find(|p| text.contains(p.as_str())) {
            return Some(p.clone());
        }
        let ws = words(text);
        if ws.len() < self.n {
            return None;
        }
        let ctx = ngrams(&words(context), self.n);
        ws.windows(self.n).map(|w| w.join(" ")).find(|run| self.runs.contains(run) && !ctx.contains(run))
    }
}

/// The screening of a draft's turns (`(user, assistant)` pairs, in order) before the judge call.
pub fn screen(turns: &[(&str, &str)], context: &str, echo: &Echo, cfg: &VerdictChecks) -> Option<Screened> {
    let many = turns.len() > 1;
    let at = |i: usize| if many { format!("turn {}: ", i + 1) } else { String::new() };
    for (i, (user, assistant)) in turns.iter().enumerate() {
        if let Some(run) = echo.copied(user, context) {
            return Some(Screened {
                check: "echoed_template",
                reason: RejectReason::InvalidRecord,
                finding: format!("{}the question copies the task's instructions ({run:?})", at(i)),
                in_answer: false,
            });
        }
        if let Some(run) = echo.copied(assistant, context) {
            return Some(Screened {
                check: "echoed_template",
                reason: RejectReason::InvalidRecord,
                finding: format!("{}the answer copies the task's instructions ({run:?})", at(i)),
                in_answer: true,
            });
        }
        if cfg.truncation
            && let Some((check, why)) = truncation_in(assistant, context, cfg.min_answer_words)
        {
            return Some(Screened {
                check,
                reason: RejectReason::Truncated,
                finding: format!("{}{why}", at(i)),
                in_answer: true,
            });
        }
    }
    // The draft checks: the question(s) first (a rewrite of the answers cannot mend them), then the answers.
    let checked = if let [(question, answer)] = turns {
        draft::check_question(question, context, &cfg.draft)
            .map_err(|e| (e, false))
            .and_then(|()| draft::check_reply(question, answer, context, &cfg.draft).map_err(|e| (e, true)))
    } else {
        draft::check_users(turns)
            .map_err(|e| (e, false))
            .and_then(|()| draft::check_replies(turns, context, &cfg.draft).map_err(|e| (e, true)))
    };
    checked.err().map(|((reason, finding), in_answer)| Screened { check: reason.as_str(), reason, finding, in_answer })
}

/// What a rationale says about the example, read from its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Praise and no flaw: "correct and directly quotes the context".
    Praise,
    /// A flaw that should keep the example out: invented, wrong, unsupported, trivial, cut off, ...
    Severe,
    /// A lesser flaw: missing detail, could be clearer, ...
    Minor,
    /// Neither: a restatement of the answer, say.
    Neutral,
}

/// Words of praise (a negation before one turns it into a flaw: "not correct").
const PRAISE: &[&str] = &[
    "flawless",
    "perfect",
    "perfectly",
    "excellent",
    "correct",
    "correctly",
    "accurate",
    "accurately",
    "good",
    "great",
    "clear",
    "clearly",
    "faithful",
    "faithfully",
    "supported",
    "grounded",
    "complete",
    "completely",
    "concise",
    "precise",
    "precisely",
    "relevant",
    "useful",
    "helpful",
    "appropriate",
    "valid",
    "right",
    "well",
    "matches",
    "consistent",
    "directly",
    "fully",
    "properly",
    "quotes",
];

/// Word stems of a flaw that keeps an example out (a negation before one cancels it: "nothing invented").
const SEVERE: &[&str] = &[
    "invent",
    "fabricat",
    "hallucinat",
    "incorrect",
    "wrong",
    "inaccura",
    "unsupport",
    "unfounded",
    "mislead",
    "contradict",
    "false",
    "error",
    "mistake",
    "trivial",
    "tautolog",
    "meaningless",
    "irrelevant",
    "unrelated",
    "truncat",
    "nonsens",
    "made-up",
    "speculat",
    "assum",
    "unverif",
    "untrue",
    "fake",
    "fiction",
    "imaginar",
];

/// Phrases of a severe flaw that carry their own negation.
const SEVERE_PHRASES: &[&str] = &[
    "not in the context",
    "not mentioned",
    "not stated",
    "not supported",
    "not found in",
    "not present in",
    "not provided",
    "not specified",
    "not in the text",
    "no information",
    "no mention",
    "no evidence",
    "does not answer",
    "doesn t answer",
    "does not mention",
    "doesn t mention",
    "not answer",
    "not related",
    "not relevant",
    "cut off",
    "made up",
    "about the document",
    "the document itself",
    "about the text",
    "obvious",
];

/// Word stems of a lesser flaw.
const MINOR: &[&str] = &[
    "lack",
    "missing",
    "omit",
    "incomplete",
    "vague",
    "unclear",
    "ambigu",
    "confus",
    "redundant",
    "repetit",
    "improv",
    "verbose",
    "could",
    "should",
    "minor",
    "slightly",
    "however",
    "but",
    "although",
    "weak",
    "limited",
    "partial",
    "partly",
    "short",
    "brief",
    "simplistic",
    "generic",
];

const NEGATORS: &[&str] =
    &["no", "not", "nothing", "without", "never", "none", "neither", "nor", "free", "isn", "doesn"];

/// The tone of a rationale.
pub fn tone(rationale: &str) -> Tone {
    let folded = format!(" {} ", words(rationale).join(" "));
    let mut severe = SEVERE_PHRASES.iter().any(|p| folded.contains(&format!(" {p} ")));
    let (mut minor, mut praise) = (false, false);
    // A negation reaches to the end of its clause ("nothing in it is wrong or unsupported"), or to a "but".
    for clause in rationale.split(['.', ',', ';', ':', '!', '?']) {
        let mut negated = false;
        for w in words(clause) {
            if CONTRASTS.contains(&w.as_str()) {
                negated = false;
            }
            if NEGATORS.contains(&w.as_str()) {
                negated = true;
            } else if SEVERE.iter().any(|s| w.starts_with(s)) {
                // "no invented facts", "nothing is wrong": praise in a flaw's words.
                if negated { praise = true } else { severe = true }
            } else if PRAISE.contains(&w.as_str()) {
                // "not correct", "not fully supported": a flaw in praise's words.
                if negated { severe = true } else { praise = true }
            } else if MINOR.iter().any(|s| w.starts_with(s)) && !negated {
                minor = true;
            }
        }
    }
    match (severe, minor, praise) {
        (true, _, _) => Tone::Severe,
        (false, true, _) => Tone::Minor,
        (false, false, true) => Tone::Praise,
        _ => Tone::Neutral,
    }
}

/// Words that end a negation's reach within a clause.
const CONTRASTS: &[&str] = &["but", "however", "although", "though", "yet"];

/// Why a verdict cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distrust {
    /// The rationale is empty, or copies the judge's own template or the example instead of judging.
    Placeholder(String),
    /// The rationale praises the example, the scores reject it.
    PraiseLowScore,
    /// The rationale names a flaw, the scores accept it (or a flaw at all, with full marks).
    FlawHighScore,
}

impl Distrust {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Distrust::Placeholder(_) => "placeholder",
            Distrust::PraiseLowScore => "praise_low_score",
            Distrust::FlawHighScore => "flaw_high_score",
        }
    }

    /// In words, for the log and the verdict.
    pub fn describe(&self) -> String {
        match self {
            Distrust::Placeholder(why) => format!("the rationale is not a judgement ({why})"),
            Distrust::PraiseLowScore => "the rationale praises the example but the scores reject it".into(),
            Distrust::FlawHighScore => "the rationale names a flaw but the scores accept the example".into(),
        }
    }
}

/// Whether a verdict (`rationale` with its derived `overall`) can be trusted: its rationale is a judgement
/// of its own (not the judge template's words, not empty) that agrees with its scores.
pub fn distrust(rationale: &str, overall: i32, threshold: i32, echo: &Echo, context: &str) -> Option<Distrust> {
    let r = rationale.trim();
    if words(r).len() < 3 {
        return Some(Distrust::Placeholder(format!("{r:?} is too short to be a judgement")));
    }
    if let Some(run) = echo.copied(r, context) {
        return Some(Distrust::Placeholder(format!("it copies the judge's instructions: {run:?}")));
    }
    match tone(r) {
        Tone::Praise if overall < threshold => Some(Distrust::PraiseLowScore),
        Tone::Severe if overall >= threshold => Some(Distrust::FlawHighScore),
        Tone::Minor if overall >= 5 => Some(Distrust::FlawHighScore),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JUDGE: &str = "TASK: judge this training example against the context.\n<example>\n{example}\n</example>\n\
        First the rationale: one short sentence naming the main weakness, or why it is good.";
    const CONVERSATION: &str = "For each exchange give: user (one question, different from the earlier ones); \
        assistant (the direct answer to that same question in 1-3 sentences: no greeting, no question back).";

    fn echo() -> Echo {
        Echo::new([JUDGE, CONVERSATION], &["example", "focus"], 6)
    }

    #[test]
    fn cut_off_answers_and_fragments_are_found() {
        assert_eq!(truncation("In a", 3).unwrap().0, "fragment");
        assert_eq!(truncation("The", 3).unwrap().0, "fragment");
        assert_eq!(truncation("of the", 3).unwrap().0, "fragment");
        for value in ["600 euros", "Lyon", "Every 90 days", "30000 kilometres."] {
            assert_eq!(truncation(value, 3), None, "a short answer naming a value is complete: {value}");
        }
        assert!(truncation("Pedestrians must wear a high-visibility", 3).is_some(), "longer answers need an end");
        assert_eq!(truncation("  ", 3).unwrap().0, "fragment");
        let (check, why) = truncation("They must inform their line manager before 09:30 on the first", 3).unwrap();
        assert_eq!(check, "truncated");
        assert!(why.contains("without a full stop"), "{why}");
        assert!(truncation("Claims must be approved by the line manager and,", 3).is_some());
        assert!(truncation("It is sent to the buyer who raised the", 3).unwrap().1.contains("\"the\""));
        assert!(truncation("The limit is set by the.", 3).is_some());
        assert!(truncation("It is tagged \"Do not use and reported", 3).is_some());
        assert!(truncation("The kettle holds up to 1.7 litres (about 7 cups", 3).is_some());
        for fine in [
            "Employees get 25 days of paid leave per year.",
            "It is tagged \"Do not use\" and reported to the shift supervisor.",
            "Phishing is reported with the button labelled \"Report phishing.\"",
            "Is it allowed? No, Bluetooth is not supported!",
            "Charging takes 3 hours (from empty).",
            "It is the one you report to.",
        ] {
            assert_eq!(truncation(fine, 3), None, "{fine}");
        }
    }

    #[test]
    fn an_answer_without_a_full_stop_is_complete_where_the_context_ends_the_same_way() {
        let context = "Service accounts are exempt and use vaulted credentials, which are rotated every 90 days.\n\
            P3 and P4 tickets get a first response within 2 business days. Pedestrians must wear a \
            high-visibility vest in the loading area.";
        assert_eq!(truncation_in("Their credentials are rotated every 90 days", context, 3), None);
        assert!(truncation_in("P3 and P4 tickets get a first response within 2 business", context, 3).is_some());
        assert!(truncation_in("Pedestrians must wear a high-visibility", context, 3).is_some());
        assert!(truncation_in("They are rotated every 90", context, 3).is_some(), "mid-phrase in the context");
        assert!(truncation_in("It is sent to the buyer who raised the", context, 3).is_some());
        assert!(
            truncation_in("They are vaulted credentials (rotated every 90 days", context, 3).is_some(),
            "open bracket"
        );
    }

    #[test]
    fn template_text_is_found_in_drafts_and_rationales() {
        let e = echo();
        let ctx = "Employees get 25 days of paid leave per year.";
        assert!(e.copied("One short sentence naming the main weakness, or why it is good.", ctx).is_some());
        assert!(e.copied("The direct answer to that same question in 1-3 sentences.", ctx).is_some());
        assert_eq!(e.copied("See {example} here", ctx).as_deref(), Some("{example}"));
        assert_eq!(e.copied("Employees get 25 days of paid leave per year.", ctx), None);
        // Words the template shares with the context are the context's.
        let quoting = "judge this training example against the context";
        assert!(e.copied(quoting, "").is_some());
        assert_eq!(e.copied(quoting, quoting), None);
        assert_eq!(Echo::new([JUDGE], &["example"], 0).copied(JUDGE, ""), None, "0 disables");
    }

    #[test]
    fn a_draft_is_screened_turn_by_turn() {
        let cfg = VerdictChecks::default();
        let ctx = "Employees get 25 days of paid leave per year. Unused days expire on 31 March.";
        let turns = [
            ("How much leave do I get?", "Employees get 25 days of paid leave per year."),
            ("When do unused days expire?", "Unused days expire on 31 March."),
            ("Can I carry days over?", "In a"),
        ];
        let s = screen(&turns, ctx, &echo(), &cfg).unwrap();
        assert_eq!((s.check, s.reason, s.in_answer), ("fragment", RejectReason::Truncated, true));
        assert!(s.finding.starts_with("turn 3: "), "{}", s.finding);
        let echoed = [("One question, different from the earlier ones?", "Employees get 25 days of paid leave.")];
        let s = screen(&echoed, ctx, &echo(), &cfg).unwrap();
        assert_eq!((s.check, s.in_answer), ("echoed_template", false));
        assert!(screen(&turns[..2], ctx, &echo(), &cfg).is_none());
        let off = VerdictChecks { truncation: false, ..cfg.clone() };
        let s = screen(&turns, ctx, &echo(), &off).unwrap();
        assert!(!matches!(s.check, "fragment" | "truncated"), "truncation checks are off: {s:?}");
        // The draft checks run too: an answer with a number the context does not state.
        let made_up = [("How much leave do I get?", "Employees get 30 days of paid leave per year.")];
        let s = screen(&made_up, ctx, &echo(), &cfg).unwrap();
        assert_eq!((s.check, s.reason, s.in_answer), ("ungrounded", RejectReason::Ungrounded, true));
    }

    #[test]
    fn the_tone_of_a_rationale_is_read_with_its_negations() {
        assert_eq!(tone("Correct and directly quotes from the context, so it is flawless."), Tone::Praise);
        assert_eq!(tone("The answer invents an 80% salary payment."), Tone::Severe);
        assert_eq!(tone("No invented facts; the answer is accurate."), Tone::Praise);
        assert_eq!(tone("Nothing in the answer is wrong or unsupported."), Tone::Praise);
        assert_eq!(tone("The answer is not correct: the limit is 5 days."), Tone::Severe);
        assert_eq!(tone("The deadline is not mentioned in the context."), Tone::Severe);
        assert_eq!(tone("Good, but it could name the approver."), Tone::Minor);
        assert_eq!(tone("The question is trivial."), Tone::Severe);
        assert_eq!(tone("Employees get 25 days of paid leave per year."), Tone::Neutral);
    }

    #[test]
    fn verdicts_that_contradict_themselves_are_distrusted() {
        let e = Echo::new([JUDGE], &["example"], 5);
        let ctx = "Leave is 25 days.";
        // The three seen from small judges.
        let placeholder = distrust("One short sentence naming the main weakness, or why it is good.", 5, 4, &e, ctx);
        assert!(matches!(placeholder, Some(Distrust::Placeholder(_))), "{placeholder:?}");
        assert_eq!(
            distrust("Correct and directly quotes from the context, so it is flawless.", 1, 4, &e, ctx),
            Some(Distrust::PraiseLowScore)
        );
        assert_eq!(
            distrust("The definition is invented; nothing supports it.", 4, 4, &e, ctx),
            Some(Distrust::FlawHighScore)
        );
        assert_eq!(distrust("Good, but it could name the approver.", 5, 4, &e, ctx), Some(Distrust::FlawHighScore));
        assert!(matches!(distrust("ok", 5, 4, &e, ctx), Some(Distrust::Placeholder(_))));
        // Consistent verdicts.
        assert_eq!(distrust("Good, but it could name the approver.", 4, 4, &e, ctx), None);
        assert_eq!(distrust("The answer invents an approver.", 1, 4, &e, ctx), None);
        assert_eq!(distrust("Accurate and complete, taken from the policy.", 5, 4, &e, ctx), None);
        assert_eq!(distrust("Employees get 25 days of paid leave.", 2, 4, &e, ctx), None);
    }
}
