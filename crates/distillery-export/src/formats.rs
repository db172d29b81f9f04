//! Training formats from dataset records: SFT as Alpaca (instruction/input/output), ShareGPT
//! (`conversations` with from/value) and OpenAI chat (`messages`), and DPO as prompt/chosen/rejected.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::view::{ExampleView, TurnView};

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `{"instruction", "input", "output"}` per line.
    Alpaca,
    /// `{"text"}` per line: the Alpaca prompt template filled in (instruction, input if any, response).
    AlpacaText,
    /// `{"conversations": [{"from", "value"}]}` per line.
    Sharegpt,
    /// `{"messages": [{"role", "content"}]}` per line.
    Openai,
    /// TRL's standard preference form: `prompt`, `chosen`, `rejected` strings (plus scores and critique).
    Dpo,
    /// TRL's conversational preference form: `prompt` a list of messages, `chosen` and `rejected` each one
    /// assistant message.
    DpoChat,
    /// Every accepted record as one Parquet row.
    Parquet,
    /// A folder: `{name}_qa.json` per document and a combined `training_data.json`.
    QaJson,
    /// A dataset card (`README.md`, Hugging Face style) with the dataset's counts and provenance.
    Card,
}

impl Format {
    pub const ALL: [Format; 9] = [
        Format::Alpaca,
        Format::AlpacaText,
        Format::Sharegpt,
        Format::Openai,
        Format::Dpo,
        Format::DpoChat,
        Format::Parquet,
        Format::QaJson,
        Format::Card,
    ];

    /// The name on the command line and in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            Format::Alpaca => "alpaca",
            Format::AlpacaText => "alpaca-text",
            Format::Sharegpt => "sharegpt",
            Format::Openai => "openai",
            Format::Dpo => "dpo",
            Format::DpoChat => "dpo-chat",
            Format::Parquet => "parquet",
            Format::QaJson => "qa-json",
            Format::Card => "card",
        }
    }

    /// The file (a folder for [`Format::QaJson`]) the format is written to inside an export folder.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Alpaca => "alpaca.jsonl",
            Format::AlpacaText => "alpaca-text.jsonl",
            Format::Sharegpt => "sharegpt.jsonl",
            Format::Openai => "openai.jsonl",
            Format::Dpo => "dpo.jsonl",
            Format::DpoChat => "dpo-chat.jsonl",
            Format::Parquet => "dataset.parquet",
            Format::QaJson => "qa-json",
            Format::Card => "README.md",
        }
    }

    /// One JSON object a line, one line per record that fits the format ([`line`]).
    pub fn is_jsonl(self) -> bool {
        !matches!(self, Format::Parquet | Format::QaJson | Format::Card)
    }

    /// By name, ignoring case; `_` for `-` is accepted too.
    pub fn parse(s: &str) -> Option<Format> {
        let s = s.trim().replace('_', "-");
        Format::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(&s))
    }

    /// The names, for messages.
    pub fn names() -> String {
        Format::ALL.map(Format::name).join(", ")
    }
}

/// Options of SFT exports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportOptions {
    /// Put the reasoning trace before the answer as `<think>…</think>` in SFT outputs.
    pub include_reasoning: bool,
    /// A system message for the formats that carry one (ShareGPT, OpenAI chat, conversational DPO).
    pub system_prompt: Option<String>,
    /// Put the example's source context (the text it was generated from) in Alpaca's `input` (and the
    /// `### Input:` section of `alpaca-text`); otherwise `input` is empty.
    pub alpaca_input_context: bool,
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

/// Instruction, input and output of a single-turn example.
fn alpaca_parts(v: &ExampleView, opts: &ExportOptions) -> Option<(String, String, String)> {
    let (q, a) = (v.question.as_deref()?, v.answer.as_deref()?);
    let input = match (&v.context_text, opts.alpaca_input_context) {
        (Some(c), true) => c.trim().to_string(),
        _ => String::new(),
    };
    Some((q.to_string(), input, with_reasoning(a, v.reasoning.as_deref(), opts)))
}

/// `{"instruction", "input", "output"}` for single-turn examples (`input`: the source context with
/// [`ExportOptions::alpaca_input_context`], else empty).
pub fn alpaca(v: &ExampleView, opts: &ExportOptions) -> Option<Value> {
    let (instruction, input, output) = alpaca_parts(v, opts)?;
    Some(json!({"instruction": instruction, "input": input, "output": output}))
}

/// The Alpaca prompt template's preamble without and with an input.
pub const ALPACA_PREAMBLE: &str =
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.";
pub const ALPACA_PREAMBLE_INPUT: &str = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.";

