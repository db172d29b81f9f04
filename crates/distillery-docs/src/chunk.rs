//! Structure-aware chunking within a token budget, and context grouping.
//!
//! Sections start at headings and never share a chunk, so that an edit of one section changes one chunk and
//! only that chunk is generated again. With `pack_sections` on, consecutive sections under one top-level
//! heading share a chunk up to `max_tokens` instead: a handbook of short sections becomes a few chunks, so
//! one generation call writes several pairs over them instead of one call per two sentences (the three
//! example documents: 4 chunks instead of 12, about 40% of the tokens per verified pair), at the price of
//! that granularity (an edit regenerates the packed chunk holding it, and the chunks after it when the
//! packing shifts). The chunk's heading path is the headings its sections share; the subsection headings
//! are in its text. A new top-level section always starts a new chunk. Inside a chunk, whole blocks are
//! packed up to `max_tokens`; a block over budget is split at sentence boundaries, a sentence over budget
//! at word boundaries (the only place a sentence is ever cut), and a single "word" over budget (a multi-megabyte
//! hex string, a base64 blob) at character boundaries. No chunk is over `max_tokens` nor over `max_chars`
//! characters, whatever the tokenizer says, so a chunk record always fits a Kafka message. Optional overlap
//! repeats the previous chunk's last sentences. Every chunk's text is exactly its char span of the
//! document's canonical text.
//!
//! A chunk's generation context is the chunk plus its nearest neighbours from the same top-level section,
//! added alternately before and after while the context budget allows.

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

use crate::blocks::{BLOCK_SEPARATOR, BlockKind, Extracted};
use crate::tokens::TokenCounter;

/// Chunking settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChunkConfig {
    /// Upper bound of one chunk, in tokens.
    pub max_tokens: usize,
    /// Tokens of the previous chunk's closing sentences repeated at the start of the next (same section).
    pub overlap_tokens: usize,
    /// Chunks under this many tokens merge into the previous chunk of their section when it has room.
    pub min_tokens: usize,
    /// Budget of a generation context (the chunk plus neighbours), in tokens.
    pub context_tokens: usize,
    /// Consecutive sections under the same top-level heading share a chunk while it stays within budget:
    /// far fewer generation calls for documents of short sections, but an edit regenerates the packed
    /// chunk holding it (and those after it when the packing shifts) rather than its section alone. Off:
    /// every heading starts a new chunk.
    pub pack_sections: bool,
    /// Upper bound of one chunk in characters, whatever the tokenizer counts (a context holds at most
    /// `max_chars * context_tokens / max_tokens`): it keeps every chunk record far below Kafka's message
    /// size limit.
    pub max_chars: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        ChunkConfig {
            max_tokens: 384,
            overlap_tokens: 0,
            min_tokens: 24,
            context_tokens: 1024,
            pack_sections: false,
            max_chars: 6144,
        }
    }
}

impl ChunkConfig {
    pub fn validate(&self, section: &str, errors: &mut Vec<String>) {
        if self.max_tokens < 16 {
            errors.push(format!("{section}.max_tokens must be >= 16 (got {})", self.max_tokens));
        }
        if self.overlap_tokens >= self.max_tokens / 2 {
            errors.push(format!("{section}.overlap_tokens must be < max_tokens / 2"));
        }
        if self.context_tokens < self.max_tokens {
            errors.push(format!("{section}.context_tokens must be >= max_tokens"));
        }
        if !(64..=200_000).contains(&self.max_chars) {
            errors.push(format!("{section}.max_chars must be between 64 and 200000 (got {})", self.max_chars));
        }
    }

    /// Characters a context may hold.
    pub fn context_chars(&self) -> usize {
        self.max_chars.saturating_mul(self.context_tokens) / self.max_tokens.max(1)
    }
}

/// A budget of tokens and characters.
#[derive(Debug, Clone, Copy)]
struct Budget {
    tokens: usize,
    chars: usize,
}

