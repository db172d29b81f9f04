//! Schema design: one schema-constrained LLM call turns a description into a [`TableSchema`], with one repair
//! round trip, and a cache so the same request never costs a second call.
//!
//! The request is a stable system prompt (the kinds, their parameters, the expression language and an
//! example: the same bytes on every call, so servers can reuse its cached prefix) followed by one user
//! message ending with the description. The answer is constrained by [`crate::flat::llm_json_schema_for`]
//! (with the column count when the description asks for one), read leniently ([`DesignTable`]) and validated
//! strictly. If anything is wrong, the model gets its answer back with every problem listed, once; a second
//! invalid answer is a [`TabularError::DesignFailed`] with the problems and both raw answers.
//!
//! When the description asks for `n` columns ("with 20 columns"), the schema must have `n ± max(2, n/5)`
//! columns ([`column_tolerance`]): the JSON Schema sent to the model carries the same bounds, so a server
//! that enforces `minItems`/`maxItems` (llama.cpp does) cannot miss them.

use std::path::{Path, PathBuf};

use distillery_llm::{ChatMessage, ChatRequest, LlmClient, OutputSchema, Usage};
use sha2::{Digest, Sha256};

use crate::error::TabularError;
use crate::flat::{DesignTable, llm_json_schema_for};
use crate::schema::{Generator, Locale, MAX_COLUMNS, TableSchema};

/// Columns asked for when the description does not say.
const DEFAULT_COLUMNS: (usize, usize) = (3, 16);

/// The system prompt: everything the model needs to know, identical on every call.
pub const SYSTEM_PROMPT: &str = r#"You design tables of realistic synthetic data. Reply with one compact JSON object:
{"columns": [...], "locale": "en", "name": "<snake_case table name>"}
Each column is {"column": "<snake_case name>", "kind": "<kind>", ...the parameters of its kind}.

Kinds:
- id: sequential number; optional "prefix" (e.g. "ORD-") and "start".
- uuid; first_name, last_name, full_name, email, username, phone (email and username are made from the row's names); street_address, city, state, country, postcode; company, job_title, url, ip. No parameters.
- date, datetime: "min" and "max" dates (YYYY-MM-DD).
- integer, float: "min" and "max"; optional "distribution": "uniform", "normal" or "lognormal" (skewed amounts: prices, incomes, counts of likes), optionally with the "mean" and "std" of the values; float may set "decimals".
- category: "values" (labels) and "weights" (one relative frequency per label).
- boolean: "rate", the share of true values (0 to 1).
- text: free text; optional "words" (typical length).
- foreign_key: "ref", an earlier column whose values it repeats.
- expression: "type" (int, float, bool, string or date) and "value", a formula over earlier columns of the row.

Formulas use column names, numbers, "strings", + - * / % ^, < <= > >= == !=, && || !, and:
if(condition, a, b), min(a, b), max(a, b), clamp(x, low, high), abs(x), round(x), round_to(x, digits),
randint(low, high), uniform(low, high), normal(mean, std), chance(p) (true with probability p),
choice("a", "b"), sigmoid(x), year(date), month(date), add_days(date, n), days_between(date1, date2), str::from(x).
Integer division truncates: write 1.0 * a / b for a fraction.
Examples: "quantity * unit_price" (float), "birth_year + 22 + randint(-2, 2)" (int),
"chance(if(tenure_months < 12, 0.6, 0.1))" (bool), "add_days(order_date, randint(1, 7))" (date).

Rules: use the most specific kind (email for e-mail addresses, city for cities, category for a few labels);
realistic ranges, labels and weights for the domain; unique snake_case names; an expression or foreign_key
only uses columns before it; values that follow from other columns (totals, outcomes) are expressions.

Example (another domain: do not copy its columns), for "library loans: loan id, member name, loan date in 2024,
number of books, genre, late fee of 0.50 per book":
{"name": "loans", "columns": [{"column": "loan_id", "kind": "id", "prefix": "L-"}, {"column": "member_name", "kind": "full_name"}, {"column": "loan_date", "kind": "date", "min": "2024-01-01", "max": "2024-12-31"}, {"column": "books", "kind": "integer", "min": 1, "max": 8, "distribution": "lognormal"}, {"column": "genre", "kind": "category", "values": ["fiction", "history", "science"], "weights": [5, 2, 2]}, {"column": "late_fee", "kind": "expression", "type": "float", "value": "books * 0.5", "decimals": 2}], "locale": "en"}"#;

/// A designed schema and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Designed {
    /// The validated schema.
    pub schema: TableSchema,
    /// True when it came from the cache (no LLM call).
    pub cached: bool,
    /// Tokens the calls used (zero from the cache).
    pub usage: Usage,
    /// LLM calls made (0 from the cache; 2 or more after a repair).
    pub calls: u32,
    /// True when the first answer needed the repair round trip.
    pub repaired: bool,
    /// The row count the description asks for ("10k rows"), if any.
    pub requested_rows: Option<u64>,
}

