//! The dataset card: a `README.md` in the Hugging Face style (YAML front matter with a license placeholder,
//! task and size categories and one config per data file) and the dataset's figures, counted from its
//! records: documents, accepted and rejected by kind, a histogram of overall scores, rejection reasons,
//! diversity (from `summary.json`, when the run measured it), and the generator and judge models with the
//! prompt templates and parameters the records name.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

use crate::view::{ExampleView, ModelView};

/// The section headings, in order.
pub const SECTIONS: [&str; 8] = [
    "## Contents",
    "## Overall scores",
    "## Rejections",
    "## Diversity",
    "## Models",
    "## Prompt templates",
    "## Parameters",
    "## Files",
];

/// What the card counts, gathered as records stream by.
#[derive(Debug, Default, Clone)]
pub struct CardStats {
    pub documents: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub accepted_by_kind: BTreeMap<String, usize>,
    pub rejected_by_kind: BTreeMap<String, usize>,
    pub rejected_by_reason: BTreeMap<String, usize>,
    /// Overall score -> records, accepted and rejected (rejections the critic scored).
    pub accepted_scores: BTreeMap<i32, usize>,
    pub rejected_scores: BTreeMap<i32, usize>,
    /// Accepted regenerations with the attempt they replaced (the DPO pairs).
    pub preference_pairs: usize,
    /// `provider/model` -> records.
    pub generators: BTreeMap<String, usize>,
    pub judges: BTreeMap<String, usize>,
    /// (role, template, hash) -> records.
    pub templates: BTreeMap<(String, String, String), usize>,
    /// (role, temperature, max tokens, seed) -> records.
    pub parameters: BTreeMap<(String, String, String, String), usize>,
}

fn bump<K: Ord>(m: &mut BTreeMap<K, usize>, k: K) {
    *m.entry(k).or_default() += 1;
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |x| x.to_string())
}

impl CardStats {
    fn models(&mut self, v: &ExampleView) {
        for (role, m) in [("generator", &v.generator), ("judge", &v.judge)] {
            let Some(m) = m else { continue };
            self.model(role, m);
        }
    }

    fn model(&mut self, role: &str, m: &ModelView) {
        let name = format!("{}/{}", m.provider, m.model);
        bump(if role == "generator" { &mut self.generators } else { &mut self.judges }, name);
        bump(&mut self.templates, (role.to_string(), m.template.clone(), m.template_hash.clone()));
        bump(&mut self.parameters, (role.to_string(), format!("{}", m.temperature), opt(m.max_tokens), opt(m.seed)));
    }

    pub fn accepted(&mut self, v: &ExampleView) {
        self.accepted += 1;
        bump(&mut self.accepted_by_kind, v.kind.clone());
        if let Some(s) = v.scores {
            bump(&mut self.accepted_scores, s.overall);
        }
        if v.previous.is_some() {
            self.preference_pairs += 1;
        }
        self.models(v);
    }

    pub fn rejected(&mut self, v: &ExampleView) {
        self.rejected += 1;
        bump(&mut self.rejected_by_kind, v.kind.clone());
        bump(&mut self.rejected_by_reason, v.reason.clone().unwrap_or_else(|| "unknown".into()));
        if let Some(s) = v.scores.filter(|s| s.overall > 0) {
            bump(&mut self.rejected_scores, s.overall);
        }
        self.models(v);
    }

    /// The card. `configs`: (config name, data file relative to the card); `diversity`: the `diversity`
    /// block of the run's `summary.json`, if it has one.
    pub fn render(&self, title: &str, configs: &[(String, String)], diversity: Option<&Value>) -> String {
        let mut s = String::new();
        let _ = self.write(&mut s, title, configs, diversity);
        s
    }

