//! Question/answer pairs: several typed pairs about a chunk in one schema-constrained call. Before the call
//! each pair is assigned its sentence(s) of the chunk and its kind of question ([`crate::focus`]), so the
//! pairs of a reply cover different facts and each carries its evidence without spending tokens to copy or
//! choose it. A pair repeating an earlier question (of the reply, or remembered for the document; in words, or
//! in meaning by sentence embeddings) ends as a `duplicate` rejection, never judged. The drafts of one call that go on to judging carry their batch, so
//! the judge scores them together in one call.
//!
//! Chunks of one context are gathered ([`distillery_prompts::gather`]) until every chunk of the context
//! has come (or the wait ends), and asked for in as few calls of at most `pairs_per_call` pairs as hold
//! them: the context and the system prompt are paid once for several chunks, and each draft stays the draft
//! of the chunk its sentence is in, so an edit of one section still regenerates that section's pairs alone.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use distillery_core::{Chunk, DraftBatch, DraftKind, Message, Record, RejectReason, Role, StageError, ids};
use distillery_llm::Usage;
use distillery_prompts::templates::{QaReply, QuestionForm};
use distillery_prompts::{Member, Task, seed_of, templates};

use distillery_quality::{draft as quality, text};
use distillery_vector::dot;

use crate::focus::FocusItem;
use crate::{Generate, Reasoning, focus, grounding, screened, share};

/// A pair the model wrote, and why it will not be judged (if it will not).
type Pair = (templates::QaPair, Option<(RejectReason, String)>);

/// A chunk and the pairs planned about it, as it joins the call of its context.
#[derive(Debug, Clone)]
pub struct Planned {
    chunk: Chunk,
    sentences: Vec<String>,
    plan: Vec<FocusItem>,
}

impl Planned {
    /// At most `max_pairs` pairs planned over the chunk's sentences.
    pub fn new(chunk: &Chunk, max_pairs: usize) -> Planned {
        let sentences = match text::sentences(&chunk.text) {
            s if s.is_empty() => vec![chunk.text.trim().to_string()],
            s => s,
        };
        let plan = focus::plan(&sentences, max_pairs);
        Planned { chunk: chunk.clone(), sentences, plan }
    }

    /// Pairs planned about the chunk.
    pub fn pairs(&self) -> usize {
        self.plan.len()
    }
}

/// The chunks of each context already in a call (gathered, or alone), so the last chunks of a context do not
/// wait for ones that came before them. Bounded: past [`Served::CONTEXTS`] contexts it starts afresh (a
/// forgotten context costs its next chunk a wait, nothing more).
#[derive(Debug, Default)]
pub struct Served(Mutex<HashMap<String, HashSet<String>>>);

impl Served {
    const CONTEXTS: usize = 4096;

    fn add(&self, context: &str, chunks: impl Iterator<Item = String>) {
        let mut served = self.0.lock().expect("served lock");
        if served.len() >= Self::CONTEXTS && !served.contains_key(context) {
            served.clear();
        }
        served.entry(context.to_string()).or_default().extend(chunks);
    }

    /// Whether every one of `chunks` of `context` has been in a call.
    fn all<'a>(&self, context: &str, mut chunks: impl Iterator<Item = &'a &'a String>) -> bool {
        let served = self.0.lock().expect("served lock");
        let earlier = served.get(context);
        chunks.all(|c| earlier.is_some_and(|e| e.contains(c.as_str())))
    }
}

/// Items in as few calls as hold them with sizes adding up to at most `budget` each (first fit, largest
/// first; an item larger than the budget has a call of its own; no item is split); each call's items in
/// their order, the calls in the order of their first items.
fn in_calls<T>(items: Vec<T>, size: impl Fn(&T) -> usize, budget: usize) -> Vec<Vec<T>> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(size(&items[i])));
    let mut calls: Vec<(usize, Vec<usize>)> = Vec::new();
    for i in order {
        let n = size(&items[i]);
        match calls.iter_mut().find(|(used, _)| used + n <= budget) {
            Some((used, call)) => {
                *used += n;
                call.push(i);
            }
            None => calls.push((n, vec![i])),
        }
    }
    let mut calls: Vec<Vec<usize>> = calls
        .into_iter()
        .map(|(_, mut c)| {
            c.sort_unstable();
            c
        })
        .collect();
    calls.sort_by_key(|c| c[0]);
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    calls.into_iter().map(|c| c.into_iter().filter_map(|i| slots[i].take()).collect()).collect()
}

