//! PII detection and redaction. Runs on extracted text before anything reaches an LLM or a topic after
//! extract. Each finding is replaced with a typed placeholder that is consistent within a document
//! (`[EMAIL_1]` is the same address everywhere in that document), and the counts per type travel on.
//!
//! Structured types are validated, not just matched: card numbers pass Luhn and a known issuer prefix,
//! IBANs pass their country length and mod-97 check, SSNs their allocation rules, phone numbers
//! libphonenumber's metadata, IP addresses the standard parsers. Context words keep order, invoice and
//! version numbers out. Person names come from a first-name dictionary plus capitalised surnames, or a
//! title followed by a name.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::blocks::Extracted;

/// A kind of personal or secret data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PiiKind {
    Email,
    Phone,
    CreditCard,
    Iban,
    Ssn,
    IpAddress,
    UrlCredentials,
    Secret,
    Person,
}

impl PiiKind {
    pub const ALL: [PiiKind; 9] = [
        PiiKind::Email,
        PiiKind::Phone,
        PiiKind::CreditCard,
        PiiKind::Iban,
        PiiKind::Ssn,
        PiiKind::IpAddress,
        PiiKind::UrlCredentials,
        PiiKind::Secret,
        PiiKind::Person,
    ];

    /// The label used in placeholders and metrics.
    pub fn label(self) -> &'static str {
        match self {
            PiiKind::Email => "EMAIL",
            PiiKind::Phone => "PHONE",
            PiiKind::CreditCard => "CREDIT_CARD",
            PiiKind::Iban => "IBAN",
            PiiKind::Ssn => "SSN",
            PiiKind::IpAddress => "IP_ADDRESS",
            PiiKind::UrlCredentials => "URL_CREDENTIALS",
            PiiKind::Secret => "SECRET",
            PiiKind::Person => "PERSON",
        }
    }

    pub fn from_label(s: &str) -> Option<PiiKind> {
        PiiKind::ALL.into_iter().find(|k| k.label() == s)
    }

    /// Whether the type has a checkable structure (the recall target applies to these).
    pub fn is_structured(self) -> bool {
        self != PiiKind::Person
    }

    /// Which of two overlapping findings wins (higher first).
    fn priority(self) -> u8 {
        match self {
            PiiKind::UrlCredentials => 9,
            PiiKind::Secret => 8,
            PiiKind::Email => 7,
            PiiKind::Iban => 6,
            PiiKind::CreditCard => 5,
            PiiKind::Ssn => 4,
            PiiKind::IpAddress => 3,
            PiiKind::Phone => 2,
            PiiKind::Person => 1,
        }
    }
}

/// What to do with a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PiiAction {
    Redact,
    Keep,
}

/// Redaction settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PiiConfig {
    /// Redact at all.
    pub enabled: bool,
    /// Per type (EMAIL, PHONE, CREDIT_CARD, IBAN, SSN, IP_ADDRESS, URL_CREDENTIALS, SECRET, PERSON):
    /// `redact` (the default for every type) or `keep`.
    pub actions: BTreeMap<PiiKind, PiiAction>,
    /// Region for phone numbers written without a country code (ISO 3166-1 alpha-2).
    pub default_region: String,
    /// Further regions a number without a country code may belong to (valid in any of them counts).
    pub phone_regions: Vec<String>,
}