    fn write(
        &self,
        s: &mut String,
        title: &str,
        configs: &[(String, String)],
        diversity: Option<&Value>,
    ) -> std::fmt::Result {
        writeln!(s, "---")?;
        writeln!(s, "# Set the license of your source documents (a Hugging Face license id).")?;
        writeln!(s, "license: other")?;
        writeln!(s, "license_name: fill-in")?;
        writeln!(s, "pretty_name: {}", yaml_str(title))?;
        writeln!(s, "task_categories:\n- question-answering\n- text-generation")?;
        writeln!(s, "size_categories:\n- {}", size_category(self.accepted))?;
        writeln!(s, "tags:\n- synthetic\n- distillery")?;
        if !configs.is_empty() {
            writeln!(s, "configs:")?;
            for (i, (name, path)) in configs.iter().enumerate() {
                writeln!(s, "- config_name: {}", yaml_str(name))?;
                writeln!(s, "  data_files: {}", yaml_str(path))?;
                if i == 0 {
                    writeln!(s, "  default: true")?;
                }
            }
        }
        writeln!(s, "---\n")?;
        writeln!(s, "# {title}\n")?;
        writeln!(
            s,
            "Training examples generated from documents by Distillery and verified by an LLM judge. Every figure below is counted from the dataset's records.\n"
        )?;

        writeln!(s, "{}\n", SECTIONS[0])?;
        writeln!(s, "| | records |\n|---|---:|")?;
        writeln!(s, "| documents | {} |", self.documents)?;
        writeln!(s, "| accepted | {} |", self.accepted)?;
        for (k, n) in &self.accepted_by_kind {
            writeln!(s, "| accepted: {k} | {n} |")?;
        }
        writeln!(s, "| rejected | {} |", self.rejected)?;
        for (k, n) in &self.rejected_by_kind {
            writeln!(s, "| rejected: {k} | {n} |")?;
        }
        writeln!(s, "| preference pairs (DPO) | {} |\n", self.preference_pairs)?;

        writeln!(s, "{}\n", SECTIONS[1])?;
        let scores: std::collections::BTreeSet<i32> =
            self.accepted_scores.keys().chain(self.rejected_scores.keys()).copied().collect();
        if scores.is_empty() {
            writeln!(s, "No record was scored.\n")?;
        } else {
            let max = self.accepted_scores.values().chain(self.rejected_scores.values()).copied().max().unwrap_or(1);
            writeln!(s, "| overall | accepted | rejected | |\n|---:|---:|---:|---|")?;
            for k in scores {
                let (a, r) = (
                    self.accepted_scores.get(&k).copied().unwrap_or(0),
                    self.rejected_scores.get(&k).copied().unwrap_or(0),
                );
                let bar = "█".repeat(((a + r) * 20).div_ceil(max.max(1)).min(40));
                writeln!(s, "| {k} | {a} | {r} | {bar} |")?;
            }
            writeln!(s)?;
        }

        writeln!(s, "{}\n", SECTIONS[2])?;
        if self.rejected_by_reason.is_empty() {
            writeln!(s, "None.\n")?;
        } else {
            writeln!(s, "| reason | records |\n|---|---:|")?;
            let mut reasons: Vec<_> = self.rejected_by_reason.iter().collect();
            reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (k, n) in reasons {
                writeln!(s, "| {k} | {n} |")?;
            }
            writeln!(s)?;
        }

        writeln!(s, "{}\n", SECTIONS[3])?;
        match diversity.filter(|d| !d.is_null()) {
            None => writeln!(s, "not measured\n")?,
            Some(Value::Object(m)) => {
                writeln!(s, "| measure | value |\n|---|---|")?;
                for (k, v) in m {
                    let v = match v {
                        Value::String(x) => x.clone(),
                        other => other.to_string(),
                    };
                    writeln!(s, "| {k} | {} |", v.replace('|', "\\|"))?;
                }
                writeln!(s)?;
            }
            Some(other) => writeln!(s, "{other}\n")?,
        }

        writeln!(s, "{}\n", SECTIONS[4])?;
        writeln!(s, "| role | model | records |\n|---|---|---:|")?;
        for (role, m) in [("generator", &self.generators), ("judge", &self.judges)] {
            for (name, n) in m {
                writeln!(s, "| {role} | {name} | {n} |")?;
            }
        }
        writeln!(s)?;

        writeln!(s, "{}\n", SECTIONS[5])?;
        writeln!(s, "| role | template | hash | records |\n|---|---|---|---:|")?;
        for ((role, t, h), n) in &self.templates {
            writeln!(s, "| {role} | {t} | `{h}` | {n} |")?;
        }
        writeln!(s)?;

        writeln!(s, "{}\n", SECTIONS[6])?;
        writeln!(s, "| role | temperature | max tokens | seed | records |\n|---|---:|---:|---:|---:|")?;
        for ((role, t, m, seed), n) in &self.parameters {
            writeln!(s, "| {role} | {t} | {m} | {seed} | {n} |")?;
        }
        writeln!(s)?;

        writeln!(s, "{}\n", SECTIONS[7])?;
        if configs.is_empty() {
            writeln!(s, "No data file was exported beside this card.")?;
        } else {
            writeln!(s, "| config | file |\n|---|---|")?;
            for (name, path) in configs {
                writeln!(s, "| {name} | `{path}` |")?;
            }
        }
        Ok(())
    }
}

/// Hugging Face's size categories.
pub fn size_category(n: usize) -> &'static str {
    match n {
        0..1_000 => "n<1K",
        1_000..10_000 => "1K<n<10K",
        10_000..100_000 => "10K<n<100K",
        100_000..1_000_000 => "100K<n<1M",
        1_000_000..10_000_000 => "1M<n<10M",
        _ => "10M<n<100M",
    }
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}