impl Budget {
    fn of(cfg: &ChunkConfig) -> Budget {
        Budget { tokens: cfg.max_tokens, chars: cfg.max_chars.max(1) }
    }
    fn fits(&self, text: &str, tokens: usize) -> bool {
        tokens <= self.tokens && text.chars().count() <= self.chars
    }
}

/// One chunk of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Piece {
    pub text: String,
    pub heading_path: Vec<String>,
    /// Index of the section (a new one starts at every heading).
    pub section: usize,
    pub page_start: Option<u32>,
    pub page_end: Option<u32>,
    /// Char offsets in the canonical text.
    pub char_start: usize,
    pub char_end: usize,
    pub tokens: usize,
}

#[derive(Debug, Clone)]
struct Unit {
    start: usize, // byte offsets into the canonical text
    end: usize,
    tokens: usize,
    /// Characters of the span.
    chars: usize,
    page: Option<u32>,
}

impl Unit {
    fn new(canonical: &str, start: usize, end: usize, tokens: usize, page: Option<u32>) -> Unit {
        Unit { start, end, tokens, chars: canonical[start..end].chars().count(), page }
    }
}

#[derive(Debug, Default)]
struct Open {
    units: Vec<Unit>,
    tokens: usize,
    /// The headings every section of the open chunk shares, and the sections its first and last units are in.
    path: Vec<String>,
    section: usize,
    last_section: usize,
}

impl Open {
    /// Adds a unit of the section `section` under `path`.
    fn push(&mut self, unit: Unit, path: &[String], section: usize) {
        if self.units.is_empty() {
            self.path = path.to_vec();
            self.section = section;
        } else {
            let shared = self.path.iter().zip(path).take_while(|(a, b)| a == b).count();
            self.path.truncate(shared);
        }
        self.last_section = section;
        self.units.push(unit);
    }
}

/// Cuts a document into chunks.
pub fn chunk(doc: &Extracted, counter: &dyn TokenCounter, cfg: &ChunkConfig) -> Vec<Piece> {
    let canonical = doc.text();
    let sep_tokens = 1;
    let mut pieces: Vec<(Vec<Unit>, Vec<String>, usize)> = Vec::new();
    let mut headings: Vec<(u8, String)> = Vec::new();
    let mut section = 0usize;
    let mut open = Open::default();
    let mut offset = 0usize;

    let emit = |open: &mut Open, pieces: &mut Vec<(Vec<Unit>, Vec<String>, usize)>| {
        if !open.units.is_empty() {
            pieces.push((std::mem::take(&mut open.units), std::mem::take(&mut open.path), open.section));
        }
        open.tokens = 0;
    };

    for block in &doc.blocks {
        let start = offset;
        let end = start + block.text.len();
        offset = end + BLOCK_SEPARATOR.len();
        if let BlockKind::Heading(level) = block.kind {
            let top = headings.first().map(|(_, t)| t.clone());
            while headings.last().is_some_and(|(l, _)| *l >= level) {
                headings.pop();
            }
            headings.push((level, block.text.clone()));
            section += 1;
            if !cfg.pack_sections || headings.first().map(|(_, t)| t) != top.as_ref() {
                emit(&mut open, &mut pieces);
            }
            continue;
        }
        let path: Vec<String> = headings.iter().map(|(_, t)| t.clone()).collect();
        for unit in split_block(&canonical, start, end, block.kind, block.page, counter, Budget::of(cfg)) {
            let open_chars: usize = open.units.iter().map(|u| u.chars).sum::<usize>() + open.units.len() * 2;
            if open.tokens > 0
                && (open.tokens + sep_tokens + unit.tokens > cfg.max_tokens || open_chars + unit.chars > cfg.max_chars)
            {
                let tail = overlap_tail(&canonical, &open.units, counter, cfg.overlap_tokens);
                let tail_section = open.last_section;
                emit(&mut open, &mut pieces);
                // The closing sentences of another section are not repeated into this one.
                if let Some(t) = tail
                    && tail_section == section
                    && t.tokens + sep_tokens + unit.tokens <= cfg.max_tokens
                    && t.chars + 2 + unit.chars <= cfg.max_chars
                {
                    open.tokens = t.tokens;
                    open.push(t, &path, section);
                }
            }
            open.tokens += unit.tokens + if open.units.is_empty() { 0 } else { sep_tokens };
            open.push(unit, &path, section);
        }
    }
    emit(&mut open, &mut pieces);

    // Merge runts into the previous chunk of the same section when that stays within budget.
    let mut merged: Vec<(Vec<Unit>, Vec<String>, usize)> = Vec::new();
    for p in pieces {
        let tokens: usize = p.0.iter().map(|u| u.tokens).sum();
        let span = |units: &[Unit]| {
            let s = units.iter().map(|u| u.start).min().unwrap_or(0);
            let e = units.iter().map(|u| u.end).max().unwrap_or(0);
            canonical[s..e].chars().count()
        };
        if let Some(prev) = merged.last_mut()
            && prev.2 == p.2
            && tokens < cfg.min_tokens
            && prev.0.iter().map(|u| u.tokens).sum::<usize>() + tokens + sep_tokens <= cfg.max_tokens
            && span(&prev.0) + span(&p.0) + 2 <= cfg.max_chars
        {
            prev.0.extend(p.0);
            continue;
        }
        merged.push(p);
    }

    let mut chars = CharCursor::new(&canonical);
    merged
        .into_iter()
        .map(|(units, heading_path, section)| {
            let start = units.iter().map(|u| u.start).min().unwrap_or(0);
            let end = units.iter().map(|u| u.end).max().unwrap_or(0);
            let text = canonical[start..end].to_string();
            let pages: Vec<u32> = units.iter().filter_map(|u| u.page).collect();
            Piece {
                tokens: counter.count(&text),
                char_start: chars.char_index(start),
                char_end: chars.char_index(end),
                text,
                heading_path,
                section,
                page_start: pages.iter().min().copied(),
                page_end: pages.iter().max().copied(),
            }
        })
        .collect()
}

