//! What can be told about a draft or a verdict without a model, in microseconds: shared by generate (which
//! screens its own drafts before publishing them) and judge (which screens every draft before its call and
//! reads the critic's rationale against its scores), so `distillery judge` is the pipeline's judge.
//!
//! - [`text`]: words, content words, stems and sentences;
//! - [`draft`]: a question and answer against their context (grounding, stated numbers, copied questions,
//!   answers that repeat the question, talk about the source, triviality);
//! - [`verdict`]: answers cut off or copying a task's instructions, and rationales that are not a judgement
//!   or contradict their scores;
//! - [`answer`]: an example's answer against the judge's own short answer to its question (numbers, yes/no,
//!   the short answer's words).

pub mod answer;
pub mod draft;
pub mod text;
pub mod verdict;

pub use answer::Agreement;
pub use draft::QualityConfig;
pub use verdict::{Distrust, Echo, Screened, VerdictChecks};
