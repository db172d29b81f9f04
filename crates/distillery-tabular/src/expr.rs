//! Derived columns: `evalexpr` expressions over earlier columns of the same row, with seeded random helpers.
//!
//! An expression is parsed once ([`parse`]) into an operator tree. Per row it is evaluated against a
//! [`RowContext`] that exposes only the columns the expression reads and the functions below; the random
//! helpers draw from the row's own seeded stream (the block's ChaCha generator, borrowed through a
//! `RefCell`), so a derived column is as reproducible as every other column.
//!
//! Values of earlier columns appear as: integers, floats and booleans as themselves; text as a string;
//! dates as `"YYYY-MM-DD"` and date-times as `"YYYY-MM-DDTHH:MM:SS"` strings (see the date helpers); a null
//! as the empty value `()`, on which every operator fails, so the derived value is null too.

use std::cell::RefCell;

use chrono::NaiveDate;
use evalexpr::{Context, DefaultNumericTypes, EvalexprError, EvalexprResult, Node, Operator, Value};
use rand::Rng;
use rand_distr::{Distribution as _, LogNormal, Normal};

/// A parsed expression.
pub(crate) type ExprNode = Node<DefaultNumericTypes>;
/// A value inside an expression.
pub(crate) type ExprValue = Value<DefaultNumericTypes>;
type ExprResult = Result<ExprValue, EvalexprError<DefaultNumericTypes>>;

/// Functions an expression may call: the seeded random helpers, date helpers and the `evalexpr` built-ins
/// that make sense for a column (`math::*` is also available).
pub(crate) const FUNCTION_NAMES: [&str; 30] = [
    "rand",
    "uniform",
    "randint",
    "normal",
    "lognormal",
    "chance",
    "choice",
    "if",
    "min",
    "max",
    "clamp",
    "abs",
    "round",
    "round_to",
    "floor",
    "ceil",
    "sigmoid",
    "add_days",
    "days_between",
    "year",
    "month",
    "day",
    "len",
    "contains",
    "str::from",
    "str::to_lowercase",
    "str::to_uppercase",
    "str::trim",
    "str::substring",
    "typeof",
];

/// `evalexpr` built-ins that are allowed but not worth listing in every error message.
const MORE_BUILTINS: [&str; 27] = [
    "random",
    "math::ln",
    "math::log",
    "math::log2",
    "math::log10",
    "math::exp",
    "math::exp2",
    "math::pow",
    "math::sqrt",
    "math::cbrt",
    "math::hypot",
    "math::abs",
    "math::cos",
    "math::sin",
    "math::tan",
    "math::acos",
    "math::asin",
    "math::atan",
    "math::atan2",
    "math::cosh",
    "math::sinh",
    "math::tanh",
    "math::is_nan",
    "math::is_finite",
    "math::is_infinite",
    "math::is_normal",
    "contains_any",
];

/// Whether an expression may call `name`.
pub(crate) fn is_known_function(name: &str) -> bool {
    FUNCTION_NAMES.contains(&name) || MORE_BUILTINS.contains(&name)
}

/// The longest expression a schema may hold, in characters.
pub const MAX_EXPR_CHARS: usize = 1000;

/// The deepest an expression may nest (brackets, and its parsed operator tree).
pub const MAX_EXPR_DEPTH: usize = 32;