/// Splits a block into units within budget: the block, else its lines (tables, code, lists) or
/// sentences, else words, else characters.
fn split_block(
    canonical: &str,
    start: usize,
    end: usize,
    kind: BlockKind,
    page: Option<u32>,
    counter: &dyn TokenCounter,
    budget: Budget,
) -> Vec<Unit> {
    let text = &canonical[start..end];
    // A block far over the character budget is not counted whole (a multi-megabyte line costs the tokenizer
    // dearly); it is split first.
    let tokens = if text.len() <= budget.chars.saturating_mul(4) { counter.count(text) } else { usize::MAX };
    if tokens != usize::MAX && budget.fits(text, tokens) {
        return vec![Unit::new(canonical, start, end, tokens, page)];
    }
    let spans: Vec<(usize, usize)> = match kind {
        BlockKind::Table | BlockKind::Code => line_spans(text),
        _ => text.split_sentence_bound_indices().map(|(i, s)| (i, i + s.len())).collect(),
    };
    let mut out: Vec<Unit> = Vec::new();
    for (s, e) in spans {
        let piece = &text[s..e];
        if piece.trim().is_empty() {
            continue;
        }
        let t = if piece.len() <= budget.chars.saturating_mul(4) { counter.count(piece) } else { usize::MAX };
        if t != usize::MAX && budget.fits(piece, t) {
            // Pack consecutive sentences of the same block together while they fit.
            if let Some(last) = out.last_mut() {
                let joined_text = &canonical[last.start..start + e];
                if joined_text.len() <= budget.chars.saturating_mul(4) {
                    let joined = counter.count(joined_text);
                    if budget.fits(joined_text, joined) {
                        last.end = start + e;
                        last.tokens = joined;
                        last.chars = joined_text.chars().count();
                        continue;
                    }
                }
            }
            out.push(Unit::new(canonical, start + s, start + e, t, page));
        } else {
            out.extend(split_words(canonical, start + s, start + e, counter, budget, page));
        }
    }
    for u in &mut out {
        trim_unit(canonical, u, counter);
    }
    out
}

fn line_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        spans.push((pos, pos + line.len()));
        pos += line.len();
    }
    spans
}

