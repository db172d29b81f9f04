//! Precision and recall of PII detection on a labelled set of 570+ cases (tests/data/pii_cases.jsonl):
//! every structured type, person names, and near-misses (order numbers, dates, versions, Luhn-failing
//! numbers, bad IBAN checksums, ...). Prints the table; requires recall >= 0.99 on every structured type.
//!
//! Person names are scored with the NER model (the default configuration when it is installed) and with the
//! rules alone, on the two development sets and the six held-out sets, with the time each took (cases/s, KB/s). These tests need the model: `scripts/test-servers
//! start` installs it and sets `DISTILLERY_NER_MODEL_DIR` (or `source scripts/lib.sh && ensure_ner_model`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use distillery_docs::pii::{
    Finding, NerModel, PiiConfig, PiiKind, Redactor, installed_ner_model, ner_model_candidates,
};

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

const DEV: &str = include_str!("data/pii_cases.jsonl");
const HELD_OUT: &str = include_str!("../../../tests/data/pii_holdout.jsonl");
const HELD_OUT_V2: &str = include_str!("../../../tests/data/pii_holdout_v2.jsonl");
const HELD_OUT_V3: &str = include_str!("../../../tests/data/pii_holdout_v3.jsonl");
const HELD_OUT_V4: &str = include_str!("../../../tests/data/pii_holdout_v4.jsonl");
const HELD_OUT_V5: &str = include_str!("../../../tests/data/pii_holdout_v5.jsonl");
const HELD_OUT_V6: &str = include_str!("../../../tests/data/pii_holdout_v6.jsonl");
const DEV_NAMES: &str = include_str!("data/pii_names_dev.jsonl");

