//! Validated detectors: the compiled patterns, checksum and shape checks (Luhn, card issuers, IBAN
//! lengths and mod-97, SSN allocation, dates and times), secret-value heuristics and context cues.

use std::sync::OnceLock;

use regex::Regex;

pub(super) struct Patterns {
    pub(super) email: Regex,
    pub(super) url_credentials: Regex,
    pub(super) private_key: Regex,
    pub(super) token: Vec<Regex>,
    pub(super) assignment: Regex,
    pub(super) auth_header: Regex,
    pub(super) password_space: Regex,
    pub(super) iban: Regex,
    pub(super) card: Regex,
    pub(super) ssn: Regex,
    pub(super) ssn_spaced: Regex,
    pub(super) phone: Regex,
    pub(super) ipv4: Regex,
    pub(super) ipv6: Regex,
    pub(super) titled_name: Regex,
}

pub(super) fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let r = |s: &str| Regex::new(s).expect("valid PII pattern");
        Patterns {
            email: r(r"(?i)\b[a-z0-9][a-z0-9._%+'-]*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}\b"),
            url_credentials: r(r"(?i)\b[a-z][a-z0-9+.-]*://([^\s:/@]*:[^\s/@]+)@[^\s/]+"),
            private_key: r(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
            token: [
                r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b",
                r"\bgh[pousr]_[A-Za-z0-9]{30,255}\b",
                r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b",
                r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
                r"\bsk-(?:proj-|ant-|live-)?[A-Za-z0-9_-]{20,}",
                r"\b[rs]k_(?:live|test)_[0-9A-Za-z]{16,}\b",
                r"\bAIza[0-9A-Za-z_-]{35}",
                r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{8,}",
                r"\bglpat-[A-Za-z0-9_-]{20,}",
                r"\bnpm_[A-Za-z0-9]{36}\b",
                r"\bhf_[A-Za-z0-9]{30,}\b",
                r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",
            ]
            .iter()
            .map(|s| r(s))
            .collect(),
            assignment: r(
                r#"(?i)(?:^|[^a-z0-9])[a-z0-9_.-]*?(?:api[_-]?key|apikey|api[_-]?token|secret|access[_-]?key|account[_-]?key|shared[_-]?access[_-]?key|signing[_-]?key|encryption[_-]?key|master[_-]?key|private[_-]?key|access[_-]?token|auth[_-]?token|token|password|passwd|pwd|passphrase|credentials?|session[_-]?(?:id|token|key)|sessionid|sessid|session|sid)[a-z0-9_]*["']?(?:\s*(?:[:=]|=>)\s*|\s+is\s+)["']?([^\s"',;)}\]]{6,})"#,
            ),
            password_space: r(
                r#"(?i)\b(?:password|passwd|pwd|passphrase)[ \t]+([^\s"',;)}\]&-][^\s"',;)}\]&]{5,})"#,
            ),
            auth_header: r(r"(?i)\b(?:basic|bearer|token)\s+([A-Za-z0-9+/=._~-]{16,})"),
            iban: r(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b"),
            card: r(r"\b\d(?:[ -]?\d){12,18}\b"),
            ssn: r(r"\b(\d{3})-(\d{2})-(\d{4})\b"),
            ssn_spaced: r(r"(?i)\b(?:ssn|social security(?: number| no\.?)?)\s*[:#]?\s*(\d{3}[ .]?\d{2}[ .]?\d{4})\b"),
            phone: r(r"(?:\+|\(|\b)\d[\d \t().-]{5,22}\d\b"),
            ipv4: r(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"),
            ipv6: r(r"(?i)[0-9a-f]*:[0-9a-f:]*:[0-9a-f:.]*[0-9a-f](?:%[a-z0-9]+)?"),
            titled_name: r(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame|Herr|Frau|Mme|Mlle|Sr|Sra)\.?[ \t]+"),
        }
    })
}

/// Luhn checksum.
pub fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.chars().rev().enumerate() {
        let Some(mut d) = c.to_digit(10) else { return false };
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum % 10 == 0
}

/// Known card issuer prefix and length.
pub(super) fn card_issuer(d: &str) -> bool {
    let n = d.len();
    let p = |k: usize| d.get(..k).and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
    (d.starts_with('4') && matches!(n, 13 | 16 | 19))
        || ((51..=55).contains(&p(2)) || (2221..=2720).contains(&p(4))) && n == 16
        || matches!(p(2), 34 | 37) && n == 15
        || (p(4) == 6011 || p(2) == 65 || (644..=649).contains(&p(3))) && (16..=19).contains(&n)
        || (3528..=3589).contains(&p(4)) && (16..=19).contains(&n)
        || (matches!(p(2), 36 | 38 | 39) || (300..=305).contains(&p(3))) && (14..=19).contains(&n)
        || p(2) == 62 && (16..=19).contains(&n)
        // Maestro
        || (p(2) == 50 || (56..=58).contains(&p(2)) || p(4) == 6304 || p(4) == 6759 || (6761..=6763).contains(&p(4))) && (12..=19).contains(&n)
}

