//! The typed table schema: what every column holds and how it is generated.
//!
//! A column is one flat JSON object: its `name`, its generator `kind`, the kind's parameters and an optional
//! `null_rate`:
//!
//! ```json
//! {"name": "orders", "description": "e-commerce orders", "locale": "en", "columns": [
//!   {"name": "order_id", "kind": "id", "prefix": "ORD-", "digits": 7},
//!   {"name": "customer_name", "kind": "full_name"},
//!   {"name": "email", "kind": "email"},
//!   {"name": "ordered_at", "kind": "datetime", "start": "2023-01-01", "end": "2024-12-31T23:59:59"},
//!   {"name": "quantity", "kind": "integer", "min": 1, "max": 20, "distribution": {"type": "lognormal", "mu": 0.7, "sigma": 0.6}},
//!   {"name": "unit_price", "kind": "float", "min": 0.5, "max": 900, "decimals": 2,
//!    "distribution": {"type": "normal", "mean": 60, "std": 40}},
//!   {"name": "status", "kind": "category", "values": ["delivered", "shipped", "returned"], "weights": [80, 15, 5]},
//!   {"name": "total", "kind": "expression", "expr": "quantity * unit_price", "type": "float", "decimals": 2},
//!   {"name": "coupon", "kind": "text", "min_words": 1, "max_words": 3, "null_rate": 0.8}
//! ]}
//! ```
//!
//! Unknown fields are rejected everywhere, so a typo in a hand-edited schema is an error, not a silently
//! ignored parameter. The lenient form a model writes is `DesignTable` (module `flat`); the strict checks are
//! `TableSchema::validate` (module `validate`). This module depends on no other module of the crate.

use std::fmt;
use std::str::FromStr;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most columns a schema may have.
pub const MAX_COLUMNS: usize = 200;
/// Most values a category may have.
pub const MAX_CATEGORY_VALUES: usize = 1000;
/// Most words a text column may produce per value.
pub const MAX_TEXT_WORDS: u32 = 500;
/// Longest column name.
pub const MAX_NAME_LEN: usize = 64;

/// A table: its name, the description it was designed from, the locale of its fake values and its columns
/// in generation order (a column may only refer to columns before it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSchema {
    /// Table name (snake_case by convention); also the default file stem.
    pub name: String,
    /// The description the schema was designed from (informational).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Locale of names, addresses, companies and the like.
    #[serde(default)]
    pub locale: Locale,
    /// The columns, in order.
    pub columns: Vec<Column>,
}

/// One column: a name, a generator and the share of nulls.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name: ASCII letters, digits and `_`, not starting with a digit (expressions refer to it).
    pub name: String,
    /// How values are produced.
    pub generator: Generator,
    /// Share of rows where the value is null (0 = never, the default).
    pub null_rate: f64,
}

impl Column {
    /// A column without nulls.
    pub fn new(name: impl Into<String>, generator: Generator) -> Column {
        Column { name: name.into(), generator, null_rate: 0.0 }
    }

    /// The same column with a null rate.
    pub fn with_null_rate(mut self, rate: f64) -> Column {
        self.null_rate = rate;
        self
    }
}