/// Parses an expression into its operator tree. Expressions come from callers (an API request's schema, a
/// model's design): one over [`MAX_EXPR_CHARS`] or nested deeper than [`MAX_EXPR_DEPTH`] is refused before
/// the parser sees it (the parser and the evaluator recurse, and a nesting 100,000 deep used to overflow the
/// stack and abort the process).
pub(crate) fn parse(expr: &str) -> Result<ExprNode, String> {
    if expr.trim().is_empty() {
        return Err("the expression is empty".into());
    }
    let chars = expr.chars().count();
    if chars > MAX_EXPR_CHARS {
        return Err(format!("the expression is {chars} characters long, over the limit of {MAX_EXPR_CHARS}"));
    }
    let (mut depth, mut deepest, mut unary) = (0usize, 0usize, 0usize);
    for c in expr.chars() {
        match c {
            '(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        // A run of prefix operators (`- - - x`, `!!!!x`) nests as deep as brackets do.
        match c {
            '-' | '!' | '+' => {
                unary += 1;
                deepest = deepest.max(unary);
            }
            c if c.is_whitespace() || c == '(' => {}
            _ => unary = 0,
        }
    }
    if deepest > MAX_EXPR_DEPTH {
        return Err(format!(
            "the expression nests {deepest} deep (brackets or prefix operators), over the limit of {MAX_EXPR_DEPTH}"
        ));
    }
    let node = evalexpr::build_operator_tree::<DefaultNumericTypes>(expr).map_err(|e| e.to_string())?;
    let tree = tree_depth(&node);
    if tree > 4 * MAX_EXPR_DEPTH {
        return Err(format!(
            "the expression is nested {tree} operators deep, over the limit of {}",
            4 * MAX_EXPR_DEPTH
        ));
    }
    Ok(node)
}

/// The depth of an operator tree, measured without recursion.
fn tree_depth(node: &ExprNode) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(node, 1usize)];
    while let Some((n, d)) = stack.pop() {
        deepest = deepest.max(d);
        stack.extend(n.children().iter().map(|c| (c, d + 1)));
    }
    deepest
}

/// An expression as error messages quote it: at most 80 characters.
pub(crate) fn shown(expr: &str) -> String {
    if expr.chars().count() <= 80 {
        return format!("{expr:?}");
    }
    let head: String = expr.chars().take(77).collect();
    format!("{head:?}... ({} characters)", expr.chars().count())
}

/// The identifiers an expression uses, each listed once in order of appearance.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct References {
    /// Variables read (column names).
    pub variables: Vec<String>,
    /// Functions called.
    pub functions: Vec<String>,
    /// Variables assigned (`a = 1`, `a += 1`): never allowed.
    pub assigned: Vec<String>,
}

impl References {
    /// Collects the identifiers of a parsed expression.
    pub(crate) fn of(node: &ExprNode) -> References {
        fn add(list: &mut Vec<String>, id: &str) {
            if !list.iter().any(|x| x == id) {
                list.push(id.to_string());
            }
        }
        let mut refs = References::default();
        for n in node.iter() {
            match n.operator() {
                Operator::VariableIdentifierRead { identifier } => add(&mut refs.variables, identifier),
                Operator::VariableIdentifierWrite { identifier } => add(&mut refs.assigned, identifier),
                Operator::FunctionIdentifier { identifier } => add(&mut refs.functions, identifier),
                _ => {}
            }
        }
        refs
    }
}

/// What one expression evaluation sees: the values of the columns it reads and the row's random stream.
pub(crate) struct RowContext<'a, R: Rng> {
    /// Names of the columns the expression reads.
    pub names: &'a [String],
    /// Their values in this row, in the same order.
    pub values: &'a [ExprValue],
    /// The block's seeded generator.
    pub rng: RefCell<&'a mut R>,
}

impl<R: Rng> Context for RowContext<'_, R> {
    type NumericTypes = DefaultNumericTypes;

    fn get_value(&self, identifier: &str) -> Option<&ExprValue> {
        self.names.iter().position(|n| n == identifier).map(|i| &self.values[i])
    }

    fn call_function(&self, identifier: &str, argument: &ExprValue) -> ExprResult {
        call(identifier, argument, &self.rng)
    }

    fn are_builtin_functions_disabled(&self) -> bool {
        false
    }

    fn set_builtin_functions_disabled(&mut self, disabled: bool) -> EvalexprResult<(), DefaultNumericTypes> {
        if disabled { Err(EvalexprError::BuiltinFunctionsCannotBeDisabled) } else { Ok(()) }
    }
}