impl Member for Planned {
    fn member_id(&self) -> &str {
        &self.chunk.id
    }
    fn order(&self) -> i64 {
        i64::from(self.chunk.ordinal)
    }
}

impl Generate {
    /// The pairs of one chunk, in the call of its context's chunks gathered with it (its own call when
    /// gathering is off or its context is the chunk alone).
    pub(crate) async fn qa_gathered(&self, chunk: &Chunk) -> Result<Vec<Record>, StageError> {
        let planned = Planned::new(chunk, self.cfg.pairs_per_chunk);
        if self.cfg.gather_wait_ms == 0 || chunk.context_chunk_ids.len() < 2 {
            return Ok(self.qa_call(vec![planned]).await?.pop().unwrap_or_default());
        }
        let expected: Vec<&String> =
            chunk.context_chunk_ids.iter().filter(|id| self.cfg.mode_for(id) == crate::Mode::Qa).collect();
        let context = chunk.context_id.as_str();
        // Complete when no other chunk of the context is still to come (each is here or was in an earlier
        // call); the wait ends a group whose other chunks are held up (or skipped: already done).
        let complete = |members: &[Planned]| {
            self.served.all(context, expected.iter().filter(|id| !members.iter().any(|m| m.chunk.id == ***id)))
        };
        let evaluate = |members: Vec<Planned>| {
            self.served.add(context, members.iter().map(|m| m.chunk.id.clone()));
            self.qa_calls(members)
        };
        self.gather.join(context, planned, complete, evaluate).await
    }

    /// The gathered chunks in calls of at most `pairs_per_call` planned pairs each (a chunk is never
    /// split), made at once: each member's records, in order.
    async fn qa_calls(&self, members: Vec<Planned>) -> Result<Vec<Vec<Record>>, StageError> {
        let calls = in_calls(members, Planned::pairs, self.cfg.pairs_per_call);
        let replies = futures::future::try_join_all(calls.into_iter().map(|call| self.qa_call(call))).await?;
        Ok(replies.into_iter().flatten().collect())
    }

