//! The flat design form a (small) model fills in, its JSON Schema for constrained output, and its lenient
//! conversion to a [`TableSchema`].
//!
//! Every column is one flat object: `column` (its name), `kind` (one of [`Generator::KINDS`]) and the few
//! parameters its kind uses, all at the same level and all optional:
//!
//! ```json
//! {"column": "salary", "kind": "float", "decimals": 2, "distribution": "lognormal", "max": 400000,
//!  "mean": 65000, "min": 20000, "std": 25000}
//! ```
//!
//! The column's name is under `column` rather than `name` on purpose: `serde_json` (without
//! `preserve_order`) writes the schema's properties in alphabetical order, llama.cpp's grammar makes the
//! model write them in that order, and `column` sorts before `kind`, so the model names a column before it
//! chooses how to generate it. `name` is accepted too.
//!
//! Reading is tolerant of what models (and people) actually write: kinds in any case and common synonyms
//! (`UUID`, `int`, `enum`, `timestamp`, `fk`, `formula`, ...), numbers as strings (`"1,000"`, `"$20"`,
//! `"15%"`), percentages for rates, a distribution as an object, category values as one comma-separated
//! string, names with spaces (made snake_case), `min` above `max` (swapped), a date range given as years.
//! What cannot be read becomes a problem in the list [`DesignTable::into_schema`] returns, next to the
//! column it concerns; the strict checks then run on the converted schema ([`TableSchema::validate`]).

use chrono::Datelike as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::schema::{
    Column, Distribution, ExprType, Generator, Kind, Locale, TableSchema, is_identifier, parse_date, parse_datetime,
    suggest_identifier, tidy,
};

/// Default date range when a model leaves it out.
const DEFAULT_START: &str = "2020-01-01";
const DEFAULT_END: &str = "2024-12-31";
/// Most category values the model may write (keeps a looping model short).
const MAX_LLM_VALUES: usize = 10;
/// Longest name or label the model may write.
const MAX_LLM_NAME: usize = 48;
/// Longest expression the model may write.
const MAX_LLM_EXPR: usize = 200;

/// A table in the flat design form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Value")]
pub struct DesignTable {
    /// Table name (made snake_case).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Locale of the fake values (`en`, `fr_fr`, `de`, ...); unknown locales fall back to English.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// The columns in order.
    pub columns: Vec<DesignColumn>,
    /// What could not be read at the table level.
    #[serde(skip)]
    pub problems: Vec<String>,
}

