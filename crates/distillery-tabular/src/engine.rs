//! The generation engine behind `RowGenerator` (module `generate`, which describes the guarantees): a schema
//! compiled once (expressions parsed, dates resolved, weights accumulated), blocks of rows generated from
//! their own seeded streams into column storage, and the dry run that validation (module `validate`) ends
//! with. Nothing here validates: the engine only reports what it cannot compile.

use chrono::{NaiveDate, NaiveDateTime};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution as _, LogNormal, Normal};
use sha2::Digest as _;

use crate::cells::{self, NameWords};
use crate::expr::{self, ExprNode, ExprValue};
use crate::locale::{self, LocaleData};
use crate::schema::{Distribution, ExprType, Generator, TableSchema, ValueType, parse_date, parse_datetime};

/// Rows per generation block (the unit of parallelism and of the per-block random stream).
pub const BLOCK_ROWS: usize = 8192;

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// One cell of a generated row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value.
    Null,
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Text.
    String(String),
    /// A calendar date.
    Date(NaiveDate),
    /// A date and time to the second (no time zone).
    DateTime(NaiveDateTime),
}

impl Value {
    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The number, for integers and floats.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The text, for strings.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

impl std::fmt::Display for Value {
    /// The CSV text of the value (empty for null).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::String(s) => f.write_str(s),
            Value::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            Value::DateTime(d) => write!(f, "{}", d.format("%Y-%m-%dT%H:%M:%S")),
        }
    }
}

/// One generated row: a value per column, in schema order.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The cells.
    pub values: Vec<Value>,
}

