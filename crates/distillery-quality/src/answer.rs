//! An example's answer against the judge's own short answer to the same question.
//!
//! Before it sees an example's answer, the judge answers the question itself from the context in a few
//! words (the number, name, time, or yes/no). Extractive answering is what a small model does best, far
//! better than noticing that a fluent answer put a number of the context on the wrong attribute; the
//! comparison of the two answers is done here, without a model: the numbers must meet, a yes must not meet
//! a no, and otherwise the words of the short answer must be in the example's.

use std::collections::HashSet;

use crate::text;

/// How an example's answer compares with the judge's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agreement {
    /// The two answers say the same.
    Agrees,
    /// They differ: why, in words the generator can act on.
    Differs(String),
    /// The judge found no answer in the context.
    NotStated,
}

impl Agreement {
    /// A metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Agreement::Agrees => "agrees",
            Agreement::Differs(_) => "differs",
            Agreement::NotStated => "not_stated",
        }
    }
}

const NUMBER_WORDS: &[(&str, u32)] = &[
    ("zero", 0),
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
    ("eleven", 11),
    ("twelve", 12),
    ("fifteen", 15),
    ("twenty", 20),
    ("thirty", 30),
    ("forty", 40),
    ("fifty", 50),
    ("hundred", 100),
    ("first", 1),
    ("second", 2),
    ("third", 3),
    ("fourth", 4),
    ("fifth", 5),
    ("sixth", 6),
    ("seventh", 7),
    ("eighth", 8),
    ("ninth", 9),
    ("tenth", 10),
    ("once", 1),
    ("twice", 2),
    ("half", 50),
];

/// The numbers a text states, normalised: digits (thousands separators dropped, decimals kept, ordinal
/// suffixes dropped), clock times as `h:mm`, and number words ("six", "fourth") as digits.
pub fn numbers(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let lower = text.to_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || ((chars[i] == ',' || chars[i] == '.' || chars[i] == ':')
                        && i + 1 < chars.len()
                        && chars[i + 1].is_ascii_digit()))
            {
                i += 1;
            }
            let raw: String = chars[start..i].iter().collect();
            out.insert(normalise_number(&raw));
        } else {
            i += 1;
        }
    }
    for w in text::words(text) {
        if let Some((_, n)) = NUMBER_WORDS.iter().find(|(word, _)| *word == w) {
            out.insert(n.to_string());
        }
    }
    out
}

fn normalise_number(raw: &str) -> String {
    if let Some((h, m)) = raw.split_once(':') {
        return format!("{}:{m}", h.trim_start_matches('0').parse::<u32>().unwrap_or(0));
    }
    // "1,500" is fifteen hundred; "1,5" (a decimal comma) stays a decimal.
    let s = match raw.split_once(',') {
        Some((_, frac)) if frac.len() == 3 => raw.replace(',', ""),
        _ => raw.replace(',', "."),
    };
    match s.parse::<f64>() {
        Ok(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", v as i64),
        Ok(v) => format!("{v}"),
        Err(_) => s,
    }
}

/// Questions answered by yes or no.
fn yes_no(question: &str) -> bool {
    const OPENERS: &[&str] = &[
        "can", "is", "are", "do", "does", "did", "may", "must", "should", "will", "would", "could", "has", "have",
        "am", "was", "were", "shall",
    ];
    text::words(question).first().is_some_and(|w| OPENERS.contains(&w.as_str()))
}

/// Whether an answer says yes (true) or no (false): its first word, else whether it negates.
fn polarity(answer: &str) -> bool {
    const NEGATIONS: &[&str] = &[
        "no",
        "not",
        "never",
        "cannot",
        "can't",
        "isn't",
        "aren't",
        "doesn't",
        "don't",
        "mustn't",
        "forbidden",
        "prohibited",
        "neither",
        "nor",
        "none",
    ];
    let words = text::words(&answer.replace(['\u{2019}'], "'"));
    match words.first().map(String::as_str) {
        Some("yes") => true,
        Some("no") => false,
        _ => {
            let joined = answer.to_lowercase();
            !(words.iter().any(|w| NEGATIONS.contains(&w.as_str())) || joined.contains("n't"))
        }
    }
}

/// A short answer without the list number a small model sometimes copies from the numbered questions
/// ("3. 1.7 litres" is "1.7 litres").
fn unnumbered(own: &str) -> &str {
    let t = own.trim_start();
    let digits = t.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 || digits > 2 {
        return t;
    }
    let rest = &t[digits..];
    match rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
        Some(r) => r.trim_start(),
        None => t,
    }
}