/// A column in the flat design form: every parameter of every kind, all optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "Value")]
pub struct DesignColumn {
    /// Column name (made snake_case).
    #[serde(rename = "column")]
    pub name: String,
    /// Generator kind, one of [`Generator::KINDS`] or a common synonym.
    pub kind: String,
    /// Smallest value (integer, float; a year for date and datetime, whose `min` may also be a date string,
    /// read into `start`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest value (integer, float; a year for date and datetime, see `min`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// `uniform`, `normal` or `lognormal` (integer, float).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distribution: Option<String>,
    /// Mean of the values (normal, lognormal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Standard deviation of the values (normal, lognormal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// Mean of the logarithm (lognormal, instead of `mean`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mu: Option<f64>,
    /// Standard deviation of the logarithm (lognormal, instead of `std`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sigma: Option<f64>,
    /// Digits after the decimal point (float, where it defaults to 2; float expression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decimals: Option<u8>,
    /// Labels (category).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// Relative frequency of each label (category).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights: Option<Vec<f64>>,
    /// Share of true values (boolean).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// First date or date-time (date, datetime), or the first id (id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Last date or date-time (date, datetime).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// The expression (expression; read from `expr`, `value` or `formula`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    /// Result type of an expression: `int`, `float`, `bool`, `string` or `date`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub ty: Option<String>,
    /// Referenced earlier column (foreign_key; the name column of email and username).
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Typical number of words (text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub words: Option<u32>,
    /// Fewest words (text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_words: Option<u32>,
    /// Most words (text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_words: Option<u32>,
    /// Share of null values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub null_rate: Option<f64>,
    /// Text prefix of ids (id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Zero-padding width of prefixed ids (id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digits: Option<u8>,
    /// What could not be read in this column.
    #[serde(skip)]
    pub problems: Vec<String>,
}

/// The JSON Schema of the design form for structured output, for any column count.
pub fn llm_json_schema() -> Value {
    llm_json_schema_for(None)
}

/// Kinds without parameters in the constrained output ([`Kind::is_plain`]; `email` and `username` then take
/// their names from the row's name columns), in the order the system prompt lists them: as in [`Kind::ALL`],
/// except that `username` follows `email` (both are made from the row's names).
pub(crate) fn plain_kinds() -> Vec<Kind> {
    let mut kinds: Vec<Kind> = Kind::ALL.into_iter().filter(|k| k.is_plain() && *k != Kind::Username).collect();
    let after_email = kinds.iter().position(|k| *k == Kind::Email).map_or(kinds.len(), |i| i + 1);
    kinds.insert(after_email, Kind::Username);
    kinds
}

/// The JSON Schema of the design form; with `columns = Some((min, max))` the column count is constrained
/// too (llama.cpp enforces `minItems`/`maxItems`).
///
/// A column is one of a few object shapes (`anyOf`), one per group of kinds, each listing exactly the
/// parameters of its kinds and requiring the essential ones (`min`/`max` of numbers and dates,
/// `values`/`weights` of categories, `type`/`value` of expressions, ...): a grammar-constrained model can then
/// neither forget a range nor attach parameters to the wrong kind. `null_rate` is not offered (small models
/// sprinkle it everywhere; a schema written or edited by hand may set it). No `pattern` anywhere (llama.cpp's
/// grammar converter mishandles it); other properties are forbidden.
pub fn llm_json_schema_for(columns: Option<(usize, usize)>) -> Value {
    let number = json!({"type": "number"});
    let integer = json!({"type": "integer"});
    // Every string is bounded: a small model that starts repeating inside a string would otherwise only stop
    // at the token limit (strings are the one unbounded thing in a JSON grammar).
    let string = |max: usize| json!({"type": "string", "maxLength": max});
    let name = string(MAX_LLM_NAME);
    let shape = |kinds: &[Kind], params: Value, required: &[&str]| -> Value {
        // Written in this order (with serde_json's preserve_order; llama.cpp emits required properties first,
        // in schema order): the column, its kind, then the kind's parameters.
        let mut props = serde_json::Map::new();
        props.insert("column".into(), name.clone());
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        props.insert("kind".into(), json!({"type": "string", "enum": kinds}));
        props.extend(params.as_object().cloned().unwrap_or_default());
        let mut req = vec!["column", "kind"];
        req.extend_from_slice(required);
        json!({"type": "object", "properties": props, "required": req, "additionalProperties": false})
    };
    let distribution = json!({"type": "string", "enum": ["uniform", "normal", "lognormal"]});
    let shapes = vec![
        shape(&plain_kinds(), json!({}), &[]),
        shape(&[Kind::Id], json!({"prefix": string(12), "start": integer}), &[]),
        shape(&[Kind::Date, Kind::Datetime], json!({"min": string(20), "max": string(20)}), &["min", "max"]),
        shape(
            &[Kind::Integer],
            json!({"min": integer, "max": integer, "distribution": distribution, "mean": number, "std": number}),
            &["min", "max"],
        ),
        shape(
            &[Kind::Float],
            json!({"min": number, "max": number, "distribution": distribution, "mean": number, "std": number,
                   "decimals": integer}),
            &["min", "max"],
        ),
        shape(
            &[Kind::Category],
            json!({"values": {"type": "array", "items": name, "minItems": 2, "maxItems": MAX_LLM_VALUES},
                   "weights": {"type": "array", "items": number, "minItems": 2, "maxItems": MAX_LLM_VALUES}}),
            &["values", "weights"],
        ),
        shape(&[Kind::Boolean], json!({"rate": number}), &["rate"]),
        shape(&[Kind::Text], json!({"words": integer}), &[]),
        shape(&[Kind::ForeignKey], json!({"ref": name}), &["ref"]),
        shape(
            &[Kind::Expression],
            json!({"type": {"type": "string", "enum": ["int", "float", "bool", "string", "date"]},
                   "value": string(MAX_LLM_EXPR), "decimals": integer}),
            &["type", "value"],
        ),
    ];
    let (min_items, max_items) = columns.unwrap_or((1, 40));
    json!({
        "type": "object",
        "properties": {
            "name": name,
            "locale": {"type": "string", "enum": Locale::names()},
            "columns": {
                "type": "array",
                "items": {"anyOf": shapes},
                "minItems": min_items.max(1),
                "maxItems": max_items.max(1)
            }
        },
        "required": ["name", "columns"],
        "additionalProperties": false
    })
}

// ---------------------------------------------------------------------------------------------------------
// Lenient reading

fn norm_key(k: &str) -> String {
    k.trim().to_ascii_lowercase().replace([' ', '-'], "_")
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A number from a JSON number or a string like `"1,000"`, `"$20"`, `" 3.5 "`, `"15%"` (→ 0.15 when
/// `percent` applies).
fn number_of(v: &Value, percent: bool) -> Result<Option<f64>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(n.as_f64()),
        Value::Bool(b) => Ok(Some(if *b { 1.0 } else { 0.0 })),
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                return Ok(None);
            }
            let is_percent = t.ends_with('%');
            let cleaned: String = t.chars().filter(|c| !matches!(c, ',' | '_' | '$' | '€' | '£' | '%' | ' ')).collect();
            match cleaned.parse::<f64>() {
                Ok(x) if is_percent && percent => Ok(Some(x / 100.0)),
                Ok(x) => Ok(Some(x)),
                Err(_) => Err(format!("{s:?} is not a number")),
            }
        }
        other => Err(format!("{other} is not a number")),
    }
}

fn list_of_strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Array(items) => Some(items.iter().filter_map(text_of).collect()),
        Value::String(s) => {
            let sep = if s.contains('|') { '|' } else { ',' };
            Some(s.split(sep).map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())
        }
        _ => None,
    }
}

fn list_of_numbers(v: &Value) -> Result<Option<Vec<f64>>, String> {
    let items: Vec<Value> = match v {
        Value::Null => return Ok(None),
        Value::Array(items) => items.clone(),
        Value::String(s) => s.split(',').map(|x| Value::String(x.to_string())).collect(),
        other => return Err(format!("{other} is not a list of numbers")),
    };
    items.iter().map(|x| number_of(x, false).map(|n| n.unwrap_or(f64::NAN))).collect::<Result<Vec<_>, _>>().map(Some)
}

/// A small non-negative integer (rounds floats, reads strings).
fn small_uint<T: TryFrom<u64>>(v: &Value) -> Result<Option<T>, String> {
    match number_of(v, false)? {
        None => Ok(None),
        Some(x) if x.is_finite() && x >= 0.0 => {
            T::try_from(x.round() as u64).map(Some).map_err(|_| format!("{x} is too large"))
        }
        Some(x) => Err(format!("{x} is not a non-negative whole number")),
    }
}

impl From<Value> for DesignTable {
    fn from(v: Value) -> DesignTable {
        let mut t = DesignTable::default();
        let map = match v {
            Value::Object(map) => map,
            // A bare list of columns.
            Value::Array(items) => Map::from_iter([("columns".to_string(), Value::Array(items))]),
            other => {
                t.problems.push(format!("the schema must be a JSON object with \"columns\", got {other}"));
                return t;
            }
        };
        for (k, v) in map {
            match norm_key(&k).as_str() {
                "name" | "table" | "table_name" | "title" => t.name = text_of(&v),
                "locale" | "language" | "lang" => t.locale = text_of(&v),
                "columns" | "fields" | "schema" => match v {
                    Value::Array(items) => t.columns = items.into_iter().map(DesignColumn::from).collect(),
                    other => t.problems.push(format!("\"columns\" must be a list of column objects, got {other}")),
                },
                _ => {}
            }
        }
        t
    }
}