/// How a column's values are produced. Serialized with a `kind` tag next to the parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Generator {
    /// Sequential ids: `start`, `start + 1`, ... (an integer), or a text id when `prefix` is set
    /// (`prefix` + the number zero-padded to `digits`).
    Id {
        /// First id (default 1).
        #[serde(default = "default_id_start")]
        start: i64,
        /// Text prefix, e.g. `CUST-`; makes the column text.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
        /// Zero-padding width of the number (0 = none).
        #[serde(default, skip_serializing_if = "is_zero_u8")]
        digits: u8,
    },
    /// Random version-4 UUIDs (from the seeded stream, so reproducible).
    Uuid,
    /// Given names of the locale.
    FirstName,
    /// Family names of the locale.
    LastName,
    /// Full names in the locale's order (family name first in Japanese and Chinese).
    FullName,
    /// E-mail addresses. Built from the row's name columns: `column` when set, else the first earlier
    /// `full_name` column, else the earlier `first_name` and `last_name` columns, else a random name.
    Email {
        /// The name column (first_name, last_name, full_name or username) to build the address from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        column: Option<String>,
    },
    /// Phone numbers in the locale's formats.
    Phone,
    /// Street addresses (building number and street name) in the locale's style.
    StreetAddress,
    /// City names of the locale.
    City,
    /// States, regions or provinces of the locale.
    State,
    /// Country names.
    Country,
    /// Postal codes in the locale's formats.
    Postcode,
    /// Company names of the locale.
    Company,
    /// Job titles.
    JobTitle,
    /// User names, built from the row's name columns like [`Generator::Email`].
    Username {
        /// The name column to build the user name from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        column: Option<String>,
    },
    /// Web site URLs.
    Url,
    /// Public-looking IPv4 addresses.
    Ip,
    /// Dates, uniform in `[start, end]` (both `YYYY-MM-DD`).
    Date {
        /// First possible date, `YYYY-MM-DD`.
        start: String,
        /// Last possible date, `YYYY-MM-DD`.
        end: String,
    },
    /// Date-times to the second, uniform in `[start, end]` (`YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]` or with a
    /// space instead of `T`; a bare end date means the end of that day).
    Datetime {
        /// Earliest instant.
        start: String,
        /// Latest instant.
        end: String,
    },
    /// Integers in `[min, max]` following `distribution` (values outside are re-drawn, then clamped).
    Integer {
        /// Smallest value.
        min: i64,
        /// Largest value.
        max: i64,
        /// Shape of the values (default uniform).
        #[serde(default, skip_serializing_if = "Distribution::is_uniform")]
        distribution: Distribution,
    },
    /// Floats in `[min, max]` following `distribution`, rounded to `decimals` when set.
    Float {
        /// Smallest value.
        min: f64,
        /// Largest value.
        max: f64,
        /// Shape of the values (default uniform).
        #[serde(default, skip_serializing_if = "Distribution::is_uniform")]
        distribution: Distribution,
        /// Digits after the decimal point (unset: full precision).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decimals: Option<u8>,
    },
    /// One of `values`, with relative `weights` (equal when unset).
    Category {
        /// The labels.
        values: Vec<String>,
        /// Relative frequencies, one per value (need not sum to 1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weights: Option<Vec<f64>>,
    },
    /// True with probability `rate`.
    Boolean {
        /// Share of true values (default 0.5).
        #[serde(default = "default_rate")]
        rate: f64,
    },
    /// Free text: a sentence of `min_words..=max_words` words.
    Text {
        /// Fewest words (default 4).
        #[serde(default = "default_min_words")]
        min_words: u32,
        /// Most words (default 12).
        #[serde(default = "default_max_words")]
        max_words: u32,
    },
    /// A value the earlier column `column` took in an earlier row (uniformly chosen among the earlier rows of
    /// the same block of [`crate::BLOCK_ROWS`] rows, the row itself included), e.g. `manager_id` over
    /// `employee_id`: every value exists in the referenced column, and memory stays bounded.
    ForeignKey {
        /// The referenced earlier column.
        column: String,
    },
    /// Computed per row by an `evalexpr` expression over earlier columns and the seeded random helpers
    /// (`uniform`, `normal`, `lognormal`, `randint`, `chance`, `choice`, `clamp`, `sigmoid`, date helpers).
    /// A failing evaluation (a null input, a type error) gives null.
    Expression {
        /// The expression, e.g. `quantity * unit_price` or `birth_year + 22 + randint(-2, 2)`.
        expr: String,
        /// The type of the result.
        #[serde(rename = "type")]
        ty: ExprType,
        /// Digits after the decimal point of a float result.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        decimals: Option<u8>,
    },
}

fn default_id_start() -> i64 {
    1
}
fn default_rate() -> f64 {
    0.5
}
fn default_min_words() -> u32 {
    4
}
fn default_max_words() -> u32 {
    12
}
fn is_zero_u8(v: &u8) -> bool {
    *v == 0
}