/// Hard split of an oversized sentence at word boundaries; a word over budget by itself is cut at character
/// boundaries. Each word is counted once (the sum of a unit's word counts decides where it ends), so a long
/// run of short words costs linear time; a unit whose exact count is over budget after all (a tokenizer
/// merging across words) is split again word by word, counting exactly.
fn split_words(
    canonical: &str,
    start: usize,
    end: usize,
    counter: &dyn TokenCounter,
    budget: Budget,
    page: Option<u32>,
) -> Vec<Unit> {
    let text = &canonical[start..end];
    let mut out = Vec::new();
    // The open unit: (start, end, summed tokens, characters).
    let mut cur: Option<(usize, usize, usize, usize)> = None;
    let close = |out: &mut Vec<Unit>, cs: usize, ce: usize| {
        if ce <= cs {
            return;
        }
        let span = &canonical[cs..ce];
        let tokens = counter.count(span);
        if tokens <= budget.tokens {
            out.push(Unit::new(canonical, cs, ce, tokens, page));
        } else {
            out.extend(split_words_exact(canonical, cs, ce, counter, budget, page));
        }
    };
    for (i, w) in text.split_word_bound_indices() {
        let (ws, we) = (start + i, start + i + w.len());
        let wc = w.chars().count();
        let wt = if wc <= budget.chars { counter.count(w) } else { usize::MAX };
        if wt > budget.tokens || wc > budget.chars {
            if let Some((cs, ce, _, _)) = cur.take() {
                close(&mut out, cs, ce);
            }
            out.extend(split_chars(canonical, ws, we, counter, budget, page));
            continue;
        }
        cur = match cur {
            Some((cs, _, t, c)) if t + wt <= budget.tokens && c + wc <= budget.chars => Some((cs, we, t + wt, c + wc)),
            Some((cs, ce, _, _)) => {
                close(&mut out, cs, ce);
                Some((ws, we, wt, wc))
            }
            None => Some((ws, we, wt, wc)),
        };
    }
    if let Some((cs, ce, _, _)) = cur {
        close(&mut out, cs, ce);
    }
    out
}

/// [`split_words`] counting every candidate unit exactly (bounded input: one unit's worth of text).
fn split_words_exact(
    canonical: &str,
    start: usize,
    end: usize,
    counter: &dyn TokenCounter,
    budget: Budget,
    page: Option<u32>,
) -> Vec<Unit> {
    let text = &canonical[start..end];
    let mut out = Vec::new();
    let mut cur: Option<(usize, usize)> = None;
    for (i, w) in text.split_word_bound_indices() {
        let (ws, we) = (start + i, start + i + w.len());
        cur = match cur {
            None => Some((ws, we)),
            Some((cs, ce)) => {
                let joined = &canonical[cs..we];
                if budget.fits(joined, counter.count(joined)) {
                    Some((cs, we))
                } else {
                    out.extend(split_chars(canonical, cs, ce, counter, budget, page));
                    Some((ws, we))
                }
            }
        };
    }
    if let Some((cs, ce)) = cur {
        out.extend(split_chars(canonical, cs, ce, counter, budget, page));
    }
    out
}

/// Cuts one unsplittable run of text (no word boundary in it) into pieces within budget, at character
/// boundaries: each piece takes as many characters as the budget allows, fewer while the tokenizer counts
/// more tokens than the budget.
fn split_chars(
    canonical: &str,
    start: usize,
    end: usize,
    counter: &dyn TokenCounter,
    budget: Budget,
    page: Option<u32>,
) -> Vec<Unit> {
    let mut out = Vec::new();
    let mut pos = start;
    while pos < end {
        // The first `budget.chars` characters from `pos`.
        let mut take = canonical[pos..end].char_indices().nth(budget.chars).map_or(end - pos, |(i, _)| i);
        loop {
            let piece = &canonical[pos..pos + take];
            let tokens = counter.count(piece);
            if tokens <= budget.tokens || take <= 1 {
                out.push(Unit::new(canonical, pos, pos + take, tokens, page));
                break;
            }
            // Shrink in proportion to the excess, then to a character boundary.
            let mut smaller = (take as u128 * budget.tokens as u128 / tokens as u128) as usize * 9 / 10;
            smaller = smaller.clamp(1, take - 1);
            while !canonical.is_char_boundary(pos + smaller) {
                smaller -= 1;
            }
            take = smaller.max(canonical[pos..].chars().next().map_or(1, char::len_utf8));
        }
        pos += take;
    }
    out
}

