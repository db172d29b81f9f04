//! Cheap, deterministic checks of a generated pair before any judge tokens are spent on it: the question
//! is a real question that does not just copy the context, every number in the answer appears in the
//! context, and most of the answer's content words do. Small models hallucinate arithmetic and pad
//! questions; these catch much of it for free.

use std::collections::HashSet;

use distillery_core::RejectReason;
use serde::{Deserialize, Serialize};

use crate::text::{STOPWORDS, content_words, every_sentence, stem, stems, words};

/// Thresholds of the pre-judge checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QualityConfig {
    /// Share of the answer's content words that must appear in the context (0 disables).
    pub min_grounding: f32,
    /// Reject answers stating numbers the context does not contain.
    pub check_numbers: bool,
    /// Reject questions whose words are more than this share copied in order from the context.
    pub max_question_copy: f32,
    /// Share of a QA answer's content words (at least [`STRAY_MIN_WORDS`] of them) that may be in neither
    /// the sentence the pair was written about nor its question; above it the answer is about other
    /// sentences and goes to a repair (1 disables).
    pub max_stray: f32,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig { min_grounding: 0.5, check_numbers: true, max_question_copy: 0.9, max_stray: 0.4 }
    }
}

impl QualityConfig {
    pub fn validate(&self, section: &str, errors: &mut Vec<String>) {
        if !(0.0..=1.0).contains(&self.min_grounding) {
            errors.push(format!("{section}.min_grounding must be in [0, 1]"));
        }
        if !(0.0..=1.0).contains(&self.max_question_copy) {
            errors.push(format!("{section}.max_question_copy must be in [0, 1]"));
        }
        if !(0.0..=1.0).contains(&self.max_stray) {
            errors.push(format!("{section}.max_stray must be in [0, 1]"));
        }
    }
}

/// Fewest content words outside its sentence and question that make an answer stray (a short answer with
/// one synonym is not straying).
pub const STRAY_MIN_WORDS: usize = 5;