impl Designed {
    /// Prompt plus completion tokens.
    pub fn tokens(&self) -> u64 {
        self.usage.prompt_tokens as u64 + self.usage.completion_tokens as u64
    }
}

/// Knobs of [`design`]; the defaults suit most models.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesignOptions {
    /// Column count to ask for (default: what the description says, see [`requested_columns`]).
    pub columns: Option<usize>,
    /// Locale to ask for (default: the model chooses, usually from the description).
    pub locale: Option<Locale>,
    /// Completion token limit per call (default: sized to the column count).
    pub max_tokens: Option<u32>,
    /// Sampling temperature (default 0.2: schemas should be sensible, not creative).
    pub temperature: Option<f32>,
    /// Sampling seed (default: none).
    pub seed: Option<u64>,
}

/// Lowercases, collapses whitespace and strips trailing punctuation: the form the cache keys on.
pub fn normalize_description(description: &str) -> String {
    let collapsed = description.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    collapsed.trim_end_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace()).to_string()
}

/// Words of a description: lowercase runs of letters, digits and `.` (thousands separators removed).
fn tokens(description: &str) -> Vec<String> {
    let lower = description.to_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    let mut cleaned = String::with_capacity(lower.len());
    for (i, c) in chars.iter().enumerate() {
        // "1,000" and "1_000" are one number.
        let between_digits =
            i > 0 && i + 1 < chars.len() && chars[i - 1].is_ascii_digit() && chars[i + 1].is_ascii_digit();
        if matches!(c, ',' | '_') && between_digits {
            continue;
        }
        cleaned.push(*c);
    }
    cleaned
        .split(|c: char| !(c.is_alphanumeric() || c == '.'))
        .map(|w| w.trim_matches('.'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn number_word(w: &str) -> Option<f64> {
    const WORDS: [&str; 21] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
    ];
    if let Some(i) = WORDS.iter().position(|x| *x == w) {
        return Some(i as f64);
    }
    Some(match w {
        "a" | "an" => 1.0,
        "dozen" => 12.0,
        "thirty" => 30.0,
        "forty" => 40.0,
        "fifty" => 50.0,
        "hundred" => 100.0,
        _ => return None,
    })
}

fn multiplier(w: &str) -> Option<f64> {
    match w {
        "k" | "thousand" | "thousands" => Some(1e3),
        "m" | "mm" | "million" | "millions" | "mio" => Some(1e6),
        "b" | "billion" => Some(1e9),
        _ => None,
    }
}

/// A number in `w`: `20`, `1.5`, `10k`, `2m`, `twenty`.
fn parse_number(w: &str) -> Option<f64> {
    if let Ok(x) = w.parse::<f64>() {
        return Some(x);
    }
    let split = w.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, suffix) = w.split_at(split);
    let x = num.parse::<f64>().ok()?;
    Some(x * multiplier(suffix)?)
}

/// The quantity right before token `i` (skipping up to `skip` adjectives), with multipliers: "10k rows",
/// "1.5 million rows", "20 numeric columns", "a dozen columns".
fn quantity_before(words: &[String], i: usize, skip: usize) -> Option<f64> {
    let mut j = i;
    let mut skipped = 0;
    while j > 0 {
        j -= 1;
        let w = words[j].as_str();
        if let Some(m) = multiplier(w)
            && j > 0
            && let Some(x) = parse_number(&words[j - 1]).or_else(|| number_word(&words[j - 1]))
        {
            return Some(x * m);
        }
        if let Some(x) = parse_number(w) {
            return Some(x);
        }
        if w == "dozen" {
            return Some(12.0);
        }
        if let Some(x) = number_word(w).filter(|_| !matches!(w, "a" | "an")) {
            return Some(x);
        }
        skipped += 1;
        if skipped > skip {
            return None;
        }
    }
    None
}

/// The column count a description asks for ("with 20 columns", "a 12-column table", "twelve fields").
pub fn requested_columns(description: &str) -> Option<usize> {
    let words = tokens(description);
    words
        .iter()
        .enumerate()
        .filter(|(_, w)| matches!(w.as_str(), "columns" | "column" | "cols" | "fields" | "attributes" | "features"))
        .find_map(|(i, _)| quantity_before(&words, i, 2))
        .filter(|x| x.fract() == 0.0 && *x >= 1.0 && *x <= MAX_COLUMNS as f64)
        .map(|x| x as usize)
}

/// The row count a description asks for ("1000 rows", "10k rows", "1,000 records", "2 million rows").
pub fn requested_rows(description: &str) -> Option<u64> {
    let words = tokens(description);
    words
        .iter()
        .enumerate()
        .filter(|(_, w)| {
            matches!(w.as_str(), "rows" | "row" | "records" | "record" | "entries" | "lines" | "samples" | "examples")
        })
        .find_map(|(i, _)| quantity_before(&words, i, 1))
        .filter(|x| *x >= 1.0 && *x <= 1e12)
        .map(|x| x.round() as u64)
}

/// The number of fields a description lists ("orders: id, customer, date and total" lists 4): the items
/// separated by commas, semicolons or "and" after the first colon (or in the whole text), when there are at
/// least four. Only a hint: it bounds the column count of the constrained output, it is not checked.
pub fn listed_fields(description: &str) -> Option<usize> {
    let list = description.split_once(':').map_or(description, |(_, rest)| rest);
    let n = list
        .split([',', ';'])
        .flat_map(|part| part.split(" and "))
        .filter(|item| item.chars().any(char::is_alphanumeric))
        .count();
    (n >= 4).then_some(n)
}

/// Columns accepted around a requested count: `n ± max(2, n / 5)`, at least 1.
pub fn column_tolerance(n: usize) -> (usize, usize) {
    let tol = (n / 5).max(2);
    (n.saturating_sub(tol).max(1), (n + tol).min(MAX_COLUMNS))
}

/// A directory of designed schemas, one JSON file per (normalised description, model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaCache {
    dir: PathBuf,
}