/// The installed NER model; a missing one fails the test with the command that installs it.
fn model() -> Arc<NerModel> {
    let dir = installed_ner_model().unwrap_or_else(|| {
        panic!(
            "no NER model found (looked in {}): run `scripts/test-servers start` (it installs the model and sets \
             DISTILLERY_NER_MODEL_DIR), or `bash -c 'source scripts/lib.sh && ensure_ner_model'` and set \
             DISTILLERY_NER_MODEL_DIR to the folder it prints",
            ner_model_candidates().iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    });
    NerModel::shared(&dir).unwrap_or_else(|e| panic!("{e}"))
}

/// The scored set: the table per type, and the misses.
struct Scored {
    tally: BTreeMap<PiiKind, Tally>,
    misses: Vec<String>,
    cases: usize,
    bytes: usize,
    secs: f64,
}

impl Scored {
    fn person(&self) -> &Tally {
        self.tally.get(&PiiKind::Person).expect("person cases")
    }

    fn print(&self, name: &str, show_misses: bool) {
        println!("\nPII detection on {} labelled cases ({name})", self.cases);
        println!("{:<16} {:>5} {:>5} {:>5} {:>10} {:>8}", "type", "tp", "fp", "fn", "precision", "recall");
        let mut all = Tally::default();
        for (kind, t) in &self.tally {
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
        if show_misses {
            for m in &self.misses {
                println!("  {m}");
            }
        }
    }

    fn print_person(&self, name: &str) {
        let p = self.person();
        let line = format!(
            "PERSON {name:<34} tp {:>3} fp {:>3} fn {:>3}  precision {:.3} recall {:.3}  ({:.0} cases/s, {:.0} KB/s)",
            p.tp,
            p.fp,
            p.fn_,
            p.precision(),
            p.recall(),
            self.cases as f64 / self.secs,
            self.bytes as f64 / 1000.0 / self.secs
        );
        println!("{line}");
        // cargo test hides a passing test's output: scripts/test collects figures in DISTILLERY_FIGURES.
        if let Ok(path) = std::env::var("DISTILLERY_FIGURES") {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
                let _ = writeln!(f, "{line}");
            }
        }
    }
}

/// Scores a detector on a JSONL set, one case at a time; `persons_only` leaves out the other types' labels.
fn evaluate(data: &str, find: impl Fn(&str) -> Vec<Finding>, persons_only: bool) -> Scored {
    let cases: Vec<Case> =
        data.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("valid case")).collect();
    let mut tally: BTreeMap<PiiKind, Tally> = BTreeMap::new();
    let mut misses: Vec<String> = Vec::new();
    let started = Instant::now();
    let found: Vec<_> = cases.iter().map(|c| find(&c.text)).collect();
    let secs = started.elapsed().as_secs_f64();
    for (case, found) in cases.iter().zip(found) {
        let mut expected: HashMap<(PiiKind, String), u32> = HashMap::new();
        for e in &case.entities {
            let kind = PiiKind::from_label(&e.kind).unwrap_or_else(|| panic!("{}: unknown type {}", case.id, e.kind));
            if persons_only && kind != PiiKind::Person {
                continue;
            }
            *expected.entry((kind, e.value.clone())).or_default() += 1;
        }
        for f in found {
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
        let mut left: Vec<_> = expected.into_iter().filter(|(_, n)| *n > 0).collect();
        left.sort();
        for ((kind, value), n) in left {
            for _ in 0..n {
                tally.entry(kind).or_default().fn_ += 1;
                misses.push(format!("FN {} {:?} {:?}", case.id, kind, value));
            }
        }
    }
    let bytes = cases.iter().map(|c| c.text.len()).sum();
    Scored { tally, misses, cases: cases.len(), bytes, secs }
}

/// Scores a set with the model and with the rules alone; prints both, and the model on its own.
fn with_and_without_model(name: &str, data: &str, show_misses: bool) -> (Scored, Scored) {
    let model = model();
    let with = Redactor::with_ner(PiiConfig::default(), Some(model.clone()));
    let without = Redactor::with_ner(PiiConfig::default(), None);
    let (with_s, without_s) = (evaluate(data, |t| with.find(t), false), evaluate(data, |t| without.find(t), false));
    let alone = evaluate(data, |t| with.model_names(t), true);
    with_s.print(&format!("{name}, rules + NER model {}", model.name()), show_misses);
    println!();
    with_s.print_person(&format!("{name}, rules + NER model:"));
    without_s.print_person(&format!("{name}, rules alone:"));
    alone.print_person(&format!("{name}, NER model alone:"));
    if show_misses {
        for m in &alone.misses {
            println!("  model alone: {m}");
        }
        for m in without_s.misses.iter().filter(|m| m.contains("Person")) {
            println!("  rules alone: {m}");
        }
    }
    (with_s, without_s)
}

fn assert_structured(tally: &BTreeMap<PiiKind, Tally>) {
    for (kind, t) in tally {
        if kind.is_structured() {
            assert!(t.recall() >= 0.99, "{} recall {:.3} < 0.99", kind.label(), t.recall());
            assert!(t.precision() >= 0.95, "{} precision {:.3} < 0.95", kind.label(), t.precision());
        }
    }
}

/// The set the detector was developed against (576 cases, 298 person mentions); the model's decoding (word
/// thresholds, the rules' veto, list items) was chosen here and nowhere else. Measured: rules + model P 0.993
/// R 0.973; rules alone P 0.869 R 0.624; the model alone P 0.947 R 0.903 (before the last item of a list and
/// the firms and places named like people: P 0.950 R 0.956, rules alone P 0.842; these figures are fitted).
#[test]
fn pii_detection_precision_and_recall() {
    let (with, without) = with_and_without_model("development set", DEV, true);
    assert_structured(&with.tally);
    assert_structured(&without.tally);
    let (p, r) = (with.person(), without.person());
    assert!(
        p.recall() >= 0.93 && p.precision() >= 0.93,
        "persons, rules + model: P {:.3} R {:.3}",
        p.precision(),
        p.recall()
    );
    assert!(r.recall() >= 0.58 && r.precision() >= 0.8, "persons, rules: P {:.3} R {:.3}", r.precision(), r.recall());
}

/// The second development set (tests/data/pii_names_dev.jsonl, 150 cases, 262 person mentions, 30 lines
/// without an entity): the harder name forms (particles, three parts, two surnames, family name first,
/// initials, capitals, ends of lists, job titles, table rows, surnames alone referring back), written on
/// 2026-12-07 by a session that saw neither the detector nor the held-out sets, after v4 showed those forms
/// missed. Changes are made against it and its misses are printed. Measured with the model before any change:
/// P 0.945 R 0.656 (rules alone P 0.918 R 0.385; the model alone P 0.938 R 0.630); after surnames alone
/// referring back (R 0.748), chains of initials and names in capitals (P 0.977 R 0.817) and more particles:
/// P 0.982 R 0.824, and R 0.832 once a name with initials gives its surname too; with a lone word acting as
/// a person does ("Okonkwo approved") where the model is sure of it, the family name of a name written family
/// name first, and list items after an initial: P 0.979 R 0.870 (fitted figures).
#[test]
fn pii_detection_on_hard_name_forms() {
    let (with, _) = with_and_without_model("development set of hard name forms", DEV_NAMES, true);
    let p = with.person();
    assert!(
        p.recall() >= DEV_NAMES_PERSON_RECALL && p.precision() >= DEV_NAMES_PERSON_PRECISION,
        "persons, rules + model: P {:.3} R {:.3}",
        p.precision(),
        p.recall()
    );
}

/// A held-out set (198 cases) written independently, without sight of the detector or the development set.
/// Earlier sessions looked at its misses, so it is no longer a clean hold-out (see the v2 set below); its
/// misses are not printed. The person bounds are the figures measured with an earlier decoding (P 0.987
/// R 0.851; rules alone P 0.954 R 0.713) less a small margin, so that a regression fails; now P 1.000
/// R 0.874.
#[test]
fn pii_detection_on_the_held_out_set() {
    let (with, without) = with_and_without_model("held-out set", HELD_OUT, false);
    let structured = with.tally.iter().filter(|(k, _)| k.is_structured()).fold(Tally::default(), |mut a, (_, t)| {
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
    let (p, r) = (with.person(), without.person());
    println!(
        "held-out persons: recall {:.3} -> {:.3}, precision {:.3} -> {:.3} with the model (goal: both >= 0.95)",
        r.recall(),
        p.recall(),
        r.precision(),
        p.precision()
    );
    assert!(p.recall() >= HELD_OUT_PERSON_RECALL, "held-out person recall {:.3}", p.recall());
    assert!(p.precision() >= HELD_OUT_PERSON_PRECISION, "held-out person precision {:.3}", p.precision());
    assert!(p.recall() > r.recall(), "the model adds no person the rules miss");
}

/// The second held-out set (175 cases, 198 person mentions, 70 near-miss lines): written for issue 12 and
/// committed before the detector was changed. Its misses were read for the changes that came with the third
/// set (organisation words, person columns of CSV data), so it is no longer a clean hold-out; its misses are
/// not printed. Measured with the model: P 0.959 R 0.944 (before: P 0.924 R 0.924; at first P 0.893 R 0.889);
/// with the last item of a list and the firms named like people (2026-12-07): P 0.974 R 0.949.
/// The bounds are those figures less a small margin.
#[test]
fn pii_detection_on_the_second_held_out_set() {
    held_out_persons("v2", HELD_OUT_V2, 0.93, 0.93);
}

/// The third held-out set (164 cases, 154 person mentions, 59 lines without an entity): written and committed
/// before the detector changes of its session, which were made on the development set and on v2's known
/// failure (firms named after people); nothing was tuned on it and its misses are not printed. Measured with
/// the model: P 0.967 R 0.948 (before those changes: P 0.960 R 0.935; rules alone P 0.874 R 0.494); after
/// the list and firm changes of 2026-12-07 (made on the development set): P 0.980 R 0.948; after the
/// hard-name changes (v5 above): P 0.980 R 0.968. The bounds are the first figures less a small margin.
#[test]
fn pii_detection_on_the_third_held_out_set() {
    held_out_persons("v3", HELD_OUT_V3, V3_PERSON_RECALL, V3_PERSON_PRECISION);
}

/// The fourth held-out set (197 cases, 230 person mentions, a third of them in harder forms: particles, three
/// parts, two surnames, family name first, initials, capitals; 46 lines without an entity): written on
/// 2026-12-07 by a writer who saw neither the detector nor its development set, after that session's detector
/// changes and before any measurement on it; nothing was tuned on it and its misses are not printed.
/// Measured with the model: P 0.960 R 0.830 (rules alone P 0.894 R 0.439; the model alone P 0.954 R 0.804),
/// then P 0.955 R 0.830 after the list of firms named like people lost the names a person could well have
/// (a change made for recall's sake, not from this set, whose misses were never printed); P 0.954 R 0.909
/// after the changes of the hard-name development set (v5 above). The goal (both >= 0.95) is not met on it.
#[test]
fn pii_detection_on_the_fourth_held_out_set() {
    held_out_persons("v4", HELD_OUT_V4, V4_PERSON_RECALL, V4_PERSON_PRECISION);
}

/// The fifth held-out set (196 cases, 238 person mentions, 47 lines without an entity): written on 2026-12-07
/// by a writer who saw neither the detector nor any other set, committed before that session's detector
/// changes (surnames alone referring back, chains of initials, names in capitals, more particles; made on the
/// development sets), then measured with and without them; its misses are not printed. With the model:
/// P 0.964 R 0.794 before those changes (rules alone P 0.932 R 0.576), P 0.967 R 0.874 after (rules alone
/// P 0.933 R 0.639; the model alone P 0.965 R 0.811), **P 0.968 R 0.882** after the lone acting words and
/// family names first (also made on the development set). The goal (both >= 0.95) is not met on it: this is
/// the figure to report.
#[test]
fn pii_detection_on_the_fifth_held_out_set() {
    held_out_persons("v5", HELD_OUT_V5, V5_PERSON_RECALL, V5_PERSON_PRECISION);
}

/// The sixth held-out set (196 cases, 242 person mentions, 47 lines without an entity): written on 2026-12-07
/// by a helper that saw neither the detector nor any other set, with names from every continent in hard
/// forms (Pacific and African names, family names first, capitals, surnames alone, names that are words),
/// committed before it was first measured; its misses are not printed. First measured with the model: **P 0.970
/// R 0.802** (rules alone P 0.887 R 0.355; the model alone P 0.964 R 0.785): the model misses most of what the
/// rules cannot find, and recall is short of the goal (0.95).
#[test]
fn pii_detection_on_the_sixth_held_out_set() {
    held_out_persons("v6", HELD_OUT_V6, V6_PERSON_RECALL, V6_PERSON_PRECISION);
}

/// Scores persons on a held-out set with and without the model, prints both, and bounds the model's figures;
/// the model must find a person the rules miss.
fn held_out_persons(set: &str, data: &str, min_recall: f64, min_precision: f64) {
    let (with, without) = with_and_without_model(&format!("held-out set {set}"), data, false);
    let (p, r) = (with.person(), without.person());
    println!(
        "held-out {set} persons: recall {:.3} -> {:.3}, precision {:.3} -> {:.3} with the model (goal: both >= 0.95)",
        r.recall(),
        p.recall(),
        r.precision(),
        p.precision()
    );
    assert!(p.recall() >= min_recall, "held-out {set} person recall {:.3}", p.recall());
    assert!(p.precision() >= min_precision, "held-out {set} person precision {:.3}", p.precision());
    assert!(p.recall() > r.recall(), "the model adds no person the rules miss");
}

/// Held-out v6 person figures with the model, as measured less a small margin.
const V6_PERSON_RECALL: f64 = 0.77;
const V6_PERSON_PRECISION: f64 = 0.94;

/// Held-out v5 person figures with the model, as measured less a small margin.
const V5_PERSON_RECALL: f64 = 0.84;
const V5_PERSON_PRECISION: f64 = 0.94;

/// Held-out v4 person figures with the model, as measured less a small margin.
const V4_PERSON_RECALL: f64 = 0.87;
const V4_PERSON_PRECISION: f64 = 0.93;

/// Held-out v3 person figures with the model, as measured less a small margin.
const V3_PERSON_RECALL: f64 = 0.92;
const V3_PERSON_PRECISION: f64 = 0.94;

/// Held-out person figures with the model, as measured less a small margin, so that a regression fails.
const HELD_OUT_PERSON_RECALL: f64 = 0.83;
const HELD_OUT_PERSON_PRECISION: f64 = 0.96;

/// The Rust port (ONNX weights dequantised into candle's BERT) gives the probabilities onnxruntime 1.32 gives
/// for the shipped model_q4.onnx: per word piece, the sum of the GIVEN_NAME and SURNAME labels.
#[test]
fn ner_model_matches_onnx_runtime() {
    let text = "Minutes: Lars Nilsen opened the meeting, Bjørn Haugen took questions.";
    let reference = [
        ("Minutes", 0.00002),
        (":", 0.00002),
        ("Lars", 0.21722),
        ("Nils", 0.9941),
        ("en", 0.99427),
        ("opened", 0.0),
        ("the", 0.0),
        ("meeting", 0.0),
        (",", 0.0),
        ("B", 0.80211),
        ("j", 0.80364),
        ("ø", 0.81186),
        ("rn", 0.87897),
        ("Ha", 0.23263),
        ("uge", 0.24071),
        ("n", 0.17918),
        ("took", 0.0),
        ("questions", 0.0),
        (".", 0.0),
    ];
    let scores = model().person_scores(&[text], None).expect("scores").remove(0);
    let got: Vec<(&str, f32)> = scores.iter().map(|s| (&text[s.start..s.end], s.person)).collect();
    assert_eq!(got.len(), reference.len(), "{got:?}");
    for ((piece, p), (want_piece, want)) in got.iter().zip(reference) {
        assert_eq!(*piece, want_piece, "{got:?}");
        assert!((p - want).abs() < 2e-3, "{piece:?}: {p} vs onnxruntime {want}");
    }
}

/// Hard-name development set, with the model, as measured less a small margin.
const DEV_NAMES_PERSON_RECALL: f64 = 0.80;
const DEV_NAMES_PERSON_PRECISION: f64 = 0.95;
