//! The judge measured against labels: `distillery judge` (the pipeline's own judge, its defaults: cheap
//! checks, the judge's own short answers, the batched critic, trust checks, threshold) over the committed
//! labelled sets `tests/data/judge/{dev,heldout}.jsonl` (80 graded QA pairs each, written for this project:
//! good, wrong, unfaithful, trivial, about the document itself, truncated), on the suite's real llama.cpp
//! servers at two model sizes: qwen2.5-0.5b (the suite's generator) and qwen2.5-1.5b. Prints precision and
//! recall of "accept" (a pair labelled good is the positive class) per set and per label, with the LLM calls
//! and tokens spent. `dev` is the set checks and prompts were developed on (measured only with
//! `DISTILLERY_JUDGE_EVAL_DEV=1`); `heldout` was not looked at while doing so, and its figures are the ones
//! reported and bounded.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

struct Scored {
    tp: usize,
    fp: usize,
    fn_: usize,
    by_label: BTreeMap<String, (usize, usize)>,
    screened: usize,
    untrusted: usize,
    n: usize,
    /// The command's own account of what it spent (its last stderr line).
    llm_calls: u64,
    tokens: u64,
}

impl Scored {
    fn precision(&self) -> f64 {
        if self.tp + self.fp == 0 { 1.0 } else { self.tp as f64 / (self.tp + self.fp) as f64 }
    }
    fn recall(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fn_).max(1) as f64
    }
    /// The share of the pairs labelled bad (wrong, unfaithful, trivial, about the document, truncated) that
    /// were accepted: the judge passing junk, on 50 pairs rather than on the dozen or so it accepts.
    fn bad_accepted(&self) -> f64 {
        let bad = self.n - (self.tp + self.fn_);
        self.fp as f64 / bad.max(1) as f64
    }
}

fn labels(name: &str) -> Vec<Value> {
    let path = format!("{}/data/judge/{name}.jsonl", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .expect("labelled set")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("labelled line"))
        .collect()
}

fn judge_set(llm: &str, model: &str, name: &str) -> (Vec<Value>, Scored) {
    let path = format!("{}/data/judge/{name}.jsonl", env!("CARGO_MANIFEST_DIR"));
    let labels = labels(name);
    let out = Command::new(common::binary())
        .args(["judge", &path, "--llm-base-url", llm, "--llm-model", model])
        .env_remove("DISTILLERY_LLM_BASE_URL")
        .output()
        .expect("run distillery judge");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "distillery judge failed: {stderr}");
    let verdicts: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON verdict"))
        .collect();
    assert_eq!(verdicts.len(), labels.len(), "one verdict per input line, in order");
    let spent: Value = stderr
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("a last stderr line summing up the calls");
    assert_eq!(spent["pairs"], labels.len());
    let mut s = Scored {
        tp: 0,
        fp: 0,
        fn_: 0,
        by_label: BTreeMap::new(),
        screened: 0,
        untrusted: 0,
        n: 0,
        llm_calls: spent["llm_calls"].as_u64().expect("llm_calls"),
        tokens: spent["prompt_tokens"].as_u64().unwrap_or(0) + spent["completion_tokens"].as_u64().unwrap_or(0),
    };
    for (l, v) in labels.iter().zip(&verdicts) {
        assert!(v.get("error").is_none(), "{}: {v}", l["id"]);
        let accept = v["accept"].as_bool().expect("accept is a bool");
        let overall = v["overall"].as_i64().expect("overall");
        assert!((1..=5).contains(&overall), "{}: overall {overall}", l["id"]);
        assert!(v["rationale"].is_string(), "{}: rationale", l["id"]);
        if v.get("check").is_none_or(Value::is_null) {
            // The critic scores every criterion, unless the answer check settled the pair first: then the
            // critic was not asked and only the criterion the check failed is scored (2).
            let settled = v["judge_calls"] == 0;
            if settled {
                assert!(!accept, "{}: settled by the answer check, yet accepted: {v}", l["id"]);
                assert!(matches!(v["answer_check"].as_str(), Some("differs" | "not_stated")), "{}: {v}", l["id"]);
            }
            for c in ["faithfulness", "correctness", "clarity", "usefulness"] {
                let score = v[c].as_i64();
                let ok =
                    if settled { score.is_none() || score == Some(2) } else { (1..=5).contains(&score.unwrap_or(0)) };
                assert!(ok, "{}: {c} in {v}", l["id"]);
            }
            assert!(v["own_answer"].is_string(), "{}: the judge's own answer in {v}", l["id"]);
        } else {
            s.screened += 1;
            assert_eq!(v["judge_calls"], 0, "{}: screened yet judged", l["id"]);
        }
        if v["trusted"] == Value::Bool(false) {
            s.untrusted += 1;
        }
        s.n += 1;
        let label = l["label"].as_str().expect("label").to_string();
        let good = label == "good";
        match (accept, good) {
            (true, true) => s.tp += 1,
            (true, false) => s.fp += 1,
            (false, true) => s.fn_ += 1,
            _ => {}
        }
        let e = s.by_label.entry(label).or_default();
        e.0 += usize::from(accept);
        e.1 += 1;
    }
    (verdicts, s)
}