impl SchemaCache {
    /// A cache in `dir`, created on the first write.
    pub fn new(dir: impl Into<PathBuf>) -> SchemaCache {
        SchemaCache { dir: dir.into() }
    }

    /// A cache in `dir`, created now.
    pub fn open(dir: impl Into<PathBuf>) -> Result<SchemaCache, TabularError> {
        let cache = SchemaCache::new(dir);
        std::fs::create_dir_all(&cache.dir)
            .map_err(|source| TabularError::Cache { path: cache.dir.clone(), source })?;
        Ok(cache)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key: hex SHA-256 of the normalised description and the model name.
    pub fn key(description: &str, model: &str) -> String {
        Self::key_with(description, model, "")
    }

    fn key_with(description: &str, model: &str, variant: &str) -> String {
        let mut h = Sha256::new();
        h.update(normalize_description(description).as_bytes());
        h.update([0u8]);
        h.update(model.as_bytes());
        if !variant.is_empty() {
            h.update([0u8]);
            h.update(variant.as_bytes());
        }
        hex::encode(h.finalize())
    }

    fn path_of(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The file a schema for this description and model is stored in.
    pub fn path_for(&self, description: &str, model: &str) -> PathBuf {
        self.path_of(&Self::key(description, model))
    }

    /// The cached schema, if there is a valid one (an unreadable or invalid file counts as a miss).
    pub fn get(&self, description: &str, model: &str) -> Result<Option<TableSchema>, TabularError> {
        self.get_key(&Self::key(description, model))
    }

    fn get_key(&self, key: &str) -> Result<Option<TableSchema>, TabularError> {
        let path = self.path_of(key);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(TabularError::Cache { path, source }),
        };
        match serde_json::from_str::<TableSchema>(&text) {
            Ok(schema) if schema.validate().is_ok() => Ok(Some(schema)),
            _ => {
                tracing::warn!(path = %path.display(), "ignoring an unreadable or invalid cached schema");
                Ok(None)
            }
        }
    }

    /// Stores a schema (atomically: a temporary file renamed into place) and returns its path.
    pub fn put(&self, description: &str, model: &str, schema: &TableSchema) -> Result<PathBuf, TabularError> {
        self.put_key(&Self::key(description, model), schema)
    }

    fn put_key(&self, key: &str, schema: &TableSchema) -> Result<PathBuf, TabularError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TabularError::Cache { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let path = self.path_of(key);
        let tmp = self.dir.join(format!(".{key}.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(schema).map_err(|e| TabularError::SchemaJson(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        Ok(path)
    }
}

/// Converts, validates and checks the column count of a model's answer; every problem is listed.
fn check(design: DesignTable, description: &str, columns: Option<(usize, usize)>) -> Result<TableSchema, Vec<String>> {
    let n_given = design.columns.len();
    let mut schema = design.into_schema(description)?;
    unique_names(&mut schema);
    mend_references(&mut schema);
    let mut errors = schema.validate().err().unwrap_or_default();
    if let Some((lo, hi)) = columns
        && !(lo..=hi).contains(&n_given)
    {
        errors.push(format!(
            "the description asks for about {} columns but the schema has {n_given}; give {lo} to {hi} columns",
            (lo + hi) / 2
        ));
    }
    if errors.is_empty() {
        schema.description = description.trim().to_string();
        Ok(schema)
    } else {
        Err(errors)
    }
}

/// A model's schema that names two columns alike ("rate" twice) gets `_2`, `_3`, ... on the later ones
/// instead of a failed design: the name is the model's slip, the columns are what was asked for (an
/// expression naming "rate" reads the first). Only designs are mended so; a user's schema file stays strict.
fn unique_names(schema: &mut TableSchema) {
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let taken: std::collections::HashSet<String> = schema.columns.iter().map(|c| c.name.to_lowercase()).collect();
    for c in &mut schema.columns {
        if seen.insert(c.name.to_lowercase()) {
            continue;
        }
        let base = c.name.clone();
        let mut k = 2;
        while taken.contains(&format!("{base}_{k}").to_lowercase())
            || seen.contains(&format!("{base}_{k}").to_lowercase())
        {
            k += 1;
        }
        c.name = format!("{base}_{k}");
        seen.insert(c.name.to_lowercase());
    }
}

/// An expression of a model's design that names a column by part of its name ("books" for
/// `customer_total_books`, "churn_duration" for `customer_churn_duration`) reads that column when exactly one
/// earlier column has those words, whole and in that order, in its name: the slip small models make most,
/// mended without another LLM call. An ambiguous or unknown
/// name is left for validation to report (and the repair call to fix). Only designs are mended so.
fn mend_references(schema: &mut TableSchema) {
    for i in 0..schema.columns.len() {
        let (earlier, rest) = schema.columns.split_at_mut(i);
        let Generator::Expression { expr, .. } = &mut rest[0].generator else { continue };
        let Ok(node) = crate::expr::parse(expr) else { continue };
        for v in crate::expr::References::of(&node).variables {
            if earlier.iter().any(|c| c.name == v) {
                continue;
            }
            let wanted = v.to_ascii_lowercase();
            let wanted: Vec<&str> = wanted.split('_').collect();
            let matches: Vec<&str> = earlier
                .iter()
                .map(|c| c.name.as_str())
                .filter(|n| {
                    let parts: Vec<String> = n.to_ascii_lowercase().split('_').map(str::to_string).collect();
                    parts.windows(wanted.len()).any(|w| w.iter().zip(&wanted).all(|(a, b)| a == b))
                })
                .collect();
            if let [only] = matches.as_slice() {
                *expr = replace_identifier(expr, &v, only);
            }
        }
    }
}

/// `expr` with every identifier token `from` (outside string literals) replaced by `to`.
fn replace_identifier(expr: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(expr.len() + to.len());
    let mut chars = expr.char_indices().peekable();
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            out.push(c);
            // A string literal, copied as it is (a backslash escapes the next character).
            while let Some((_, d)) = chars.next() {
                out.push(d);
                if d == '\\' {
                    if let Some((_, e)) = chars.next() {
                        out.push(e);
                    }
                } else if d == '"' {
                    break;
                }
            }
        } else if is_ident(c) {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if !is_ident(d) {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            let token = &expr[i..end];
            out.push_str(if token == from { to } else { token });
        } else {
            out.push(c);
        }
    }
    out
}

/// The user message: the request, the description last.
fn user_message(description: &str, columns: Option<usize>, locale: Option<Locale>) -> String {
    let mut m = String::from("Design the table. ");
    match columns {
        Some(n) => m.push_str(&format!("Use exactly {n} columns. ")),
        None => m.push_str(
            "Make one column per field the description names, in its order; add a few fitting columns only when \
             it names fewer than five. ",
        ),
    }
    if let Some(l) = locale {
        m.push_str(&format!("Use locale \"{l}\". "));
    } else {
        m.push_str("Choose the locale from the description (\"en\" when it does not say). ");
    }
    m.push_str("Description:\n");
    m.push_str(description.trim());
    m
}

/// The repair message: every problem, and what to send back.
fn repair_message(errors: &[String]) -> String {
    let mut m = format!("That schema has {} problem{}:\n", errors.len(), if errors.len() == 1 { "" } else { "s" });
    for e in errors {
        m.push_str("- ");
        m.push_str(e);
        m.push('\n');
    }
    m.push_str("Reply with the complete corrected JSON object (every column, not only the changed ones).");
    m
}

/// Designs a schema for `description`: from the cache when present, else one LLM call (plus at most one
/// repair). A fresh schema is stored in the cache.
pub async fn design(
    llm: &LlmClient,
    description: &str,
    cache: Option<&SchemaCache>,
    opts: &DesignOptions,
) -> Result<Designed, TabularError> {
    let description = description.trim();
    if description.is_empty() {
        return Err(TabularError::InvalidRequest("the description is empty".into()));
    }
    let requested_rows = requested_rows(description);
    let columns = opts.columns.or_else(|| requested_columns(description)).map(|n| n.clamp(1, MAX_COLUMNS));
    let model = llm.config().model.clone();
    let variant = match (opts.columns, opts.locale) {
        (None, None) => String::new(),
        (c, l) => format!("columns={c:?};locale={l:?}"),
    };
    let key = SchemaCache::key_with(description, &model, &variant);
    if let Some(cache) = cache
        && let Some(schema) = cache.get_key(&key)?
    {
        tracing::debug!(key, "schema design served from the cache");
        return Ok(Designed {
            schema,
            cached: true,
            usage: Usage::default(),
            calls: 0,
            repaired: false,
            requested_rows,
        });
    }

    let bounds = columns.map(column_tolerance);
    // Without a requested count, a listed set of fields bounds the output (a small model that starts repeating
    // columns stops soon); else the defaults.
    let grammar_bounds = bounds.unwrap_or_else(|| {
        listed_fields(description).map_or(DEFAULT_COLUMNS, |n| (n.saturating_sub(2).max(1), (n + 3).min(MAX_COLUMNS)))
    });
    let max_cols = grammar_bounds.1 as u32;
    let mut req = ChatRequest::new(vec![
        ChatMessage::system(SYSTEM_PROMPT),
        ChatMessage::user(user_message(description, columns, opts.locale)),
    ]);
    req.temperature = Some(opts.temperature.unwrap_or(0.2));
    req.max_tokens = Some(opts.max_tokens.unwrap_or((70 * max_cols + 200).min(6000)));
    req.seed = opts.seed;
    req.schema = Some(OutputSchema { name: "table_schema".into(), schema: llm_json_schema_for(Some(grammar_bounds)) });

    let mut usage = Usage::default();
    let first = llm.chat_json_metered::<DesignTable, _>(req.clone(), |_| Ok(()), &mut usage).await?;
    let mut calls = first.calls;
    let first_raw = first.response.content.trim().to_string();
    let errors = match check(first.value, description, bounds) {
        Ok(schema) => {
            store(cache, &key, &schema);
            return Ok(Designed { schema, cached: false, usage, calls, repaired: false, requested_rows });
        }
        Err(errors) => errors,
    };
    tracing::info!(problems = errors.len(), "the designed schema is invalid; asking for one repair");
    req.messages.push(ChatMessage::assistant(first_raw.clone()));
    req.messages.push(ChatMessage::user(repair_message(&errors)));
    let second = llm.chat_json_metered::<DesignTable, _>(req, |_| Ok(()), &mut usage).await?;
    calls += second.calls;
    let second_raw = second.response.content.trim().to_string();
    match check(second.value, description, bounds) {
        Ok(schema) => {
            store(cache, &key, &schema);
            Ok(Designed { schema, cached: false, usage, calls, repaired: true, requested_rows })
        }
        Err(errors) => {
            Err(TabularError::DesignFailed { errors, raw: format!("{first_raw}\n--- repair ---\n{second_raw}") })
        }
    }
}

fn store(cache: Option<&SchemaCache>, key: &str, schema: &TableSchema) {
    if let Some(cache) = cache
        && let Err(e) = cache.put_key(key, schema)
    {
        // A cache that cannot be written costs a later call, not this result.
        tracing::warn!(error = %e, "could not store the designed schema");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use distillery_core::Metrics;
    use distillery_llm::LlmConfig;
    use serde_json::{Value, json};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

    #[test]
    fn descriptions_normalise() {
        assert_eq!(
            normalize_description("  Customer   churn DATA\tfor a Telecom!!  "),
            "customer churn data for a telecom"
        );
        assert_eq!(normalize_description("orders."), normalize_description("Orders"));
        assert_ne!(SchemaCache::key("orders", "m1"), SchemaCache::key("orders", "m2"));
        assert_eq!(SchemaCache::key("Orders.", "m1"), SchemaCache::key(" orders ", "m1"));
        assert_eq!(SchemaCache::key("x", "m").len(), 64);
    }

    #[test]
    fn column_and_row_counts_are_read() {
        assert_eq!(requested_columns("customer churn data for a telecom company with 20 columns"), Some(20));
        assert_eq!(requested_columns("a 12-column table of orders"), Some(12));
        assert_eq!(requested_columns("twelve fields about patients"), Some(12));
        assert_eq!(requested_columns("with 15 numeric columns"), Some(15));
        assert_eq!(requested_columns("a dozen columns"), Some(12));
        assert_eq!(requested_columns("orders with a status column"), None);
        assert_eq!(requested_columns("1000 rows of orders"), None);
        assert_eq!(requested_rows("1000 rows of orders"), Some(1000));
        assert_eq!(requested_rows("10k rows"), Some(10_000));
        assert_eq!(requested_rows("1,000 records of sales"), Some(1000));
        assert_eq!(requested_rows("1.5 million rows"), Some(1_500_000));
        assert_eq!(requested_rows("2M rows, 8 columns"), Some(2_000_000));
        assert_eq!(requested_rows("a table with 20 columns"), None);
        assert_eq!(column_tolerance(20), (16, 24));
        assert_eq!(
            listed_fields("Bank card transactions: id, holder name, amount, currency, card type and a fraud flag."),
            Some(6)
        );
        assert_eq!(listed_fields("orders with id, customer, date, total"), Some(4));
        assert_eq!(listed_fields("telecom churn: customers and plans"), None);
        assert_eq!(column_tolerance(5), (3, 7));
        assert_eq!(column_tolerance(1), (1, 3));
    }

    #[test]
    fn the_system_prompt_describes_every_kind() {
        // The prompt is prose written for the model (kinds grouped, with their parameters); it is checked
        // against the one list of kinds rather than built from it, so its bytes stay fixed.
        let (_, rest) = SYSTEM_PROMPT.split_once("\nKinds:\n").unwrap();
        let (kinds, _) = rest.split_once("\n\n").unwrap();
        let words: std::collections::HashSet<&str> =
            kinds.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).collect();
        for kind in crate::schema::Kind::ALL {
            assert!(words.contains(kind.as_str()), "the system prompt does not describe {:?}", kind.as_str());
        }
        // The kinds without parameters, in the order the constrained output lists them.
        let line = kinds.lines().find(|l| l.ends_with("No parameters.")).unwrap();
        let mut listed = String::new();
        let mut depth = 0;
        for c in line.trim_start_matches("- ").trim_end_matches("No parameters.").chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                c if depth == 0 => listed.push(c),
                _ => {}
            }
        }
        let listed: Vec<&str> = listed.split([';', ',', '.']).map(str::trim).filter(|w| !w.is_empty()).collect();
        let plain: Vec<&str> = crate::flat::plain_kinds().into_iter().map(crate::schema::Kind::as_str).collect();
        assert_eq!(listed, plain);
    }