/// Shape of a numeric column's values. Every shape is bounded by the column's `[min, max]`: values outside
/// are drawn again (a few times), then clamped.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Distribution {
    /// Every value in `[min, max]` equally likely.
    #[default]
    Uniform,
    /// Gaussian.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation (> 0).
        std: f64,
    },
    /// Log-normal: `exp(N(mu, sigma))`, for skewed positive amounts (incomes, prices, durations).
    #[serde(rename = "lognormal")]
    LogNormal {
        /// Mean of the logarithm.
        mu: f64,
        /// Standard deviation of the logarithm (> 0).
        sigma: f64,
    },
}

impl Distribution {
    /// True for the default shape.
    pub fn is_uniform(&self) -> bool {
        matches!(self, Distribution::Uniform)
    }

    /// The log-normal whose values have this mean and standard deviation (parameters rounded to 6 decimals,
    /// so the schema reads back from JSON bit for bit and generates the same bytes).
    pub fn lognormal_from_moments(mean: f64, std: f64) -> Distribution {
        let sigma2 = (1.0 + (std * std) / (mean * mean)).ln();
        Distribution::LogNormal { mu: tidy(mean.ln() - sigma2 / 2.0), sigma: tidy(sigma2.sqrt()) }
    }
}

/// Result type of an expression column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExprType {
    /// 64-bit integer (floats are rounded, booleans become 0/1).
    Int,
    /// 64-bit float.
    Float,
    /// Boolean (numbers are true when non-zero).
    Bool,
    /// Text.
    String,
    /// A date, from a `YYYY-MM-DD` result (see `add_days`).
    Date,
}

impl ExprType {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExprType::Int => "int",
            ExprType::Float => "float",
            ExprType::Bool => "bool",
            ExprType::String => "string",
            ExprType::Date => "date",
        }
    }

    /// The value type of the column.
    pub fn value_type(self) -> ValueType {
        match self {
            ExprType::Int => ValueType::Int,
            ExprType::Float => ValueType::Float,
            ExprType::Bool => ValueType::Bool,
            ExprType::String => ValueType::String,
            ExprType::Date => ValueType::Date,
        }
    }
}

/// The storage type of a column's values (Parquet/Arrow type, JSON type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// Int64 / JSON integer.
    Int,
    /// Float64 / JSON number.
    Float,
    /// Boolean / JSON boolean.
    Bool,
    /// Utf8 / JSON string.
    String,
    /// Date32 / `"YYYY-MM-DD"`.
    Date,
    /// Timestamp (microseconds, no zone) / `"YYYY-MM-DDTHH:MM:SS"`.
    DateTime,
}

impl ValueType {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Int => "int",
            ValueType::Float => "float",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Date => "date",
            ValueType::DateTime => "datetime",
        }
    }
}

/// A locale of the `fake` crate's data (names, addresses, companies, phone formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Locale {
    /// English (United States data).
    #[default]
    En,
    /// French (France).
    FrFr,
    /// German (Germany).
    DeDe,
    /// Italian (Italy).
    ItIt,
    /// Portuguese (Brazil).
    PtBr,
    /// Portuguese (Portugal).
    PtPt,
    /// Dutch (Netherlands).
    NlNl,
    /// Chinese (simplified, mainland China).
    ZhCn,
    /// Chinese (traditional, Taiwan).
    ZhTw,
    /// Japanese.
    JaJp,
    /// Arabic (Saudi Arabia).
    ArSa,
    /// Welsh (United Kingdom).
    CyGb,
    /// Persian (Iran).
    FaIr,
    /// Turkish (Turkey).
    TrTr,
}

impl Locale {
    /// Every supported locale.
    pub const ALL: [Locale; 14] = [
        Locale::En,
        Locale::FrFr,
        Locale::DeDe,
        Locale::ItIt,
        Locale::PtBr,
        Locale::PtPt,
        Locale::NlNl,
        Locale::ZhCn,
        Locale::ZhTw,
        Locale::JaJp,
        Locale::ArSa,
        Locale::CyGb,
        Locale::FaIr,
        Locale::TrTr,
    ];