impl From<Value> for DesignColumn {
    fn from(v: Value) -> DesignColumn {
        let mut c = DesignColumn::default();
        let Value::Object(map) = v else {
            c.problems.push(format!("a column must be a JSON object, got {v}"));
            return c;
        };
        let has_name = map.keys().any(|k| matches!(norm_key(k).as_str(), "name" | "column_name" | "field"));
        for (k, v) in map {
            let key = norm_key(&k);
            let mut bad = |what: &str, e: String| c.problems.push(format!("{what} {e}"));
            match key.as_str() {
                "name" | "column_name" | "field" => c.name = text_of(&v).unwrap_or_default(),
                "column" if !has_name => c.name = text_of(&v).unwrap_or_default(),
                "kind" | "generator" | "faker" => c.kind = text_of(&v).unwrap_or_default(),
                "type" | "result_type" | "dtype" | "data_type" => c.ty = text_of(&v),
                // A date range may come as min/max too (it does in the constrained output).
                "min" | "minimum" | "min_value" | "low" => match number_of(&v, false) {
                    Ok(x) => c.min = x,
                    Err(_) if v.as_str().is_some_and(|s| lenient_date(s, false).is_some()) => c.start = text_of(&v),
                    Err(e) => bad("min", e),
                },
                "max" | "maximum" | "max_value" | "high" => match number_of(&v, false) {
                    Ok(x) => c.max = x,
                    Err(_) if v.as_str().is_some_and(|s| lenient_date(s, true).is_some()) => c.end = text_of(&v),
                    Err(e) => bad("max", e),
                },
                "mean" | "avg" | "average" | "median" => match number_of(&v, false) {
                    Ok(x) => c.mean = x,
                    Err(e) => bad("mean", e),
                },
                "std" | "stddev" | "std_dev" | "sd" | "stdev" | "standard_deviation" => match number_of(&v, false) {
                    Ok(x) => c.std = x,
                    Err(e) => bad("std", e),
                },
                "mu" => match number_of(&v, false) {
                    Ok(x) => c.mu = x,
                    Err(e) => bad("mu", e),
                },
                "sigma" => match number_of(&v, false) {
                    Ok(x) => c.sigma = x,
                    Err(e) => bad("sigma", e),
                },
                "distribution" | "dist" => match v {
                    Value::Object(d) => {
                        for (dk, dv) in d {
                            let num = number_of(&dv, false).ok().flatten();
                            match norm_key(&dk).as_str() {
                                "type" | "kind" | "name" => c.distribution = text_of(&dv),
                                "mean" => c.mean = c.mean.or(num),
                                "std" | "stddev" | "sd" => c.std = c.std.or(num),
                                "mu" => c.mu = c.mu.or(num),
                                "sigma" => c.sigma = c.sigma.or(num),
                                _ => {}
                            }
                        }
                    }
                    other => c.distribution = text_of(&other),
                },
                "decimals" | "precision" | "decimal_places" | "round" => match small_uint::<u8>(&v) {
                    Ok(x) => c.decimals = x,
                    Err(e) => bad("decimals", e),
                },
                "values" | "categories" | "options" | "choices" | "enum" | "labels" => match list_of_strings(&v) {
                    Some(x) => c.values = Some(x),
                    None => bad("values", format!("{v} is not a list of labels")),
                },
                "weights" | "probabilities" | "probs" | "frequencies" | "proportions" => match list_of_numbers(&v) {
                    Ok(x) => c.weights = x,
                    Err(e) => bad("weights", e),
                },
                "rate" | "probability" | "true_rate" | "p" | "true_probability" | "ratio" => {
                    match number_of(&v, true) {
                        Ok(x) => c.rate = x,
                        Err(e) => bad("rate", e),
                    }
                }
                "start" | "from" | "start_date" | "min_date" | "since" => c.start = text_of(&v),
                "end" | "to" | "end_date" | "max_date" | "until" => c.end = text_of(&v),
                "expr" | "expression" | "formula" | "value" => c.expr = text_of(&v),
                "ref" | "column" | "references" | "refers_to" | "reference" | "source" | "target" | "foreign_key" => {
                    c.reference = text_of(&v)
                }
                "words" | "word_count" | "num_words" => match small_uint::<u32>(&v) {
                    Ok(x) => c.words = x,
                    Err(e) => bad("words", e),
                },
                "min_words" => match small_uint::<u32>(&v) {
                    Ok(x) => c.min_words = x,
                    Err(e) => bad("min_words", e),
                },
                "max_words" => match small_uint::<u32>(&v) {
                    Ok(x) => c.max_words = x,
                    Err(e) => bad("max_words", e),
                },
                "null_rate" | "nulls" | "null_probability" | "missing_rate" | "null_ratio" => {
                    match number_of(&v, true) {
                        Ok(x) => c.null_rate = x,
                        Err(e) => bad("null_rate", e),
                    }
                }
                "prefix" => c.prefix = text_of(&v),
                "digits" | "padding" | "width" => match small_uint::<u8>(&v) {
                    Ok(x) => c.digits = x,
                    Err(e) => bad("digits", e),
                },
                _ => {}
            }
        }
        c
    }
}