    const GOOD: &str = r#"{"columns": [
        {"column": "customer_id", "kind": "id", "prefix": "C-"},
        {"column": "name", "kind": "full_name"},
        {"column": "email", "kind": "email"},
        {"column": "tenure_months", "kind": "integer", "max": 72, "min": 0},
        {"column": "monthly_fee", "kind": "float", "decimals": 2, "max": 150, "min": 10},
        {"column": "churned", "kind": "expression", "expr": "chance(if(tenure_months < 12, 0.5, 0.1))", "type": "bool"}
    ], "locale": "en", "name": "churn"}"#;

    #[test]
    fn a_design_naming_two_columns_alike_gets_unique_names() {
        let design: DesignTable = serde_json::from_str(
            r#"{"columns": [
                {"column": "loan_id", "kind": "id"},
                {"column": "rate", "kind": "float", "min": 1, "max": 9, "decimals": 2},
                {"column": "Rate", "kind": "float", "min": 1, "max": 9, "decimals": 2},
                {"column": "rate_2", "kind": "integer", "min": 0, "max": 3},
                {"column": "rate", "kind": "integer", "min": 0, "max": 3}
            ], "locale": "en", "name": "loans"}"#,
        )
        .unwrap();
        let schema = check(design, "loans", None).expect("mended, valid");
        let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
        // Case-insensitively unique, never taking a name another column already has ("rate_2").
        assert_eq!(names, ["loan_id", "rate", "Rate_3", "rate_2", "rate_4"]);
    }

    #[test]
    fn an_expression_naming_a_column_by_part_of_its_name_is_mended() {
        let design: DesignTable = serde_json::from_str(
            r#"{"columns": [
                {"column": "customer_id", "kind": "id"},
                {"column": "customer_total_books", "kind": "integer", "min": 0, "max": 40},
                {"column": "late_days", "kind": "integer", "min": 0, "max": 9},
                {"column": "overdue_days", "kind": "integer", "min": 0, "max": 9},
                {"column": "customer_late_fee", "kind": "expression", "expr": "books * 0.5 + if(books > 3, 1.0, 0.0)", "type": "float"},
                {"column": "customer_churn_duration", "kind": "integer", "min": 1, "max": 9},
                {"column": "customer_churn_frequency", "kind": "integer", "min": 1, "max": 9},
                {"column": "churn_outcome", "kind": "expression", "expr": "churn_duration * churn_frequency", "type": "int"},
                {"column": "label", "kind": "expression", "expr": "if(books > 3, \"books: many\", \"books: few\")", "type": "string"}
            ], "locale": "en", "name": "library"}"#,
        )
        .unwrap();
        let schema = check(design, "library", None).expect("mended, valid");
        let Generator::Expression { expr, .. } = &schema.columns[4].generator else { panic!() };
        assert_eq!(expr, "customer_total_books * 0.5 + if(customer_total_books > 3, 1.0, 0.0)");
        // Two words of a name, in order (CI's 0.5B design of "customer churn data": a failed design before).
        let Generator::Expression { expr, .. } = &schema.columns[7].generator else { panic!() };
        assert_eq!(expr, "customer_churn_duration * customer_churn_frequency");
        let Generator::Expression { expr, .. } = &schema.columns[8].generator else { panic!() };
        assert_eq!(
            expr, "if(customer_total_books > 3, \"books: many\", \"books: few\")",
            "string literals are left alone"
        );
        // "days" names two columns: ambiguous, left for validation (and the repair call).
        let ambiguous: DesignTable = serde_json::from_str(
            r#"{"columns": [
                {"column": "late_days", "kind": "integer", "min": 0, "max": 9},
                {"column": "overdue_days", "kind": "integer", "min": 0, "max": 9},
                {"column": "fee", "kind": "expression", "expr": "days * 2", "type": "int"},
                {"column": "fee_2", "kind": "expression", "expr": "days_late * 2", "type": "int"}
            ], "locale": "en", "name": "x"}"#,
        )
        .unwrap();
        let errors = check(ambiguous, "x", None).unwrap_err();
        assert!(errors.iter().any(|e| e.contains("\"days\", which does not exist")), "{errors:?}");
        // Words out of order are not a part of the name: left for validation.
        assert!(errors.iter().any(|e| e.contains("\"days_late\", which does not exist")), "{errors:?}");
    }

    const BAD: &str = r#"{"columns": [
        {"column": "customer_id", "kind": "id"},
        {"column": "tenure_months", "kind": "integer", "max": 72, "min": 0, "null_rate": -0.5},
        {"column": "plan", "kind": "category", "values": ["a", "b"], "weights": [1]},
        {"column": "churned", "kind": "expression", "expr": "chance(seniority / 100)", "type": "bool"},
        {"column": "owner", "kind": "foreign_key", "ref": "account"}
    ], "locale": "en", "name": "churn"}"#;

    /// Answers with the given contents in turn (the last one repeated).
    struct Replies(Vec<&'static str>, AtomicUsize);

    impl Respond for Replies {
        fn respond(&self, _: &Request) -> ResponseTemplate {
            let i = self.1.fetch_add(1, Ordering::SeqCst).min(self.0.len() - 1);
            ResponseTemplate::new(200).set_body_json(json!({
                "model": "fake",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": self.0[i]}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1000, "completion_tokens": 200}
            }))
        }
    }

    async fn fake_llm(replies: Vec<&'static str>) -> (MockServer, LlmClient) {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(Replies(replies, AtomicUsize::new(0)))
            .mount(&server)
            .await;
        let cfg = LlmConfig {
            base_url: format!("{}/v1", server.uri()),
            model: "fake".into(),
            max_concurrency: Some(2),
            max_retries: 0,
            timeout_secs: 5,
            ..LlmConfig::default()
        };
        let client = LlmClient::connect(cfg, distillery_llm::LlmRole::Schema, Metrics::isolated()).await;
        (server, client)
    }

    async fn bodies(server: &MockServer) -> Vec<Value> {
        server.received_requests().await.unwrap().iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect()
    }

    #[tokio::test]
    async fn a_valid_first_answer_is_used_and_cached() {
        let (server, llm) = fake_llm(vec![GOOD]).await;
        let dir = tempfile::tempdir().unwrap();
        let cache = SchemaCache::open(dir.path().join("schemas")).unwrap();
        let desc = "Telecom customer churn, 5000 rows.";
        let d = design(&llm, desc, Some(&cache), &DesignOptions::default()).await.unwrap();
        assert!(!d.cached && !d.repaired);
        assert_eq!((d.calls, d.tokens()), (1, 1200));
        assert_eq!(d.requested_rows, Some(5000));
        assert_eq!(d.schema.columns.len(), 6);
        assert_eq!(d.schema.description, desc);
        let sent = bodies(&server).await;
        assert_eq!(sent.len(), 1);
        let msgs = sent[0]["messages"].as_array().unwrap();
        assert_eq!(msgs[0]["content"], SYSTEM_PROMPT, "a stable system prompt first");
        assert!(msgs[1]["content"].as_str().unwrap().ends_with(desc), "the description last");
        assert_eq!(sent[0]["response_format"]["type"], "json_schema");
        assert!(!sent[0]["response_format"].to_string().contains("pattern"));

        // The same request, differently spelled: served from the cache, no second call.
        let again = design(&llm, "  telecom CUSTOMER churn, 5000 rows ", Some(&cache), &DesignOptions::default())
            .await
            .unwrap();
        assert!(again.cached);
        assert_eq!((again.calls, again.tokens()), (0, 0));
        assert_eq!(again.schema.columns, d.schema.columns);
        assert_eq!(server.received_requests().await.unwrap().len(), 1, "the cache hit made no HTTP call");
        assert_eq!(std::fs::read_dir(cache.dir()).unwrap().count(), 1);
        // Another model is another key.
        assert!(cache.get(desc, "other-model").unwrap().is_none());
    }

    #[tokio::test]
    async fn an_invalid_answer_is_repaired_once_quoting_every_problem() {
        let (server, llm) = fake_llm(vec![BAD, GOOD]).await;
        let d = design(&llm, "telecom churn", None, &DesignOptions::default()).await.unwrap();
        assert!(d.repaired && !d.cached);
        assert_eq!(d.calls, 2);
        assert_eq!(d.tokens(), 2400);
        let sent = bodies(&server).await;
        assert_eq!(sent.len(), 2);
        let msgs = sent[1]["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 4);
        assert_eq!(msgs[2]["role"], "assistant");
        assert_eq!(msgs[2]["content"].as_str().unwrap(), BAD.trim());
        let repair = msgs[3]["content"].as_str().unwrap();
        // Every problem of the first answer is quoted.
        let expected = BAD_PROBLEMS.iter().chain(std::iter::once(&"\"seniority\", which does not exist"));
        for needle in expected {
            assert!(repair.contains(needle), "{needle:?} missing from the repair prompt:\n{repair}");
        }
        assert!(repair.starts_with("That schema has 4 problems"), "{repair}");
    }

    const BAD_PROBLEMS: [&str; 3] = [
        "column 2 \"tenure_months\": null_rate must be between 0 and 1",
        "1 weights for 2 values",
        "\"account\", which does not exist",
    ];

    #[tokio::test]
    async fn invalid_twice_is_a_design_failure() {
        let (server, llm) = fake_llm(vec![BAD, BAD]).await;
        let dir = tempfile::tempdir().unwrap();
        let cache = SchemaCache::new(dir.path());
        let e = design(&llm, "telecom churn", Some(&cache), &DesignOptions::default()).await.unwrap_err();
        let TabularError::DesignFailed { errors, raw } = &e else { panic!("{e}") };
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(raw.contains("--- repair ---"));
        assert!(e.to_string().contains("after one repair"));
        assert!(e.is_user_error() && e.problems().unwrap().len() == 4);
        assert_eq!(server.received_requests().await.unwrap().len(), 2, "exactly one repair");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing cached");
    }

    #[tokio::test]
    async fn a_requested_column_count_is_asked_for_and_checked() {
        // 6 columns where 20 were asked for: outside 16..=24 twice.
        let (server, llm) = fake_llm(vec![GOOD, GOOD]).await;
        let e = design(&llm, "churn data with 20 columns", None, &DesignOptions::default()).await.unwrap_err();
        let problems = e.problems().unwrap();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("asks for about 20 columns but the schema has 6; give 16 to 24"), "{problems:?}");
        let sent = bodies(&server).await;
        assert!(sent[0]["messages"][1]["content"].as_str().unwrap().contains("Use exactly 20 columns"));
        let cols = &sent[0]["response_format"]["json_schema"]["schema"]["properties"]["columns"];
        assert_eq!((cols["minItems"].as_u64(), cols["maxItems"].as_u64()), (Some(16), Some(24)));
        // Within tolerance it passes: ask for 5, get 6.
        let (_server, llm) = fake_llm(vec![GOOD]).await;
        let opts = DesignOptions { columns: Some(5), ..DesignOptions::default() };
        assert_eq!(design(&llm, "churn", None, &opts).await.unwrap().schema.columns.len(), 6);
    }

    #[tokio::test]
    async fn an_empty_description_makes_no_call() {
        let (server, llm) = fake_llm(vec![GOOD]).await;
        assert!(matches!(
            design(&llm, "  ", None, &DesignOptions::default()).await,
            Err(TabularError::InvalidRequest(_))
        ));
        assert!(server.received_requests().await.unwrap().is_empty());
    }

    #[test]
    fn the_prompt_example_is_a_valid_design() {
        let start = SYSTEM_PROMPT.rfind("\n{").unwrap();
        let raw = &SYSTEM_PROMPT[start..];
        let example: DesignTable = serde_json::from_str(raw).unwrap();
        let schema = example.into_schema("employees").unwrap();
        schema.validate().unwrap();
        // Its keys are in the order the constrained output imposes (llama.cpp: the required properties, then
        // the optional ones, each in the order the schema lists them: the order written, with preserve_order).
        let json_schema = crate::flat::llm_json_schema();
        let shapes = json_schema["properties"]["columns"]["items"]["anyOf"].as_array().unwrap().clone();
        for c in raw.split("{\"column\"").skip(1) {
            let obj = format!("{{\"column\"{c}");
            let parts: Vec<&str> = obj.split("\": ").collect();
            let keys: Vec<String> = parts[..parts.len() - 1]
                .iter()
                .filter_map(|p| p.rfind('"').map(|i| p[i + 1..].to_string()))
                .filter(|k| !matches!(k.as_str(), "locale" | "name"))
                .collect();
            let kind = obj.split("\"kind\": \"").nth(1).unwrap().split('"').next().unwrap();
            let shape = shapes
                .iter()
                .find(|s| s["properties"]["kind"]["enum"].as_array().unwrap().contains(&Value::from(kind)))
                .unwrap();
            let required: Vec<&Value> = shape["required"].as_array().unwrap().iter().collect();
            let props: Vec<&String> = shape["properties"].as_object().unwrap().keys().collect();
            let expect: Vec<String> = props
                .iter()
                .filter(|p| required.contains(&&Value::from(p.as_str())))
                .chain(props.iter().filter(|p| !required.contains(&&Value::from(p.as_str()))))
                .filter(|p| keys.contains(p))
                .map(|p| p.to_string())
                .collect();
            assert_eq!(keys, expect, "key order in {obj}");
        }
    }
}