impl Default for PiiConfig {
    fn default() -> Self {
        PiiConfig {
            enabled: true,
            actions: BTreeMap::new(),
            default_region: "US".into(),
            phone_regions: [
                "GB", "DE", "FR", "ES", "IT", "NL", "BE", "CH", "AT", "IE", "NO", "SE", "DK", "FI", "PL", "PT", "CA",
                "AU", "IN", "BR", "MX", "JP",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl PiiConfig {
    pub fn validate(&self, section: &str, errors: &mut Vec<String>) {
        for r in std::iter::once(&self.default_region).chain(&self.phone_regions) {
            if phonenumber::country::Id::from_str(r).is_err() {
                errors.push(format!("{section}: {r:?} is not a known region code"));
            }
        }
    }

    fn redacts(&self, kind: PiiKind) -> bool {
        self.enabled && self.actions.get(&kind).copied().unwrap_or(PiiAction::Redact) == PiiAction::Redact
    }
}

/// One detected entity (byte offsets into the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: PiiKind,
    pub start: usize,
    pub end: usize,
}

struct Patterns {
    email: Regex,
    url_credentials: Regex,
    private_key: Regex,
    token: Vec<Regex>,
    assignment: Regex,
    auth_header: Regex,
    password_space: Regex,
    iban: Regex,
    card: Regex,
    ssn: Regex,
    ssn_spaced: Regex,
    phone: Regex,
    ipv4: Regex,
    ipv6: Regex,
    titled_name: Regex,
}

fn patterns() -> &'static Patterns {
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
fn card_issuer(d: &str) -> bool {
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
fn before(text: &str, start: usize, n: usize) -> String {
    let head = &text[..start];
    let skip = head.chars().count().saturating_sub(n);
    head.chars().skip(skip).collect::<String>().to_lowercase()
}

/// Words that make a following number an identifier of something, not personal data.
const ID_CONTEXT: &[&str] = &[
    "order",
    "invoice",
    "inv",
    "ticket",
    "case",
    "ref",
    "reference",
    "po",
    "sku",
    "part",
    "tracking",
    "isbn",
    "serial",
    "item",
    "product",
    "model",
    "booking",
    "confirmation",
    "claim",
    "shipment",
    "imei",
    "batch",
    "lot",
    "build",
    "version",
    "release",
    "sequence",
    "transaction",
    "txn",
    "receipt",
];
/// Words that say a number is a card number whatever else is around it.
const CARD_CUES: &[&str] = &[
    "card",
    "visa",
    "mastercard",
    "amex",
    "maestro",
    "discover",
    "jcb",
    "diners",
    "credit",
    "debit",
    "cc",
    "karte",
    "kreditkarte",
    "carte",
    "tarjeta",
    "kort",
    "kaart",
    "carta",
    "cartão",
];
/// Words that say a number is a phone number.
const PHONE_CUES: &[&str] = &[
    "tel",
    "phone",
    "telephone",
    "call",
    "fax",
    "mobile",
    "cell",
    "ring",
    "telefon",
    "telefoon",
    "téléphone",
    "teléfono",
    "telefono",
    "mob",
    "whatsapp",
    "sms",
    "contact",
    "portable",
    "móvil",
    "movil",
    "celular",
    "bel",
    "appelez",
    "appeler",
    "llame",
    "llamar",
    "chiama",
    "erreichen",
    "anrufen",
    "handy",
    "tlf",
    "ph",
    "mobil",
    "telefonnummer",
    "nummer",
    "numéro",
    "número",
    "cellulare",
    "ringe",
    "hotline",
    "helpline",
    "unter",
];

/// Words that make a dotted number a version or a section, not an address.
const VERSION_CONTEXT: &[&str] = &[
    "version",
    "ver",
    "v",
    "release",
    "build",
    "firmware",
    "section",
    "chapter",
    "clause",
    "figure",
    "table",
    "step",
    "paragraph",
    "sec",
    "art",
    "article",
    "appendix",
    "rule",
    "item",
    "driver",
    "kernel",
    "package",
    "patch",
];

/// Whether one of the last `n` words before a match is a context word (whole words, any case).
fn has_context(prefix: &str, words: &[&str]) -> bool {
    prefix
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .rev()
        .take(3)
        .any(|t| words.contains(&t.to_lowercase().as_str()))
}

/// Template variables, redaction marks and environment lookups, not secrets.
fn is_placeholder(v: &str) -> bool {
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
fn looks_like_secret_value(v: &str) -> bool {
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

fn ssn_shape() -> &'static Regex {
    static S: OnceLock<Regex> = OnceLock::new();
    S.get_or_init(|| Regex::new(r"^\d{3}-\d{2}-\d{4}$").expect("valid"))
}

fn query_continuation() -> &'static Regex {
    static Q: OnceLock<Regex> = OnceLock::new();
    Q.get_or_init(|| Regex::new(r"&[A-Za-z_][A-Za-z0-9_.-]*=").expect("valid"))
}

fn starts_with_date(s: &str) -> bool {
    static D: OnceLock<Regex> = OnceLock::new();
    let re = D.get_or_init(|| {
        Regex::new(r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4})\b").expect("valid")
    });
    re.is_match(s.trim())
}

fn looks_like_date_or_time(s: &str) -> bool {
    static D: OnceLock<Regex> = OnceLock::new();
    let re = D.get_or_init(|| {
        Regex::new(r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}|\d{1,2}:\d{2}(?::\d{2})?)$")
            .expect("valid")
    });
    re.is_match(s.trim())
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

/// Capitalised words that follow a first name without making a person ("Grace Period"); months and days are
/// in [`MONTHS_AND_DAYS`], checked beside this list.
const NOT_SURNAMES: &[&str] = &[
    "Street",
    "Road",
    "Avenue",
    "Office",
    "Team",
    "Department",
    "Policy",
    "Period",
    "Inc",
    "Ltd",
    "Group",
    "Company",
    "Corporation",
    "University",
    "College",
    "School",
    "Hospital",
    "Bank",
    "Center",
    "Centre",
    "Service",
    "Services",
    "Security",
    "Manager",
    "Director",
    "Officer",
    "Plan",
    "Fund",
    "Day",
    "Week",
    "Year",
    "Project",
    "Program",
    "Programme",
    "Hall",
    "Square",
    "Bridge",
    "Airport",
    "Station",
    "Church",
    "Foundation",
    "Institute",
    "Council",
    "Committee",
    "Board",
    "Agreement",
    "Act",
    "Report",
    "Code",
    "System",
    "Systems",
    "Cloud",
    "Labs",
    "Studio",
    "Instruments",
    "Holdings",
    "Partners",
    "Solutions",
    "Technologies",
    "Street",
    "Lane",
    "Drive",
    "Court",
    "Place",
    "Island",
    "Islands",
    "River",
    "Lake",
    "Mountain",
    "Valley",
    "City",
    "County",
    "State",
    "Kingdom",
    "Republic",
];

/// First names that are usually ordinary words at the start of a capitalised phrase.
const NOT_NAMES: &[&str] = &[
    "April",
    "May",
    "June",
    "August",
    "Summer",
    "Autumn",
    "Winter",
    "Spring",
    "Will",
    "Grace",
    "Hope",
    "Faith",
    "Joy",
    "Page",
    "Bill",
    "Mark",
    "Chase",
    "Price",
    "Rich",
    "Sterling",
    "Royal",
    "General",
    "Major",
    "Queen",
    "King",
    "Prince",
    "Princess",
    "Baby",
    "Sister",
    "Name",
    "Christ",
    "Unique",
    "Precious",
    "Miracle",
    "Heaven",
    "Harmony",
    "Trinity",
    "Destiny",
    "Serenity",
    "Genesis",
    "America",
    "Florida",
    "Missouri",
    "Montana",
    "Dakota",
    "Houston",
    "Paris",
    "Sydney",
    "Asia",
    "India",
    "Brooklyn",
    "Jordan",
    "Carolina",
    "Virginia",
    "Georgia",
    "Easter",
    "Golden",
    "Green",
    "Brown",
    "Gray",
    "Grey",
    "Stone",
    "River",
    "Forest",
    "Ocean",
    "Rain",
    "Storm",
    "Sky",
    "Star",
    "Sunny",
    "Misty",
    "Dusty",
    "Rocky",
    "Van",
    "Don",
    "Guy",
    "Art",
    "Bud",
    "Pat",
    "Ray",
    "Rod",
    "Sam",
    "Max",
    "Frank",
    "Earnest",
    "Ernest",
    "Noble",
    "Urban",
    "Ward",
    "Hunter",
    "Porter",
    "Carter",
    "Mason",
    "Taylor",
    "Cooper",
    "Parker",
    "Turner",
    "Walker",
    "Miller",
    "Spencer",
    "Nelson",
    "Sincere",
    "Angel",
    "Crystal",
    "Amber",
    "Diamond",
    "Ivory",
    "Pearl",
    "Ruby",
    "Jade",
    "Opal",
    "Iris",
    "Lily",
    "Rose",
    "Violet",
    "Hazel",
    "Olive",
    "Dawn",
    "Eve",
    "Holly",
    "Ivy",
    "Daisy",
    "Ebony",
    "Cherry",
    "Candy",
    "Honey",
    "Sugar",
    "Buster",
    "Lucky",
    "Tex",
    "Cash",
    "Can",
    "Per",
    "Santa",
    "Ole",
    "Else",
    "Ora",
    "Era",
    "Nova",
    "Delta",
    "Rex",
    "Tre",
    "Toy",
    "Sim",
    "Pink",
    "Ola",
    "Lane",
    "Drew",
    "Dale",
    "Glen",
    "Reed",
    "Rose",
    "Grant",
    "Miles",
    "Chance",
    "Ford",
    "Lincoln",
    "Cleveland",
];

/// Detects PII in text.
pub struct Redactor {
    cfg: PiiConfig,
    regions: Vec<phonenumber::country::Id>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor").field("cfg", &self.cfg).finish()
    }
}

impl Redactor {
    pub fn new(cfg: PiiConfig) -> Redactor {
        let regions = std::iter::once(&cfg.default_region)
            .chain(&cfg.phone_regions)
            .filter_map(|r| phonenumber::country::Id::from_str(r).ok())
            .collect();
        Redactor { cfg, regions }
    }

    /// Every entity found, non-overlapping, in order (types set to `keep` are found too).
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let p = patterns();
        let mut c: Vec<Finding> = Vec::new();
        let mut push = |kind, start, end| c.push(Finding { kind, start, end });

        for m in p.private_key.find_iter(text) {
            push(PiiKind::Secret, m.start(), m.end());
        }
        for re in &p.token {
            for m in re.find_iter(text) {
                push(PiiKind::Secret, m.start(), m.end());
            }
        }
        for re in [&p.assignment, &p.auth_header, &p.password_space] {
            for cap in re.captures_iter(text) {
                let m = cap.get(1).expect("group 1");
                // In a URL query the value ends where the next `&name=` begins.
                let v = m.as_str();
                let v = match query_continuation().find(v) {
                    Some(q) => &v[..q.start()],
                    None => v,
                };
                if looks_like_secret_value(v) {
                    push(PiiKind::Secret, m.start(), m.start() + v.len());
                }
            }
        }
        for cap in p.url_credentials.captures_iter(text) {
            let m = cap.get(1).expect("group 1");
            if !is_placeholder(m.as_str()) {
                push(PiiKind::UrlCredentials, m.start(), m.end());
            }
        }
        for m in p.email.find_iter(text) {
            push(PiiKind::Email, m.start(), m.end());
        }
        for m in p.iban.find_iter(text) {
            // The match may run into a following word; shrink to the longest valid prefix.
            let s = m.as_str();
            let mut end = s.len();
            while end >= 15 {
                if iban_valid(&s[..end]) {
                    push(PiiKind::Iban, m.start(), m.start() + s[..end].trim_end().len());
                    break;
                }
                end -= 1;
                while end > 0 && !s.is_char_boundary(end) {
                    end -= 1;
                }
            }
        }
        for m in p.card.find_iter(text) {
            let digits: String = m.as_str().chars().filter(char::is_ascii_digit).collect();
            let seps: HashSet<char> = m.as_str().chars().filter(|c| !c.is_ascii_digit()).collect();
            if seps.len() <= 1
                && luhn(&digits)
                && card_issuer(&digits)
                && (has_context(&before(text, m.start(), 40), CARD_CUES)
                    || !has_context(&before(text, m.start(), 32), ID_CONTEXT))
            {
                push(PiiKind::CreditCard, m.start(), m.end());
            }
        }
        for cap in p.ssn.captures_iter(text) {
            let (a, g, s) = (&cap[1], &cap[2], &cap[3]);
            let m = cap.get(0).expect("match");
            if ssn_valid(a, g, s) && !has_context(&before(text, m.start(), 32), ID_CONTEXT) {
                push(PiiKind::Ssn, m.start(), m.end());
            }
        }
        for cap in p.ssn_spaced.captures_iter(text) {
            let m = cap.get(1).expect("group 1");
            let d: String = m.as_str().chars().filter(char::is_ascii_digit).collect();
            if d.len() == 9 && ssn_valid(&d[..3], &d[3..5], &d[5..]) {
                push(PiiKind::Ssn, m.start(), m.end());
            }
        }
        for m in p.ipv4.find_iter(text) {
            let after = &text[m.end()..];
            let dotted_more = after.starts_with('.') && after[1..].starts_with(|c: char| c.is_ascii_digit());
            let dotted_before = {
                let head = &text.as_bytes()[..m.start()];
                head.len() >= 2 && head[head.len() - 1] == b'.' && head[head.len() - 2].is_ascii_digit()
            };
            if Ipv4Addr::from_str(m.as_str()).is_ok()
                && !dotted_more
                && !dotted_before
                && !has_context(&before(text, m.start(), 32), VERSION_CONTEXT)
            {
                push(PiiKind::IpAddress, m.start(), m.end());
            }
        }
        for m in p.ipv6.find_iter(text) {
            let s = m.as_str();
            if text[..m.start()].ends_with(|c: char| c.is_alphanumeric()) {
                continue;
            }
            let core = s.split('%').next().unwrap_or(s);
            if s.matches(':').count() >= 2 && Ipv6Addr::from_str(core).is_ok() && !looks_like_date_or_time(s) {
                push(PiiKind::IpAddress, m.start(), m.end());
            }
        }
        for m in p.phone.find_iter(text) {
            self.phone(text, m.start(), m.end(), &mut push);
        }
        self.people(text, &mut push);
        resolve(c)
    }

    /// Person names: a title followed by a name, or a dictionary first name (or a common East Asian
    /// surname written first) followed by capitalised name words, with particles (van der, de, bin) between.
    fn people(&self, text: &str, push: &mut impl FnMut(PiiKind, usize, usize)) {
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

    fn phone(&self, text: &str, start: usize, end: usize, push: &mut impl FnMut(PiiKind, usize, usize)) {
        let raw = &text[start..end];
        let trimmed = raw.trim_end_matches(['.', '-', ' ']);
        let end = start + trimmed.len();
        let digits = trimmed.chars().filter(char::is_ascii_digit).count();
        if !(7..=15).contains(&digits) || looks_like_date_or_time(trimmed) {
            return;
        }
        // A date (with or without a time after it), a dotted quad or a decimal is not a phone number.
        let dotted_quad = trimmed.matches('.').count() == 3 && !trimmed.contains(' ') && !trimmed.starts_with('+');
        if starts_with_date(trimmed) || text[end..].starts_with(':') || dotted_quad {
            return;
        }
        if trimmed.contains("  ") || trimmed.contains('\t') {
            return;
        }
        let prev = text[..start].chars().next_back();
        if prev.is_some_and(|c| c.is_alphanumeric() || matches!(c, '/' | '.' | '-' | '_' | ':' | '$' | '€' | '£')) {
            return;
        }
        if text[end..].starts_with(|c: char| c.is_alphanumeric() || c == '%' || c == '/') {
            return;
        }
        let prefix = before(text, start, 40);
        if has_context(&prefix, ID_CONTEXT) && !has_context(&prefix, PHONE_CUES) {
            return;
        }
        // Social-security-shaped numbers are never phone numbers, whatever their ranges.
        if ssn_shape().is_match(trimmed) {
            return;
        }
        let valid_in = |r: phonenumber::country::Id| phonenumber::parse(Some(r), trimmed).is_ok_and(|n| n.is_valid());
        let valid = if let Some(rest) = trimmed.strip_prefix("00") {
            phonenumber::parse(None, format!("+{rest}")).is_ok_and(|n| n.is_valid())
        } else if trimmed.starts_with('+') {
            phonenumber::parse(None, trimmed).is_ok_and(|n| n.is_valid())
        } else if self.regions.first().is_some_and(|r| valid_in(*r)) {
            true
        } else {
            // Valid somewhere else only counts with a reason to read it as a phone number: a cue word before
            // it, or the look of a national number (trunk 0, three or more digit groups).
            let groups = trimmed.split(|c: char| !c.is_ascii_digit()).filter(|g| !g.is_empty()).count();
            let looks_national = trimmed.starts_with('0') && groups >= 3;
            (has_context(&before(text, start, 60), PHONE_CUES) || looks_national)
                && self.regions[1..].iter().any(|r| valid_in(*r))
        };
        if valid {
            push(PiiKind::Phone, start, end);
        }
    }

    /// Redacts a document in place with consistent placeholders; returns the counts per type.
    pub fn redact_document(&self, doc: &mut Extracted) -> BTreeMap<PiiKind, u64> {
        let mut state = Placeholders::default();
        for block in &mut doc.blocks {
            block.text = self.redact_with(&block.text, &mut state);
        }
        state.counts
    }

    /// Redacts one text (placeholders numbered from 1 within it).
    pub fn redact(&self, text: &str) -> (String, BTreeMap<PiiKind, u64>) {
        let mut state = Placeholders::default();
        let out = self.redact_with(text, &mut state);
        (out, state.counts)
    }

    fn redact_with(&self, text: &str, state: &mut Placeholders) -> String {
        let findings = self.find(text);
        let mut out = String::with_capacity(text.len());
        let mut pos = 0;
        for f in findings {
            if !self.cfg.redacts(f.kind) {
                continue;
            }
            out.push_str(&text[pos..f.start]);
            out.push_str(&state.placeholder(f.kind, &text[f.start..f.end]));
            pos = f.end;
        }
        out.push_str(&text[pos..]);
        out
    }
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

/// Titles and academic or medical abbreviations between a title and the name.
const TITLE_WORDS: &[&str] =
    &["Dr", "Prof", "med", "rer", "nat", "phil", "Ing", "dott", "ssa", "Sr", "Sra", "Mme", "Mlle"];

const PARTICLES: &[&str] = &[
    "van", "von", "de", "der", "den", "da", "del", "della", "di", "le", "la", "bin", "binti", "al", "el", "ter", "ten",
    "du", "dos", "das",
];

/// Common surnames of cultures that write the family name first.
const SURNAME_FIRST: &[&str] = &[
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun", "Ma", "Zhu", "Hu", "Guo",
    "He", "Lin", "Luo", "Gao", "Zheng", "Liang", "Xie", "Song", "Tang", "Han", "Feng", "Deng", "Cao", "Peng", "Nguyen",
    "Tran", "Le", "Pham", "Hoang", "Phan", "Vu", "Dang", "Bui", "Do", "Ho", "Ngo", "Duong", "Ly",
];

const MONTHS_AND_DAYS: &[&str] = &[
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Capitalised function words that end a name (sentence starts, headings).
const COMMON_CAPITALISED: &[&str] = &[
    "The", "And", "For", "With", "From", "This", "That", "Our", "Your", "Their", "Please", "Dear", "Regards", "Thanks",
    "Thank", "Hi", "Hello", "Best", "Kind", "If", "When", "In", "On", "At", "To", "By", "Of", "As", "Is", "Was",
];

/// Keeps the highest-priority (then longest) of overlapping findings: the credentials of a URL win over
/// the email-like `password@host` inside it, a card number over a phone-like digit run.
fn resolve(mut c: Vec<Finding>) -> Vec<Finding> {
    c.sort_by(|a, b| {
        b.kind
            .priority()
            .cmp(&a.kind.priority())
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<Finding> = Vec::new();
    for f in c {
        if kept.iter().all(|k| f.end <= k.start || f.start >= k.end) {
            kept.push(f);
        }
    }
    kept.sort_by_key(|f| f.start);
    kept
}

/// Per-document placeholder numbering: the same value gets the same placeholder.
#[derive(Default)]
struct Placeholders {
    seen: HashMap<(PiiKind, String), String>,
    next: HashMap<PiiKind, u32>,
    counts: BTreeMap<PiiKind, u64>,
}

impl Placeholders {
    fn placeholder(&mut self, kind: PiiKind, value: &str) -> String {
        *self.counts.entry(kind).or_default() += 1;
        let key = (kind, normalize(kind, value));
        if let Some(p) = self.seen.get(&key) {
            return p.clone();
        }
        let n = self.next.entry(kind).or_default();
        *n += 1;
        let p = format!("[{}_{}]", kind.label(), n);
        self.seen.insert(key, p.clone());
        p
    }
}

fn normalize(kind: PiiKind, value: &str) -> String {
    match kind {
        PiiKind::Phone | PiiKind::CreditCard | PiiKind::Ssn => value.chars().filter(char::is_ascii_digit).collect(),
        PiiKind::Iban => value.chars().filter(|c| !c.is_whitespace()).collect(),
        PiiKind::Email | PiiKind::IpAddress => value.to_lowercase(),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::{Block, BlockKind};

    fn kinds(text: &str) -> Vec<(PiiKind, String)> {
        let r = Redactor::new(PiiConfig::default());
        r.find(text).into_iter().map(|f| (f.kind, text[f.start..f.end].to_string())).collect()
    }

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

    #[test]
    fn finds_each_type() {
        let t = "Mail jane.doe@example.com or call +44 20 7946 0958. Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, \
                 SSN 123-45-6789, host 192.168.1.20 and 2001:db8::1, db postgres://admin:s3cr3tPW@db.internal/app, \
                 key AKIAIOSFODNN7EXAMPLE. Ask Dr. Okafor or Maria Garcia.";
        let found = kinds(t);
        let expect = [
            (PiiKind::Email, "jane.doe@example.com"),
            (PiiKind::Phone, "+44 20 7946 0958"),
            (PiiKind::CreditCard, "4111 1111 1111 1111"),
            (PiiKind::Iban, "DE89 3704 0044 0532 0130 00"),
            (PiiKind::Ssn, "123-45-6789"),
            (PiiKind::IpAddress, "192.168.1.20"),
            (PiiKind::IpAddress, "2001:db8::1"),
            (PiiKind::UrlCredentials, "admin:s3cr3tPW"),
            (PiiKind::Secret, "AKIAIOSFODNN7EXAMPLE"),
            (PiiKind::Person, "Okafor"),
            (PiiKind::Person, "Maria Garcia"),
        ];
        for (k, v) in expect {
            assert!(found.contains(&(k, v.to_string())), "missing {k:?} {v:?} in {found:?}");
        }
        assert_eq!(found.len(), expect.len(), "{found:?}");
    }

    #[test]
    fn near_misses_are_left_alone() {
        for t in [
            "Order #123-456-7890 shipped on 2024-03-15 at 10:45:30.",
            "Upgrade to version 3.2.0.1 or v2.10.4 before Monday.",
            "Invoice 4111111111111112 is overdue; total 1,234.56 EUR.",
            "Commit 9fceb02d0ae598e95dc970b74767f19372d61af8 fixed it.",
            "The Security Office meets in March in Oslo.",
            "Reference 000-12-3456 is not a person.",
        ] {
            assert!(kinds(t).is_empty(), "{t}: {:?}", kinds(t));
        }
    }

    #[test]
    fn placeholders_are_consistent_within_a_document() {
        let mut doc = Extracted {
            blocks: vec![
                Block::new(BlockKind::Paragraph, "Write to bob@example.com today."),
                Block::new(BlockKind::Paragraph, "Again: BOB@example.com, or alice@example.com."),
            ],
            pages: None,
        };
        let counts = Redactor::new(PiiConfig::default()).redact_document(&mut doc);
        assert_eq!(doc.blocks[0].text, "Write to [EMAIL_1] today.");
        assert_eq!(doc.blocks[1].text, "Again: [EMAIL_1], or [EMAIL_2].");
        assert_eq!(counts[&PiiKind::Email], 3);
    }

    #[test]
    fn kept_types_are_not_redacted() {
        let mut cfg = PiiConfig::default();
        cfg.actions.insert(PiiKind::Email, PiiAction::Keep);
        let (out, counts) = Redactor::new(cfg).redact("a@example.com and 123-45-6789");
        assert_eq!(out, "a@example.com and [SSN_1]");
        assert!(!counts.contains_key(&PiiKind::Email));
    }
}
