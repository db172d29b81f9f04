//! Precision and recall of PII detection on a labelled set of 400+ cases (tests/data/pii_cases.jsonl):
//! every structured type, person names, and near-misses (order numbers, dates, versions, Luhn-failing
//! numbers, bad IBAN checksums, ...). Prints the table; requires recall >= 0.99 on every structured type.

use std::collections::{BTreeMap, HashMap};

use distillery_docs::pii::{PiiConfig, PiiKind, Redactor};

#[derive(serde::Deserialize)]
struct Case {
    id: String,
    text: String,
    entities: Vec<Entity>,
}

#[derive(serde::Deserialize)]
struct Entity {
    #[serde(rename = "type")]
    kind: String,
    value: String,
}

#[derive(Default)]
struct Tally {
    tp: u32,
    fp: u32,
    fn_: u32,
}

impl Tally {
    fn precision(&self) -> f64 {
        if self.tp + self.fp == 0 { 1.0 } else { self.tp as f64 / (self.tp + self.fp) as f64 }
    }
    fn recall(&self) -> f64 {
        if self.tp + self.fn_ == 0 { 1.0 } else { self.tp as f64 / (self.tp + self.fn_) as f64 }
    }
}

/// Scores the detector on a JSONL set; prints the table and every miss.
fn evaluate(name: &str, data: &str) -> BTreeMap<PiiKind, Tally> {
    let redactor = Redactor::new(PiiConfig::default());
    let mut tally: BTreeMap<PiiKind, Tally> = BTreeMap::new();
    let mut misses: Vec<String> = Vec::new();
    let mut cases = 0;
    for line in data.lines().filter(|l| !l.trim().is_empty()) {
        let case: Case = serde_json::from_str(line).expect("valid case");
        cases += 1;
        let mut expected: HashMap<(PiiKind, String), u32> = HashMap::new();
        for e in &case.entities {
            let kind = PiiKind::from_label(&e.kind).unwrap_or_else(|| panic!("{}: unknown type {}", case.id, e.kind));
            *expected.entry((kind, e.value.clone())).or_default() += 1;
        }
        for f in redactor.find(&case.text) {
            let key = (f.kind, case.text[f.start..f.end].to_string());
            match expected.get_mut(&key) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    tally.entry(f.kind).or_default().tp += 1;
                }
                _ => {
                    tally.entry(f.kind).or_default().fp += 1;
                    misses.push(format!("FP {} {:?} {:?}", case.id, f.kind, key.1));
                }
            }
        }
        for ((kind, value), n) in expected {
            for _ in 0..n {
                tally.entry(kind).or_default().fn_ += 1;
                misses.push(format!("FN {} {:?} {:?}", case.id, kind, value));
            }
        }
    }
    println!("\nPII detection on {cases} labelled cases ({name})");
    println!("{:<16} {:>5} {:>5} {:>5} {:>10} {:>8}", "type", "tp", "fp", "fn", "precision", "recall");
    let mut all = Tally::default();
    for (kind, t) in &tally {
        println!(
            "{:<16} {:>5} {:>5} {:>5} {:>10.3} {:>8.3}",
            kind.label(),
            t.tp,
            t.fp,
            t.fn_,
            t.precision(),
            t.recall()
        );
        all.tp += t.tp;
        all.fp += t.fp;
        all.fn_ += t.fn_;
    }
    println!(
        "{:<16} {:>5} {:>5} {:>5} {:>10.3} {:>8.3}",
        "all",
        all.tp,
        all.fp,
        all.fn_,
        all.precision(),
        all.recall()
    );
    for m in &misses {
        println!("  {m}");
    }
    tally
}

/// The set the detector was developed against (412 cases).
#[test]
fn pii_detection_precision_and_recall() {
    let tally = evaluate("development set", include_str!("data/pii_cases.jsonl"));
    for (kind, t) in &tally {
        if kind.is_structured() {
            assert!(t.recall() >= 0.99, "{} recall {:.3} < 0.99", kind.label(), t.recall());
            assert!(t.precision() >= 0.95, "{} precision {:.3} < 0.95", kind.label(), t.precision());
        }
    }
    let person = tally.get(&PiiKind::Person).expect("person cases");
    assert!(
        person.recall() >= 0.8 && person.precision() >= 0.8,
        "person names: P {:.3} R {:.3}",
        person.precision(),
        person.recall()
    );
}

/// A held-out set (198 cases) written independently, without sight of the detector or the development set:
/// how well the detector generalises.
#[test]
fn pii_detection_on_the_held_out_set() {
    let tally = evaluate("held-out set", include_str!("../../../tests/data/pii_holdout.jsonl"));
    let structured = tally.iter().filter(|(k, _)| k.is_structured()).fold(Tally::default(), |mut a, (_, t)| {
        a.tp += t.tp;
        a.fp += t.fp;
        a.fn_ += t.fn_;
        a
    });
    println!(
        "structured types on the held-out set: precision {:.3} recall {:.3}",
        structured.precision(),
        structured.recall()
    );
    assert!(structured.recall() >= 0.95, "held-out structured recall {:.3}", structured.recall());
    assert!(structured.precision() >= 0.95, "held-out structured precision {:.3}", structured.precision());
}