/// Evaluates a parsed expression.
pub(crate) fn eval<R: Rng>(
    node: &ExprNode,
    names: &[String],
    values: &[ExprValue],
    rng: &mut R,
) -> Result<ExprValue, String> {
    let ctx = RowContext { names, values, rng: RefCell::new(rng) };
    node.eval_with_context(&ctx).map_err(|e| e.to_string())
}

fn custom(msg: impl Into<String>) -> EvalexprError<DefaultNumericTypes> {
    EvalexprError::CustomMessage(msg.into())
}

fn args<'v>(
    name: &str,
    argument: &'v ExprValue,
    n: usize,
) -> Result<&'v [ExprValue], EvalexprError<DefaultNumericTypes>> {
    match argument {
        Value::Tuple(items) if items.len() == n => Ok(items),
        Value::Empty if n == 0 => Ok(&[]),
        other if n == 1 && !matches!(other, Value::Tuple(_)) => Ok(std::slice::from_ref(argument)),
        _ => Err(custom(format!("{name} takes {n} argument{}", if n == 1 { "" } else { "s" }))),
    }
}

fn items(argument: &ExprValue) -> &[ExprValue] {
    match argument {
        Value::Tuple(items) => items,
        Value::Empty => &[],
        _ => std::slice::from_ref(argument),
    }
}

fn num(v: &ExprValue) -> Result<f64, EvalexprError<DefaultNumericTypes>> {
    match v {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f) => Ok(*f),
        Value::Boolean(b) => Ok(if *b { 1.0 } else { 0.0 }),
        other => Err(EvalexprError::expected_number(other.clone())),
    }
}

fn int(v: &ExprValue) -> Result<i64, EvalexprError<DefaultNumericTypes>> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Float(f) if f.is_finite() => Ok(f.round() as i64),
        other => Err(EvalexprError::expected_int(other.clone())),
    }
}

fn date(v: &ExprValue) -> Result<NaiveDate, EvalexprError<DefaultNumericTypes>> {
    match v {
        Value::String(s) => s
            .get(..10)
            .and_then(crate::schema::parse_date)
            .ok_or_else(|| custom(format!("{s:?} is not a date (YYYY-MM-DD)"))),
        other => Err(EvalexprError::expected_string(other.clone())),
    }
}

/// Integer when every input is an integer, else float.
fn same_kind(all_int: bool, x: f64) -> ExprValue {
    if all_int { Value::Int(x as i64) } else { Value::Float(x) }
}