/// A QA answer stays on the sentence(s) it was written about: most of its content words are in that
/// evidence or in its question. 0.5B, given a plan of several sentences, opened answers with the plan's first
/// sentence ("Larkspur Instruments designs and builds precision flow meters for water utilities with a
/// standard working week of 37.5 hours"), which the whole-context grounding check cannot see and its judge
/// passed 5/5 (four of ten kept pairs of a side-by-side run).
pub fn check_on_evidence(
    question: &str,
    answer: &str,
    evidence: Option<&str>,
    cfg: &QualityConfig,
) -> Result<(), (RejectReason, String)> {
    let Some(evidence) = evidence.filter(|e| !e.trim().is_empty()) else { return Ok(()) };
    if cfg.max_stray >= 1.0 {
        return Ok(());
    }
    let known: HashSet<String> = stems(evidence).into_iter().chain(stems(question)).collect();
    let words = content_words(answer);
    if let Some(stray) = too_many_stray(&words, |s| known.contains(s), cfg.max_stray) {
        let shown: Vec<&str> = stray.iter().take(6).copied().collect();
        return Err((
            RejectReason::Ungrounded,
            format!(
                "the answer strays from its sentence (\"{}\"): {} of its {} content words are in neither that sentence nor the question ({})",
                evidence.trim(),
                stray.len(),
                words.len(),
                shown.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Share of the answer's content words found in the context.
pub fn grounding(answer: &str, context: &str) -> f32 {
    let ctx: HashSet<String> = content_words(context).iter().map(|w| stem(w).to_string()).collect();
    let ans = content_words(answer);
    if ans.is_empty() {
        return 1.0;
    }
    ans.iter().filter(|w| ctx.contains(stem(w))).count() as f32 / ans.len() as f32
}

/// Numbers in `text` (digits with `,`/`.` separators normalised away). Clock times are one number each
/// ("09:30" and "9.30 am" are "9:30", "3 pm" is "15:00"), so an answer's "10 days" is not supported by a
/// context's "10:00".
pub fn numbers(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let digit = |i: usize| chars.get(i).is_some_and(char::is_ascii_digit);
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !digit(i) {
            i += 1;
            continue;
        }
        let mut cur = String::new();
        while i < chars.len() {
            let c = chars[i];
            if c.is_ascii_digit() {
                cur.push(c);
            } else if (c == ',' || c == '.') && digit(i + 1) {
                if c == '.' {
                    cur.push('.');
                }
            } else {
                break;
            }
            i += 1;
        }
        // "10:00", "9:30": hours (up to 2 digits), a colon, two minute digits.
        if chars.get(i) == Some(&':') && cur.len() <= 2 && digit(i + 1) && digit(i + 2) && !digit(i + 3) {
            let minutes: String = chars[i + 1..i + 3].iter().collect();
            i += 3;
            let hour: u32 = cur.parse().unwrap_or(0);
            let hour = meridiem(&chars, &mut i).map_or(hour, |pm| twenty_four(hour, pm));
            out.push(format!("{hour}:{minutes}"));
            continue;
        }
        // "3 pm", "9.30 a.m.": a time written with a meridiem.
        let save = i;
        if let Some(pm) = meridiem(&chars, &mut i) {
            let (h, m) = cur.split_once('.').unwrap_or((&cur, "00"));
            if let (Ok(h), true) = (h.parse::<u32>(), m.len() == 2 && h.len() <= 2) {
                out.push(format!("{}:{m}", twenty_four(h, pm)));
                continue;
            }
            i = save;
        }
        out.push(cur);
    }
    out
}

/// Reads an "am"/"a.m."/"pm"/"p.m." after optional spaces at `*i`; true for pm. Moves `*i` past it.
fn meridiem(chars: &[char], i: &mut usize) -> Option<bool> {
    let mut j = *i;
    while chars.get(j) == Some(&' ') {
        j += 1;
    }
    let word: String = chars[j.min(chars.len())..].iter().take(4).collect::<String>().to_lowercase();
    let (pm, len) = if word.starts_with("a.m.") || word.starts_with("p.m.") {
        (word.starts_with('p'), 4)
    } else if word.starts_with("am") || word.starts_with("pm") {
        (word.starts_with('p'), 2)
    } else {
        return None;
    };
    if chars.get(j + len).is_some_and(|c| c.is_alphanumeric()) {
        return None;
    }
    *i = j + len;
    Some(pm)
}

fn twenty_four(hour: u32, pm: bool) -> u32 {
    match (hour, pm) {
        (12, false) => 0,
        (h, true) if h < 12 => h + 12,
        (h, _) => h,
    }
}

/// Numbers the answer states that the context does not contain.
pub fn unsupported_numbers(answer: &str, context: &str) -> Vec<String> {
    let ctx: HashSet<String> = numbers(context).into_iter().collect();
    let mut missing: Vec<String> = numbers(answer).into_iter().filter(|n| !ctx.contains(n)).collect();
    missing.dedup();
    missing
}

/// Longest run of the question's words that appears in the same order in the context, as a share.
pub fn copied_share(question: &str, context: &str) -> f32 {
    let q = words(question);
    if q.len() < 6 {
        return 0.0;
    }
    let ctx = format!(" {} ", words(context).join(" "));
    let mut best = 0;
    for start in 0..q.len() {
        for end in (start + best + 1)..=q.len() {
            if ctx.contains(&format!(" {} ", q[start..end].join(" "))) {
                best = end - start;
            } else {
                break;
            }
        }
    }
    best as f32 / q.len() as f32
}

/// Whether the context asks this very question, question mark included (case and spacing aside).
fn asked_by(question: &str, context: &str) -> bool {
    let fold = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let q = fold(question);
    q.ends_with('?') && fold(context).contains(&q)
}

/// Checks one pair; the error carries the rejection reason and why. The question is checked first
/// ([`check_question`]), then the answer ([`check_reply`]).
pub fn check_pair(
    question: &str,
    answer: &str,
    context: &str,
    cfg: &QualityConfig,
) -> Result<(), (RejectReason, String)> {
    check_question(question, context, cfg)?;
    check_reply(question, answer, context, cfg)
}

/// A question as the model meant to write it, before any check: what follows its first question mark is
/// dropped when the part before it is a question of its own (small models append the answer or a second
/// question: "What maintenance does it need? It needs none."), and a question opening with an interrogative
/// word gets the question mark it lacks ("What is the notice period." or "... period"). Anything else is
/// left as it is, for the checks to judge.
pub fn tidy_question(question: &str) -> String {
    const OPENERS: &[&str] = &[
        "what", "who", "whom", "whose", "which", "when", "where", "why", "how", "is", "are", "can", "does", "do",
        "did", "may", "must", "should", "will", "would", "could", "has", "have", "was", "were", "shall",
    ];
    let q = question.trim();
    if let Some(i) = q.find('?') {
        let head = &q[..=i];
        return if words(head).len() >= 3 { head.to_string() } else { q.to_string() };
    }
    let opens = words(q).first().is_some_and(|w| OPENERS.contains(&w.as_str()));
    let body = q.trim_end_matches(['.', ':', ';', ' ']);
    if opens && !body.contains(['.', '!']) && words(body).len() >= 3 { format!("{body}?") } else { q.to_string() }
}

/// The question alone: exactly one question, sensible without the source, not copied from the context.
/// A flaw here cannot be mended by rewriting the answer.
pub fn check_question(question: &str, context: &str, cfg: &QualityConfig) -> Result<(), (RejectReason, String)> {
    let q = question.trim();
    if !q.ends_with('?') || q.matches('?').count() > 1 {
        return Err((RejectReason::InvalidRecord, "the question is not exactly one question".into()));
    }
    if let Some(phrase) = source_talk(q) {
        return Err((RejectReason::InvalidRecord, format!("the question needs the source to make sense ({phrase:?})")));
    }
    if let Some(pronoun) = unnamed_subject(q) {
        return Err((
            RejectReason::InvalidRecord,
            format!("the question names nothing it is about, only {pronoun:?}: it needs the source to make sense"),
        ));
    }
    let copied = copied_share(q, context);
    // A question the document itself asks (an FAQ heading) is a question its readers have: copying it is
    // not copying a statement.
    if copied > cfg.max_question_copy && !asked_by(q, context) {
        return Err((
            RejectReason::InvalidRecord,
            format!("{:.0}% of the question is copied from the context", copied * 100.0),
        ));
    }
    Ok(())
}

/// The answer to a (sound) question: it answers, and it is grounded in the context. A flaw here can be
/// mended by rewriting the answer.
pub fn check_reply(
    question: &str,
    answer: &str,
    context: &str,
    cfg: &QualityConfig,
) -> Result<(), (RejectReason, String)> {
    check_answer(question.trim(), answer)?;
    check_grounded(question, answer, context, cfg)?;
    check_within_two_sentences(question, answer, context, cfg)
}

/// The answer's content words whose stems are not `known`, when they are too many to be a paraphrase: at
/// least [`STRAY_MIN_WORDS`] and more than `max_stray` of all its content words.
fn too_many_stray(words: &[String], known: impl Fn(&str) -> bool, max_stray: f32) -> Option<Vec<&str>> {
    let stray: Vec<&str> = words.iter().filter(|w| !known(stem(w))).map(String::as_str).collect();
    (stray.len() >= STRAY_MIN_WORDS && stray.len() as f32 > max_stray * words.len() as f32).then_some(stray)
}

/// A QA answer rests on at most two sentences of its context: most of its content words are in the two
/// sentences that hold the most of them, or in its question. The whole-context grounding check passes an
/// answer built from words scattered over the context: "a cost-centre owner is the finance director of a
/// business unit, who signs off the unit's budget every January" took each word from somewhere, and the
/// 1.5B critic passed it as "the context states that ...". The generator's own drafts are held to their
/// planned sentence ([`check_on_evidence`]); this holds an answer from anywhere to the best two, with the
/// same bounds (`max_stray`, at least [`STRAY_MIN_WORDS`] stray words).
pub fn check_within_two_sentences(
    question: &str,
    answer: &str,
    context: &str,
    cfg: &QualityConfig,
) -> Result<(), (RejectReason, String)> {
    if cfg.max_stray >= 1.0 {
        return Ok(());
    }
    let asked = stems(question);
    let words: Vec<String> = content_words(answer);
    // The stems of the answer's content words that its question does not name: too few to stray, no search.
    let open: Vec<&str> = words.iter().map(|w| stem(w)).filter(|s| !asked.contains(*s)).collect();
    if open.len() < STRAY_MIN_WORDS {
        return Ok(());
    }
    let held: Vec<HashSet<String>> = every_sentence(context).map(|s| stems(&s)).collect();
    let covered = |i: usize, j: usize| open.iter().filter(|w| held[i].contains(**w) || held[j].contains(**w)).count();
    let (mut best, mut at) = (0, (0, 0));
    for i in 0..held.len() {
        for j in i..held.len() {
            let c = covered(i, j);
            if c > best {
                (best, at) = (c, (i, j));
            }
        }
    }
    let in_best =
        |w: &str| asked.contains(w) || [at.0, at.1].iter().any(|&k| held.get(k).is_some_and(|s| s.contains(w)));
    if let Some(stray) = too_many_stray(&words, in_best, cfg.max_stray) {
        let shown: Vec<&str> = stray.iter().take(6).copied().collect();
        return Err((
            RejectReason::Ungrounded,
            format!(
                "the answer rests on no one or two sentences of the context: {} of its {} content words are in neither \
                 the two sentences that hold most of it nor the question ({})",
                stray.len(),
                words.len(),
                shown.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Every number the answer states, and most of its content words, are in the context or in the question it
/// answers (a question may pose a case, "a claim of 800 EUR", that the answer rightly names again).
fn check_grounded(
    question: &str,
    answer: &str,
    context: &str,
    cfg: &QualityConfig,
) -> Result<(), (RejectReason, String)> {
    let basis = format!("{context}\n{question}");
    let context = basis.as_str();
    if cfg.check_numbers {
        let missing = unsupported_numbers(answer, context);
        if !missing.is_empty() {
            return Err((
                RejectReason::Ungrounded,
                format!("the answer states numbers the context does not: {}", missing.join(", ")),
            ));
        }
    }
    let g = grounding(answer, context);
    if g < cfg.min_grounding {
        return Err((
            RejectReason::Ungrounded,
            format!("only {:.0}% of the answer's content words are in the context", g * 100.0),
        ));
    }
    Ok(())
}

/// The answer must answer: not be empty, not be a question itself, not repeat the question.
pub fn check_answer(question: &str, answer: &str) -> Result<(), (RejectReason, String)> {
    let a = answer.trim();
    if a.is_empty() {
        return Err((RejectReason::InvalidRecord, "the answer is empty".into()));
    }
    if a.ends_with('?') {
        return Err((RejectReason::InvalidRecord, "the answer is a question".into()));
    }
    if near_duplicate(question, a) {
        return Err((RejectReason::InvalidRecord, "the answer repeats the question".into()));
    }
    if let Some(phrase) = source_talk(a) {
        return Err((
            RejectReason::InvalidRecord,
            format!("the answer talks about its source ({phrase:?}) instead of answering"),
        ));
    }
    if adds_nothing(question, a) {
        return Err((
            RejectReason::InvalidRecord,
            "the answer adds nothing to the question (a trivial yes that restates it)".into(),
        ));
    }
    Ok(())
}

/// Words that make a short answer say something the question did not: a denial.
const NEGATIONS: &[&str] =
    &["no", "not", "never", "cannot", "none", "neither", "nor", "isn", "aren", "doesn", "don", "didn", "won", "wasn"];

/// An answer that only affirms its question: every content word and number of it is already in the
/// question, and it denies nothing ("Does X offer support? Yes, X offers support.").
pub fn adds_nothing(question: &str, answer: &str) -> bool {
    let q = stems(question);
    // Every word of the question, short ones too: "Does X use passwords? Yes, X uses passwords." ("use" is
    // too short to be a content word; "uses" is one).
    let q_words: HashSet<String> = words(question).into_iter().collect();
    let inflected =
        |w: &str| ["s", "es", "d", "ed"].iter().any(|s| w.strip_suffix(s).is_some_and(|r| q_words.contains(r)));
    let q_numbers = numbers(question);
    content_words(answer).iter().all(|w| q.contains(stem(w)) || q_words.contains(w) || inflected(w))
        && numbers(answer).iter().all(|n| q_numbers.contains(n))
        && !words(answer).iter().any(|w| NEGATIONS.contains(&w.as_str()))
}

/// Phrases that point at the generation prompt's material rather than at the subject: an assistant trained on
/// them answers "the context states ..." to users who never saw a context.
const SOURCE_TALK: &[&str] = &[
    "the context",
    "this context",
    "provided context",
    "the passage",
    "this passage",
    "the excerpt",
    "the evidence provided",
    "the provided evidence",
    "the provided text",
    "the text states",
    "the text says",
    "according to the text",
    "the information provided",
    "the provided information",
    // The document's own layout: a question about which point or sentence says something teaches nothing
    // about the subject.
    "numbered point",
    "numbered item",
    "numbered paragraph",
    "this section",
    "of the section",
    "first sentence",
    "last sentence",
];

/// A short question (six words or fewer) whose only subject is a pronoun and that names nothing: no
/// capitalised word after its first, no number ("How accurate is it?", "What does it measure?"). Small
/// models copy such questions from FAQ headings; without the heading's document they mean nothing.
pub fn unnamed_subject(question: &str) -> Option<&'static str> {
    const PRONOUNS: &[&str] = &["it", "they", "them", "this", "these", "those", "he", "she"];
    let raw: Vec<&str> =
        question.split(|c: char| !c.is_alphanumeric() && c != '\'' && c != '-').filter(|w| !w.is_empty()).collect();
    if raw.len() > 6 || raw.iter().any(|w| w.chars().any(|c| c.is_ascii_digit())) {
        return None;
    }
    if raw.iter().skip(1).any(|w| w.chars().next().is_some_and(char::is_uppercase)) {
        return None;
    }
    raw.iter().find_map(|w| PRONOUNS.iter().copied().find(|p| p.eq_ignore_ascii_case(w)))
}

/// The first phrase of `text` that talks about the source material, if any.
pub fn source_talk(text: &str) -> Option<&'static str> {
    let folded = format!(" {} ", words(text).join(" "));
    SOURCE_TALK.iter().copied().find(|p| folded.contains(&format!(" {p} ")))
}

/// Checks a conversation turn by turn: the user's turns first ([`check_users`]), then the assistant's
/// ([`check_replies`]).
pub fn check_conversation(
    turns: &[(&str, &str)],
    context: &str,
    cfg: &QualityConfig,
) -> Result<(), (RejectReason, String)> {
    check_users(turns)?;
    check_replies(turns, context, cfg)
}

/// The user's side: every turn says something, asks one thing, and does not repeat an earlier question.
/// A flaw here cannot be mended by rewriting the answers.
pub fn check_users(turns: &[(&str, &str)]) -> Result<(), (RejectReason, String)> {
    for (i, (user, _)) in turns.iter().enumerate() {
        let n = i + 1;
        if user.trim().is_empty() {
            return Err((RejectReason::InvalidRecord, format!("turn {n}: the user says nothing")));
        }
        if user.matches('?').count() > 1 {
            return Err((RejectReason::InvalidRecord, format!("turn {n}: the user asks several questions at once")));
        }
        if turns[..i].iter().any(|(u, _)| near_duplicate(u, user)) {
            return Err((RejectReason::InvalidRecord, format!("turn {n}: the user repeats an earlier question")));
        }
    }
    Ok(())
}

/// The assistant's side: every turn answers its own user turn, holds up on its own (numbers and words
/// grounded in the context) and does not repeat an earlier answer. A flaw here can be mended by rewriting
/// the answers.
pub fn check_replies(turns: &[(&str, &str)], context: &str, cfg: &QualityConfig) -> Result<(), (RejectReason, String)> {
    for (i, (user, assistant)) in turns.iter().enumerate() {
        let n = i + 1;
        check_answer(user, assistant).map_err(|(r, why)| (r, format!("turn {n}: {why}")))?;
        if turns[..i].iter().any(|(_, a)| near_duplicate(a, assistant)) {
            return Err((RejectReason::InvalidRecord, format!("turn {n}: the assistant repeats an earlier answer")));
        }
        check_grounded(user, assistant, context, cfg).map_err(|(r, why)| (r, format!("turn {n}: {why}")))?;
    }
    let shifted = misaligned_turns(turns);
    if shifted.len() >= 2 && shifted.len() * 2 > turns.len() {
        let list = shifted.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ");
        return Err((
            RejectReason::InvalidRecord,
            format!("turns {list}: the answers fit another turn's question better than their own (shifted turns)"),
        ));
    }
    Ok(())
}

/// Turns (1-based) whose answer shares more content words with another turn's question than with its own:
/// a small model sometimes writes the answers one exchange late or early. One such turn is normal (a
/// follow-up like "Can I carry it over?" leans on the previous question); most turns being so is not.
pub fn misaligned_turns(turns: &[(&str, &str)]) -> Vec<usize> {
    let questions: Vec<HashSet<String>> = turns.iter().map(|(u, _)| stems(u)).collect();
    turns
        .iter()
        .enumerate()
        .filter(|(i, (_, a))| {
            let answer = stems(a);
            let own = questions[*i].intersection(&answer).count();
            questions.iter().enumerate().any(|(j, q)| j != *i && q.intersection(&answer).count() > own)
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// A regenerated answer that copies the critic's feedback instead of answering (small models do: half or
/// more of the answer's words in one run from the rationale). A critic quoting the context is no reason to
/// reject an answer that quotes the same words: only a run longer than any the answer shares with the
/// context counts.
pub fn check_not_feedback(answer: &str, rationale: &str, context: &str) -> Result<(), (RejectReason, String)> {
    let copied = copied_share(answer, rationale);
    if copied >= 0.5 && copied > copied_share(answer, context) {
        return Err((
            RejectReason::InvalidRecord,
            format!("{:.0}% of the answer is copied from the critic's feedback", copied * 100.0),
        ));
    }
    Ok(())
}

/// Words that carry no topic: two questions differing only in these ask the same thing.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "did", "do", "does", "for", "how", "i", "in", "is", "it",
    "me", "my", "of", "on", "or", "our", "the", "to", "was", "we", "what", "who", "you",
];

/// Near-identical texts: Jaccard >= 0.8 over their topic words (stemmed, function words left out), so that
/// "the policies regarding annual leave" and "... sick leave" differ while "How many days of leave?" and
/// "How many leave days?" do not.
pub fn near_duplicate(a: &str, b: &str) -> bool {
    let keys = |t: &str| -> HashSet<String> {
        let all = words(t);
        let topical: HashSet<String> = all
            .iter()
            .filter(|w| !FUNCTION_WORDS.contains(&w.as_str()) && !STOPWORDS.contains(&w.as_str()))
            .map(|w| stem(w).to_string())
            .collect();
        if topical.is_empty() { all.into_iter().collect() } else { topical }
    };
    let (x, y) = (keys(a), keys(b));
    if x.is_empty() || y.is_empty() {
        return x == y;
    }
    x.intersection(&y).count() as f32 / x.union(&y).count() as f32 >= 0.8
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_answer_that_only_affirms_its_question_adds_nothing() {
        assert!(adds_nothing("Does Mirela Cloud offer support?", "Yes, Mirela Cloud offers support."));
        assert!(adds_nothing("Do employees need to tell anyone when they are ill?", "Yes, they do."));
        assert!(adds_nothing("Does Halden & Price reimburse expenses?", "Yes, Halden & Price reimburses expenses."));
        assert!(
            adds_nothing("Does Corvel Systems use passwords?", "Yes, Corvel Systems uses passwords."),
            "use / uses"
        );
        assert!(!adds_nothing("Is Bluetooth supported?", "No, Bluetooth is not supported."), "a denial says something");
        assert!(!adds_nothing("How many days of leave do I get?", "25 days."), "a number the question lacks");
        assert!(!adds_nothing("Who approves leave?", "The line manager approves leave."));
        assert!(check_answer("Does X offer support?", "Yes, X offers support.").is_err());
        assert!(source_talk("Which numbered point of the policy mentions the status page?").is_some());
    }

    use super::*;

    const CTX: &str = "Full-time employees receive 25 days of paid annual leave per calendar year, plus public holidays. \
        Up to 5 unused days may be carried over to the next year; expenses up to 2,000 NOK are approved by the line manager.";

    #[test]
    fn grounded_answers_pass() {
        let cfg = QualityConfig::default();
        assert!(
            check_pair(
                "How many days of annual leave do full-time employees get?",
                "They receive 25 days of paid annual leave per year.",
                CTX,
                &cfg
            )
            .is_ok()
        );
        assert!(
            check_pair("Who approves small expenses?", "The line manager approves expenses up to 2000 NOK.", CTX, &cfg)
                .is_ok()
        );
    }

    #[test]
    fn hallucinated_numbers_and_words_fail() {
        let cfg = QualityConfig::default();
        let (r, why) =
            check_pair("How much leave is there?", "25 + 5 = 35 days of leave, about 1.39% of hours.", CTX, &cfg)
                .unwrap_err();
        assert_eq!(r, RejectReason::Ungrounded);
        assert!(why.contains("35") && why.contains("1.39"), "{why}");
        // A clock time does not support a count that shares its hour.
        let hours = "Core hours are 10:00 to 15:00. Employees who are ill notify their manager before 09:30.";
        assert_eq!(unsupported_numbers("You can carry over up to 10 unused days.", hours), vec!["10"]);
        assert!(unsupported_numbers("Core hours run from 10 am to 3 pm; call in before 9:30.", hours).is_empty());
        let (r, _) = check_pair(
            "What about pensions?",
            "Pension contributions are matched by quarterly bonuses and stock grants.",
            CTX,
            &cfg,
        )
        .unwrap_err();
        assert_eq!(r, RejectReason::Ungrounded);
    }

    #[test]
    fn an_answer_built_from_words_scattered_over_the_context_fails() {
        let cfg = QualityConfig::default();
        let ctx = "Expense claims are approved by the cost-centre owner. The finance team reconciles company cards \
                   monthly. A director may approve travel above 2,000 EUR. Each business reports to the board. A unit \
                   of work is logged in hours. Employees sign the travel policy when they join. The budget is reviewed every quarter. The \
                   financial year starts in January. Receipts must be uploaded within 30 days.";
        let q = "What is a cost-centre owner?";
        // Every word is somewhere in the context (the whole-context check passes it), none of it in one place.
        let scattered = "A cost-centre owner is the finance director of a business unit, who signs off the unit's budget every January.";
        assert_eq!(check_grounded(q, scattered, ctx, &cfg), Ok(()), "grounded word by word");
        let (reason, why) = check_reply(q, scattered, ctx, &cfg).expect_err("scattered");
        assert_eq!(reason, RejectReason::Ungrounded);
        assert!(why.contains("rests on no one or two sentences") && why.contains("director"), "{why}");
        // An answer from one sentence, or from two (a multi-hop pair), passes; so does a short one.
        for fine in [
            "The cost-centre owner approves expense claims.",
            "The cost-centre owner approves expense claims, and the budget is reviewed every quarter.",
            "They approve claims.",
        ] {
            assert_eq!(check_reply(q, fine, ctx, &cfg), Ok(()), "{fine}");
        }
        // max_stray = 1 turns it off.
        assert_eq!(check_within_two_sentences(q, scattered, ctx, &QualityConfig { max_stray: 1.0, ..cfg }), Ok(()));
    }

    /// Answers of a 0.5B side-by-side run that opened with another sentence of the plan stray; answers that
    /// quote, shorten or paraphrase their sentence (or a multi-hop pair's two) do not.
    #[test]
    fn answers_that_stray_from_their_sentence_fail() {
        let cfg = QualityConfig::default();
        let stray = [
            (
                "What is the standard working week for Larkspur Instruments?",
                "Larkspur Instruments designs and builds precision flow meters for water utilities with a standard \
                 working week of 37.5 hours.",
                "The standard working week is 37.5 hours, Monday to Friday.",
            ),
            (
                "What is the core hours for Larkspur Instruments?",
                "Larkspur Instruments designs and builds precision flow meters for water utilities with core hours of \
                 10:00 to 15:00.",
                "Core hours are 10:00 to 15:00; outside core hours employees choose when to start and finish, as long \
                 as the weekly total is met.",
            ),
            (
                "What are the conditions for returning employees from parental leave?",
                "Employees must return work-related expenses up to 2,000 NOK, and larger amounts need approval from \
                 the finance controller.",
                "Employees returning from parental leave may work 80% of their hours at full pay for the first eight \
                 weeks back.",
            ),
        ];
        for (q, a, e) in stray {
            let (reason, why) = check_on_evidence(q, a, Some(e), &cfg).expect_err(a);
            assert_eq!(reason, RejectReason::Ungrounded);
            assert!(why.contains("strays from its sentence") && why.contains(e), "{why}");
        }
        let on = [
            (
                "What is the minimum length for a password?",
                "14 characters",
                "Passwords must be at least 14 characters long.",
            ),
            (
                "How are leave requests approved at Larkspur Instruments?",
                "Employees submit them in the HR portal, and the line manager approves them two weeks ahead.",
                "Leave requests are made in the HR portal and must be approved by the line manager at least two weeks \
                 before the first day of leave.",
            ),
            (
                "What does the FM-400 measure?",
                "The FM-400 measures the volumetric flow of clean water in closed pipes with a nominal diameter from \
                 DN50 to DN600.",
                "The FM-400 measures the volumetric flow of clean water in closed pipes with a nominal diameter from \
                 DN50 to DN600.",
            ),
            (
                "How much leave can a full-time employee carry over, and until when?",
                "Full-time employees get 25 days a year and may carry up to 5 unused days over, which expire on 31 March.",
                "Full-time employees receive 25 days of paid annual leave per calendar year, plus public holidays. Up \
                 to 5 unused days may be carried over to the next year; carried-over days expire on 31 March.",
            ),
        ];
        for (q, a, e) in on {
            assert_eq!(check_on_evidence(q, a, Some(e), &cfg), Ok(()), "{a}");
        }
        // Without a sentence (a conversation, a user template) or when disabled, nothing is checked.
        let (q, a, _) = stray[0];
        assert_eq!(check_on_evidence(q, a, Some(" "), &cfg), Ok(()));
        assert_eq!(check_on_evidence(q, a, None, &cfg), Ok(()));
        assert_eq!(check_on_evidence(q, a, Some(stray[0].2), &QualityConfig { max_stray: 1.0, ..cfg }), Ok(()));
    }

    #[test]
    fn malformed_questions_fail() {
        let cfg = QualityConfig::default();
        assert_eq!(check_pair("Leave policy", "25 days.", CTX, &cfg).unwrap_err().0, RejectReason::InvalidRecord);
        assert_eq!(check_pair("What? And why?", "25 days.", CTX, &cfg).unwrap_err().0, RejectReason::InvalidRecord);
        let copied = "Full-time employees receive 25 days of paid annual leave per calendar year?";
        assert_eq!(check_pair(copied, "25 days.", CTX, &cfg).unwrap_err().0, RejectReason::InvalidRecord);
    }

    #[test]
    fn answers_that_do_not_answer_fail() {
        let cfg = QualityConfig::default();
        let q = "How many days of annual leave do full-time employees get?";
        let (r, why) = check_pair(q, q, CTX, &cfg).unwrap_err();
        assert_eq!(r, RejectReason::InvalidRecord);
        assert!(why.contains("repeats the question") || why.contains("is a question"), "{why}");
        let (_, why) = check_pair(q, "Do they get paid annual leave?", CTX, &cfg).unwrap_err();
        assert!(why.contains("is a question"), "{why}");
        assert!(check_pair(q, "  ", CTX, &cfg).unwrap_err().1.contains("empty"));
    }

    #[test]
    fn conversations_are_checked_turn_by_turn() {
        let cfg = QualityConfig::default();
        let good = [
            ("How much annual leave do I get?", "Full-time employees receive 25 days of paid annual leave per year."),
            ("Can I keep unused days?", "Up to 5 unused days may be carried over to the next year."),
        ];
        assert!(check_conversation(&good, CTX, &cfg).is_ok());
        // An assistant that asks instead of answering (seen from a 0.5B model).
        let asking = [("How do I calculate my annual leave?", "What is the standard working week?")];
        let (r, why) = check_conversation(&asking, CTX, &cfg).unwrap_err();
        assert_eq!(r, RejectReason::InvalidRecord);
        assert!(why.starts_with("turn 1") && why.contains("question"), "{why}");
        let repeated = [
            ("How much annual leave do I get?", "Full-time employees receive 25 days of paid annual leave."),
            ("And what about holidays?", "Full-time employees receive 25 days of paid annual leave."),
        ];
        assert!(check_conversation(&repeated, CTX, &cfg).unwrap_err().1.contains("turn 2: the assistant repeats"));
        let again = [
            ("How much annual leave do I get?", "Full-time employees receive 25 days of paid annual leave."),
            ("How much annual leave do I get?", "Up to 5 unused days may be carried over."),
        ];
        assert!(check_conversation(&again, CTX, &cfg).unwrap_err().1.contains("user repeats"));
        let invented = [
            ("How much annual leave do I get?", "Full-time employees receive 25 days of paid annual leave."),
            ("Who approves expenses?", "The finance director approves expenses above 9,000 NOK."),
        ];
        let (r, why) = check_conversation(&invented, CTX, &cfg).unwrap_err();
        assert_eq!(r, RejectReason::Ungrounded);
        assert!(why.starts_with("turn 2") && why.contains("9000"), "{why}");
        // Which side is at fault decides whether a rewrite of the answers can mend it.
        for answer_side in [&asking[..], &repeated[..], &invented[..]] {
            assert!(check_users(answer_side).is_ok() && check_replies(answer_side, CTX, &cfg).is_err());
        }
        assert!(check_users(&again).is_err());
        let q = "How much leave is there?";
        assert!(check_question(q, CTX, &cfg).is_ok() && check_reply(q, "35 days.", CTX, &cfg).is_err());
        assert!(check_question("What does the context say about leave?", CTX, &cfg).is_err());
    }

    #[test]
    fn text_about_the_source_fails() {
        let cfg = QualityConfig::default();
        let q = "Who approves small expenses?";
        let (r, why) =
            check_pair(q, "The context states that the line manager approves expenses.", CTX, &cfg).unwrap_err();
        assert_eq!(r, RejectReason::InvalidRecord);
        assert!(why.contains("the context"), "{why}");
        let meta = "The evidence provided in the context strongly supports this: expenses up to 2,000 NOK.";
        assert!(check_pair(q, meta, CTX, &cfg).is_err());
        let (_, why) = check_pair("What does the passage say about leave?", "25 days.", CTX, &cfg).unwrap_err();
        assert!(why.contains("question needs the source"), "{why}");
        // Words that merely contain the phrases are fine.
        assert!(source_talk("Codes sent by text message in this contextual menu are not allowed.").is_none());
    }

    #[test]
    fn shifted_or_crowded_conversations_fail() {
        let cfg = QualityConfig::default();
        // Seen from qwen2.5-1.5b: every answer belongs to a neighbouring question.
        let ctx = "The Information Security Policy, version 3.2, is owned by the Security Office and applies to all \
            staff. Only software from the approved catalogue may be installed on company laptops. All remote \
            access requires multi-factor authentication. Version 3.2 replaces every earlier version.";
        let shifted = [
            (
                "Is version 3.2 the current version of the policy?",
                "The Information Security Policy is owned by the Security Office.",
            ),
            ("What does the Security Office say about company laptops?", "Version 3.2 replaces every earlier version."),
            (
                "Is multi-factor authentication required for remote access?",
                "Only software from the approved catalogue may be installed on company laptops.",
            ),
        ];
        assert_eq!(misaligned_turns(&shifted), vec![1, 2, 3]);
        let (r, why) = check_conversation(&shifted, ctx, &cfg).unwrap_err();
        assert_eq!(r, RejectReason::InvalidRecord);
        assert!(why.contains("shifted"), "{why}");
        // A follow-up leaning on the previous question is one misaligned turn, and fine.
        let follow_up = [
            (
                "How much annual leave do full-time employees get?",
                "Full-time employees receive 25 days of paid annual leave.",
            ),
            ("Can I carry it over?", "Up to 5 unused days of annual leave may be carried over to the next year."),
        ];
        assert_eq!(misaligned_turns(&follow_up), vec![2]);
        assert!(check_conversation(&follow_up, CTX, &cfg).is_ok());
        let crowded = [(
            "How much leave? Can I carry it over? Who approves it?",
            "Employees receive 25 days of paid annual leave.",
        )];
        assert!(check_conversation(&crowded, CTX, &cfg).unwrap_err().1.contains("several questions"));
    }

    #[test]
    fn answers_copied_from_the_critic_fail() {
        let rationale = "The example is clear and the question makes sense without the context. It provides a \
            concise overview of the policy, but the answer invents a number.";
        let copied = "The example is clear and the question makes sense without the context. It provides a concise \
            overview of the policy for sick leave.";
        assert!(check_not_feedback(copied, rationale, CTX).unwrap_err().1.contains("critic"));
        let grounded = "Employees receive 25 days of paid annual leave per calendar year.";
        assert!(check_not_feedback(grounded, rationale, CTX).is_ok());
        // The critic quoted the context; an answer quoting the same sentence copies the context, not the critic.
        let quoting = "The context says that full-time employees receive 25 days of paid annual leave per calendar \
            year, so the answer is right but too short.";
        let answer = "Full-time employees receive 25 days of paid annual leave per calendar year.";
        assert!(copied_share(answer, quoting) >= 0.5);
        assert!(check_not_feedback(answer, quoting, CTX).is_ok());
    }

    #[test]
    fn helpers() {
        assert_eq!(numbers("25 days, 2,000 NOK and 1.5 hours; v3.2"), vec!["25", "2000", "1.5", "3.2"]);
        assert_eq!(numbers("core hours 10:00-15:00, before 09:30"), vec!["10:00", "15:00", "9:30"]);
        assert_eq!(
            numbers("from 10 am to 3 p.m., or 9.30 AM; 12 am is 0:00"),
            vec!["10:00", "15:00", "9:30", "0:00", "0:00"]
        );
        assert_eq!(numbers("1.5 hours, 3 pmx, 10:000"), vec!["1.5", "3", "10", "000"]);
        assert!(near_duplicate("How many days of leave?", "How many leave days?"));
        assert!(!near_duplicate("How many days of leave?", "Who approves expenses?"));
        // One topic word apart in a long templated question: different questions (a 1.5B model writes these).
        let annual = "What are the policies regarding annual leave for employees in Larkspur Instruments?";
        let sick = "What are the policies regarding sick leave for employees in Larkspur Instruments?";
        assert!(!near_duplicate(annual, sick));
        assert!(near_duplicate(
            annual,
            "What are the policies regarding annual leave for employees at Larkspur Instruments?"
        ));
        assert!(!near_duplicate("What is the VPN policy?", "What is the SSO policy?"));
        assert!(grounding("carried days expire", "days may be carried over and expire") > 0.99);
        // Questions tidied before their checks: an appended answer dropped, a missing mark added.
        assert_eq!(
            tidy_question("What maintenance does the FM-400 need? It has no moving parts."),
            "What maintenance does the FM-400 need?"
        );
        assert_eq!(tidy_question("What is the notice period for staff."), "What is the notice period for staff?");
        assert_eq!(tidy_question("How long is the warranty"), "How long is the warranty?");
        assert_eq!(tidy_question("Describe the leave policy."), "Describe the leave policy.");
        assert_eq!(tidy_question("Why? Because."), "Why? Because.");
        assert_eq!(tidy_question("What is X. And Y"), "What is X. And Y");
        // A case the question poses may be named again by the answer; a number from nowhere may not.
        let ctx = "Claims above 500 EUR also need approval from the cost-centre owner.";
        let cfg = QualityConfig::default();
        assert!(
            check_reply(
                "Who approves a claim of 800 EUR?",
                "A claim of 800 EUR needs the cost-centre owner's approval.",
                ctx,
                &cfg
            )
            .is_ok()
        );
        let err = check_reply(
            "Who approves a large claim?",
            "A claim of 800 EUR needs the cost-centre owner's approval.",
            ctx,
            &cfg,
        );
        assert!(err.is_err_and(|(_, why)| why.contains("800")));
    }

    #[test]
    fn questions_that_name_nothing_need_their_source() {
        for q in ["How accurate is it?", "What does it measure?", "How is it powered?", "What do they cost?"] {
            assert!(unnamed_subject(q).is_some(), "{q}");
        }
        for q in [
            "How accurate is the FM-400?",
            "How long is it valid after 2024?",
            "What does it mean for employees returning from parental leave to work part time?",
            "Who approves leave longer than two weeks?",
        ] {
            assert_eq!(unnamed_subject(q), None, "{q}");
        }
        let cfg = QualityConfig::default();
        let err = check_question("How is it powered?", "The meter runs on a battery.", &cfg).unwrap_err();
        assert_eq!(err.0, RejectReason::InvalidRecord);
        assert!(err.1.contains("names nothing"), "{}", err.1);
    }

    #[test]
    fn a_question_the_document_asks_is_not_a_copied_statement() {
        let cfg = QualityConfig::default();
        let faq = "What does the FM-400 measure?\nThe FM-400 measures the flow of clean water in closed pipes.";
        assert!(check_question("What does the FM-400 measure?", faq, &cfg).is_ok());
        // A statement of the context with a question mark stuck on is still a copy.
        let err =
            check_question("The FM-400 measures the flow of clean water in closed pipes?", faq, &cfg).unwrap_err();
        assert!(err.1.contains("copied from the context"), "{}", err.1);
    }
}
