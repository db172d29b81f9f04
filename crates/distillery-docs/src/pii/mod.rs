//! PII detection and redaction. Runs on extracted text before anything reaches an LLM or a topic after
//! extract. Each finding is replaced with a typed placeholder that is consistent within a document
//! (`[EMAIL_1]` is the same address everywhere in that document), and the counts per type travel on.
//!
//! Structured types are validated, not just matched: card numbers pass Luhn and a known issuer prefix,
//! IBANs pass their country length and mod-97 check, SSNs their allocation rules, phone numbers
//! libphonenumber's metadata, IP addresses the standard parsers. Context words keep order, invoice and
//! version numbers out. Person names come from a first-name dictionary plus capitalised surnames, or a
//! title followed by a name, and — when it is installed — from an in-process NER model ([`NerModel`]): the
//! model's names are added to the rules', and a name of two or more words from the rules stands only where the
//! model gives its words some weight (the longer of two overlapping names wins).

mod checks;
mod names;
mod ner;
mod onnx;
mod placeholders;
mod words;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::blocks::Extracted;

use checks::{
    before, card_issuer, has_context, is_placeholder, looks_like_date_or_time, looks_like_secret_value, patterns,
    query_continuation, ssn_shape, starts_with_date,
};
use placeholders::Placeholders;
use words::{CARD_CUES, ID_CONTEXT, PHONE_CUES, VERSION_CONTEXT};

pub use checks::{iban_valid, luhn, ssn_valid};
pub use ner::{NER_MODEL, NerModel, PieceScore, installed_ner_model, ner_model_candidates};

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

/// Whether person names also come from the NER model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NerMode {
    /// Use the model when it is installed; the rules alone when it is not.
    #[default]
    Auto,
    /// The rules alone.
    Off,
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
    /// Person names from the in-process NER model as well as from the rules: `auto` (the default) uses the
    /// model when it is installed (`scripts/test-servers start` installs it) and the rules alone when it is
    /// not; `off` uses the rules alone.
    pub ner: NerMode,
    /// The NER model folder (config.json, tokenizer.json, model.safetensors or onnx/model_q4.onnx). Unset:
    /// `$DISTILLERY_NER_MODEL_DIR`, else `.cache/models/rampart` in the working directory or beside the
    /// executable, else `~/.cache/distillery/models/rampart`.
    pub ner_model_dir: Option<PathBuf>,
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
            ner: NerMode::Auto,
            ner_model_dir: None,
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
        if let Some(dir) = self.ner_model_dir.as_ref().filter(|_| self.ner == NerMode::Auto)
            && !ner::has_model(dir)
        {
            errors.push(format!("{section}.ner_model_dir: no NER model in {}", dir.display()));
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

/// Detects PII in text.
pub struct Redactor {
    cfg: PiiConfig,
    regions: Vec<phonenumber::country::Id>,
    ner: Option<Arc<NerModel>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor").field("cfg", &self.cfg).field("ner", &self.ner).finish()
    }
}