    /// Canonical lowercase name (`en`, `fr_fr`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::FrFr => "fr_fr",
            Locale::DeDe => "de_de",
            Locale::ItIt => "it_it",
            Locale::PtBr => "pt_br",
            Locale::PtPt => "pt_pt",
            Locale::NlNl => "nl_nl",
            Locale::ZhCn => "zh_cn",
            Locale::ZhTw => "zh_tw",
            Locale::JaJp => "ja_jp",
            Locale::ArSa => "ar_sa",
            Locale::CyGb => "cy_gb",
            Locale::FaIr => "fa_ir",
            Locale::TrTr => "tr_tr",
        }
    }

    /// Canonical names of every supported locale.
    pub fn names() -> Vec<&'static str> {
        Locale::ALL.iter().map(|l| l.as_str()).collect()
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Locale {
    type Err = String;

    /// Accepts the canonical names and common spellings: `fr`, `fr-FR`, `de_DE`, `en_US`, `english`, ...
    fn from_str(s: &str) -> Result<Locale, String> {
        let norm = s.trim().to_ascii_lowercase().replace(['-', ' ', '.'], "_");
        let found = match norm.as_str() {
            "" | "en" | "en_us" | "en_gb" | "en_au" | "en_ca" | "english" | "us" | "usa" | "uk" => Locale::En,
            "fr" | "fr_fr" | "fr_ca" | "fr_be" | "fr_ch" | "french" | "france" => Locale::FrFr,
            "de" | "de_de" | "de_at" | "de_ch" | "german" | "germany" => Locale::DeDe,
            "it" | "it_it" | "italian" | "italy" => Locale::ItIt,
            "pt_br" | "br" | "brazil" | "brazilian" | "brazilian_portuguese" => Locale::PtBr,
            "pt" | "pt_pt" | "portuguese" | "portugal" => Locale::PtPt,
            "nl" | "nl_nl" | "nl_be" | "dutch" | "netherlands" => Locale::NlNl,
            "zh" | "zh_cn" | "zh_hans" | "cn" | "chinese" | "china" | "simplified_chinese" => Locale::ZhCn,
            "zh_tw" | "zh_hant" | "tw" | "taiwan" | "traditional_chinese" => Locale::ZhTw,
            "ja" | "ja_jp" | "jp" | "japanese" | "japan" => Locale::JaJp,
            "ar" | "ar_sa" | "arabic" | "saudi_arabia" => Locale::ArSa,
            "cy" | "cy_gb" | "welsh" | "wales" => Locale::CyGb,
            "fa" | "fa_ir" | "persian" | "farsi" | "iran" => Locale::FaIr,
            "tr" | "tr_tr" | "turkish" | "turkey" => Locale::TrTr,
            _ => return Err(format!("unsupported locale {s:?} (supported: {})", Locale::names().join(", "))),
        };
        Ok(found)
    }
}

impl Serialize for Locale {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Locale {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Locale, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(D::Error::custom)
    }
}