/// The canonical kind for a kind name or a common synonym.
pub(crate) fn canonical_kind(kind: &str) -> Option<Kind> {
    let k = kind.trim().to_ascii_lowercase().replace([' ', '-', '.'], "_");
    if let Some(known) = Kind::from_tag(&k) {
        return Some(known);
    }
    let found = match k.as_str() {
        "int" | "integer_number" | "number" | "count" | "int64" | "age" | "quantity" => Kind::Integer,
        "decimal" | "double" | "real" | "numeric" | "money" | "currency" | "price" | "amount" | "float64" => {
            Kind::Float
        }
        "enum" | "categorical" | "choice" | "label" | "status" | "select" => Kind::Category,
        "bool" | "flag" | "binary" | "yes_no" => Kind::Boolean,
        "timestamp" | "date_time" | "time" | "datetime_range" => Kind::Datetime,
        "date_range" | "day" | "birthdate" | "date_of_birth" => Kind::Date,
        "sentence" | "paragraph" | "lorem" | "description" | "comment" | "free_text" | "string" => Kind::Text,
        "fk" | "foreignkey" | "reference" | "ref" | "lookup" => Kind::ForeignKey,
        "derived" | "formula" | "computed" | "calculated" | "expr" => Kind::Expression,
        "name" | "person_name" | "fullname" | "customer_name" => Kind::FullName,
        "firstname" | "given_name" | "forename" => Kind::FirstName,
        "lastname" | "surname" | "family_name" => Kind::LastName,
        "email_address" | "mail" | "e_mail" => Kind::Email,
        "phone_number" | "telephone" | "mobile" | "phonenumber" | "cell_phone" => Kind::Phone,
        "address" | "street" | "street_name" | "address_line" => Kind::StreetAddress,
        "zip" | "zipcode" | "zip_code" | "postal_code" | "post_code" => Kind::Postcode,
        "province" | "region" | "state_name" => Kind::State,
        "company_name" | "organization" | "organisation" | "employer" | "business" => Kind::Company,
        "job" | "occupation" | "position" | "title" | "profession" | "role" => Kind::JobTitle,
        "user_name" | "handle" | "login" | "screen_name" => Kind::Username,
        "website" | "link" | "uri" | "web" => Kind::Url,
        "ip_address" | "ipv4" | "ip4" => Kind::Ip,
        "sequence" | "serial" | "auto_increment" | "autoincrement" | "identifier" | "sequential" | "primary_key" => {
            Kind::Id
        }
        "guid" | "uuid4" | "uuid_v4" => Kind::Uuid,
        "country_name" | "nation" => Kind::Country,
        "city_name" | "town" => Kind::City,
        _ => return None,
    };
    Some(found)
}

/// The name kind a column name clearly asks for: `first_name`, `given_name` → first names; `last_name`,
/// `surname`, `family_name` → last names; `username`, `user_name`, `handle` → user names.
fn name_part(column: &str) -> Option<Kind> {
    let words: Vec<&str> = column.split('_').collect();
    let has = |w: &str| words.contains(&w);
    if column.contains("username") || has("handle") || has("user") && has("name") {
        Some(Kind::Username)
    } else if column.contains("firstname")
        || column.contains("forename")
        || (has("first") || has("given")) && has("name")
    {
        Some(Kind::FirstName)
    } else if column.contains("lastname") || column.contains("surname") || (has("last") || has("family")) && has("name")
    {
        Some(Kind::LastName)
    } else {
        None
    }
}

/// A date from `YYYY-MM-DD`, a date-time, `YYYY-MM` or `YYYY` (first or last day when `end`).
fn lenient_date(s: &str, end: bool) -> Option<String> {
    let t = s.trim();
    if let Some(d) = t.get(..10).and_then(parse_date) {
        return Some(d.format("%Y-%m-%d").to_string());
    }
    if let Ok(y) = t.parse::<i32>()
        && (1..=9999).contains(&y)
    {
        return Some(if end { format!("{y:04}-12-31") } else { format!("{y:04}-01-01") });
    }
    if let Some((y, m)) = t.split_once('-')
        && let (Ok(y), Ok(m)) = (y.parse::<i32>(), m.parse::<u32>())
    {
        let first = chrono::NaiveDate::from_ymd_opt(y, m, 1)?;
        let last = if end {
            let next = if m == 12 { chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1)? } else { first.with_month(m + 1)? };
            next.pred_opt()?
        } else {
            first
        };
        return Some(last.format("%Y-%m-%d").to_string());
    }
    None
}

fn lenient_datetime(s: &str, end: bool) -> Option<String> {
    let t = s.trim();
    if let Some(dt) = parse_datetime(t, end) {
        return Some(dt.format("%Y-%m-%dT%H:%M:%S").to_string());
    }
    let date = lenient_date(t, end)?;
    Some(if end { format!("{date}T23:59:59") } else { format!("{date}T00:00:00") })
}

fn fraction(x: f64) -> f64 {
    if x > 1.0 && x <= 100.0 { x / 100.0 } else { x }
}

fn expr_type(ty: &str) -> Option<ExprType> {
    Some(match ty.trim().to_ascii_lowercase().as_str() {
        "int" | "integer" | "int64" | "long" => ExprType::Int,
        "float" | "number" | "decimal" | "double" | "real" | "float64" | "numeric" => ExprType::Float,
        "bool" | "boolean" => ExprType::Bool,
        "string" | "str" | "text" => ExprType::String,
        "date" => ExprType::Date,
        _ => return None,
    })
}

/// The result type an expression most likely has, when the model did not say.
fn infer_expr_type(expr: &str) -> ExprType {
    let e = expr.trim();
    if e.starts_with("chance(")
        || ["<", ">", "==", "!=", "&&", "||"].iter().any(|op| e.contains(op)) && !e.starts_with("if(")
    {
        ExprType::Bool
    } else if e.starts_with("add_days(") {
        ExprType::Date
    } else if e.contains('"') && !e.contains("if(") {
        ExprType::String
    } else {
        ExprType::Float
    }
}