/// IBAN lengths by country (ISO 13616 registry).
fn iban_length(country: &str) -> Option<usize> {
    const L: &[(&str, usize)] = &[
        ("AD", 24),
        ("AE", 23),
        ("AL", 28),
        ("AT", 20),
        ("AZ", 28),
        ("BA", 20),
        ("BE", 16),
        ("BG", 22),
        ("BH", 22),
        ("BR", 29),
        ("BY", 28),
        ("CH", 21),
        ("CR", 22),
        ("CY", 28),
        ("CZ", 24),
        ("DE", 22),
        ("DK", 18),
        ("DO", 28),
        ("EE", 20),
        ("EG", 29),
        ("ES", 24),
        ("FI", 18),
        ("FO", 18),
        ("FR", 27),
        ("GB", 22),
        ("GE", 22),
        ("GI", 23),
        ("GL", 18),
        ("GR", 27),
        ("GT", 28),
        ("HR", 21),
        ("HU", 28),
        ("IE", 22),
        ("IL", 23),
        ("IQ", 23),
        ("IS", 26),
        ("IT", 27),
        ("JO", 30),
        ("KW", 30),
        ("KZ", 20),
        ("LB", 28),
        ("LC", 32),
        ("LI", 21),
        ("LT", 20),
        ("LU", 20),
        ("LV", 21),
        ("MC", 27),
        ("MD", 24),
        ("ME", 22),
        ("MK", 19),
        ("MR", 27),
        ("MT", 31),
        ("MU", 30),
        ("NL", 18),
        ("NO", 15),
        ("PK", 24),
        ("PL", 28),
        ("PS", 29),
        ("PT", 25),
        ("QA", 29),
        ("RO", 24),
        ("RS", 22),
        ("SA", 24),
        ("SC", 31),
        ("SE", 24),
        ("SI", 19),
        ("SK", 24),
        ("SM", 27),
        ("ST", 25),
        ("SV", 28),
        ("TL", 23),
        ("TN", 24),
        ("TR", 26),
        ("UA", 29),
        ("VA", 22),
        ("VG", 24),
        ("XK", 20),
    ];
    L.iter().find(|(c, _)| *c == country).map(|(_, n)| *n)
}

/// IBAN country length and mod-97 check.
pub fn iban_valid(raw: &str) -> bool {
    let s: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    if s.len() < 15 || iban_length(&s[..2]) != Some(s.len()) {
        return false;
    }
    let rearranged = format!("{}{}", &s[4..], &s[..4]);
    let mut rem: u32 = 0;
    for c in rearranged.chars() {
        let v = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

/// US SSN allocation rules: no 000, 666 or 9xx area, no 00 group, no 0000 serial.
pub fn ssn_valid(area: &str, group: &str, serial: &str) -> bool {
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

/// Lowercased text just before `start` (up to `n` chars).
pub(super) fn before(text: &str, start: usize, n: usize) -> String {
    let head = &text[..start];
    let skip = head.chars().count().saturating_sub(n);
    head.chars().skip(skip).collect::<String>().to_lowercase()
}

/// Whether one of the last `n` words before a match is a context word (whole words, any case).
pub(super) fn has_context(prefix: &str, words: &[&str]) -> bool {
    prefix
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .rev()
        .take(3)
        .any(|t| words.contains(&t.to_lowercase().as_str()))
}

/// Template variables, redaction marks and environment lookups, not secrets.
pub(super) fn is_placeholder(v: &str) -> bool {
    let t = v.trim_matches(|c| c == '"' || c == '\'');
    t.starts_with('$')
        || t.starts_with('<')
        || t.starts_with('{')
        || t.starts_with('%')
        || t.starts_with("os.")
        || t.starts_with("process.")
        || t.starts_with("env")
        || t.contains("<") && t.contains(">")
        || t.chars().all(|c| c == '*' || c == 'x' || c == 'X' || c == '•' || c == '.')
}

/// A value after `password=`, `api_key:`... that looks like a real secret.
pub(super) fn looks_like_secret_value(v: &str) -> bool {
    if is_placeholder(v) || v.starts_with("http") || v.len() < 6 {
        return false;
    }
    let has_digit = v.chars().any(|c| c.is_ascii_digit());
    let has_symbol = v.chars().any(|c| !c.is_alphanumeric());
    let mixed = v.chars().any(char::is_uppercase) && v.chars().any(char::is_lowercase);
    let classes = [has_digit, has_symbol, mixed].iter().filter(|b| **b).count();
    // Words and identifiers are not secrets: need two character classes, or length with one.
    classes >= 2 || (classes == 1 && v.len() >= 12) || v.len() >= 20
}

pub(super) fn ssn_shape() -> &'static Regex {
    static S: OnceLock<Regex> = OnceLock::new();
    S.get_or_init(|| Regex::new(r"^\d{3}-\d{2}-\d{4}$").expect("valid"))
}

pub(super) fn query_continuation() -> &'static Regex {
    static Q: OnceLock<Regex> = OnceLock::new();
    Q.get_or_init(|| Regex::new(r"&[A-Za-z_][A-Za-z0-9_.-]*=").expect("valid"))
}

pub(super) fn starts_with_date(s: &str) -> bool {
    static D: OnceLock<Regex> = OnceLock::new();
    let re = D.get_or_init(|| {
        Regex::new(r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4})\b").expect("valid")
    });
    re.is_match(s.trim())
}

pub(super) fn looks_like_date_or_time(s: &str) -> bool {
    static D: OnceLock<Regex> = OnceLock::new();
    let re = D.get_or_init(|| {
        Regex::new(r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}|\d{1,2}:\d{2}(?::\d{2})?)$")
            .expect("valid")
    });
    re.is_match(s.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators() {
        assert!(luhn("4111111111111111"));
        assert!(!luhn("4111111111111112"));
        assert!(card_issuer("4111111111111111") && card_issuer("378282246310005") && card_issuer("5555555555554444"));
        assert!(iban_valid("DE89 3704 0044 0532 0130 00"));
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(!iban_valid("DE89 3704 0044 0532 0130 01"));
        assert!(ssn_valid("123", "45", "6789") && !ssn_valid("666", "45", "6789") && !ssn_valid("123", "00", "6789"));
    }
}