fn print(name: &str, model: &str, s: &Scored) {
    let mut out = format!(
        "JUDGE {name:<8} {model}: precision {:.3} recall {:.3} (tp {} fp {} fn {}), bad pairs accepted {:.3}, \
         {} of {} screened before any call, {} verdicts untrusted, {} LLM calls, {:.0} tokens per pair\n",
        s.precision(),
        s.recall(),
        s.tp,
        s.fp,
        s.fn_,
        s.bad_accepted(),
        s.screened,
        s.n,
        s.untrusted,
        s.llm_calls,
        s.tokens as f64 / s.n.max(1) as f64,
    );
    for (label, (accepted, n)) in &s.by_label {
        out += &format!("      {label:<20} accepted {accepted:>3} of {n:>3}\n");
    }
    common::report(&out);
}

/// What holds at any model size: a cut-off answer never passes and never costs a judge call, and the
/// judge spends fewer calls than there are pairs (batches of one context share their calls).
fn invariants(name: &str, verdicts: &[Value], s: &Scored) {
    assert_eq!(s.by_label.get("truncated").map(|x| x.0), Some(0), "{name}: a truncated answer was accepted");
    for (l, v) in labels(name).iter().zip(verdicts) {
        if l["label"] == "truncated" {
            assert_eq!(v["judge_calls"], 0, "{}: judged though cut off", l["id"]);
        }
    }
    assert!(s.llm_calls < s.n as u64, "{name}: {} calls for {} pairs", s.llm_calls, s.n);
}

/// The two model sizes are measured one after the other: two llama.cpp servers decoding at once on a small
/// CPU slow each other down far more than twice (their threads spin-wait on each other's cores).
static ONE_SERVER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_judge_is_measured_against_labelled_pairs_at_0_5b() {
    let _one = ONE_SERVER_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let servers = common::Servers::from_env();
    // The dev set (what the checks were developed on) only on request: the suite reports the held-out
    // figure, and the dev set's calls would double this test's time.
    if std::env::var("DISTILLERY_JUDGE_EVAL_DEV").is_ok_and(|v| v == "1") {
        let (dev_v, dev) = judge_set(&servers.llm, &servers.llm_model, "dev");
        print("dev", &servers.llm_model, &dev);
        invariants("dev", &dev_v, &dev);
    }
    let (held_v, held) = judge_set(&servers.llm, &servers.llm_model, "heldout");
    print("heldout", &servers.llm_model, &held);
    invariants("heldout", &held_v, &held);
    bounded(&held, HELD_OUT_05B);
}

#[test]
fn the_judge_is_measured_against_labelled_pairs_at_1_5b() {
    let _one = ONE_SERVER_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let llm = std::env::var("DISTILLERY_TEST_LLM_15B")
        .expect("DISTILLERY_TEST_LLM_15B is not set: scripts/test-servers starts the 1.5B judge server");
    let model = "qwen2.5-1.5b";
    let (held_v, held) = judge_set(&llm, model, "heldout");
    print("heldout", model, &held);
    invariants("heldout", &held_v, &held);
    bounded(&held, HELD_OUT_15B);
}

/// Lowest precision and recall of "accept", highest share of bad pairs accepted.
struct Bounds {
    precision: f64,
    recall: f64,
    bad_accepted: f64,
}

fn bounded(s: &Scored, b: Bounds) {
    assert!(s.precision() >= b.precision, "held-out precision {:.3} < {}", s.precision(), b.precision);
    assert!(s.recall() >= b.recall, "held-out recall {:.3} < {}", s.recall(), b.recall);
    assert!(
        s.bad_accepted() <= b.bad_accepted,
        "held-out bad pairs accepted {:.3} > {}",
        s.bad_accepted(),
        b.bad_accepted
    );
}

// How the bounds are set. One run judges 30 good and 50 bad pairs; the server's sampling and batching move
// the outcome from run to run, and with so few pairs each one is 3 points of recall and up to 8 of precision.
// Held-out at qwen2.5-0.5b over nine runs (judge.v4 and v5): precision 0.714-0.882, recall 0.333-0.533,
// 2-5 bad pairs accepted of 50, 13-21 pairs accepted. The bounds used to sit just under the lowest run seen
// (0.70 / 0.35), which a judge exactly as good fails about one run in four by the binomial spread alone
// (recall 0.333 in the CI run of 2026-12-07). Now each bound is where a judge as good as the measured one
// (recall 0.43, 6.6% of bad pairs accepted, precision 0.80 of ~14 accepted) falls in under 1 run in 100,
// while a judge that passes junk still fails: accepting everything gives precision 0.375 and 100% of bad
// pairs; passing more than one bad pair in five fails the third bound.
const HELD_OUT_05B: Bounds = Bounds { precision: 0.50, recall: 0.20, bad_accepted: 0.20 };
// Held-out at qwen2.5-1.5b over five runs: precision 0.771-0.839, recall 0.600-0.900, 4-8 bad pairs accepted
// of 50. Same rule (14% of bad pairs accepted, precision 0.79 of ~33 accepted); recall has been as low as
// 0.600 (judge.v4) against 0.800-0.900 since, so its bound sits below that run.
const HELD_OUT_15B: Bounds = Bounds { precision: 0.60, recall: 0.50, bad_accepted: 0.30 };