/// Whether a short answer to a yes/no question says yes (true) or no (false), if it says either: its
/// first word is yes or no, it negates, or it grants on a condition ("only if ...").
fn stated_polarity(own: &str) -> Option<bool> {
    let words = text::words(&own.replace(['\u{2019}'], "'"));
    match words.first().map(String::as_str) {
        Some("yes" | "only") => return Some(true),
        Some("no") => return Some(false),
        _ => {}
    }
    (!polarity(own)).then_some(false)
}

/// Whether a short answer means the context does not answer the question.
pub fn not_stated(own: &str) -> bool {
    let o = own.trim().to_lowercase();
    o.is_empty()
        || o.starts_with("not stated")
        || o.starts_with("none")
        || o.starts_with("unknown")
        || o.starts_with("n/a")
        || o.contains("not stated")
        || o.contains("not mentioned")
        || o.contains("does not say")
        || o.contains("does not state")
        || o.contains("not specified")
}

/// Compares an example's `answer` to `question` with the judge's own short answer `own`.
pub fn agreement(question: &str, answer: &str, own: &str) -> Agreement {
    let own = unnumbered(own);
    if not_stated(own) {
        return Agreement::NotStated;
    }
    // Numbers the question itself names ("a P3 ticket", "the first day") decide nothing.
    let asked_numbers = numbers(question);
    let own_numbers: HashSet<String> = numbers(own).difference(&asked_numbers).cloned().collect();
    let answer_numbers: HashSet<String> = numbers(answer).difference(&asked_numbers).cloned().collect();
    if !own_numbers.is_empty() {
        if own_numbers.is_disjoint(&answer_numbers) {
            let mut o: Vec<_> = own_numbers.into_iter().collect();
            o.sort();
            return Agreement::Differs(format!("the context gives {} ({own:?}), the answer does not", o.join(", ")));
        }
        if !yes_no(question) {
            return Agreement::Agrees;
        }
    }
    if yes_no(question) {
        // A short answer that neither says yes or no nor negates has not answered a yes/no question: the
        // example cannot be verified against it, so it is treated as unanswered (precision first).
        let Some(o) = stated_polarity(own) else { return Agreement::NotStated };
        let a = polarity(answer);
        if o != a {
            let say = |p: bool| if p { "yes" } else { "no" };
            return Agreement::Differs(format!("the context says {} ({own:?}), the answer says {}", say(o), say(a)));
        }
        return Agreement::Agrees;
    }
    // The short answer's own words (not the question's), which the example's answer must mostly share.
    let asked = text::stems(question);
    let wanted: HashSet<String> = text::stems(own).difference(&asked).cloned().collect();
    if wanted.is_empty() {
        return Agreement::Agrees;
    }
    let given = text::stems(answer);
    let shared = wanted.intersection(&given).count();
    if shared * 2 >= wanted.len() {
        Agreement::Agrees
    } else {
        Agreement::Differs(format!("the context says {own:?}, which the answer does not say"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalised() {
        let n = numbers("Up to 5 days, six weeks, the 4th day, 1,500 EUR, 0.5 percent, before 09:30 and 12:00.");
        for want in ["5", "6", "4", "1500", "0.5", "9:30", "12:00"] {
            assert!(n.contains(want), "{want} in {n:?}");
        }
        assert!(numbers("the fourth consecutive day").contains("4"));
        assert!(numbers("no numbers here").is_empty());
    }

    #[test]
    fn a_wrong_number_differs_a_right_one_agrees() {
        let q = "How many unused leave days can be carried over into the next year?";
        assert_eq!(agreement(q, "Up to 5 unused days can be carried over.", "5 days"), Agreement::Agrees);
        assert!(matches!(agreement(q, "Up to 10 unused days can be carried over.", "5 days"), Agreement::Differs(_)));
        let q = "By what time must an employee who is ill inform their line manager?";
        assert!(matches!(
            agreement(q, "Before 12:00 on the second day of absence.", "before 09:30 on the first day"),
            Agreement::Differs(_)
        ));
        assert_eq!(agreement(q, "They must tell their line manager before 9:30.", "09:30"), Agreement::Agrees);
        let q = "How much notice is required for parental leave?";
        assert!(matches!(agreement(q, "At least six weeks before it starts.", "8 weeks"), Agreement::Differs(_)));
        assert_eq!(agreement(q, "It must be requested at least eight weeks ahead.", "8 weeks"), Agreement::Agrees);
        // The question's own numbers decide nothing.
        let q = "What is the first response time for a P3 ticket?";
        assert!(matches!(
            agreement(q, "A P3 ticket gets a first response within 4 hours.", "8 hours"),
            Agreement::Differs(_)
        ));
        assert_eq!(
            agreement(q, "A P3 ticket gets its first response within 8 business hours.", "8 hours"),
            Agreement::Agrees
        );
    }

    #[test]
    fn yes_and_no_must_meet() {
        let q = "Can a P1 ticket be opened by e-mail?";
        assert!(matches!(
            agreement(q, "Yes, by e-mail as well as by phone.", "No, only by phone"),
            Agreement::Differs(_)
        ));
        assert_eq!(agreement(q, "No, P1 tickets can only be opened by phone.", "No"), Agreement::Agrees);
        // A short answer that says neither yes nor no verifies nothing.
        let usb = "Can personal USB storage devices be used with company laptops?";
        assert_eq!(
            agreement(
                usb,
                "Yes, personal USB storage devices can be connected if encrypted.",
                "personal USB storage devices"
            ),
            Agreement::NotStated
        );
        assert_eq!(agreement(usb, "Only encrypted ones may be connected.", "Only if encrypted"), Agreement::Agrees);
        let q = "Can personal USB storage devices be used with company laptops?";
        assert!(matches!(
            agreement(q, "Personal USB devices may be connected if encrypted.", "No, they are not allowed"),
            Agreement::Differs(_)
        ));
        assert_eq!(
            agreement(q, "Personal USB storage devices must not be connected to company laptops.", "no"),
            Agreement::Agrees
        );
    }

    #[test]
    fn the_short_answer_words_must_be_in_the_answer() {
        let q = "Who reviews requests for software that is not in the approved catalogue?";
        assert!(matches!(
            agreement(q, "The employee's line manager reviews such requests.", "the security team"),
            Agreement::Differs(_)
        ));
        assert_eq!(
            agreement(q, "Such requests are reviewed by the security team.", "security team"),
            Agreement::Agrees
        );
        // The list number a small model copies from the numbered questions is not part of its answer.
        assert_eq!(
            agreement(q, "Such requests are reviewed by the security team.", "3. security team"),
            Agreement::Agrees
        );
        assert_eq!(agreement("What is it?", "Anything at all.", "4. not stated"), Agreement::NotStated);
        let fill = "What is the kettle's minimum fill level?";
        assert!(matches!(agreement(fill, "The minimum is 1.7 litres.", "7. 0.5 litres"), Agreement::Differs(_)));
        assert_eq!(agreement("What is it?", "Anything at all.", "not stated"), Agreement::NotStated);
        assert_eq!(agreement("What is it?", "Anything at all.", "The context does not say."), Agreement::NotStated);
    }
}