    /// One call for the pairs planned about some chunks of one context: each member's records, in order.
    async fn qa_call(&self, members: Vec<Planned>) -> Result<Vec<Vec<Record>>, StageError> {
        let Some(first) = members.first() else { return Ok(Vec::new()) };
        let chunk = &first.chunk;
        // The members' sentences one after the other, and each planned pair's member.
        let mut sentences: Vec<String> = Vec::new();
        let mut plan: Vec<FocusItem> = Vec::new();
        let mut owner: Vec<usize> = Vec::new();
        for (m, member) in members.iter().enumerate() {
            let offset = sentences.len();
            sentences.extend(member.sentences.iter().cloned());
            for item in &member.plan {
                plan.push(FocusItem {
                    kind: item.kind,
                    sentences: item.sentences.iter().map(|i| i + offset).collect(),
                });
                owner.push(m);
            }
        }
        let n = plan.len().max(1);
        // The call's key: the chunk's id, or every member's when several share the call.
        let key = members.iter().map(|m| m.chunk.id.as_str()).collect::<Vec<_>>().join(",");
        let text_of_members = members.iter().map(|m| m.chunk.text.as_str()).collect::<Vec<_>>().join("\n");
        let explicit = self.cfg.reasoning == Reasoning::Explicit;
        let avoid: Vec<String> = self.memory.recall(&chunk.document_id).into_iter().rev().take(12).collect();
        let extra = self.cfg.extra_instructions.as_deref();
        let reasoning_field = if explicit { "reasoning (think step by step, briefly, before answering); " } else { "" };
        let (template, body) = self.caller.templates.task(Task::Qa);
        let task = templates::render(
            body,
            &[
                ("n", &n.to_string()),
                ("focus", &focus::render(&plan, &sentences)),
                ("reasoning", reasoning_field),
                ("avoid", &templates::avoid_section(&avoid)),
                ("extra", &templates::extra_section(extra)),
            ],
        );
        // A question's form is part of the schema: an English chunk gets English questions (an interrogative
        // first, one question mark at the end); any other language one question mark at the end.
        let form =
            if text::looks_english(&text_of_members) { QuestionForm::English } else { QuestionForm::AnyLanguage };
        let template_hash = self.caller.templates.hash(
            Task::Qa,
            &[
                &n.to_string(),
                extra.unwrap_or_default(),
                &self.cfg.max_answer_chars.to_string(),
                &form.pattern(self.cfg.max_question_chars),
                if explicit { "explicit" } else { "model" },
            ],
        );
        let seed = seed_of(&key);
        let schema = templates::qa_schema(n, self.cfg.max_question_chars, self.cfg.max_answer_chars, explicit, form);
        let req = self.caller.request(&chunk.context_text, task, seed, "qa_pairs", schema);
        let out = self
            .caller
            .call(&chunk.document_id, req, |r: &QaReply| {
                if r.pairs.iter().any(|p| !p.question.trim().is_empty() && !p.answer.trim().is_empty()) {
                    Ok(())
                } else {
                    Err("no pair has both a question and an answer".into())
                }
            })
            .await?;
        let call_reasoning = out.response.reasoning.clone();
        let latency = out.response.latency;
        // Every pair the model wrote ends as a draft or a rejection with its reason: a pair repeating an
        // earlier question (in this reply or about this document) is kept for inspection, never judged.
        let mut pairs: Vec<Pair> = Vec::new();
        for mut p in out.value.pairs.into_iter().take(n) {
            p.question = quality::tidy_question(&p.question);
            let q = p.question.trim();
            let verdict = if q.is_empty() || p.answer.trim().is_empty() {
                Some((RejectReason::InvalidRecord, "the pair has an empty question or answer".to_string()))
            } else if let Some((earlier, _)) =
                pairs.iter().find(|(k, v)| v.is_none() && quality::near_duplicate(&k.question, q))
            {
                Some((RejectReason::Duplicate, format!("repeats a question of the same reply: {:?}", earlier.question)))
            } else {
                avoid.iter().find(|old| quality::near_duplicate(old, q)).map(|old| {
                    (RejectReason::Duplicate, format!("repeats an earlier question about the document: {old:?}"))
                })
            };
            pairs.push((p, verdict));
        }
        let vectors = self.repeats_by_meaning(&chunk.document_id, &mut pairs).await?;
        self.memory.remember(
            &chunk.document_id,
            pairs
                .iter()
                .zip(vectors)
                .filter(|((_, v), _)| v.is_none())
                .map(|((p, _), vector)| (p.question.trim().to_string(), vector)),
        );
        let total = pairs.len();
        let mut records: Vec<Vec<Record>> = vec![Vec::new(); members.len()];
        for (i, (p, verdict)) in pairs.into_iter().enumerate() {
            let member = owner.get(i).copied().unwrap_or(0);
            let chunk = &members[member].chunk;
            let usage = Usage {
                prompt_tokens: share(out.usage.prompt_tokens, total, i),
                completion_tokens: share(out.usage.completion_tokens, total, i),
            };
            let model = self.caller.model_call(template, &template_hash, seed, usage, latency);
            let index = i.to_string();
            let mut parts = vec!["draft", &chunk.id, DraftKind::Qa.as_str(), &template_hash, &model.model, "1", &index];
            if members.len() > 1 {
                parts.push(&key);
            }
            let id = ids::hash_parts(&parts);
            // The pair's assigned sentence(s) are its evidence.
            let item = plan.get(i);
            let about = item.map(|it| it.evidence(&sentences));
            let support =
                grounding::support(&chunk.context_text, &chunk.context_chunk_ids, about.as_deref(), &p.answer);
            let mut q = Message::new(Role::User, p.question.trim());
            q.chunk_ids = vec![chunk.id.clone()];
            let mut a = Message::new(Role::Assistant, p.answer.trim());
            a.chunk_ids = match support.as_ref().and_then(|s| s.chunk_id.clone()) {
                Some(c) => vec![c],
                None => chunk.context_chunk_ids.clone(),
            };
            let mut draft = self.draft_base(chunk, DraftKind::Qa, vec![q, a], model, id);
            draft.reasoning =
                p.reasoning.filter(|r| !r.trim().is_empty()).map(|r| r.trim().to_string()).or(call_reasoning.clone());
            draft.question_type = item.map(|it| it.kind.as_str().to_string());
            draft.difficulty = item.map(|it| it.kind.difficulty().to_string());
            draft.evidence = support.map(|s| s.quote);
            let (question, answer) = (draft.question().to_string(), draft.answer().to_string());
            records[member].push(match verdict {
                Some(rejection) => screened(draft, Err(rejection)),
                None => self.checked(draft, &question, &answer, &chunk.context_text, about.as_deref()),
            });
        }
        // The drafts that go on to judging are judged together, in one call.
        let batch_id = ids::hash_parts(&["batch", &key, &template_hash, &self.caller.llm.config().model, "1"]);
        let size = records.iter().flatten().filter(|r| matches!(r, Record::Draft(_))).count();
        if size > 1 {
            for (index, r) in records
                .iter_mut()
                .flatten()
                .filter_map(|r| if let Record::Draft(d) = r { Some(d) } else { None })
                .enumerate()
            {
                r.batch = Some(DraftBatch { id: batch_id.clone(), index: index as i32, size: size as i32 });
            }
        }
        tracing::debug!(chunk = %chunk.id, chunks = members.len(), drafts = total, judged_together = size, prompt_tokens = out.usage.prompt_tokens,
            completion_tokens = out.usage.completion_tokens, "generated pairs");
        Ok(records)
    }