fn call<R: Rng>(name: &str, argument: &ExprValue, rng: &RefCell<&mut R>) -> ExprResult {
    match name {
        "rand" | "random" => {
            args(name, argument, 0)?;
            Ok(Value::Float(rng.borrow_mut().random::<f64>()))
        }
        "uniform" => {
            let a = args(name, argument, 2)?;
            let (lo, hi) = (num(&a[0])?, num(&a[1])?);
            let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
            Ok(Value::Float(lo + (hi - lo) * rng.borrow_mut().random::<f64>()))
        }
        "randint" => {
            let a = args(name, argument, 2)?;
            let (lo, hi) = (int(&a[0])?, int(&a[1])?);
            let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
            Ok(Value::Int(rng.borrow_mut().random_range(lo..=hi)))
        }
        "normal" => {
            let a = args(name, argument, 2)?;
            let (mean, std) = (num(&a[0])?, num(&a[1])?);
            if std.is_nan() || std <= 0.0 || !std.is_finite() || !mean.is_finite() {
                return Ok(Value::Float(mean));
            }
            let d = Normal::new(mean, std).map_err(|e| custom(e.to_string()))?;
            Ok(Value::Float(d.sample(&mut **rng.borrow_mut())))
        }
        "lognormal" => {
            let a = args(name, argument, 2)?;
            let (mu, sigma) = (num(&a[0])?, num(&a[1])?);
            if sigma.is_nan() || sigma <= 0.0 || !sigma.is_finite() || !mu.is_finite() {
                return Ok(Value::Float(mu.exp()));
            }
            let d = LogNormal::new(mu, sigma).map_err(|e| custom(e.to_string()))?;
            Ok(Value::Float(d.sample(&mut **rng.borrow_mut())))
        }
        "chance" => {
            let p = num(&args(name, argument, 1)?[0])?;
            let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
            Ok(Value::Boolean(rng.borrow_mut().random::<f64>() < p))
        }
        "choice" => {
            let options = items(argument);
            if options.is_empty() {
                return Err(custom("choice needs at least one option"));
            }
            let i = rng.borrow_mut().random_range(0..options.len());
            Ok(options[i].clone())
        }
        "if" => {
            let a = args(name, argument, 3)?;
            let cond = match &a[0] {
                Value::Boolean(b) => *b,
                other => return Err(EvalexprError::expected_boolean(other.clone())),
            };
            Ok(if cond { a[1].clone() } else { a[2].clone() })
        }
        "min" | "max" => {
            let xs = items(argument);
            if xs.is_empty() {
                return Err(custom(format!("{name} needs at least one number")));
            }
            let all_int = xs.iter().all(|x| matches!(x, Value::Int(_)));
            let mut best = num(&xs[0])?;
            for x in &xs[1..] {
                let v = num(x)?;
                if (name == "min" && v < best) || (name == "max" && v > best) {
                    best = v;
                }
            }
            Ok(same_kind(all_int, best))
        }
        "clamp" => {
            let a = args(name, argument, 3)?;
            let all_int = a.iter().all(|x| matches!(x, Value::Int(_)));
            let (x, lo, hi) = (num(&a[0])?, num(&a[1])?, num(&a[2])?);
            Ok(same_kind(all_int, x.max(lo).min(hi)))
        }
        "abs" => {
            let a = args(name, argument, 1)?;
            match &a[0] {
                Value::Int(i) => i.checked_abs().map(Value::Int).ok_or_else(|| custom("integer overflow in abs")),
                other => Ok(Value::Float(num(other)?.abs())),
            }
        }
        "round" | "floor" | "ceil" => {
            let x = num(&args(name, argument, 1)?[0])?;
            Ok(Value::Float(match name {
                "round" => x.round(),
                "floor" => x.floor(),
                _ => x.ceil(),
            }))
        }
        "round_to" => {
            let a = args(name, argument, 2)?;
            let (x, d) = (num(&a[0])?, int(&a[1])?.clamp(0, 12));
            let scale = 10f64.powi(d as i32);
            Ok(Value::Float((x * scale).round() / scale))
        }
        "sigmoid" => {
            let x = num(&args(name, argument, 1)?[0])?;
            Ok(Value::Float(1.0 / (1.0 + (-x).exp())))
        }
        "add_days" => {
            let a = args(name, argument, 2)?;
            let (d, n) = (date(&a[0])?, int(&a[1])?);
            let out = d
                .checked_add_signed(chrono::TimeDelta::try_days(n).ok_or_else(|| custom("add_days: too many days"))?)
                .ok_or_else(|| custom("add_days: date out of range"))?;
            Ok(Value::String(out.format("%Y-%m-%d").to_string()))
        }
        "days_between" => {
            let a = args(name, argument, 2)?;
            let (from, to) = (date(&a[0])?, date(&a[1])?);
            Ok(Value::Int((to - from).num_days()))
        }
        "year" | "month" | "day" => {
            use chrono::Datelike;
            let d = date(&args(name, argument, 1)?[0])?;
            Ok(Value::Int(match name {
                "year" => d.year() as i64,
                "month" => d.month() as i64,
                _ => d.day() as i64,
            }))
        }
        other => Err(EvalexprError::FunctionIdentifierNotFound(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn run(expr: &str, vars: &[(&str, ExprValue)], seed: u64) -> Result<ExprValue, String> {
        let node = parse(expr)?;
        let names: Vec<String> = vars.iter().map(|(n, _)| n.to_string()).collect();
        let values: Vec<ExprValue> = vars.iter().map(|(_, v)| v.clone()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        eval(&node, &names, &values, &mut rng)
    }

    #[test]
    fn arithmetic_over_columns() {
        let v = run("quantity * unit_price", &[("quantity", Value::Int(3)), ("unit_price", Value::Float(2.5))], 1);
        assert_eq!(v.unwrap(), Value::Float(7.5));
        let v = run("if(tenure_months < 12, 0.6, 0.1)", &[("tenure_months", Value::Int(5))], 1);
        assert_eq!(v.unwrap(), Value::Float(0.6));
        let v = run("max(a, 3, 7)", &[("a", Value::Int(9))], 1);
        assert_eq!(v.unwrap(), Value::Int(9));
        let v = run("clamp(a, 0, 1)", &[("a", Value::Float(1.7))], 1);
        assert_eq!(v.unwrap(), Value::Float(1.0));
        let v = run("round_to(a, 2)", &[("a", Value::Float(1.23456))], 1);
        assert_eq!(v.unwrap(), Value::Float(1.23));
        assert!(run("city * 2", &[("city", Value::String("Paris".into()))], 1).is_err());
        assert!(run("a + 1", &[("a", Value::Empty)], 1).is_err(), "a null input fails the row");
    }

    #[test]
    fn random_helpers_are_seeded_and_bounded() {
        let vars = [("birth_year", Value::Int(1990))];
        for seed in 0..200 {
            let v = run("birth_year + 22 + randint(-2, 2)", &vars, seed).unwrap();
            let Value::Int(y) = v else { panic!("int expected, got {v:?}") };
            assert!((2010..=2014).contains(&y), "{y}");
        }
        let a: Vec<_> = (0..20).map(|s| run("normal(50, 10)", &[], s).unwrap()).collect();
        let b: Vec<_> = (0..20).map(|s| run("normal(50, 10)", &[], s).unwrap()).collect();
        assert_eq!(a, b, "same seed, same draws");
        let c = run("normal(50, 10)", &[], 999).unwrap();
        assert!(!a.contains(&c));
        let hits = (0..2000).filter(|s| run("chance(0.25)", &[], *s).unwrap() == Value::Boolean(true)).count();
        assert!((400..600).contains(&hits), "{hits}");
        let u = run("uniform(2, 4)", &[], 3).unwrap();
        assert!(matches!(u, Value::Float(x) if (2.0..4.0).contains(&x)));
        let ch = run("choice(\"a\", \"b\")", &[], 3).unwrap();
        assert!(ch == Value::String("a".into()) || ch == Value::String("b".into()));
        assert!(matches!(run("rand()", &[], 3).unwrap(), Value::Float(x) if (0.0..1.0).contains(&x)));
        assert!(matches!(run("lognormal(0, 0.5)", &[], 3).unwrap(), Value::Float(x) if x > 0.0));
    }

    #[test]
    fn date_helpers() {
        let d = [("signup", Value::String("2024-02-28".into()))];
        assert_eq!(run("add_days(signup, 2)", &d, 0).unwrap(), Value::String("2024-03-01".into()));
        assert_eq!(run("year(signup)", &d, 0).unwrap(), Value::Int(2024));
        assert_eq!(run("days_between(signup, \"2024-03-01\")", &d, 0).unwrap(), Value::Int(2));
        let dt = [("at", Value::String("2024-02-28T10:11:12".into()))];
        assert_eq!(run("month(at)", &dt, 0).unwrap(), Value::Int(2));
        assert!(run("year(\"soon\")", &[], 0).is_err());
    }

    #[test]
    fn references_are_collected() {
        let node = parse("if(chance(p), a + b, str::from(a)); c = 2").unwrap();
        let r = References::of(&node);
        assert_eq!(r.variables, vec!["p", "a", "b"]);
        assert_eq!(r.functions, vec!["if", "chance", "str::from"]);
        assert_eq!(r.assigned, vec!["c"]);
        assert!(parse("(a + ").is_err());
        assert!(parse("  ").is_err());
        assert!(is_known_function("math::ln") && is_known_function("randint") && !is_known_function("shout"));
    }
}
