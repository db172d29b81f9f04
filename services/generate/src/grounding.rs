//! Tying generated text back to the context: a quoted span is verified against the context (whitespace
//! and case folded) and traced to the chunk it comes from; when the model's quote is not in the context,
//! the context sentence that best supports the answer is quoted instead, so every example carries a real
//! supporting span.

use distillery_core::context::context_members;
use unicode_segmentation::UnicodeSegmentation;

use distillery_quality::text::significant_words;

/// A supporting span of the context and the chunk it lies in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Support {
    pub quote: String,
    pub chunk_id: Option<String>,
    /// The model's own quote was found in the context (else the best sentence was chosen).
    pub verbatim: bool,
}

fn fold(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// A quote without the context's "[n] " member label the model copied with it.
fn without_label(quote: &str) -> &str {
    let q = quote.trim();
    match q.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((n, rest)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => rest.trim_start(),
        _ => q,
    }
}

/// Finds the support of an answer: the model's quote if the context contains it, else the context
/// sentence sharing most words with the answer. `chunk_ids` are the context's members in order.
pub fn support(context: &str, chunk_ids: &[String], quote: Option<&str>, answer: &str) -> Option<Support> {
    let members = context_members(context);
    let member_of = |needle: &str| -> Option<String> {
        let f = fold(needle);
        members.iter().position(|m| fold(m).contains(&f)).and_then(|i| chunk_ids.get(i).cloned())
    };
    if let Some(q) = quote.map(without_label).filter(|q| q.split_whitespace().count() >= 3)
        && fold(context).contains(&fold(q))
    {
        return Some(Support { quote: q.to_string(), chunk_id: member_of(q), verbatim: true });
    }
    let want = significant_words(answer);
    if want.is_empty() {
        return None;
    }
    let mut best: Option<(usize, &str, usize)> = None; // (overlap, sentence, member index)
    for (i, m) in members.iter().enumerate() {
        for s in m.unicode_sentences() {
            let overlap = significant_words(s).intersection(&want).count();
            if overlap > 0 && best.is_none_or(|(b, _, _)| overlap > b) {
                best = Some((overlap, s.trim(), i));
            }
        }
    }
    best.map(|(_, s, i)| Support { quote: s.to_string(), chunk_id: chunk_ids.get(i).cloned(), verbatim: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: &str = "## Leave\n\n[1] Employees get 25 days of paid leave. Part-time staff get a share.\n\n## Pay\n\n[2] Salaries are paid monthly, on the 25th.";

    #[test]
    fn verbatim_quotes_are_traced_to_their_chunk() {
        let ids = vec!["c1".to_string(), "c2".to_string()];
        let s = support(CTX, &ids, Some("salaries are  paid monthly"), "Monthly.").unwrap();
        assert_eq!((s.chunk_id.as_deref(), s.verbatim), (Some("c2"), true));
    }

    #[test]
    fn a_copied_member_label_is_not_part_of_the_quote() {
        let ids = vec!["c1".to_string(), "c2".to_string()];
        let s = support(CTX, &ids, Some("[2] Salaries are paid monthly"), "Monthly.").unwrap();
        assert_eq!(s.quote, "Salaries are paid monthly");
        assert_eq!((s.chunk_id.as_deref(), s.verbatim), (Some("c2"), true));
        assert_eq!(without_label("[x] not a label"), "[x] not a label");
        assert_eq!(without_label("  [] empty"), "[] empty");
    }

    #[test]
    fn invented_quotes_are_replaced_by_the_best_sentence() {
        let ids = vec!["c1".to_string(), "c2".to_string()];
        let s =
            support(CTX, &ids, Some("the policy says thirty days"), "Employees get 25 days of paid leave each year.")
                .unwrap();
        assert_eq!(s.quote, "Employees get 25 days of paid leave.");
        assert_eq!((s.chunk_id.as_deref(), s.verbatim), (Some("c1"), false));
        assert!(support(CTX, &ids, None, "???").is_none());
    }
}