fn trim_unit(canonical: &str, u: &mut Unit, counter: &dyn TokenCounter) {
    let s = &canonical[u.start..u.end];
    let lead = s.len() - s.trim_start().len();
    let trail = s.len() - s.trim_end().len();
    if lead + trail > 0 && lead + trail < s.len() {
        u.start += lead;
        u.end -= trail;
        u.tokens = counter.count(&canonical[u.start..u.end]);
        u.chars = canonical[u.start..u.end].chars().count();
    }
}

/// The closing sentences of a chunk that fit in `budget` tokens, as a unit to start the next chunk.
fn overlap_tail(canonical: &str, units: &[Unit], counter: &dyn TokenCounter, budget: usize) -> Option<Unit> {
    if budget == 0 {
        return None;
    }
    let last = units.last()?;
    let text = &canonical[last.start..last.end];
    let mut start = None;
    for (i, _) in text.split_sentence_bound_indices().collect::<Vec<_>>().into_iter().rev() {
        if counter.count(&text[i..]) > budget {
            break;
        }
        start = Some(i);
    }
    let s = start?;
    let mut u = Unit::new(canonical, last.start + s, last.end, counter.count(&text[s..]), last.page);
    trim_unit(canonical, &mut u, counter);
    Some(u)
}

/// Converts monotonically increasing byte offsets to char offsets in one pass.
struct CharCursor<'a> {
    text: &'a str,
    byte: usize,
    chars: usize,
}

impl<'a> CharCursor<'a> {
    fn new(text: &'a str) -> Self {
        CharCursor { text, byte: 0, chars: 0 }
    }
    fn char_index(&mut self, byte: usize) -> usize {
        if byte < self.byte {
            return self.text[..byte].chars().count();
        }
        self.chars += self.text[self.byte..byte].chars().count();
        self.byte = byte;
        self.chars
    }
}

/// The context of each chunk: indices (in document order) of the chunk and its neighbours from the same
/// top-level section that fit in `context_tokens`.
pub fn contexts(pieces: &[Piece], cfg: &ChunkConfig) -> Vec<Vec<usize>> {
    let top = |p: &Piece| p.heading_path.first().cloned();
    let chars: Vec<usize> = pieces.iter().map(|p| p.text.chars().count()).collect();
    let max_chars = cfg.context_chars();
    (0..pieces.len())
        .map(|i| {
            let mut members = vec![i];
            let mut total = pieces[i].tokens;
            let mut total_chars = chars[i];
            let (mut left, mut right) = (i, i);
            let (mut can_left, mut can_right) = (true, true);
            while can_left || can_right {
                if can_right {
                    let j = right + 1;
                    if j < pieces.len()
                        && top(&pieces[j]) == top(&pieces[i])
                        && total + pieces[j].tokens <= cfg.context_tokens
                        && total_chars + chars[j] <= max_chars
                    {
                        total += pieces[j].tokens;
                        total_chars += chars[j];
                        members.push(j);
                        right = j;
                    } else {
                        can_right = false;
                    }
                }
                if can_left {
                    if left > 0
                        && top(&pieces[left - 1]) == top(&pieces[i])
                        && total + pieces[left - 1].tokens <= cfg.context_tokens
                        && total_chars + chars[left - 1] <= max_chars
                    {
                        left -= 1;
                        total += pieces[left].tokens;
                        total_chars += chars[left];
                        members.push(left);
                    } else {
                        can_left = false;
                    }
                }
            }
            members.sort_unstable();
            members
        })
        .collect()
}