impl Redactor {
    /// A redactor with the NER model when the configuration asks for it and it is installed (loaded once per
    /// process); with the rules alone otherwise.
    pub fn new(cfg: PiiConfig) -> Redactor {
        let ner = if cfg.enabled && cfg.ner == NerMode::Auto {
            match cfg.ner_model_dir.clone().or_else(installed_ner_model) {
                Some(dir) => match NerModel::shared(&dir) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        tracing::error!("person names from the rules alone: {e}");
                        None
                    }
                },
                None => None,
            }
        } else {
            None
        };
        Redactor::with_ner(cfg, ner)
    }

    /// A redactor with the given NER model (or none), whatever the configuration says of it.
    pub fn with_ner(cfg: PiiConfig, ner: Option<Arc<NerModel>>) -> Redactor {
        let regions = std::iter::once(&cfg.default_region)
            .chain(&cfg.phone_regions)
            .filter_map(|r| phonenumber::country::Id::from_str(r).ok())
            .collect();
        Redactor { cfg, regions, ner }
    }

    /// The NER model in use, if any.
    pub fn ner_model(&self) -> Option<&NerModel> {
        self.ner.as_deref()
    }

    /// Every entity found, non-overlapping, in order (types set to `keep` are found too).
    pub fn find(&self, text: &str) -> Vec<Finding> {
        self.find_many(&[text]).pop().unwrap_or_default()
    }

    /// [`Redactor::find`] for the texts of one document, with the NER model run over all of them in batches.
    pub fn find_many(&self, texts: &[&str]) -> Vec<Vec<Finding>> {
        let views: Vec<Cow<'_, str>> = texts.iter().map(|t| names::names_view(t)).collect();
        let views: Vec<&str> = views.iter().map(|v| v.as_ref()).collect();
        let scores = self.person_scores(&views);
        let mut found: Vec<Vec<Finding>> = texts
            .iter()
            .zip(&views)
            .enumerate()
            .map(|(i, (t, v))| self.find_with(t, v, scores.as_ref().map(|s| s[i].as_slice())))
            .collect();
        surname_mentions(texts, &views, &mut found);
        found
    }

    /// The person names the NER model finds without the rules, as [`Redactor::find`] would add them (none
    /// without a model): for evaluating the model on its own.
    pub fn model_names(&self, text: &str) -> Vec<Finding> {
        let mut c = Vec::new();
        let view = names::names_view(text);
        if let Some(scores) = self.person_scores(&[&view]) {
            names::model_people(&view, &scores[0], &mut |kind, start, end| c.push(Finding { kind, start, end }));
        }
        c
    }

    /// The model's person scores near the places a name can be (runs of capitalised words); None without a
    /// model, or when it fails (the rules still run).
    fn person_scores(&self, texts: &[&str]) -> Option<Vec<Vec<PieceScore>>> {
        let model = self.ner.as_ref()?;
        let focus: Vec<Vec<(usize, usize)>> = texts.iter().map(|t| names::name_candidates(t)).collect();
        match model.person_scores(texts, Some(&focus)) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("NER model failed, person names from the rules alone: {e}");
                None
            }
        }
    }

    /// The findings in one text; person names are looked for in `names_view`, the text with its words in
    /// capitals written as names are ([`names::names_view`]: same length, same offsets).
    fn find_with(&self, text: &str, names_view: &str, scores: Option<&[PieceScore]>) -> Vec<Finding> {
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
        let mut people = Vec::new();
        self.people(names_view, &mut |kind, start, end| people.push((kind, start, end)));
        people.retain(|&(_, start, end)| scores.is_none_or(|s| names::model_backs(names_view, s, start, end)));
        if let Some(scores) = scores {
            names::model_people(names_view, scores, &mut |kind, start, end| people.push((kind, start, end)));
        }
        names::csv_people(names_view, &mut |kind, start, end| people.push((kind, start, end)));
        for (kind, start, end) in people {
            if !names::names_an_organisation_in(text, names_view, start, end) {
                push(kind, start, end);
            }
        }
        resolve(c)
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
        let texts: Vec<&str> = doc.blocks.iter().map(|b| b.text.as_str()).collect();
        let findings = self.find_many(&texts);
        for (block, found) in doc.blocks.iter_mut().zip(findings) {
            block.text = self.redact_with(&block.text, found, &mut state);
        }
        state.counts
    }

    /// Redacts one text (placeholders numbered from 1 within it).
    pub fn redact(&self, text: &str) -> (String, BTreeMap<PiiKind, u64>) {
        let mut state = Placeholders::default();
        let out = self.redact_with(text, self.find(text), &mut state);
        (out, state.counts)
    }

    fn redact_with(&self, text: &str, findings: Vec<Finding>, state: &mut Placeholders) -> String {
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

/// A person found by a full name in one of a document's texts is found again where any of them names them by
/// surname alone ("Amara Okafor ... Okafor approved it"), unless the surname is written in lower case somewhere
/// in the document (an everyday word there) or the mention names an organisation ("Okafor Holdings").
/// `views` are the texts as the name detectors read them; `found` is sorted and without overlaps, per text.
fn surname_mentions(texts: &[&str], views: &[&str], found: &mut [Vec<Finding>]) {
    let mut surnames: HashMap<String, Vec<Vec<String>>> = HashMap::new();
    for (view, f) in views.iter().zip(found.iter()) {
        for f in f.iter().filter(|f| f.kind == PiiKind::Person) {
            if let Some(surname) = names::surname_of(&view[f.start..f.end]) {
                let same_start = surnames.entry(surname[0].clone()).or_default();
                if !same_start.contains(&surname) {
                    same_start.push(surname);
                }
            }
        }
    }
    if surnames.is_empty() {
        return;
    }
    let everyday: HashSet<&str> = texts.iter().flat_map(|t| names::lower_case_words(t)).collect();
    for same_start in surnames.values_mut() {
        same_start.retain(|s| s.last().is_some_and(|w| !everyday.contains(w.as_str())));
    }
    for ((text, view), f) in texts.iter().zip(views).zip(found.iter_mut()) {
        let overlaps = |start: usize, end: usize| {
            let i = f.partition_point(|x| x.start < end);
            i > 0 && f[i - 1].end > start
        };
        let more: Vec<Finding> = names::surname_mentions(view, &surnames)
            .into_iter()
            .filter(|&(start, end)| !overlaps(start, end) && !names::names_an_organisation_in(text, view, start, end))
            .map(|(start, end)| Finding { kind: PiiKind::Person, start, end })
            .collect();
        if !more.is_empty() {
            f.extend(more);
            f.sort_by_key(|x| x.start);
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::{Block, BlockKind};

    fn kinds(text: &str) -> Vec<(PiiKind, String)> {
        let r = Redactor::new(PiiConfig::default());
        r.find(text).into_iter().map(|f| (f.kind, text[f.start..f.end].to_string())).collect()
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
    fn a_surname_alone_is_found_across_a_documents_texts() {
        let r = Redactor::new(PiiConfig::default());
        let texts = [
            "Minutes taken by Amara Okafor (amara.okafor@example.com, @okafor) and Sarah Price.",
            "Okafor approved the budget. Price list attached; the price rose. Okafor Holdings replied.",
            "AMARA OKAFOR",
        ];
        let found: Vec<Vec<String>> = r
            .find_many(&texts)
            .iter()
            .zip(texts)
            .map(|(f, t)| {
                f.iter().filter(|f| f.kind == PiiKind::Person).map(|f| t[f.start..f.end].to_string()).collect()
            })
            .collect();
        // "Price" is an everyday word (and written in lower case here); "Okafor Holdings" is a firm.
        assert_eq!(found[1], ["Okafor"]);
        let mut doc =
            Extracted { blocks: texts.iter().map(|t| Block::new(BlockKind::Paragraph, *t)).collect(), pages: None };
        r.redact_document(&mut doc);
        // One person, one placeholder: full name, surname alone, capitals.
        assert!(doc.blocks[0].text.starts_with("Minutes taken by [PERSON_1]"), "{}", doc.blocks[0].text);
        assert!(doc.blocks[1].text.starts_with("[PERSON_1] approved"), "{}", doc.blocks[1].text);
        assert_eq!(doc.blocks[2].text, "[PERSON_1]");
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
