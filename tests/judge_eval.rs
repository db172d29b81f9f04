//! The judge measured against labels: `distillery judge` (the pipeline's own judge, its defaults: cheap
//! checks, critic, trust checks, threshold) over the committed labelled sets `tests/data/judge/{dev,
//! heldout}.jsonl` (80 graded QA pairs each, written for this project: good, wrong, unfaithful, trivial,
//! about the document itself, truncated), on the suite's real llama.cpp server and model. Prints precision
//! and recall of "accept" (a pair labelled good is the positive class) per set and per label, and how many
//! judge calls were spent. `dev` is the set checks and prompts were developed on; `heldout` was not looked
//! at while doing so, and its figures are the ones reported.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

struct Scored {
    tp: usize,
    fp: usize,
    fn_: usize,
    by_label: BTreeMap<String, (usize, usize)>,
    calls: u64,
    screened: usize,
    untrusted: usize,
    n: usize,
}

impl Scored {
    fn precision(&self) -> f64 {
        if self.tp + self.fp == 0 { 1.0 } else { self.tp as f64 / (self.tp + self.fp) as f64 }
    }
    fn recall(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fn_).max(1) as f64
    }
}

fn judge_set(servers: &common::Servers, name: &str) -> (Vec<Value>, Scored) {
    let path = format!("{}/data/judge/{name}.jsonl", env!("CARGO_MANIFEST_DIR"));
    let labels: Vec<Value> = std::fs::read_to_string(&path)
        .expect("labelled set")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("labelled line"))
        .collect();
    let out = Command::new(common::binary())
        .args(["judge", &path, "--llm-base-url", &servers.llm, "--llm-model", &servers.llm_model])
        .env_remove("DISTILLERY_LLM_BASE_URL")
        .output()
        .expect("run distillery judge");
    assert!(out.status.success(), "distillery judge failed: {}", String::from_utf8_lossy(&out.stderr));
    let verdicts: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON verdict"))
        .collect();
    assert_eq!(verdicts.len(), labels.len(), "one verdict per input line, in order");
    let mut s = Scored { tp: 0, fp: 0, fn_: 0, by_label: BTreeMap::new(), calls: 0, screened: 0, untrusted: 0, n: 0 };
    for (l, v) in labels.iter().zip(&verdicts) {
        assert!(v.get("error").is_none(), "{}: {v}", l["id"]);
        let accept = v["accept"].as_bool().expect("accept is a bool");
        let overall = v["overall"].as_i64().expect("overall");
        assert!((1..=5).contains(&overall), "{}: overall {overall}", l["id"]);
        assert!(v["rationale"].is_string(), "{}: rationale", l["id"]);
        if v.get("check").is_none_or(Value::is_null) {
            for c in ["faithfulness", "correctness", "clarity", "usefulness"] {
                assert!((1..=5).contains(&v[c].as_i64().unwrap_or(0)), "{}: {c} in {v}", l["id"]);
            }
        } else {
            s.screened += 1;
        }
        if v["trusted"] == Value::Bool(false) {
            s.untrusted += 1;
        }
        s.calls += v["judge_calls"].as_u64().unwrap_or(0);
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
        "JUDGE {name:<8} {model}: precision {:.3} recall {:.3} (tp {} fp {} fn {}), {} of {} screened before any call, \
         {} verdicts untrusted, {} judge calls\n",
        s.precision(),
        s.recall(),
        s.tp,
        s.fp,
        s.fn_,
        s.screened,
        s.n,
        s.untrusted,
        s.calls
    );
    for (label, (accepted, n)) in &s.by_label {
        out += &format!("      {label:<20} accepted {accepted:>3} of {n:>3}\n");
    }
    common::report(&out);
}

#[test]
fn the_judge_is_measured_against_labelled_pairs() {
    let servers = common::Servers::from_env();
    let (dev_v, dev) = judge_set(&servers, "dev");
    let (_, held) = judge_set(&servers, "heldout");
    print("dev", &servers.llm_model, &dev);
    print("heldout", &servers.llm_model, &held);

    // Deterministic: an answer cut off mid-sentence never passes, and never costs a judge call.
    for s in [&dev, &held] {
        assert_eq!(s.by_label.get("truncated").map(|x| x.0), Some(0), "a truncated answer was accepted");
    }
    let dev_labels: Vec<Value> =
        std::fs::read_to_string(format!("{}/data/judge/dev.jsonl", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    for (l, v) in dev_labels.iter().zip(&dev_v) {
        if l["label"] == "truncated" {
            assert_eq!(v["judge_calls"], 0, "{}: judged though cut off", l["id"]);
        }
    }
    // Bounds: the held-out figures as measured at the suite's model (qwen2.5-0.5b: precision 0.605-0.636,
    // recall 0.867-0.933 over three runs), less room for the server's sampling, so that a regression fails.
    // A 0.5B critic cannot tell a wrong pair from a right one; the cheap checks carry most of its precision
    // (see README, "A judge you can trust").
    assert!(held.precision() >= HELD_OUT_PRECISION, "held-out precision {:.3}", held.precision());
    assert!(held.recall() >= HELD_OUT_RECALL, "held-out recall {:.3}", held.recall());
    // Fewer calls than pairs: what the checks stop costs nothing, and only distrusted verdicts are re-asked.
    assert!(held.calls <= (held.n as u64) * 2, "{} calls for {} pairs", held.calls, held.n);
}

const HELD_OUT_PRECISION: f64 = 0.55;
const HELD_OUT_RECALL: f64 = 0.80;
