//! Conversations: a user/assistant dialogue about a chunk in one call, each assistant turn traced to the
//! chunk it used; the conversation stands or falls as one example.

use distillery_core::{Chunk, DraftKind, Message, Record, Role, StageError, ids};
use distillery_prompts::templates::ConversationReply;
use distillery_prompts::{Task, seed_of, templates};

use crate::{Generate, grounding};

impl Generate {
    pub(crate) async fn conversation(&self, chunk: &Chunk) -> Result<Vec<Record>, StageError> {
        let turns = self.cfg.conversation_turns;
        let avoid: Vec<String> = self.memory.recall(&chunk.document_id).into_iter().rev().take(12).collect();
        let extra = self.cfg.extra_instructions.as_deref();
        let (template, text) = self.caller.templates.task(Task::Conversation);
        let task = templates::render(
            text,
            &[
                ("turns", &turns.to_string()),
                ("focus", &templates::neutralize(&chunk.text)),
                ("avoid", &templates::avoid_section(&avoid)),
                ("extra", &templates::extra_section(extra)),
            ],
        );
        let template_hash = self.caller.templates.hash(
            Task::Conversation,
            &[&turns.to_string(), extra.unwrap_or_default(), &self.cfg.max_answer_chars.to_string()],
        );
        let seed = seed_of(&format!("conversation:{}", chunk.id));
        let schema = templates::conversation_schema(turns, self.cfg.max_question_chars, self.cfg.max_answer_chars);
        let req = self.caller.request(&chunk.context_text, task, seed, "conversation", schema);
        let out = self
            .caller
            .call(&chunk.document_id, req, |r: &ConversationReply| {
                if r.turns.is_empty()
                    || r.turns.iter().any(|t| t.user.trim().is_empty() || t.assistant.trim().is_empty())
                {
                    Err("every exchange needs a user turn and an assistant turn".into())
                } else {
                    Ok(())
                }
            })
            .await?;
        let model = self.caller.model_call(template, &template_hash, seed, out.usage, out.response.latency);
        let id =
            ids::hash_parts(&["draft", &chunk.id, DraftKind::Conversation.as_str(), &template_hash, &model.model, "1"]);
        let mut messages = Vec::with_capacity(out.value.turns.len() * 2);
        let mut last_support = None;
        for t in &out.value.turns {
            let support =
                grounding::support(&chunk.context_text, &chunk.context_chunk_ids, t.evidence.as_deref(), &t.assistant);
            let mut u = Message::new(Role::User, t.user.trim());
            u.chunk_ids = vec![chunk.id.clone()];
            let mut a = Message::new(Role::Assistant, t.assistant.trim());
            a.chunk_ids = match support.as_ref().and_then(|s| s.chunk_id.clone()) {
                Some(c) => vec![c],
                None => chunk.context_chunk_ids.clone(),
            };
            messages.push(u);
            messages.push(a);
            last_support = support.or(last_support);
        }
        self.memory.remember(&chunk.document_id, out.value.turns.first().map(|t| (t.user.trim().to_string(), None)));
        let mut draft = self.draft_base(chunk, DraftKind::Conversation, messages, model, id);
        draft.reasoning = out.response.reasoning.clone();
        draft.evidence = last_support.map(|s| s.quote);
        // Every assistant turn must hold up on its own; the conversation stands or falls as one example.
        Ok(vec![self.checked_conversation(draft, &chunk.context_text, None)])
    }
}