impl Serialize for Column {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let generator = serde_json::to_value(&self.generator).map_err(serde::ser::Error::custom)?;
        let serde_json::Value::Object(params) = generator else {
            return Err(serde::ser::Error::custom("a generator serializes to an object"));
        };
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("name", &self.name)?;
        if let Some(kind) = params.get("kind") {
            map.serialize_entry("kind", kind)?;
        }
        for (k, v) in params.iter().filter(|(k, _)| k.as_str() != "kind") {
            map.serialize_entry(k, v)?;
        }
        if self.null_rate != 0.0 {
            map.serialize_entry("null_rate", &self.null_rate)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Column {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Column, D::Error> {
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let name = match map.remove("name") {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => return Err(D::Error::custom(format!("column name must be a string, got {other}"))),
            None => return Err(D::Error::missing_field("name")),
        };
        let null_rate = match map.remove("null_rate") {
            None | Some(serde_json::Value::Null) => 0.0,
            Some(v) => v
                .as_f64()
                .ok_or_else(|| D::Error::custom(format!("column {name:?}: null_rate must be a number, got {v}")))?,
        };
        let generator = Generator::deserialize(serde_json::Value::Object(map))
            .map_err(|e| D::Error::custom(format!("column {name:?}: {e}")))?;
        Ok(Column { name, generator, null_rate })
    }
}

/// Defines [`Kind`] from the one list of generator kinds below: each variant with its `kind` tag, in
/// documentation order. [`Kind::ALL`], [`Kind::as_str`], [`Generator::KINDS`] and every other list of kinds
/// in the crate are derived from it.
macro_rules! kinds {
    ($($variant:ident => $tag:literal,)*) => {
        /// A generator kind: the `kind` tag of a [`Generator`], without its parameters.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) enum Kind {
            $($variant,)*
        }

        impl Kind {
            /// Every kind, in documentation order.
            pub(crate) const ALL: [Kind; [$($tag),*].len()] = [$(Kind::$variant),*];

            /// The `kind` tag, as the schema JSON writes it.
            pub(crate) const fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$variant => $tag,)*
                }
            }
        }
    };
}

// The one list of generator kinds. A tag is the serde name of the `Generator` variant of the same name
// (`rename_all = "snake_case"`); a test checks that they agree.
kinds! {
    Id => "id",
    Uuid => "uuid",
    FirstName => "first_name",
    LastName => "last_name",
    FullName => "full_name",
    Email => "email",
    Phone => "phone",
    StreetAddress => "street_address",
    City => "city",
    State => "state",
    Country => "country",
    Postcode => "postcode",
    Company => "company",
    JobTitle => "job_title",
    Username => "username",
    Url => "url",
    Ip => "ip",
    Date => "date",
    Datetime => "datetime",
    Integer => "integer",
    Float => "float",
    Category => "category",
    Boolean => "boolean",
    Text => "text",
    ForeignKey => "foreign_key",
    Expression => "expression",
}

impl Kind {
    /// The kind with this exact tag.
    pub(crate) fn from_tag(tag: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == tag)
    }

    /// True for the kinds without parameters of their own: values straight from the locale's data or the
    /// random stream (`uuid`, names, addresses, companies, ...), and `email` and `username`, whose one
    /// optional parameter only names the column their name is taken from.
    pub(crate) fn is_plain(self) -> bool {
        !matches!(
            self,
            Kind::Id
                | Kind::Date
                | Kind::Datetime
                | Kind::Integer
                | Kind::Float
                | Kind::Category
                | Kind::Boolean
                | Kind::Text
                | Kind::ForeignKey
                | Kind::Expression
        )
    }
}

impl Generator {
    /// Every kind tag, in documentation order.
    pub const KINDS: [&'static str; Kind::ALL.len()] = {
        let mut tags = [""; Kind::ALL.len()];
        let mut i = 0;
        while i < tags.len() {
            tags[i] = Kind::ALL[i].as_str();
            i += 1;
        }
        tags
    };

    /// The kind, without the parameters.
    pub(crate) fn kind_of(&self) -> Kind {
        match self {
            Generator::Id { .. } => Kind::Id,
            Generator::Uuid => Kind::Uuid,
            Generator::FirstName => Kind::FirstName,
            Generator::LastName => Kind::LastName,
            Generator::FullName => Kind::FullName,
            Generator::Email { .. } => Kind::Email,
            Generator::Phone => Kind::Phone,
            Generator::StreetAddress => Kind::StreetAddress,
            Generator::City => Kind::City,
            Generator::State => Kind::State,
            Generator::Country => Kind::Country,
            Generator::Postcode => Kind::Postcode,
            Generator::Company => Kind::Company,
            Generator::JobTitle => Kind::JobTitle,
            Generator::Username { .. } => Kind::Username,
            Generator::Url => Kind::Url,
            Generator::Ip => Kind::Ip,
            Generator::Date { .. } => Kind::Date,
            Generator::Datetime { .. } => Kind::Datetime,
            Generator::Integer { .. } => Kind::Integer,
            Generator::Float { .. } => Kind::Float,
            Generator::Category { .. } => Kind::Category,
            Generator::Boolean { .. } => Kind::Boolean,
            Generator::Text { .. } => Kind::Text,
            Generator::ForeignKey { .. } => Kind::ForeignKey,
            Generator::Expression { .. } => Kind::Expression,
        }
    }