impl DesignColumn {
    /// Converts to a typed column; `names` are the (converted) names of the earlier columns.
    fn convert(&self, at: &str, earlier: &[Column], problems: &mut Vec<String>) -> Option<Column> {
        if !self.problems.is_empty() {
            problems.extend(self.problems.iter().map(|p| format!("{at}: {p}")));
            return None;
        }
        let Some(kind) = canonical_kind(&self.kind).or_else(|| {
            // `type` holding the kind ({"name": "age", "type": "integer"}).
            if self.kind.trim().is_empty() { self.ty.as_deref().and_then(canonical_kind) } else { None }
        }) else {
            if self.kind.trim().is_empty() {
                problems.push(format!("{at}: the kind is missing; use one of: {}", Generator::KINDS.join(", ")));
            } else {
                problems.push(format!(
                    "{at}: unknown kind {:?}; use one of: {}",
                    self.kind,
                    Generator::KINDS.join(", ")
                ));
            }
            return None;
        };
        let name = self.name.trim();
        let name = if is_identifier(name) { name.to_string() } else { suggest_identifier(name) };
        // A person-name column whose name says which part it holds gets that part ("first_name" as
        // full_name is a common slip of small models).
        let kind = match kind {
            Kind::FullName | Kind::FirstName | Kind::LastName | Kind::Username => name_part(&name).unwrap_or(kind),
            other => other,
        };
        let reference =
            self.reference.as_deref().map(|r| if is_identifier(r) { r.to_string() } else { suggest_identifier(r) });
        let (lo, hi) = match (self.min, self.max) {
            (Some(a), Some(b)) if a > b => (Some(b), Some(a)),
            other => other,
        };
        let generator = match kind {
            Kind::Id => Generator::Id {
                start: self.start.as_deref().and_then(|s| s.trim().parse::<f64>().ok()).map_or(1, |x| x as i64),
                prefix: self.prefix.clone().filter(|p| !p.is_empty()),
                digits: self.digits.unwrap_or(if self.prefix.as_deref().is_some_and(|p| !p.is_empty()) {
                    6
                } else {
                    0
                }),
            },
            Kind::Uuid => Generator::Uuid,
            Kind::FirstName => Generator::FirstName,
            Kind::LastName => Generator::LastName,
            Kind::FullName => Generator::FullName,
            Kind::Email | Kind::Username => {
                // A reference the model got wrong (not an earlier name column) is dropped: the address is then
                // built from the row's name columns anyway.
                let column = reference.filter(|r| {
                    earlier.iter().any(|c| {
                        &c.name == r
                            && matches!(
                                c.generator,
                                Generator::FirstName
                                    | Generator::LastName
                                    | Generator::FullName
                                    | Generator::Username { .. }
                            )
                    })
                });
                if kind == Kind::Email { Generator::Email { column } } else { Generator::Username { column } }
            }
            Kind::Phone => Generator::Phone,
            Kind::StreetAddress => Generator::StreetAddress,
            Kind::City => Generator::City,
            Kind::State => Generator::State,
            Kind::Country => Generator::Country,
            Kind::Postcode => Generator::Postcode,
            Kind::Company => Generator::Company,
            Kind::JobTitle => Generator::JobTitle,
            Kind::Url => Generator::Url,
            Kind::Ip => Generator::Ip,
            Kind::Date | Kind::Datetime => {
                let mut read = |v: &Option<String>, end: bool, default: &str| -> Option<String> {
                    let s = v.as_deref().map(str::trim).filter(|s| !s.is_empty()).unwrap_or(default);
                    let parsed = if kind == Kind::Date { lenient_date(s, end) } else { lenient_datetime(s, end) };
                    if parsed.is_none() {
                        problems.push(format!(
                            "{at}: {} {s:?} is not a date (YYYY-MM-DD)",
                            if end { "end" } else { "start" }
                        ));
                    }
                    parsed
                };
                // Whole years given as numbers (`"min": 2015`) are ranges of years.
                let year = |x: Option<f64>| x.filter(|y| y.fract() == 0.0).map(|y| format!("{:04}", y as i64));
                let start = read(&self.start.clone().or_else(|| year(self.min)), false, DEFAULT_START)?;
                let end = read(&self.end.clone().or_else(|| year(self.max)), true, DEFAULT_END)?;
                let (start, end) = if start > end { (end, start) } else { (start, end) };
                if kind == Kind::Date { Generator::Date { start, end } } else { Generator::Datetime { start, end } }
            }
            Kind::Integer | Kind::Float => {
                let (min, max) = match (lo, hi, self.mean, self.std) {
                    (Some(a), Some(b), _, _) => (a, b),
                    (a, b, Some(m), Some(s)) if s > 0.0 => {
                        (a.unwrap_or(tidy(m - 4.0 * s)), b.unwrap_or(tidy(m + 4.0 * s)))
                    }
                    (Some(a), None, Some(m), _) if m > a => (a, tidy(a + 2.0 * (m - a))),
                    (None, Some(b), Some(m), _) if m < b => (tidy(b - 2.0 * (b - m)), b),
                    _ => {
                        problems.push(format!("{at}: {} columns need \"min\" and \"max\"", kind.as_str()));
                        return None;
                    }
                };
                let distribution = self.distribution(at, min, max, problems)?;
                if kind == Kind::Integer {
                    Generator::Integer { min: min.round() as i64, max: max.round() as i64, distribution }
                } else {
                    // Two decimals unless told otherwise: prices, rates, scores; not 65.11060329245774.
                    Generator::Float { min, max, distribution, decimals: Some(self.decimals.unwrap_or(2)) }
                }
            }
            Kind::Category => {
                let Some(values) = self.values.as_ref().filter(|v| !v.is_empty()) else {
                    problems.push(format!("{at}: a category needs \"values\" (a list of labels)"));
                    return None;
                };
                // Duplicated labels are merged, adding up their weights.
                // More weights than labels (a model that kept going) are cut to one per label.
                let mut labels: Vec<String> = Vec::with_capacity(values.len());
                let mut merged: Vec<f64> = Vec::with_capacity(values.len());
                let weights = self.weights.as_ref().filter(|w| w.len() >= values.len());
                for (i, v) in values.iter().enumerate() {
                    let w = weights.map_or(1.0, |w| w[i]);
                    match labels.iter().position(|l| l == v) {
                        Some(j) => merged[j] += w,
                        None => {
                            labels.push(v.clone());
                            merged.push(w);
                        }
                    }
                }
                let weights = match &self.weights {
                    None => None,
                    Some(w) if w.len() >= values.len() => Some(merged),
                    // A count mismatch is reported by validation ("3 weights for 4 values").
                    Some(w) => Some(w.clone()),
                };
                Generator::Category { values: labels, weights }
            }
            Kind::Boolean => Generator::Boolean { rate: self.rate.map_or(0.5, fraction) },
            Kind::Text => {
                let (min_words, max_words) = match (self.min_words, self.max_words, self.words) {
                    (Some(a), Some(b), _) => (a, b),
                    (_, _, Some(w)) => ((w - w / 3).max(1), (w + w / 3).max(1)),
                    (Some(a), None, None) => (a, a.max(1) * 2),
                    (None, Some(b), None) => ((b / 2).max(1), b),
                    (None, None, None) => (4, 12),
                };
                Generator::Text { min_words, max_words }
            }
            Kind::ForeignKey => match reference {
                Some(column) if !column.is_empty() => Generator::ForeignKey { column },
                _ => {
                    problems
                        .push(format!("{at}: a foreign_key needs \"ref\", the earlier column it takes values from"));
                    return None;
                }
            },
            Kind::Expression => {
                let Some(expr) = self.expr.as_ref().filter(|e| !e.trim().is_empty()) else {
                    problems.push(format!("{at}: an expression column needs \"expr\""));
                    return None;
                };
                let ty = match self.ty.as_deref() {
                    Some(t) => match expr_type(t) {
                        Some(t) => t,
                        None => {
                            problems.push(format!("{at}: type {t:?} must be one of int, float, bool, string, date"));
                            return None;
                        }
                    },
                    None => infer_expr_type(expr),
                };
                let decimals = self.decimals.filter(|_| ty == ExprType::Float);
                Generator::Expression { expr: expr.trim().to_string(), ty, decimals }
            }
        };
        Some(Column { name, generator, null_rate: self.null_rate.map_or(0.0, fraction) })
    }

