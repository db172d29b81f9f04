//! The tasks a model is given: each has one template (built-in or a user file) and its placeholders.

use std::fmt;

/// A task of the generator or the judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Task {
    /// Several question/answer pairs about a chunk, in one call.
    Qa,
    /// A multi-turn user/assistant conversation about a chunk.
    Conversation,
    /// A low-scored draft rewritten with the critic's feedback.
    Regenerate,
    /// A first draft whose answer failed a check, rewritten with the check's finding.
    Repair,
    /// The judge's own short answers to a batch's questions, before it sees the examples' answers.
    Answer,
    /// The critic's verdicts on a batch of drafts of one context.
    Judge,
    /// Which of two answers to one question is better (a DPO pair's check, asked in both orders).
    Compare,
}

impl Task {
    pub const ALL: [Task; 7] =
        [Task::Qa, Task::Conversation, Task::Regenerate, Task::Repair, Task::Answer, Task::Judge, Task::Compare];

    /// The key of the task in configuration (`[generate.templates] qa = "file"`) and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Qa => "qa",
            Task::Conversation => "conversation",
            Task::Regenerate => "regenerate",
            Task::Repair => "repair",
            Task::Answer => "answer",
            Task::Judge => "judge",
            Task::Compare => "compare",
        }
    }

    /// The task a configuration key names.
    pub fn parse(key: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|t| t.as_str() == key)
    }

    /// The placeholders its template may use.
    pub fn placeholders(self) -> &'static [&'static str] {
        match self {
            Task::Qa => &["n", "focus", "reasoning", "avoid", "extra"],
            Task::Conversation => &["turns", "focus", "avoid", "extra"],
            Task::Regenerate => &["overall", "rationale", "evidence", "example", "instructions"],
            Task::Repair => &["finding", "evidence", "example", "instructions"],
            Task::Answer => &["questions"],
            Task::Judge => &["example"],
            Task::Compare => &["question", "first", "second"],
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for t in Task::ALL {
            assert_eq!(Task::parse(t.as_str()), Some(t));
        }
        assert_eq!(Task::parse("poems"), None);
    }
}
