//! Training formats from dataset records: SFT as Alpaca (instruction/input/output), ShareGPT
//! (`conversations` with from/value) and OpenAI chat (`messages`), and DPO as prompt/chosen/rejected.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::view::{ExampleView, TurnView};

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Alpaca,
    Sharegpt,
    Openai,
    Dpo,
    Parquet,
}

impl Format {
    pub const ALL: [Format; 5] = [Format::Alpaca, Format::Sharegpt, Format::Openai, Format::Dpo, Format::Parquet];

    pub fn file_name(self) -> &'static str {
        match self {
            Format::Alpaca => "alpaca.jsonl",
            Format::Sharegpt => "sharegpt.jsonl",
            Format::Openai => "openai.jsonl",
            Format::Dpo => "dpo.jsonl",
            Format::Parquet => "dataset.parquet",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| format!("{f:?}").eq_ignore_ascii_case(s))
    }
}

/// Options of SFT exports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportOptions {
    /// Put the reasoning trace before the answer as `<think>…</think>` in SFT outputs.
    pub include_reasoning: bool,
    /// A system message for the formats that carry one (ShareGPT, OpenAI chat).
    pub system_prompt: Option<String>,
}

fn with_reasoning(answer: &str, reasoning: Option<&str>, opts: &ExportOptions) -> String {
    match reasoning.filter(|r| opts.include_reasoning && !r.trim().is_empty()) {
        Some(r) => format!("<think>\n{}\n</think>\n\n{answer}", r.trim()),
        None => answer.to_string(),
    }
}

/// The conversation turns with the reasoning (if included) on the final assistant turn.
fn final_turns(v: &ExampleView, opts: &ExportOptions) -> Vec<TurnView> {
    let mut turns: Vec<TurnView> = v.messages.iter().filter(|t| t.role != "system").cloned().collect();
    if let Some(last) = turns.iter_mut().rev().find(|t| t.role == "assistant") {
        last.content = with_reasoning(&last.content, v.reasoning.as_deref(), opts);
    }
    turns
}

/// `{"instruction", "input", "output"}` for single-turn examples.
pub fn alpaca(v: &ExampleView, opts: &ExportOptions) -> Option<Value> {
    let (q, a) = (v.question.as_deref()?, v.answer.as_deref()?);
    Some(json!({"instruction": q, "input": "", "output": with_reasoning(a, v.reasoning.as_deref(), opts)}))
}

/// `{"conversations": [{"from": "human"|"gpt"|"system", "value"}]}`.
pub fn sharegpt(v: &ExampleView, opts: &ExportOptions) -> Option<Value> {
    let turns = final_turns(v, opts);
    if turns.is_empty() {
        return None;
    }
    let mut conv = Vec::new();
    if let Some(s) = &opts.system_prompt {
        conv.push(json!({"from": "system", "value": s}));
    }
    for t in turns {
        conv.push(json!({"from": if t.role == "user" { "human" } else { "gpt" }, "value": t.content}));
    }
    Some(json!({"conversations": conv}))
}

/// `{"messages": [{"role", "content"}]}`, the OpenAI fine-tuning chat format.
pub fn openai(v: &ExampleView, opts: &ExportOptions) -> Option<Value> {
    let turns = final_turns(v, opts);
    if turns.is_empty() {
        return None;
    }
    let mut msgs = Vec::new();
    if let Some(s) = &opts.system_prompt {
        msgs.push(json!({"role": "system", "content": s}));
    }
    for t in turns {
        msgs.push(json!({"role": t.role, "content": t.content}));
    }
    Some(json!({"messages": msgs}))
}

/// `{"prompt", "chosen", "rejected"}` from an accepted regeneration and the low-scored draft it replaced. The
/// pair is the first assistant turn the regeneration changed (the last one of a QA pair; in a conversation
/// the turns before it are the same in both, so they are the prompt). `rejected_because` is the critique of
/// the rejected side: the critic's rationale, or the finding of the pre-judge check that failed it (then
/// `rejected_score` is null: no model scored it).
pub fn dpo(v: &ExampleView, _opts: &ExportOptions) -> Option<Value> {
    let prev = v.previous.as_ref()?;
    let chosen_turns: Vec<&TurnView> = v.messages.iter().filter(|t| t.role != "system").collect();
    let old_answers: Vec<&str> =
        prev.messages.iter().filter(|t| t.role == "assistant").map(|t| t.content.as_str()).collect();
    let (at, rejected) = chosen_turns
        .iter()
        .enumerate()
        .filter(|(_, t)| t.role == "assistant")
        .zip(old_answers)
        .find(|((_, t), old)| t.content != *old)
        .map(|((i, _), old)| (i, old))?;
    let prompt_turns = &chosen_turns[..at];
    let chosen = &chosen_turns[at].content;
    let prompt = if prompt_turns.len() == 1 {
        prompt_turns[0].content.clone()
    } else {
        prompt_turns.iter().map(|t| format!("{}: {}", t.role, t.content)).collect::<Vec<_>>().join("\n")
    };
    Some(json!({
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "chosen_score": v.scores.map(|s| s.overall),
        "rejected_score": (prev.scores.overall > 0).then_some(prev.scores.overall),
        "rejected_because": prev.rationale,
    }))
}