    /// Rejects, as duplicates, the pairs whose question means the same as an earlier question of the reply
    /// or of the document (sentence embeddings at or above `question_similarity`): the paraphrases the word
    /// checks miss, caught before any judge tokens are spent. Returns each pair's embedding (none for pairs
    /// already rejected, or without an encoder).
    async fn repeats_by_meaning(
        &self,
        document: &str,
        pairs: &mut [Pair],
    ) -> Result<Vec<Option<Vec<f32>>>, StageError> {
        let mut vectors = vec![None; pairs.len()];
        let Some(embedder) = &self.embedder else { return Ok(vectors) };
        let open: Vec<usize> = (0..pairs.len()).filter(|&i| pairs[i].1.is_none()).collect();
        if open.is_empty() {
            return Ok(vectors);
        }
        let texts = open.iter().map(|&i| pairs[i].0.question.trim().to_string()).collect();
        let embedded = embedder.embed(texts).await.map_err(|e| StageError::retry("embed", e.to_string()))?;
        let earlier = self.memory.recall_embedded(document);
        let mut kept: Vec<(String, Vec<f32>)> = Vec::new();
        for (&i, v) in open.iter().zip(embedded) {
            let closest = kept
                .iter()
                .map(|(q, w)| (q, dot(&v, w), "of the same reply"))
                .chain(earlier.iter().map(|(q, w)| (q, dot(&v, w), "about the document")))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            match closest {
                Some((q, similarity, whose)) if similarity >= self.cfg.question_similarity => {
                    tracing::debug!(question = %pairs[i].0.question, earlier = %q, similarity, "question repeats an earlier one");
                    pairs[i].1 = Some((
                        RejectReason::Duplicate,
                        format!("means the same as an earlier question {whose} (similarity {similarity:.3}): {q:?}"),
                    ));
                }
                _ => {
                    kept.push((pairs[i].0.question.trim().to_string(), v.clone()));
                    vectors[i] = Some(v);
                }
            }
        }
        Ok(vectors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathered_chunks_are_asked_for_in_calls_within_the_budget() {
        // (position, planned pairs): each call's items in their order, calls in the order of their first.
        let calls = |sizes: &[usize], budget| -> Vec<Vec<usize>> {
            let items: Vec<(usize, usize)> = sizes.iter().copied().enumerate().collect();
            in_calls(items, |it| it.1, budget).into_iter().map(|c| c.into_iter().map(|it| it.0).collect()).collect()
        };
        let expect = |v: &[&[usize]]| v.iter().map(|c| c.to_vec()).collect::<Vec<Vec<usize>>>();
        // Six sections of 4, 3, 4, 3, 3, 4 pairs in calls of 8: three calls, not five.
        assert_eq!(calls(&[4, 3, 4, 3, 3, 4], 8), expect(&[&[0, 2], &[1, 5], &[3, 4]]));
        assert_eq!(calls(&[3, 3, 4], 6), expect(&[&[0, 1], &[2]]));
        assert_eq!(calls(&[2, 2, 2], 6), expect(&[&[0, 1, 2]]));
        assert_eq!(calls(&[1, 7, 1], 6), expect(&[&[0, 2], &[1]]));
        assert!(calls(&[], 6).is_empty());
    }
}