/// The text of a context: member chunks in order, each opened by its number (`[1] `, `[2] `, ...) so that
/// quotes and citations can be traced to a chunk, with a section line whenever the heading path changes.
pub fn context_text(pieces: &[Piece], members: &[usize]) -> String {
    let mut out = String::new();
    let mut last_path: Option<&Vec<String>> = None;
    for (n, &m) in members.iter().enumerate() {
        let p = &pieces[m];
        if last_path != Some(&p.heading_path) && !p.heading_path.is_empty() {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str("## ");
            out.push_str(&p.heading_path.join(" > "));
        }
        last_path = Some(&p.heading_path);
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&format!("[{}] ", n + 1));
        out.push_str(&p.text);
    }
    out
}

pub use distillery_core::context::context_members;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::Block;
    use crate::tokens::ApproxCounter;

    /// A sentence of `n` words; capitalised so that sentence boundaries follow (UAX #29 does not break
    /// before a lowercase word).
    fn words(n: usize, tag: &str) -> String {
        (0..n).map(|i| format!("{tag}{i}")).collect::<Vec<_>>().join(" ") + "."
    }

    fn doc(blocks: Vec<Block>) -> Extracted {
        Extracted { blocks, pages: None }
    }

    #[test]
    fn sections_split_at_headings_and_spans_match_text() {
        let d = doc(vec![
            Block::new(BlockKind::Heading(1), "Guide"),
            Block::new(BlockKind::Paragraph, "Intro paragraph here."),
            Block::new(BlockKind::Heading(2), "Leave"),
            Block::new(BlockKind::Paragraph, "Annual leave is twenty five days."),
            Block::new(BlockKind::Paragraph, "Sick leave is separate."),
            Block::new(BlockKind::Heading(2), "Pay"),
            Block::new(BlockKind::Paragraph, "Salaries are paid monthly. Ünïcödé ok."),
        ]);
        let cfg = ChunkConfig { max_tokens: 100, min_tokens: 0, pack_sections: false, ..Default::default() };
        let pieces = chunk(&d, &ApproxCounter, &cfg);
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces[0].heading_path, vec!["Guide"]);
        assert_eq!(pieces[1].heading_path, vec!["Guide", "Leave"]);
        assert_eq!(pieces[1].text, "Annual leave is twenty five days.\n\nSick leave is separate.");
        assert_eq!(pieces[2].heading_path, vec!["Guide", "Pay"]);
        let canonical: Vec<char> = d.text().chars().collect();
        for p in &pieces {
            let span: String = canonical[p.char_start..p.char_end].iter().collect();
            assert_eq!(span, p.text);
        }
    }

    /// Short sections under one top-level heading share a chunk (one generation call for them), within the
    /// budget; its heading path is what they share, their own headings are in its text; a new top-level
    /// heading still starts a new chunk.
    #[test]
    fn short_sections_are_packed_under_their_top_level_heading() {
        let d = doc(vec![
            Block::new(BlockKind::Heading(1), "Guide"),
            Block::new(BlockKind::Paragraph, "Intro paragraph here."),
            Block::new(BlockKind::Heading(2), "Leave"),
            Block::new(BlockKind::Paragraph, "Annual leave is twenty five days."),
            Block::new(BlockKind::Heading(2), "Pay"),
            Block::new(BlockKind::Paragraph, "Salaries are paid monthly."),
            Block::new(BlockKind::Heading(3), "Bonus"),
            Block::new(BlockKind::Paragraph, words(30, "B")),
            Block::new(BlockKind::Heading(1), "Appendix"),
            Block::new(BlockKind::Paragraph, "Contacts are listed here."),
        ]);
        let cfg = ChunkConfig { max_tokens: 30, min_tokens: 0, pack_sections: true, ..Default::default() };
        let pieces = chunk(&d, &ApproxCounter, &cfg);
        let texts: Vec<&str> = pieces.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(pieces.len(), 3, "{texts:?}");
        assert_eq!(
            pieces[0].text,
            "Intro paragraph here.\n\nLeave\n\nAnnual leave is twenty five days.\n\nPay\n\nSalaries are paid monthly."
        );
        assert_eq!(pieces[0].heading_path, vec!["Guide"]);
        // The next section does not fit: it starts a chunk of its own, with its own path.
        assert_eq!(pieces[1].heading_path, vec!["Guide", "Pay", "Bonus"]);
        assert!(pieces[1].text.starts_with("B0 "));
        assert_eq!(pieces[2].heading_path, vec!["Appendix"], "a new top-level section starts a new chunk");
        assert_eq!(pieces[2].text, "Contacts are listed here.");
        let canonical: Vec<char> = d.text().chars().collect();
        for p in &pieces {
            assert!(p.tokens <= 30, "{} tokens", p.tokens);
            assert_eq!(canonical[p.char_start..p.char_end].iter().collect::<String>(), p.text);
        }
        // Unpacked, every section is a chunk of its own.
        let unpacked = chunk(&d, &ApproxCounter, &ChunkConfig { pack_sections: false, ..cfg });
        assert_eq!(unpacked.len(), 5);
    }

    #[test]
    fn budget_is_respected_and_sentences_are_not_cut() {
        let para = (0..12).map(|i| words(8, &format!("S{i}w"))).collect::<Vec<_>>().join(" ");
        let d = doc(vec![Block::new(BlockKind::Paragraph, para.clone())]);
        let cfg =
            ChunkConfig { max_tokens: 40, min_tokens: 0, overlap_tokens: 0, context_tokens: 200, ..Default::default() };
        let pieces = chunk(&d, &ApproxCounter, &cfg);
        assert!(pieces.len() > 2);
        for p in &pieces {
            assert!(p.tokens <= 40, "{} tokens: {}", p.tokens, p.text);
            assert!(p.text.ends_with('.'), "cut mid-sentence: {}", p.text);
        }
        // Nothing is lost: the chunks cover every sentence in order.
        let joined = pieces.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join(" ");
        assert_eq!(joined, para);
    }

    #[test]
    fn oversized_sentence_splits_at_words() {
        let long = words(200, "w");
        let d = doc(vec![Block::new(BlockKind::Paragraph, long)]);
        let cfg =
            ChunkConfig { max_tokens: 50, min_tokens: 0, overlap_tokens: 0, context_tokens: 100, ..Default::default() };
        let pieces = chunk(&d, &ApproxCounter, &cfg);
        // ~223 tokens of one sentence in pieces of at most 50.
        assert!(pieces.len() >= 5, "{}", pieces.len());
        for p in &pieces {
            assert!(p.tokens <= 50);
            assert!(!p.text.starts_with(' ') && !p.text.ends_with(' '));
        }
    }

    /// Issue 14, defect 4: an unsplittable run of text (a multi-megabyte hex string) became one chunk over
    /// Kafka's 1 MB message limit. It is cut at character boundaries within both budgets.
    #[test]
    fn an_unsplittable_word_is_cut_within_the_budgets() {
        let hex: String = (0..4 * 1024 * 1024).map(|i| b"0123456789abcdef"[i % 16] as char).collect();
        let d = doc(vec![
            Block::new(BlockKind::Paragraph, "Before the blob."),
            Block::new(BlockKind::Paragraph, format!("Key: {hex} end.")),
        ]);
        let cfg = ChunkConfig::default();
        let pieces = chunk(&d, &ApproxCounter, &cfg);
        assert!(pieces.len() > 600, "{} pieces", pieces.len());
        for p in &pieces {
            assert!(p.tokens <= cfg.max_tokens, "{} tokens", p.tokens);
            assert!(p.text.chars().count() <= cfg.max_chars, "{} chars", p.text.chars().count());
        }
        let joined: String = pieces.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("");
        let joined: String = joined.chars().filter(|c| !c.is_whitespace()).collect();
        assert!(joined.contains(&hex), "nothing of the blob is lost");
        for c in contexts(&pieces, &cfg) {
            let chars: usize = c.iter().map(|&i| pieces[i].text.chars().count()).sum();
            assert!(chars <= cfg.context_chars(), "a context of {chars} characters");
        }
    }

    /// A tokenizer that counts one token per four bytes of non-ASCII text too (no character budget would
    /// stop a run of wide characters otherwise) still yields chunks within `max_chars`.
    #[test]
    fn wide_characters_respect_the_character_budget() {
        #[derive(Debug)]
        struct Sparse;
        impl TokenCounter for Sparse {
            fn count(&self, text: &str) -> usize {
                text.len() / 64
            }
            fn name(&self) -> String {
                "sparse".into()
            }
        }
        let text = "語".repeat(100_000);
        let d = doc(vec![Block::new(BlockKind::Paragraph, text)]);
        let cfg = ChunkConfig { max_chars: 1000, ..ChunkConfig::default() };
        let pieces = chunk(&d, &Sparse, &cfg);
        assert_eq!(pieces.iter().map(|p| p.text.chars().count()).sum::<usize>(), 100_000);
        assert!(pieces.iter().all(|p| p.text.chars().count() <= 1000 && p.tokens <= cfg.max_tokens));
    }

    #[test]
    fn overlap_repeats_closing_sentences() {
        let paras: Vec<Block> = (0..6)
            .map(|i| {
                Block::new(
                    BlockKind::Paragraph,
                    format!("{} {}", words(10, &format!("A{i}")), words(3, &format!("Z{i}"))),
                )
            })
            .collect();
        let d = doc(paras);
        let cfg = ChunkConfig {
            max_tokens: 60,
            min_tokens: 0,
            overlap_tokens: 12,
            context_tokens: 200,
            ..Default::default()
        };
        let pieces = chunk(&d, &ApproxCounter, &cfg);
        assert!(pieces.len() >= 2);
        for w in pieces.windows(2) {
            let last_sentence = w[0].text.rsplit(". ").next().unwrap();
            assert!(w[1].text.starts_with(last_sentence.trim_start()), "{:?} / {:?}", w[0].text, w[1].text);
            assert!(w[1].char_start < w[0].char_end);
        }
    }

    #[test]
    fn tables_split_by_rows() {
        let rows = (0..40).map(|i| format!("| row {i} | value {i} |")).collect::<Vec<_>>().join("\n");
        let d = doc(vec![Block::new(BlockKind::Table, format!("| a | b |\n| --- | --- |\n{rows}"))]);
        let cfg =
            ChunkConfig { max_tokens: 60, min_tokens: 0, overlap_tokens: 0, context_tokens: 100, ..Default::default() };
        let pieces = chunk(&d, &ApproxCounter, &cfg);
        assert!(pieces.len() > 3);
        for p in &pieces {
            assert!(p.text.starts_with('|') && p.text.ends_with('|'), "{}", p.text);
        }
    }

    #[test]
    fn contexts_grow_within_section_and_budget() {
        let mut blocks = vec![Block::new(BlockKind::Heading(1), "A")];
        for i in 0..5 {
            blocks.push(Block::new(BlockKind::Paragraph, words(30, &format!("a{i}"))));
        }
        blocks.push(Block::new(BlockKind::Heading(1), "B"));
        blocks.push(Block::new(BlockKind::Paragraph, words(30, "b")));
        // Each paragraph is ~34 tokens: one per chunk, three per context.
        let cfg =
            ChunkConfig { max_tokens: 60, min_tokens: 0, overlap_tokens: 0, context_tokens: 110, ..Default::default() };
        let pieces = chunk(&doc(blocks), &ApproxCounter, &cfg);
        assert_eq!(pieces.len(), 6);
        let ctx = contexts(&pieces, &cfg);
        assert_eq!(ctx[0], vec![0, 1, 2]);
        assert_eq!(ctx[2], vec![1, 2, 3]);
        assert_eq!(ctx[4], vec![2, 3, 4]);
        assert_eq!(ctx[5], vec![5], "never crosses into another section");
        for (i, c) in ctx.iter().enumerate() {
            assert!(c.contains(&i));
            assert!(c.iter().map(|&m| pieces[m].tokens).sum::<usize>() <= 110);
        }
        let text = context_text(&pieces, &ctx[0]);
        assert!(text.starts_with("## A\n\n[1] "));
        let members = context_members(&text);
        assert_eq!(members.len(), 3);
        for (m, &i) in members.iter().zip(&ctx[0]) {
            assert_eq!(*m, pieces[i].text);
        }
    }
}