    fn distribution(&self, at: &str, min: f64, max: f64, problems: &mut Vec<String>) -> Option<Distribution> {
        let name = self.distribution.as_deref().map(|d| d.trim().to_ascii_lowercase().replace(['-', '_', ' '], ""));
        let name = match name.as_deref() {
            None | Some("") => {
                if self.mean.is_some() && self.std.is_some() {
                    "normal"
                } else {
                    "uniform"
                }
            }
            Some("uniform" | "flat" | "random") => "uniform",
            Some("normal" | "gaussian" | "gauss" | "bell") => "normal",
            Some("lognormal" | "lognorm" | "logarithmic" | "skewed" | "exponential") => "lognormal",
            Some(other) => {
                problems.push(format!("{at}: unknown distribution {other:?}; use uniform, normal or lognormal"));
                return None;
            }
        };
        Some(match name {
            "uniform" => Distribution::Uniform,
            "normal" => {
                // A mean outside the column's own range is a slip: the range wins.
                let mean = self.mean.filter(|m| (min..=max).contains(m)).unwrap_or(tidy((min + max) / 2.0));
                let std = self.std.filter(|s| *s > 0.0).unwrap_or(tidy((max - min) / 6.0).max(1e-6));
                Distribution::Normal { mean, std }
            }
            _ => {
                if let (Some(mu), Some(sigma)) = (self.mu, self.sigma) {
                    return Some(Distribution::LogNormal { mu, sigma });
                }
                let lo = min.max(0.0);
                let mean = self
                    .mean
                    .filter(|m| *m > 0.0 && (min..=max).contains(m))
                    .unwrap_or(tidy(lo + (max - lo) / 4.0))
                    .max(1e-6);
                let std = self.std.filter(|s| *s > 0.0).unwrap_or(mean * 0.75);
                Distribution::lognormal_from_moments(mean, std)
            }
        })
    }
}

impl DesignTable {
    /// Converts to a [`TableSchema`], listing every problem that prevents it. The result still has to pass
    /// [`TableSchema::validate`].
    pub fn into_schema(self, description: &str) -> Result<TableSchema, Vec<String>> {
        let mut problems = self.problems.clone();
        if self.columns.is_empty() && problems.is_empty() {
            problems.push("the schema has no columns".into());
        }
        let mut columns: Vec<Column> = Vec::with_capacity(self.columns.len());
        for (i, c) in self.columns.iter().enumerate() {
            let at = format!("column {} {:?}", i + 1, c.name);
            if let Some(col) = c.convert(&at, &columns, &mut problems) {
                // An exact repeat of an earlier column (same name, same generator) is a model repeating
                // itself: dropped. A different column under a taken name stays, for validation to report.
                if columns.iter().any(|x| x.name == col.name && x.generator == col.generator) {
                    continue;
                }
                columns.push(col);
            }
        }
        let locale = self.locale.as_deref().and_then(|l| l.parse::<Locale>().ok()).unwrap_or_default();
        let name = match self.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) if is_identifier(n) => n.to_string(),
            Some(n) => suggest_identifier(n),
            None => "table".to_string(),
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(TableSchema { name, description: description.trim().to_string(), locale, columns })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(v: Value) -> Result<TableSchema, Vec<String>> {
        serde_json::from_value::<DesignTable>(v).unwrap().into_schema("d")
    }