impl Row {
    /// The cell of column `i`.
    pub fn get(&self, i: usize) -> Option<&Value> {
        self.values.get(i)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Compiled schema

/// Where an e-mail address or user name takes its name from.
#[derive(Debug, Clone, Copy)]
enum NameSource {
    /// One earlier name column.
    Column(usize),
    /// The earlier first-name and last-name columns.
    Parts(Option<usize>, Option<usize>),
    /// A random name of the locale.
    Random,
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    Uniform,
    Normal(Normal<f64>),
    LogNormal(LogNormal<f64>),
}

impl Shape {
    fn of(d: &Distribution) -> Shape {
        match *d {
            Distribution::Uniform => Shape::Uniform,
            Distribution::Normal { mean, std } => Normal::new(mean, std).map_or(Shape::Uniform, Shape::Normal),
            Distribution::LogNormal { mu, sigma } => LogNormal::new(mu, sigma).map_or(Shape::Uniform, Shape::LogNormal),
        }
    }

    /// A draw in `[min, max]`: uniform, or the shape re-drawn while outside (8 tries), then clamped;
    /// `round` makes the bounds test apply to the rounded value (integers).
    #[inline]
    fn sample<R: Rng>(&self, min: f64, max: f64, round: bool, rng: &mut R) -> f64 {
        let draw = |rng: &mut R| -> f64 {
            match self {
                Shape::Uniform => min + (max - min) * rng.random::<f64>(),
                Shape::Normal(d) => d.sample(rng),
                Shape::LogNormal(d) => d.sample(rng),
            }
        };
        let mut x = draw(rng);
        if let Shape::Uniform = self {
            return x.min(max);
        }
        for _ in 0..8 {
            let v = if round { x.round() } else { x };
            if v >= min && v <= max {
                return x;
            }
            x = draw(rng);
        }
        x.clamp(min, max)
    }
}

#[derive(Debug)]
enum Gen {
    IntId { start: i64 },
    TextId { start: i64, prefix: String, digits: u8 },
    Uuid,
    FirstName,
    LastName,
    FullName,
    Email(NameSource),
    Username(NameSource),
    Phone,
    StreetAddress,
    City,
    State,
    Country,
    Postcode,
    Company,
    JobTitle,
    Url,
    Ip,
    Date { start: i32, span: u32 },
    DateTime { start: i64, span: u64 },
    Int { min: i64, max: i64, shape: Shape },
    Float { min: f64, max: f64, shape: Shape, scale: Option<f64> },
    Category { values: Vec<String>, cumulative: Option<Vec<f64>> },
    Bool { rate: f64 },
    Text { min: u32, max: u32 },
    ForeignKey { column: usize },
    Expr(Box<CompiledExpr>),
}

#[derive(Debug)]
struct CompiledExpr {
    node: ExprNode,
    names: Vec<String>,
    columns: Vec<usize>,
    ty: ExprType,
    scale: Option<f64>,
}

#[derive(Debug)]
struct ColGen {
    generator: Gen,
    null_rate: f64,
}

/// A schema compiled for generation: expressions parsed, dates resolved, weights accumulated.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub schema: TableSchema,
    pub types: Vec<ValueType>,
    /// Digits after the point of float columns (for the text writers).
    pub decimals: Vec<Option<u8>>,
    cols: Vec<ColGen>,
    locale: &'static LocaleData,
    /// Hash of the table name, part of every block's key.
    stream: u64,
}

fn days_since_epoch(d: NaiveDate) -> i32 {
    use chrono::Datelike;
    d.num_days_from_ce() - EPOCH_DAYS_FROM_CE
}

fn name_source(schema: &TableSchema, i: usize, column: &Option<String>) -> NameSource {
    let earlier = &schema.columns[..i];
    if let Some(c) = column {
        return earlier.iter().position(|x| &x.name == c).map_or(NameSource::Random, NameSource::Column);
    }
    if let Some(j) = earlier.iter().position(|x| matches!(x.generator, Generator::FullName)) {
        return NameSource::Column(j);
    }
    let first = earlier.iter().position(|x| matches!(x.generator, Generator::FirstName));
    let last = earlier.iter().position(|x| matches!(x.generator, Generator::LastName));
    if first.is_some() || last.is_some() { NameSource::Parts(first, last) } else { NameSource::Random }
}

impl Compiled {
    /// Compiles a schema that passed the static checks (anything unusable is reported, not panicked on).
    pub(crate) fn new(schema: &TableSchema) -> Result<Compiled, Vec<String>> {
        let types = schema.column_types();
        let mut errors = Vec::new();
        let mut cols = Vec::with_capacity(schema.columns.len());
        let mut decimals = Vec::with_capacity(schema.columns.len());
        for (i, col) in schema.columns.iter().enumerate() {
            let at = format!("column {} {:?}", i + 1, col.name);
            let mut dec = None;
            let generator = match &col.generator {
                Generator::Id { start, prefix: None, .. } => Gen::IntId { start: *start },
                Generator::Id { start, prefix: Some(p), digits } => {
                    Gen::TextId { start: *start, prefix: p.clone(), digits: *digits }
                }
                Generator::Uuid => Gen::Uuid,
                Generator::FirstName => Gen::FirstName,
                Generator::LastName => Gen::LastName,
                Generator::FullName => Gen::FullName,
                Generator::Email { column } => Gen::Email(name_source(schema, i, column)),
                Generator::Username { column } => Gen::Username(name_source(schema, i, column)),
                Generator::Phone => Gen::Phone,
                Generator::StreetAddress => Gen::StreetAddress,
                Generator::City => Gen::City,
                Generator::State => Gen::State,
                Generator::Country => Gen::Country,
                Generator::Postcode => Gen::Postcode,
                Generator::Company => Gen::Company,
                Generator::JobTitle => Gen::JobTitle,
                Generator::Url => Gen::Url,
                Generator::Ip => Gen::Ip,
                Generator::Date { start, end } => match (parse_date(start), parse_date(end)) {
                    (Some(s), Some(e)) if s <= e => {
                        Gen::Date { start: days_since_epoch(s), span: (e - s).num_days() as u32 }
                    }
                    _ => {
                        errors.push(format!("{at}: unusable date range {start:?}..{end:?}"));
                        continue;
                    }
                },
                Generator::Datetime { start, end } => match (parse_datetime(start, false), parse_datetime(end, true)) {
                    (Some(s), Some(e)) if s <= e => Gen::DateTime {
                        start: s.and_utc().timestamp(),
                        span: (e.and_utc().timestamp() - s.and_utc().timestamp()) as u64,
                    },
                    _ => {
                        errors.push(format!("{at}: unusable date-time range {start:?}..{end:?}"));
                        continue;
                    }
                },
                Generator::Integer { min, max, distribution } => {
                    Gen::Int { min: *min, max: (*max).max(*min), shape: Shape::of(distribution) }
                }
                Generator::Float { min, max, distribution, decimals: d } => {
                    dec = *d;
                    Gen::Float {
                        min: *min,
                        max: max.max(*min),
                        shape: Shape::of(distribution),
                        scale: d.map(|d| 10f64.powi(d as i32)),
                    }
                }
                Generator::Category { values, weights } => {
                    let cumulative = weights.as_ref().map(|w| {
                        let mut acc = 0.0;
                        w.iter()
                            .take(values.len())
                            .map(|x| {
                                acc += x.max(0.0);
                                acc
                            })
                            .collect::<Vec<f64>>()
                    });
                    if values.is_empty() {
                        errors.push(format!("{at}: a category needs at least one value"));
                        continue;
                    }
                    Gen::Category { values: values.clone(), cumulative }
                }
                Generator::Boolean { rate } => Gen::Bool { rate: *rate },
                Generator::Text { min_words, max_words } => {
                    Gen::Text { min: (*min_words).max(1), max: (*max_words).max((*min_words).max(1)) }
                }
                Generator::ForeignKey { column } => match schema.columns[..i].iter().position(|c| &c.name == column) {
                    Some(j) => Gen::ForeignKey { column: j },
                    None => {
                        errors.push(format!("{at}: foreign key to unknown earlier column {column:?}"));
                        continue;
                    }
                },
                Generator::Expression { expr: text, ty, decimals: d } => {
                    let node = match expr::parse(text) {
                        Ok(n) => n,
                        Err(e) => {
                            errors.push(format!("{at}: expression {} does not parse: {e}", expr::shown(text)));
                            continue;
                        }
                    };
                    let refs = expr::References::of(&node);
                    let mut columns = Vec::new();
                    for v in &refs.variables {
                        match schema.columns[..i].iter().position(|c| &c.name == v) {
                            Some(j) => columns.push(j),
                            None => errors.push(format!("{at}: expression {text:?} refers to unknown {v:?}")),
                        }
                    }
                    if *ty == ExprType::Float {
                        dec = *d;
                    }
                    Gen::Expr(Box::new(CompiledExpr {
                        node,
                        names: refs.variables,
                        columns,
                        ty: *ty,
                        scale: d.filter(|_| *ty == ExprType::Float).map(|d| 10f64.powi(d as i32)),
                    }))
                }
            };
            decimals.push(dec);
            cols.push(ColGen { generator, null_rate: col.null_rate.clamp(0.0, 1.0) });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let digest = sha2::Sha256::digest(schema.name.as_bytes());
        let stream = u64::from_le_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"));
        Ok(Compiled { schema: schema.clone(), types, decimals, cols, locale: locale::data(schema.locale), stream })
    }

    /// Generates block `index` with `rows` rows (at most [`BLOCK_ROWS`]).
    pub(crate) fn block(&self, seed: u64, index: u64, rows: usize) -> Block {
        let mut block = Block::new(&self.types, index, rows);
        let mut state =
            BlockState { rng: block_rng(seed, self.stream, index), words: NameWords::default(), vars: Vec::new() };
        for r in 0..rows {
            self.row(&mut block, r, &mut state, None);
        }
        block
    }

    fn row(&self, block: &mut Block, r: usize, st: &mut BlockState, mut errors: Option<&mut Vec<Option<String>>>) {
        let global_row = block.start + r as u64;
        let d = self.locale;
        for (c, cg) in self.cols.iter().enumerate() {
            let (earlier, rest) = block.cols.split_at_mut(c);
            let out = &mut rest[0];
            let rng = &mut st.rng;
            if cg.null_rate > 0.0 && rng.random::<f64>() < cg.null_rate {
                out.push_null();
                continue;
            }
            match &cg.generator {
                Gen::IntId { start } => out.push_int(start.wrapping_add(global_row as i64)),
                Gen::TextId { start, prefix, digits } => {
                    out.push_str_with(|s| cells::text_id(prefix, start.wrapping_add(global_row as i64), *digits, s))
                }
                Gen::Uuid => out.push_str_with(|s| cells::uuid(rng, s)),
                Gen::FirstName => out.push_str_with(|s| cells::first_name(d, rng, s)),
                Gen::LastName => out.push_str_with(|s| cells::last_name(d, rng, s)),
                Gen::FullName => out.push_str_with(|s| cells::full_name(d, rng, s)),
                Gen::Email(src) | Gen::Username(src) => {
                    let words = &mut st.words;
                    words.clear();
                    match *src {
                        NameSource::Column(j) => {
                            if let Some(v) = earlier[j].str_at(r) {
                                words.add(v);
                            }
                        }
                        NameSource::Parts(first, last) => {
                            for j in [first, last].into_iter().flatten() {
                                if let Some(v) = earlier[j].str_at(r) {
                                    words.add(v);
                                }
                            }
                        }
                        NameSource::Random => {}
                    }
                    if matches!(cg.generator, Gen::Email(_)) {
                        out.push_str_with(|s| cells::email(d, words, rng, s));
                    } else {
                        out.push_str_with(|s| cells::username(d, words, rng, s));
                    }
                }
                Gen::Phone => out.push_str_with(|s| cells::phone(d, rng, s)),
                Gen::StreetAddress => out.push_str_with(|s| cells::street_address(d, rng, s)),
                Gen::City => out.push_str_with(|s| cells::city(d, rng, s)),
                Gen::State => out.push_str_with(|s| cells::state(d, rng, s)),
                Gen::Country => out.push_str_with(|s| cells::country(d, rng, s)),
                Gen::Postcode => out.push_str_with(|s| cells::postcode(d, rng, s)),
                Gen::Company => out.push_str_with(|s| cells::company(d, rng, s)),
                Gen::JobTitle => out.push_str_with(|s| cells::job_title(d, rng, s)),
                Gen::Url => {
                    let words = &mut st.words;
                    out.push_str_with(|s| cells::url(d, words, rng, s))
                }
                Gen::Ip => out.push_str_with(|s| cells::ip(rng, s)),
                Gen::Date { start, span } => {
                    let off = if *span == 0 { 0 } else { cells::index(rng, *span as usize + 1) as i32 };
                    out.push_date(start + off)
                }
                Gen::DateTime { start, span } => {
                    let off = if *span == 0 { 0 } else { rng.random_range(0..=*span) as i64 };
                    out.push_datetime(start + off)
                }
                Gen::Int { min, max, shape } => {
                    let v = match shape {
                        Shape::Uniform => rng.random_range(*min..=*max),
                        s => (s.sample(*min as f64, *max as f64, true, rng).round() as i64).clamp(*min, *max),
                    };
                    out.push_int(v)
                }
                Gen::Float { min, max, shape, scale } => {
                    let x = shape.sample(*min, *max, false, rng);
                    out.push_float(match scale {
                        Some(s) => (x * s).round() / s,
                        None => x,
                    })
                }
                Gen::Category { values, cumulative } => {
                    let i = match cumulative {
                        None => cells::index(rng, values.len()),
                        Some(cum) => {
                            let total = cum.last().copied().unwrap_or(0.0);
                            let u = rng.random::<f64>() * total;
                            cum.partition_point(|&c| c <= u).min(values.len() - 1)
                        }
                    };
                    out.push_str_with(|s| s.push_str(&values[i]))
                }
                Gen::Bool { rate } => out.push_bool(rng.random::<f64>() < *rate),
                Gen::Text { min, max } => out.push_str_with(|s| cells::text(d, *min, *max, rng, s)),
                Gen::ForeignKey { column } => {
                    let j = cells::index(rng, r + 1);
                    let src = &earlier[*column];
                    out.copy_from(src, j);
                }
                Gen::Expr(e) => {
                    st.vars.clear();
                    let mut any_null = false;
                    for &j in &e.columns {
                        let v = earlier[j].expr_value(r);
                        any_null |= matches!(v, ExprValue::Empty);
                        st.vars.push(v);
                    }
                    let result =
                        expr::eval(&e.node, &e.names, &st.vars, rng).and_then(|v| out.push_expr(e.ty, e.scale, v));
                    if let Err(msg) = result {
                        out.push_null();
                        if let Some(errs) = errors.as_deref_mut()
                            && !any_null
                            && errs[c].is_none()
                        {
                            let inputs: Vec<String> =
                                e.names.iter().zip(&st.vars).map(|(n, v)| format!("{n} = {v}")).collect();
                            let with = if inputs.is_empty() {
                                String::new()
                            } else {
                                format!(" (with {})", inputs.join(", "))
                            };
                            errs[c] = Some(format!("{msg}{with}"));
                        }
                    }
                }
            }
        }
        block.len = r + 1;
    }
}

struct BlockState {
    rng: ChaCha8Rng,
    words: NameWords,
    vars: Vec<ExprValue>,
}

/// The random stream of block `index` of the table whose name hashes to `stream`.
fn block_rng(seed: u64, stream: u64, index: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(b"tabular1");
    key[16..24].copy_from_slice(&stream.to_le_bytes());
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(index);
    rng
}

/// Generates a few hundred rows and reports every expression column that fails on a row whose inputs are
/// all present (a type error, a function misuse, a result of the wrong type), with the inputs that made it
/// fail. The last step of `TableSchema::validate`.
pub(crate) fn dry_run(schema: &TableSchema, rows: u64) -> Vec<String> {
    let compiled = match Compiled::new(schema) {
        Ok(c) => c,
        Err(errors) => return errors,
    };
    let rows = rows.min(BLOCK_ROWS as u64) as usize;
    let mut block = Block::new(&compiled.types, 0, rows);
    let mut state = BlockState { rng: block_rng(0, compiled.stream, 0), words: NameWords::default(), vars: Vec::new() };
    let mut errors: Vec<Option<String>> = vec![None; schema.columns.len()];
    for r in 0..rows {
        compiled.row(&mut block, r, &mut state, Some(&mut errors));
    }
    errors
        .into_iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let e = e?;
            let col = &schema.columns[i];
            let Generator::Expression { expr, .. } = &col.generator else { return None };
            Some(format!("column {} {:?}: expression {expr:?} fails: {e}", i + 1, col.name))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// Block storage

/// The values of one column of a block.
#[derive(Debug)]
pub(crate) enum ColValues {
    Int(Vec<i64>),
    Float(Vec<f64>),
    Bool(Vec<bool>),
    /// Text: all values back to back; `ends[i]` is where value `i` ends.
    Str {
        buf: String,
        ends: Vec<usize>,
    },
    /// Days since 1970-01-01.
    Date(Vec<i32>),
    /// Seconds since 1970-01-01T00:00:00.
    DateTime(Vec<i64>),
}

/// One column of a block: values plus validity (false = null; the value slot then holds a default).
#[derive(Debug)]
pub(crate) struct ColData {
    pub valid: Vec<bool>,
    pub values: ColValues,
    pub nulls: usize,
}

impl ColData {
    fn new(ty: ValueType, cap: usize) -> ColData {
        let values = match ty {
            ValueType::Int => ColValues::Int(Vec::with_capacity(cap)),
            ValueType::Float => ColValues::Float(Vec::with_capacity(cap)),
            ValueType::Bool => ColValues::Bool(Vec::with_capacity(cap)),
            ValueType::String => ColValues::Str { buf: String::with_capacity(cap * 12), ends: Vec::with_capacity(cap) },
            ValueType::Date => ColValues::Date(Vec::with_capacity(cap)),
            ValueType::DateTime => ColValues::DateTime(Vec::with_capacity(cap)),
        };
        ColData { valid: Vec::with_capacity(cap), values, nulls: 0 }
    }

    /// The text of row `r`, when this is a text column and the cell is not null.
    #[inline]
    pub(crate) fn str_at(&self, r: usize) -> Option<&str> {
        match &self.values {
            ColValues::Str { buf, ends } if self.valid[r] => {
                let start = if r == 0 { 0 } else { ends[r - 1] };
                Some(&buf[start..ends[r]])
            }
            _ => None,
        }
    }

    #[inline]
    fn push_null(&mut self) {
        self.valid.push(false);
        self.nulls += 1;
        match &mut self.values {
            ColValues::Int(v) => v.push(0),
            ColValues::Float(v) => v.push(0.0),
            ColValues::Bool(v) => v.push(false),
            ColValues::Str { buf, ends } => ends.push(buf.len()),
            ColValues::Date(v) => v.push(0),
            ColValues::DateTime(v) => v.push(0),
        }
    }

    #[inline]
    fn push_int(&mut self, x: i64) {
        match &mut self.values {
            ColValues::Int(v) => {
                v.push(x);
                self.valid.push(true);
            }
            ColValues::Float(v) => {
                v.push(x as f64);
                self.valid.push(true);
            }
            _ => self.push_str_with(|s| cells::push_i64(s, x)),
        }
    }

    #[inline]
    fn push_float(&mut self, x: f64) {
        if let ColValues::Float(v) = &mut self.values {
            v.push(x);
            self.valid.push(true);
        } else {
            self.push_null();
        }
    }

    #[inline]
    fn push_bool(&mut self, x: bool) {
        if let ColValues::Bool(v) = &mut self.values {
            v.push(x);
            self.valid.push(true);
        } else {
            self.push_null();
        }
    }

    #[inline]
    fn push_date(&mut self, days: i32) {
        if let ColValues::Date(v) = &mut self.values {
            v.push(days);
            self.valid.push(true);
        } else {
            self.push_null();
        }
    }

    #[inline]
    fn push_datetime(&mut self, secs: i64) {
        if let ColValues::DateTime(v) = &mut self.values {
            v.push(secs);
            self.valid.push(true);
        } else {
            self.push_null();
        }
    }

    /// Appends a text value written by `f` straight into the column buffer.
    #[inline]
    fn push_str_with(&mut self, f: impl FnOnce(&mut String)) {
        if let ColValues::Str { buf, ends } = &mut self.values {
            f(buf);
            ends.push(buf.len());
            self.valid.push(true);
        } else {
            self.push_null();
        }
    }

    /// Appends the value `src` holds in row `j` (same storage type: a foreign key takes its target's type).
    fn copy_from(&mut self, src: &ColData, j: usize) {
        if !src.valid[j] {
            self.push_null();
            return;
        }
        match &src.values {
            ColValues::Int(v) => self.push_int(v[j]),
            ColValues::Float(v) => self.push_float(v[j]),
            ColValues::Bool(v) => self.push_bool(v[j]),
            ColValues::Date(v) => self.push_date(v[j]),
            ColValues::DateTime(v) => self.push_datetime(v[j]),
            ColValues::Str { .. } => {
                let s = src.str_at(j).unwrap_or_default();
                self.push_str_with(|b| b.push_str(s));
            }
        }
    }

    /// The cell of row `r` as an expression value.
    fn expr_value(&self, r: usize) -> ExprValue {
        if !self.valid[r] {
            return ExprValue::Empty;
        }
        match &self.values {
            ColValues::Int(v) => ExprValue::Int(v[r]),
            ColValues::Float(v) => ExprValue::Float(v[r]),
            ColValues::Bool(v) => ExprValue::Boolean(v[r]),
            ColValues::Str { .. } => ExprValue::String(self.str_at(r).unwrap_or_default().to_string()),
            ColValues::Date(v) => {
                let mut b = Vec::with_capacity(10);
                cells::put_date(&mut b, v[r]);
                ExprValue::String(String::from_utf8(b).unwrap_or_default())
            }
            ColValues::DateTime(v) => {
                let mut b = Vec::with_capacity(19);
                cells::put_datetime(&mut b, v[r]);
                ExprValue::String(String::from_utf8(b).unwrap_or_default())
            }
        }
    }

    /// Appends an expression result converted to the column type.
    fn push_expr(&mut self, ty: ExprType, scale: Option<f64>, v: ExprValue) -> Result<(), String> {
        let bad = |v: &ExprValue| format!("the result {v} is not a {}", ty.as_str());
        match ty {
            ExprType::Int => match v {
                ExprValue::Int(i) => self.push_int(i),
                ExprValue::Float(f) if f.is_finite() && f.abs() < 9.2e18 => self.push_int(f.round() as i64),
                ExprValue::Boolean(b) => self.push_int(b as i64),
                ExprValue::Empty => self.push_null(),
                other => return Err(bad(&other)),
            },
            ExprType::Float => {
                let f = match v {
                    ExprValue::Int(i) => i as f64,
                    ExprValue::Float(f) if f.is_finite() => f,
                    ExprValue::Boolean(b) => b as i64 as f64,
                    ExprValue::Empty => {
                        self.push_null();
                        return Ok(());
                    }
                    other => return Err(bad(&other)),
                };
                self.push_float(match scale {
                    Some(s) => (f * s).round() / s,
                    None => f,
                });
            }
            ExprType::Bool => match v {
                ExprValue::Boolean(b) => self.push_bool(b),
                ExprValue::Int(i) => self.push_bool(i != 0),
                ExprValue::Float(f) => self.push_bool(f != 0.0),
                ExprValue::Empty => self.push_null(),
                other => return Err(bad(&other)),
            },
            ExprType::String => match v {
                ExprValue::String(s) => self.push_str_with(|b| b.push_str(&s)),
                ExprValue::Empty => self.push_null(),
                ExprValue::Tuple(_) => return Err(bad(&v)),
                other => self.push_str_with(|b| {
                    use std::fmt::Write as _;
                    let _ = write!(b, "{other}");
                }),
            },
            ExprType::Date => match &v {
                ExprValue::String(s) => match s.get(..10).and_then(parse_date) {
                    Some(d) => self.push_date(days_since_epoch(d)),
                    None => return Err(bad(&v)),
                },
                ExprValue::Empty => self.push_null(),
                _ => return Err(bad(&v)),
            },
        }
        Ok(())
    }

    /// The cell of row `r` as a public [`Value`].
    pub(crate) fn value(&self, r: usize) -> Value {
        if !self.valid[r] {
            return Value::Null;
        }
        match &self.values {
            ColValues::Int(v) => Value::Int(v[r]),
            ColValues::Float(v) => Value::Float(v[r]),
            ColValues::Bool(v) => Value::Bool(v[r]),
            ColValues::Str { .. } => Value::String(self.str_at(r).unwrap_or_default().to_string()),
            ColValues::Date(v) => {
                NaiveDate::from_num_days_from_ce_opt(v[r] + EPOCH_DAYS_FROM_CE).map_or(Value::Null, Value::Date)
            }
            ColValues::DateTime(v) => {
                chrono::DateTime::from_timestamp(v[r], 0).map_or(Value::Null, |d| Value::DateTime(d.naive_utc()))
            }
        }
    }
}

/// A block of generated rows, stored by column.
#[derive(Debug)]
pub(crate) struct Block {
    /// Global index of the first row.
    pub start: u64,
    /// Rows generated.
    pub len: usize,
    pub cols: Vec<ColData>,
}

impl Block {
    fn new(types: &[ValueType], index: u64, cap: usize) -> Block {
        Block { start: index * BLOCK_ROWS as u64, len: 0, cols: types.iter().map(|t| ColData::new(*t, cap)).collect() }
    }

    /// The rows as public values.
    pub(crate) fn rows(&self) -> Vec<Row> {
        (0..self.len).map(|r| Row { values: self.cols.iter().map(|c| c.value(r)).collect() }).collect()
    }
}

/// Number of blocks for `rows` rows, and the rows of block `index`.
pub(crate) fn block_count(rows: u64) -> u64 {
    rows.div_ceil(BLOCK_ROWS as u64)
}

/// Rows in block `index` of a table of `rows` rows.
pub(crate) fn rows_in_block(rows: u64, index: u64) -> usize {
    (rows - index * BLOCK_ROWS as u64).min(BLOCK_ROWS as u64) as usize
}