    /// The `kind` tag.
    pub fn kind(&self) -> &'static str {
        self.kind_of().as_str()
    }
}

/// Parses `YYYY-MM-DD`.
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()
}

/// Parses `YYYY-MM-DD[( |T)HH:MM[:SS]]`; a bare date is its midnight, or its last second when `end_of_day`.
pub(crate) fn parse_datetime(s: &str, end_of_day: bool) -> Option<NaiveDateTime> {
    let s = s.trim();
    for fmt in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(dt);
        }
    }
    let date = parse_date(s)?;
    let time = if end_of_day { NaiveTime::from_hms_opt(23, 59, 59)? } else { NaiveTime::MIN };
    Some(date.and_time(time))
}

/// A valid column name: ASCII letters, digits and `_`, not starting with a digit.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl TableSchema {
    /// A schema with the default locale and no description.
    pub fn new(name: impl Into<String>, columns: Vec<Column>) -> TableSchema {
        TableSchema { name: name.into(), description: String::new(), locale: Locale::En, columns }
    }

    /// Index of the column named `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The storage type of every column, in order. Meaningful for a valid schema (a foreign key takes its
    /// target's type; a dangling one is text).
    pub fn column_types(&self) -> Vec<ValueType> {
        let mut types: Vec<ValueType> = Vec::with_capacity(self.columns.len());
        for col in &self.columns {
            let t = match &col.generator {
                Generator::Id { prefix, .. } => {
                    if prefix.is_some() {
                        ValueType::String
                    } else {
                        ValueType::Int
                    }
                }
                Generator::Date { .. } => ValueType::Date,
                Generator::Datetime { .. } => ValueType::DateTime,
                Generator::Integer { .. } => ValueType::Int,
                Generator::Float { .. } => ValueType::Float,
                Generator::Boolean { .. } => ValueType::Bool,
                Generator::Expression { ty, .. } => ty.value_type(),
                Generator::ForeignKey { column } => self.columns[..types.len()]
                    .iter()
                    .position(|c| &c.name == column)
                    .map_or(ValueType::String, |i| types[i]),
                _ => ValueType::String,
            };
            types.push(t);
        }
        types
    }
}

/// `x` rounded to 6 decimals (to a whole number from 10^9 on): a computed parameter with a short decimal form,
/// which `serde_json` writes and reads back exactly. Without it a value such as `16.666666666666668` can come
/// back one unit in the last place off, and a cached or saved schema would no longer give the same bytes.
pub(crate) fn tidy(x: f64) -> f64 {
    if !x.is_finite() {
        x
    } else if x.abs() >= 1e9 {
        x.round()
    } else {
        (x * 1e6).round() / 1e6
    }
}

