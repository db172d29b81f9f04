//! The lexical pass that runs before embeddings: verbatim and near-verbatim repeats are found by hashes and
//! MinHash, without a model.
//!
//! - **Exact**: the whole example after normalisation (lower case, punctuation dropped, whitespace
//!   collapsed) hashes to the same key.
//! - **Same answer**: the normalised answer is identical and one question's words contain the other's
//!   (`in Larkspur Instruments` added to a question; sentence embeddings put such pairs at cosine ~0.8).
//! - **MinHash**: the estimated Jaccard similarity of the examples' word 3-shingles is at or above a
//!   threshold; candidates are found by locality-sensitive hashing over bands of the signature.
//!
//! Every feature is a stable function of the text (fixed seeds, a fixed 64-bit hash), so replicas on other
//! machines compute the same keys.

use std::collections::HashSet;

/// MinHash functions per signature.
pub const SIGNATURE_LEN: usize = 64;
/// LSH bands (of `SIGNATURE_LEN / BANDS` rows each): a pair at Jaccard 0.8 shares a band with
/// probability 1 - (1 - 0.8^4)^16 > 0.9999; at 0.3, 1 - (1 - 0.3^4)^16 = 0.12 (then rejected on the estimate).
pub const BANDS: usize = 16;
const ROWS: usize = SIGNATURE_LEN / BANDS;
/// Words of a shingle.
const SHINGLE: usize = 3;
/// Question words kept for the containment check.
pub const MAX_QUESTION_TOKENS: usize = 64;

/// FNV-1a 64: a fixed hash (std's `DefaultHasher` may change between Rust releases).
pub fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// splitmix64: mixes a 64-bit value well (the MinHash permutations).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Lower case words of letters and digits, in order (punctuation and spacing dropped).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| w.to_lowercase()).collect()
}

/// The text as its words joined by single spaces.
pub fn normalize_text(text: &str) -> String {
    words(text).join(" ")
}

/// The MinHash signature of a text's word shingles (a text shorter than a shingle is one shingle).
pub fn signature(text: &str) -> Vec<u32> {
    let w = words(text);
    let mut shingles: HashSet<u64> = HashSet::new();
    if w.len() < SHINGLE {
        shingles.insert(fnv64(w.join(" ").as_bytes()));
    } else {
        for s in w.windows(SHINGLE) {
            shingles.insert(fnv64(s.join(" ").as_bytes()));
        }
    }
    (0..SIGNATURE_LEN as u64)
        .map(|i| {
            let seed = mix(i + 1);
            shingles.iter().map(|s| (mix(s ^ seed) >> 32) as u32).min().unwrap_or(u32::MAX)
        })
        .collect()
}

/// The share of equal positions of two signatures: an unbiased estimate of the shingles' Jaccard similarity.
pub fn jaccard_estimate(a: &[u32], b: &[u32]) -> f32 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f32 / a.len() as f32
}

/// Hashes of a question's distinct words (at most [`MAX_QUESTION_TOKENS`]), sorted.
pub fn question_tokens(question: &str) -> Vec<u32> {
    let mut t: Vec<u32> = words(question).iter().map(|w| fnv64(w.as_bytes()) as u32).collect();
    t.sort_unstable();
    t.dedup();
    t.truncate(MAX_QUESTION_TOKENS);
    t
}

/// How much of the smaller word set lies in the larger: 1.0 when one question is the other plus words.
pub fn containment(a: &[u32], b: &[u32]) -> f32 {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if small.is_empty() {
        return 0.0;
    }
    let large: HashSet<u32> = large.iter().copied().collect();
    small.iter().filter(|t| large.contains(t)).count() as f32 / small.len() as f32
}

/// The lexical features of one example.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// `x:<hash>` of the whole normalised text.
    pub exact: String,
    /// `a:<hash>` of the normalised answer (empty answer: none).
    pub answer: Option<String>,
    /// `b<band>:<hash>`: the LSH band keys of the signature.
    pub bands: Vec<String>,
    pub signature: Vec<u32>,
    pub question: Vec<u32>,
}

impl Features {
    /// Features of an example: its whole text, its question and its answer.
    pub fn of(text: &str, question: &str, answer: &str) -> Features {
        let signature = signature(text);
        let bands = signature
            .chunks(ROWS)
            .enumerate()
            .map(|(i, rows)| {
                let bytes: Vec<u8> = rows.iter().flat_map(|r| r.to_le_bytes()).collect();
                format!("b{i}:{:016x}", fnv64(&bytes))
            })
            .collect();
        let answer = normalize_text(answer);
        Features {
            exact: format!("x:{:016x}", fnv64(normalize_text(text).as_bytes())),
            answer: (!answer.is_empty()).then(|| format!("a:{:016x}", fnv64(answer.as_bytes()))),
            bands,
            signature,
            question: question_tokens(question),
        }
    }

    /// Every key an index looks candidates up by.
    pub fn keys(&self) -> Vec<String> {
        let mut k = vec![self.exact.clone()];
        k.extend(self.answer.clone());
        k.extend(self.bands.iter().cloned());
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_drops_case_punctuation_and_spacing() {
        assert_eq!(normalize_text("  How many  leave-days?\n"), "how many leave days");
        assert_eq!(words("Ça coûte 600 €."), vec!["ça", "coûte", "600"]);
    }

    #[test]
    fn exact_keys_match_after_normalisation_only() {
        let a = Features::of("How many leave days? Twenty-five.", "How many leave days?", "Twenty-five.");
        let b = Features::of("how many leave days ... twenty five", "how many leave days", "twenty five");
        let c = Features::of("How many sick days? Twenty-five.", "How many sick days?", "Twenty-five.");
        assert_eq!(a.exact, b.exact);
        assert_ne!(a.exact, c.exact);
        assert_eq!(a.answer, c.answer);
        assert_eq!(a.keys().len(), 2 + BANDS);
    }

    #[test]
    fn minhash_estimates_jaccard() {
        let base = "the annual leave entitlement is twenty five working days per calendar year for every \
                    full time employee of the company and it is prorated for part time staff";
        let near = format!("{base} members");
        let far = "expense claims are approved by the finance controller within ten working days of receipt";
        let (s, n, f) = (signature(base), signature(&near), signature(far));
        assert_eq!(s.len(), SIGNATURE_LEN);
        assert_eq!(s, signature(base), "stable");
        // 28 shingles vs 29 sharing 28: Jaccard 0.966.
        assert!(jaccard_estimate(&s, &n) > 0.8, "{}", jaccard_estimate(&s, &n));
        assert!(jaccard_estimate(&s, &f) < 0.2, "{}", jaccard_estimate(&s, &f));
        // Near texts share a band key; unrelated ones do not.
        let (a, b, c) = (Features::of(base, "", ""), Features::of(&near, "", ""), Features::of(far, "", ""));
        assert!(a.bands.iter().zip(&b.bands).any(|(x, y)| x == y));
        assert!(!a.bands.iter().zip(&c.bands).any(|(x, y)| x == y));
    }

    #[test]
    fn containment_sees_a_qualified_question() {
        let q = question_tokens("What is the notice period for resignations?");
        let qualified = question_tokens("What is the notice period for resignations in Larkspur Instruments?");
        let other = question_tokens("Who approves the notice period for contractors?");
        assert_eq!(containment(&q, &qualified), 1.0);
        assert!(containment(&q, &other) < 0.6, "{}", containment(&q, &other));
        assert_eq!(containment(&[], &q), 0.0);
    }
}