/// `{"text"}`: the Alpaca prompt template filled in, `### Instruction:`, `### Input:` (when there is
/// one) and `### Response:`.
pub fn alpaca_text(v: &ExampleView, opts: &ExportOptions) -> Option<Value> {
    let (instruction, input, output) = alpaca_parts(v, opts)?;
    let text = if input.is_empty() {
        format!("{ALPACA_PREAMBLE}\n\n### Instruction:\n{instruction}\n\n### Response:\n{output}")
    } else {
        format!(
            "{ALPACA_PREAMBLE_INPUT}\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n{output}"
        )
    };
    Some(json!({"text": text}))
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

/// The preference pair of an accepted regeneration the judge verified better than the draft it replaced
/// (compared in both orders, or the draft failed a check): the prompt turns, the chosen and the rejected
/// answer. A regeneration never verified makes no pair: a judge's noise is not a preference. The pair is the
/// first assistant turn the regeneration changed (the last one of a QA pair; in a conversation the turns
/// before it are the same in both, so they are the prompt).
fn preference(v: &ExampleView) -> Option<(Vec<&TurnView>, &str, &str)> {
    let prev = v.previous.as_ref()?;
    if !prev.preference.as_ref().is_some_and(|p| p.verified) {
        return None;
    }
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
    Some((chosen_turns[..at].to_vec(), chosen_turns[at].content.as_str(), rejected))
}

/// The metadata columns of both DPO forms: `rejected_because` is the critique of the rejected side: the
/// critic's rationale, or the finding of the pre-judge check that failed it (then `rejected_score` is
/// null: no model scored it).
fn dpo_meta(v: &ExampleView, line: &mut Value) {
    let prev = v.previous.as_ref().expect("a preference pair has a previous attempt");
    line["chosen_score"] = json!(v.scores.map(|s| s.overall));
    line["rejected_score"] = json!((prev.scores.overall > 0).then_some(prev.scores.overall));
    line["rejected_because"] = json!(prev.rationale);
    line["chosen_because"] = json!(prev.preference.as_ref().map(|p| p.reason.as_str()));
}

/// TRL's standard preference form `{"prompt", "chosen", "rejected"}` (strings) from an accepted
/// regeneration and the low-scored draft it replaced; a multi-turn prompt is its turns as `role: text`
/// lines. Plus `chosen_score`, `rejected_score`, `rejected_because`.
pub fn dpo(v: &ExampleView, _opts: &ExportOptions) -> Option<Value> {
    let (prompt_turns, chosen, rejected) = preference(v)?;
    let prompt = if prompt_turns.len() == 1 {
        prompt_turns[0].content.clone()
    } else {
        prompt_turns.iter().map(|t| format!("{}: {}", t.role, t.content)).collect::<Vec<_>>().join("\n")
    };
    let mut line = json!({"prompt": prompt, "chosen": chosen, "rejected": rejected});
    dpo_meta(v, &mut line);
    Some(line)
}

/// TRL's conversational preference form: `prompt` the turns before the pair as `{role, content}` messages
/// (after the system prompt, if one is set), `chosen` and `rejected` each a list of one assistant message.
pub fn dpo_chat(v: &ExampleView, opts: &ExportOptions) -> Option<Value> {
    let (prompt_turns, chosen, rejected) = preference(v)?;
    let mut prompt = Vec::new();
    if let Some(s) = &opts.system_prompt {
        prompt.push(json!({"role": "system", "content": s}));
    }
    prompt.extend(prompt_turns.iter().map(|t| json!({"role": t.role, "content": t.content})));
    let mut line = json!({
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    });
    dpo_meta(v, &mut line);
    Some(line)
}

/// The JSONL line of a format for a record, if the record fits the format. Whether a record is exported at
/// all (records of superseded documents are not) is the caller's choice: [`crate::ExportJob`] leaves them out.
pub fn line(format: Format, v: &ExampleView, opts: &ExportOptions) -> Option<Value> {
    match format {
        Format::Alpaca => alpaca(v, opts),
        Format::AlpacaText => alpaca_text(v, opts),
        Format::Sharegpt => sharegpt(v, opts),
        Format::Openai => openai(v, opts),
        Format::Dpo => dpo(v, opts),
        Format::DpoChat => dpo_chat(v, opts),
        Format::Parquet | Format::QaJson | Format::Card => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distillery_core::codec::fixtures;
    use distillery_core::{Accepted, Scores};

    fn view() -> ExampleView {
        let mut v = ExampleView::accepted(&Accepted {
            id: "d1".into(),
            judged: fixtures::judged(),
            nearest_similarity: None,
            accepted_at_ms: 1,
        });
        // The fixture's draft is of a superseded document; these tests are about current ones.
        v.superseded_by = None;
        v
    }

    #[test]
    fn sft_formats() {
        let v = view();
        let plain = ExportOptions::default();
        assert_eq!(
            alpaca(&v, &plain).unwrap(),
            json!({"instruction": "How many days of paid leave do employees get?", "input": "", "output": "25 days."})
        );
        let with = ExportOptions {
            include_reasoning: true,
            system_prompt: Some("Be brief.".into()),
            alpaca_input_context: false,
        };
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
        assert_eq!(d["chosen_because"], v.previous.as_ref().unwrap().preference.as_ref().unwrap().reason.as_str());
        // Only a preference the judge verified (both orders) makes a pair; an unchecked one neither.
        let mut unverified = v.clone();
        unverified.previous.as_mut().unwrap().preference.as_mut().unwrap().verified = false;
        assert!(dpo(&unverified, &ExportOptions::default()).is_none(), "an unverified preference");
        assert!(dpo_chat(&unverified, &ExportOptions::default()).is_none(), "an unverified preference");
        let mut unchecked = v.clone();
        unchecked.previous.as_mut().unwrap().preference = None;
        assert!(dpo(&unchecked, &ExportOptions::default()).is_none(), "a preference never checked");
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
        assert_eq!(Format::parse("alpaca-text"), Some(Format::AlpacaText));
        assert_eq!(Format::parse("DPO_chat"), Some(Format::DpoChat));
        assert_eq!(Format::parse("qa-json"), Some(Format::QaJson));
        assert_eq!(Format::parse("card"), Some(Format::Card));
        assert_eq!(Format::parse("nope"), None);
        for f in Format::ALL {
            assert_eq!(Format::parse(f.name()), Some(f));
            // The configuration files' spelling is the command line's.
            assert_eq!(serde_json::to_value(f).unwrap(), json!(f.name()));
        }
    }

    #[test]
    fn alpaca_text_is_the_alpaca_template() {
        let v = view();
        let t = alpaca_text(&v, &ExportOptions::default()).unwrap();
        assert_eq!(t.as_object().unwrap().len(), 1, "one text column: {t}");
        assert_eq!(
            t["text"],
            "Below is an instruction that describes a task. Write a response that appropriately completes the \
             request.\n\n### Instruction:\nHow many days of paid leave do employees get?\n\n### Response:\n25 days."
        );
        let ctx = ExportOptions { alpaca_input_context: true, ..ExportOptions::default() };
        let t = alpaca_text(&v, &ctx).unwrap()["text"].as_str().unwrap().to_string();
        assert!(t.starts_with(ALPACA_PREAMBLE_INPUT), "{t}");
        assert!(
            t.contains("### Input:\nEmployees get 25 days of paid leave.\n\nCarry-over is capped at 5 days.\n\n### Response:\n25 days."),
            "{t}"
        );
        let a = alpaca(&v, &ctx).unwrap();
        assert_eq!(a["input"], "Employees get 25 days of paid leave.\n\nCarry-over is capped at 5 days.");
        // Without the context in the record, the input stays empty.
        let mut bare = v.clone();
        bare.context_text = None;
        assert_eq!(alpaca(&bare, &ctx).unwrap()["input"], "");
        assert!(!alpaca_text(&bare, &ctx).unwrap()["text"].as_str().unwrap().contains("### Input:"));
    }

    #[test]
    fn dpo_chat_is_trl_conversational_preference() {
        let v = view();
        let opts = ExportOptions { system_prompt: Some("Be brief.".into()), ..ExportOptions::default() };
        let d = dpo_chat(&v, &opts).unwrap();
        assert_eq!(
            d["prompt"],
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "How many days of paid leave do employees get?"}
            ])
        );
        assert_eq!(d["chosen"], json!([{"role": "assistant", "content": "25 days."}]));
        assert_eq!(d["rejected"], json!([{"role": "assistant", "content": "20 days"}]));
        assert_eq!(d["chosen_score"], 5);
        assert_eq!(d["rejected_score"], 2);
        // The standard form has the same pair as strings.
        let s = dpo(&v, &opts).unwrap();
        assert_eq!(
            (s["prompt"].as_str(), s["chosen"].as_str(), s["rejected"].as_str()),
            (Some("How many days of paid leave do employees get?"), Some("25 days."), Some("20 days"))
        );
        let mut first_try = v.clone();
        first_try.previous = None;
        assert!(dpo_chat(&first_try, &opts).is_none());
    }
}