    #[test]
    fn a_well_formed_design_converts_and_validates() {
        let s = convert(json!({"name": "orders", "locale": "fr", "columns": [
            {"column": "order_id", "kind": "id", "prefix": "ORD-"},
            {"column": "customer", "kind": "full_name"},
            {"column": "email", "kind": "email", "ref": "customer"},
            {"column": "ordered", "kind": "date", "max": "2024-12-31", "min": "2023-01-01"},
            {"column": "founded", "kind": "date", "max": 2020, "min": 1990},
            {"column": "quantity", "kind": "integer", "max": 10, "min": 1},
            {"column": "unit_price", "kind": "float", "decimals": 2, "distribution": "lognormal", "max": 500,
             "mean": 40, "min": 2, "std": 30},
            {"column": "status", "kind": "category", "values": ["ok", "late"], "weights": [9, 1]},
            {"column": "gift", "kind": "boolean", "rate": 0.1},
            {"column": "review", "kind": "text", "words": 12, "null_rate": 0.4},
            {"column": "referrer", "kind": "foreign_key", "ref": "customer"},
            {"column": "total", "kind": "expression", "type": "float", "value": "quantity * unit_price", "decimals": 2}
        ]}))
        .unwrap();
        s.validate().unwrap();
        assert_eq!(s.name, "orders");
        assert_eq!(s.locale, Locale::FrFr);
        assert_eq!(s.description, "d");
        assert_eq!(s.columns.len(), 12);
        assert_eq!(s.columns[0].generator, Generator::Id { start: 1, prefix: Some("ORD-".into()), digits: 6 });
        assert_eq!(s.columns[2].generator, Generator::Email { column: Some("customer".into()) });
        assert_eq!(s.columns[3].generator, Generator::Date { start: "2023-01-01".into(), end: "2024-12-31".into() });
        assert_eq!(s.columns[4].generator, Generator::Date { start: "1990-01-01".into(), end: "2020-12-31".into() });
        let Generator::Float { distribution: Distribution::LogNormal { mu, sigma }, decimals: Some(2), .. } =
            s.columns[6].generator
        else {
            panic!("{:?}", s.columns[6].generator)
        };
        // The moments given are the moments of the values.
        let mean = (mu + sigma * sigma / 2.0).exp();
        assert!((mean - 40.0).abs() < 1e-3, "{mean}");
        assert_eq!(s.columns[9].generator, Generator::Text { min_words: 8, max_words: 16 });
        assert_eq!(s.columns[9].null_rate, 0.4);
        assert_eq!(
            s.columns[11].generator,
            Generator::Expression { expr: "quantity * unit_price".into(), ty: ExprType::Float, decimals: Some(2) }
        );
        // Computed parameters read back from JSON bit for bit (a cached schema gives the same bytes).
        let back: TableSchema = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn a_mean_outside_the_range_gives_way_to_the_range() {
        let s = convert(json!({"name": "t", "columns": [
            {"column": "amount", "kind": "float", "max": 1000, "min": 10, "distribution": "lognormal", "mean": 5000},
            {"column": "score", "kind": "integer", "max": 100, "min": 0, "distribution": "normal", "mean": -40, "std": 10}
        ]}))
        .unwrap();
        s.validate().unwrap();
        let Generator::Float { distribution: Distribution::LogNormal { mu, sigma }, .. } = s.columns[0].generator
        else {
            panic!("{:?}", s.columns[0].generator)
        };
        let mean = (mu + sigma * sigma / 2.0).exp();
        assert!((mean - 257.5).abs() < 0.1, "{mean}");
        assert_eq!(
            s.columns[1].generator,
            Generator::Integer { min: 0, max: 100, distribution: Distribution::Normal { mean: 50.0, std: 10.0 } }
        );
    }

    #[test]
    fn exact_repeats_are_dropped_but_clashes_are_kept() {
        let s = convert(json!({"name": "t", "columns": [
            {"column": "rate", "kind": "float", "max": 1, "min": 0},
            {"column": "rate", "kind": "float", "max": 1, "min": 0},
            {"column": "rate", "kind": "float", "max": 1, "min": 0}
        ]}))
        .unwrap();
        assert_eq!(s.columns.len(), 1);
        let s = convert(json!({"name": "t", "columns": [
            {"column": "rate", "kind": "float", "max": 1, "min": 0},
            {"column": "rate", "kind": "integer", "max": 1, "min": 0}
        ]}))
        .unwrap();
        assert!(s.validate().unwrap_err()[0].contains("duplicate column name"));
    }

    #[test]
    fn name_parts_follow_the_column_name() {
        let s = convert(json!({"name": "t", "columns": [
            {"column": "first_name", "kind": "full_name"},
            {"column": "student_surname", "kind": "full_name"},
            {"column": "given_name", "kind": "last_name"},
            {"column": "name", "kind": "first_name"},
            {"column": "customer_name", "kind": "full_name"},
            {"column": "username", "kind": "full_name"}
        ]}))
        .unwrap();
        let kinds: Vec<&str> = s.columns.iter().map(|c| c.generator.kind()).collect();
        assert_eq!(kinds, ["first_name", "last_name", "first_name", "first_name", "full_name", "username"]);
    }

    #[test]
    fn model_variations_are_tolerated() {
        let mut s = convert(json!({"table_name": "Patient Visits", "columns": [
            {"name": "Visit ID", "kind": "UUID"},
            {"name": "patient", "type": "name"},
            {"name": "age", "kind": "Int", "min": "90", "max": "0",
             "distribution": {"type": "Normal", "mean": "45", "std": 15}},
            {"name": "fee", "kind": "currency", "min": "$20", "max": "1,500", "decimals": "2"},
            {"name": "insured", "kind": "bool", "rate": "85%"},
            {"name": "ward", "kind": "enum", "values": "A, B, C, A", "weights": ["1", "2", "3", "1"]},
            {"name": "tier", "kind": "category", "values": ["x", "y"], "weights": [3, 1, 1, 1, 1, 1]},
            {"name": "visit_day", "kind": "date", "start": "2023", "end": "2023-06"},
            {"name": "seen_at", "kind": "timestamp", "start": "2024-01-01"},
            {"name": "notes", "kind": "sentence", "null_rate": 30},
            {"name": "older", "kind": "formula", "expr": "age > 60"}
        ]}))
        .unwrap();
        s.validate().unwrap();
        assert_eq!(s.name, "patient_visits");
        assert_eq!(s.columns[0].name, "visit_id");
        assert_eq!(s.columns[0].generator, Generator::Uuid);
        assert_eq!(s.columns[1].generator, Generator::FullName);
        assert_eq!(
            s.columns[2].generator,
            Generator::Integer { min: 0, max: 90, distribution: Distribution::Normal { mean: 45.0, std: 15.0 } }
        );
        assert_eq!(
            s.columns[3].generator,
            Generator::Float { min: 20.0, max: 1500.0, distribution: Distribution::Uniform, decimals: Some(2) }
        );
        assert_eq!(s.columns[4].generator, Generator::Boolean { rate: 0.85 });
        assert_eq!(
            s.columns[5].generator,
            Generator::Category {
                values: vec!["A".into(), "B".into(), "C".into()],
                weights: Some(vec![2.0, 2.0, 3.0])
            }
        );
        assert_eq!(
            s.columns[6].generator,
            Generator::Category { values: vec!["x".into(), "y".into()], weights: Some(vec![3.0, 1.0]) }
        );
        s.columns.remove(6);
        assert_eq!(s.columns[6].generator, Generator::Date { start: "2023-01-01".into(), end: "2023-06-30".into() });
        assert_eq!(
            s.columns[7].generator,
            Generator::Datetime { start: "2024-01-01T00:00:00".into(), end: "2024-12-31T23:59:59".into() }
        );
        assert_eq!(s.columns[8].null_rate, 0.3);
        assert!(matches!(s.columns[9].generator, Generator::Expression { ty: ExprType::Bool, .. }));
    }

    #[test]
    fn unreadable_parts_are_listed_per_column() {
        let errors = convert(json!({"name": "t", "columns": [
            {"column": "a", "kind": "zodiac"},
            {"column": "b", "kind": "integer"},
            {"column": "c", "kind": "category"},
            {"column": "d", "kind": "foreign_key"},
            {"column": "e", "kind": "expression"},
            {"column": "f", "kind": "float", "min": "cheap", "max": 3},
            {"column": "g", "kind": "date", "start": "last tuesday"},
            {"column": "h", "kind": "integer", "min": 1, "max": 2, "distribution": "zipf"},
            {"column": "i", "kind": "expression", "expr": "1", "type": "complex"},
            {"column": "j"}
        ]}))
        .unwrap_err();
        let expect = [
            "column 1 \"a\": unknown kind \"zodiac\"",
            "column 2 \"b\": integer columns need \"min\" and \"max\"",
            "column 3 \"c\": a category needs \"values\"",
            "column 4 \"d\": a foreign_key needs \"ref\"",
            "column 5 \"e\": an expression column needs \"expr\"",
            "column 6 \"f\": min \"cheap\" is not a number",
            "column 7 \"g\": start \"last tuesday\" is not a date",
            "column 8 \"h\": unknown distribution \"zipf\"",
            "column 9 \"i\": type \"complex\" must be one of",
            "column 10 \"j\": the kind is missing",
        ];
        for e in expect {
            assert!(errors.iter().any(|x| x.contains(e)), "missing {e:?} in {errors:#?}");
        }
        assert_eq!(errors.len(), expect.len(), "{errors:#?}");
        assert_eq!(convert(json!("nope")).unwrap_err().len(), 1);
        assert_eq!(convert(json!({"name": "t", "columns": []})).unwrap_err(), vec!["the schema has no columns"]);
    }

    #[test]
    fn the_llm_schema_is_small_and_grammar_friendly() {
        let schema = llm_json_schema();
        let text = schema.to_string();
        assert!(!text.contains("pattern"), "llama.cpp's converter breaks on pattern");
        assert!(text.len() < 4000, "{} bytes", text.len());
        // Every kind is in exactly one column shape; every shape requires a name and a kind.
        let shapes = schema["properties"]["columns"]["items"]["anyOf"].as_array().unwrap();
        let mut seen: Vec<&str> = Vec::new();
        for shape in shapes {
            assert_eq!(shape["additionalProperties"], false);
            let required = shape["required"].as_array().unwrap();
            assert_eq!(&required[..2], &[json!("column"), json!("kind")]);
            for k in shape["properties"]["kind"]["enum"].as_array().unwrap() {
                seen.push(k.as_str().unwrap());
            }
        }
        seen.sort();
        let mut all = Generator::KINDS.to_vec();
        all.sort();
        assert_eq!(seen, all);
        // Numbers need their range, categories their labels and weights, expressions their formula and type.
        let requires = |kind: &str| -> Vec<String> {
            let shape =
                shapes.iter().find(|s| s["properties"]["kind"]["enum"].as_array().unwrap().contains(&json!(kind)));
            shape.unwrap()["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
        };
        assert_eq!(requires("integer"), ["column", "kind", "min", "max"]);
        assert_eq!(requires("category"), ["column", "kind", "values", "weights"]);
        assert_eq!(requires("expression"), ["column", "kind", "type", "value"]);
        assert_eq!(requires("date"), ["column", "kind", "min", "max"]);
        // llama.cpp makes the model write the required properties first, in the order the schema lists them
        // (the order written: serde_json's preserve_order): a column is always named, then given its kind,
        // then its parameters.
        for shape in shapes {
            let props: Vec<&String> = shape["properties"].as_object().unwrap().keys().collect();
            assert_eq!(&props[..2], &["column", "kind"], "{shape}");
            let required: Vec<&str> =
                shape["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            let in_schema_order: Vec<&str> =
                props.iter().map(|p| p.as_str()).filter(|p| required.contains(p)).collect();
            assert_eq!(required, in_schema_order, "{shape}");
        }
        assert_eq!(requires("city"), ["column", "kind"]);
        let constrained = llm_json_schema_for(Some((16, 24)));
        assert_eq!(constrained["properties"]["columns"]["minItems"], 16);
        assert_eq!(constrained["properties"]["columns"]["maxItems"], 24);
        // A design serializes back to the same flat form it is read from.
        let t: DesignTable = serde_json::from_value(json!({"name": "t", "columns": [
            {"column": "a", "kind": "integer", "min": 1.0, "max": 2.0}]}))
        .unwrap();
        let again: DesignTable = serde_json::from_value(serde_json::to_value(&t).unwrap()).unwrap();
        assert_eq!(again, t);
        assert_eq!(serde_json::to_value(&t).unwrap()["columns"][0]["column"], "a");
    }

    #[test]
    fn kinds_have_synonyms() {
        for k in Kind::ALL {
            assert_eq!(canonical_kind(k.as_str()), Some(k));
            assert_eq!(canonical_kind(&k.as_str().to_uppercase()), Some(k));
        }
        assert_eq!(canonical_kind("Phone Number"), Some(Kind::Phone));
        assert_eq!(canonical_kind("zip-code"), Some(Kind::Postcode));
        assert_eq!(canonical_kind("GUID"), Some(Kind::Uuid));
        assert_eq!(canonical_kind("nonsense"), None);
    }
}