/// The JSONL line of a format for a record, if the record fits the format.
pub fn line(format: Format, v: &ExampleView, opts: &ExportOptions) -> Option<Value> {
    match format {
        Format::Alpaca => alpaca(v, opts),
        Format::Sharegpt => sharegpt(v, opts),
        Format::Openai => openai(v, opts),
        Format::Dpo => dpo(v, opts),
        Format::Parquet => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distillery_core::codec::fixtures;
    use distillery_core::{Accepted, Scores};

    fn view() -> ExampleView {
        ExampleView::accepted(&Accepted {
            id: "d1".into(),
            judged: fixtures::judged(),
            nearest_similarity: None,
            accepted_at_ms: 1,
        })
    }

    #[test]
    fn sft_formats() {
        let v = view();
        let plain = ExportOptions::default();
        assert_eq!(
            alpaca(&v, &plain).unwrap(),
            json!({"instruction": "How many days of paid leave do employees get?", "input": "", "output": "25 days."})
        );
        let with = ExportOptions { include_reasoning: true, system_prompt: Some("Be brief.".into()) };
        assert_eq!(alpaca(&v, &with).unwrap()["output"], "<think>\nThe policy states 25 days.\n</think>\n\n25 days.");
        let s = sharegpt(&v, &with).unwrap();
        assert_eq!(s["conversations"][0], json!({"from": "system", "value": "Be brief."}));
        assert_eq!(s["conversations"][1]["from"], "human");
        assert_eq!(s["conversations"][2]["from"], "gpt");
        let o = openai(&v, &plain).unwrap();
        assert_eq!(o["messages"][1], json!({"role": "assistant", "content": "25 days."}));
    }

    #[test]
    fn dpo_pairs_come_from_regenerations() {
        let v = view();
        let d = dpo(&v, &ExportOptions::default()).unwrap();
        assert_eq!(d["prompt"], "How many days of paid leave do employees get?");
        assert_eq!(d["chosen"], "25 days.");
        assert_eq!(d["rejected"], "20 days");
        assert_eq!(d["rejected_score"], 2);
        assert_eq!(d["rejected_because"], v.previous.as_ref().unwrap().rationale.as_str());
        // A draft the pre-judge checks failed was never scored: its score is null, the finding is the reason.
        let mut repaired = v.clone();
        let prev = repaired.previous.as_mut().unwrap();
        prev.scores = Scores { overall: 0, faithfulness: 0, correctness: 0, clarity: 0, usefulness: 0 };
        prev.rationale = "the answer states numbers the context does not: 20".into();
        let d = dpo(&repaired, &ExportOptions::default()).unwrap();
        assert_eq!(d["rejected_score"], Value::Null);
        assert_eq!(d["rejected_because"], "the answer states numbers the context does not: 20");
        let mut first_try = v.clone();
        first_try.previous = None;
        assert!(dpo(&first_try, &ExportOptions::default()).is_none());
        let mut unchanged = v.clone();
        unchanged.previous.as_mut().unwrap().messages = v.messages.clone();
        assert!(dpo(&unchanged, &ExportOptions::default()).is_none(), "a regeneration that changed nothing");
    }

    #[test]
    fn a_conversation_pair_is_the_first_turn_the_regeneration_changed() {
        let turn =
            |role: &str, content: &str| TurnView { role: role.into(), content: content.into(), chunk_ids: vec![] };
        let mut v = view();
        v.messages = vec![
            turn("user", "How much leave do I get?"),
            turn("assistant", "25 days a year."),
            turn("user", "Can I carry days over?"),
            turn("assistant", "Up to 5 days, until 31 March."),
            turn("user", "Who approves it?"),
            turn("assistant", "Your line manager."),
        ];
        let mut old = v.messages.clone();
        old[3].content = "Yes, all of them.".into();
        v.previous.as_mut().unwrap().messages = old;
        let d = dpo(&v, &ExportOptions::default()).unwrap();
        assert_eq!(
            d["prompt"],
            "user: How much leave do I get?\nassistant: 25 days a year.\nuser: Can I carry days over?"
        );
        assert_eq!(d["chosen"], "Up to 5 days, until 31 March.");
        assert_eq!(d["rejected"], "Yes, all of them.");
    }

    #[test]
    fn formats_parse_case_insensitively() {
        assert_eq!(Format::parse("ShareGPT"), Some(Format::Sharegpt));
        assert_eq!(Format::parse("nope"), None);
    }
}