/// A name made valid: lowercase snake_case of the ASCII letters and digits.
pub(crate) fn suggest_identifier(name: &str) -> String {
    let ascii = deunicode::deunicode(name);
    let mut out = String::with_capacity(ascii.len());
    let mut last_us = true;
    let mut prev = ' ';
    for c in ascii.chars() {
        if c.is_ascii_alphanumeric() {
            // camelCase boundary: an upper-case letter right after a lower-case one.
            if c.is_ascii_uppercase() && !last_us && prev.is_ascii_lowercase() {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            last_us = false;
        } else if !last_us {
            out.push('_');
            last_us = true;
        }
        prev = c;
    }
    let trimmed = out.trim_matches('_');
    let mut s = if trimmed.is_empty() { "column".to_string() } else { trimmed.to_string() };
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s.chars().take(MAX_NAME_LEN).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashSet;

    use super::*;
    use serde_json::json;

    pub(crate) fn realistic() -> TableSchema {
        serde_json::from_value(json!({
            "name": "customers", "description": "telecom customers with churn", "locale": "en",
            "columns": [
                {"name": "customer_id", "kind": "id", "prefix": "C-", "digits": 6},
                {"name": "first_name", "kind": "first_name"},
                {"name": "last_name", "kind": "last_name"},
                {"name": "email", "kind": "email"},
                {"name": "phone", "kind": "phone", "null_rate": 0.1},
                {"name": "city", "kind": "city"},
                {"name": "signup_date", "kind": "date", "start": "2019-01-01", "end": "2024-12-31"},
                {"name": "age", "kind": "integer", "min": 18, "max": 90,
                 "distribution": {"type": "normal", "mean": 42, "std": 13}},
                {"name": "monthly_charges", "kind": "float", "min": 10, "max": 200, "decimals": 2,
                 "distribution": {"type": "lognormal", "mu": 4.0, "sigma": 0.4}},
                {"name": "plan", "kind": "category", "values": ["basic", "plus", "premium"], "weights": [6, 3, 1]},
                {"name": "tenure_months", "kind": "integer", "min": 0, "max": 72},
                {"name": "churned", "kind": "expression", "type": "bool",
                 "expr": "chance(sigmoid(1.0 - 0.06 * tenure_months))"}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn a_realistic_twelve_column_schema_round_trips_through_json() {
        let schema = realistic();
        assert_eq!(schema.columns.len(), 12);
        let text = serde_json::to_string_pretty(&schema).unwrap();
        let back: TableSchema = serde_json::from_str(&text).unwrap();
        assert_eq!(back, schema);
        // The flat column form: name and kind first, parameters beside them.
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["columns"][7],
            json!({"name": "age", "kind": "integer", "min": 18, "max": 90,
            "distribution": {"type": "normal", "mean": 42.0, "std": 13.0}})
        );
        assert_eq!(v["columns"][4]["null_rate"], json!(0.1));
        assert!(text.find("\"name\": \"age\"").unwrap() < text.find("\"kind\": \"integer\"").unwrap());
        assert_eq!(
            schema.column_types(),
            vec![
                ValueType::String,
                ValueType::String,
                ValueType::String,
                ValueType::String,
                ValueType::String,
                ValueType::String,
                ValueType::Date,
                ValueType::Int,
                ValueType::Float,
                ValueType::String,
                ValueType::Int,
                ValueType::Bool
            ]
        );
    }

    /// A generator of every kind (the match makes a new kind need one).
    fn sample(kind: Kind) -> Generator {
        let (start, end) = ("2024-01-01".to_string(), "2024-12-31".to_string());
        match kind {
            Kind::Id => Generator::Id { start: 1, prefix: None, digits: 0 },
            Kind::Uuid => Generator::Uuid,
            Kind::FirstName => Generator::FirstName,
            Kind::LastName => Generator::LastName,
            Kind::FullName => Generator::FullName,
            Kind::Email => Generator::Email { column: None },
            Kind::Phone => Generator::Phone,
            Kind::StreetAddress => Generator::StreetAddress,
            Kind::City => Generator::City,
            Kind::State => Generator::State,
            Kind::Country => Generator::Country,
            Kind::Postcode => Generator::Postcode,
            Kind::Company => Generator::Company,
            Kind::JobTitle => Generator::JobTitle,
            Kind::Username => Generator::Username { column: None },
            Kind::Url => Generator::Url,
            Kind::Ip => Generator::Ip,
            Kind::Date => Generator::Date { start, end },
            Kind::Datetime => Generator::Datetime { start, end },
            Kind::Integer => Generator::Integer { min: 1, max: 2, distribution: Distribution::Uniform },
            Kind::Float => Generator::Float { min: 1.0, max: 2.0, distribution: Distribution::Uniform, decimals: None },
            Kind::Category => Generator::Category { values: vec!["a".into()], weights: None },
            Kind::Boolean => Generator::Boolean { rate: 0.5 },
            Kind::Text => Generator::Text { min_words: 1, max_words: 2 },
            Kind::ForeignKey => Generator::ForeignKey { column: "a".into() },
            Kind::Expression => Generator::Expression { expr: "1".into(), ty: ExprType::Int, decimals: None },
        }
    }

    #[test]
    fn the_kind_tags_are_the_serde_tags() {
        let mut seen = HashSet::new();
        for (i, kind) in Kind::ALL.into_iter().enumerate() {
            let g = sample(kind);
            assert_eq!(g.kind_of(), kind);
            assert_eq!(g.kind(), kind.as_str());
            assert_eq!(serde_json::to_value(&g).unwrap()["kind"], kind.as_str(), "{kind:?}");
            assert_eq!(Kind::from_tag(kind.as_str()), Some(kind));
            assert_eq!(Generator::KINDS[i], kind.as_str());
            assert!(seen.insert(kind.as_str()), "{kind:?} listed twice");
        }
        assert_eq!(Generator::KINDS.len(), Kind::ALL.len());
        assert_eq!(Kind::from_tag("zodiac"), None);
        let plain: Vec<&str> = Kind::ALL.into_iter().filter(|k| k.is_plain()).map(Kind::as_str).collect();
        assert_eq!(plain.len(), 16);
        assert!(plain.contains(&"email") && plain.contains(&"username") && !plain.contains(&"id"));
    }

    #[test]
    fn unknown_fields_and_kinds_are_rejected() {
        let typo = json!({"name": "t", "columns": [{"name": "a", "kind": "integer", "min": 1, "mxa": 3, "max": 4}]});
        let e = serde_json::from_value::<TableSchema>(typo).unwrap_err().to_string();
        assert!(e.contains("mxa"), "{e}");
        let kind = json!({"name": "t", "columns": [{"name": "a", "kind": "zodiac"}]});
        assert!(serde_json::from_value::<TableSchema>(kind).is_err());
        let top = json!({"name": "t", "rows": 5, "columns": [{"name": "a", "kind": "uuid"}]});
        assert!(serde_json::from_value::<TableSchema>(top).unwrap_err().to_string().contains("rows"));
        let loc = json!({"name": "t", "locale": "xx_yy", "columns": [{"name": "a", "kind": "uuid"}]});
        assert!(serde_json::from_value::<TableSchema>(loc).unwrap_err().to_string().contains("unsupported locale"));
    }

    #[test]
    fn locales_parse_leniently() {
        assert_eq!("fr-FR".parse::<Locale>().unwrap(), Locale::FrFr);
        assert_eq!("de".parse::<Locale>().unwrap(), Locale::DeDe);
        assert_eq!("en_US".parse::<Locale>().unwrap(), Locale::En);
        assert_eq!("Japanese".parse::<Locale>().unwrap(), Locale::JaJp);
        for l in Locale::ALL {
            assert_eq!(l.as_str().parse::<Locale>().unwrap(), l);
        }
    }

    #[test]
    fn dates_and_datetimes_parse() {
        assert!(parse_date("2024-02-29").is_some());
        assert!(parse_date("2023-02-29").is_none());
        assert_eq!(parse_datetime("2024-01-01", true).unwrap().to_string(), "2024-01-01 23:59:59");
        assert_eq!(parse_datetime("2024-01-01T08:30", false).unwrap().to_string(), "2024-01-01 08:30:00");
        assert_eq!(parse_datetime("2024-01-01 08:30:05", false).unwrap().to_string(), "2024-01-01 08:30:05");
        assert!(parse_datetime("yesterday", false).is_none());
    }

    #[test]
    fn identifiers_are_suggested() {
        assert_eq!(suggest_identifier("Unit Price ($)"), "unit_price");
        assert_eq!(suggest_identifier("customerID"), "customer_id");
        assert_eq!(suggest_identifier("Prénom"), "prenom");
        assert_eq!(suggest_identifier("1st"), "_1st");
        assert!(is_identifier("unit_price") && !is_identifier("unit price") && !is_identifier("9a"));
    }
}
