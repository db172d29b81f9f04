//! What a model is asked to do: the `role` label of every LLM metric, log line and ledger entry.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The role a client plays. Generator and judge on one server share its slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LlmRole {
    /// Writes drafts: QA pairs, conversations, regenerations and repairs.
    Generator,
    /// Scores drafts against their context.
    Judge,
    /// Designs synthetic-table schemas.
    Schema,
}

impl LlmRole {
    pub const ALL: [LlmRole; 3] = [LlmRole::Generator, LlmRole::Judge, LlmRole::Schema];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            LlmRole::Generator => "generator",
            LlmRole::Judge => "judge",
            LlmRole::Schema => "schema",
        }
    }
}

impl fmt::Display for LlmRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
