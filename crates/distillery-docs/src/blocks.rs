//! The structural form every extractor produces: a sequence of blocks (headings with their level,
//! paragraphs, list items, tables, code), each with the page it sits on when the format has pages.

use serde::{Deserialize, Serialize};

/// What a block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "level")]
pub enum BlockKind {
    /// A heading of level 1 (outermost) to 6.
    Heading(u8),
    Paragraph,
    ListItem,
    /// A table rendered as a Markdown table, one row per line.
    Table,
    Code,
    Quote,
}

/// One structural unit of text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub kind: BlockKind,
    pub text: String,
    /// 1-based page number, for paged formats.
    pub page: Option<u32>,
}

impl Block {
    pub fn new(kind: BlockKind, text: impl Into<String>) -> Self {
        Block { kind, text: text.into(), page: None }
    }
    pub fn on_page(mut self, page: Option<u32>) -> Self {
        self.page = page;
        self
    }
}

/// A document's extracted text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extracted {
    pub blocks: Vec<Block>,
    /// Page count, for paged formats.
    pub pages: Option<u32>,
}

/// Separator between blocks in the canonical extracted text that char spans refer to.
pub const BLOCK_SEPARATOR: &str = "\n\n";

impl Extracted {
    /// The canonical text: blocks joined by a blank line. Chunk char spans are offsets into it.
    pub fn text(&self) -> String {
        self.blocks.iter().map(|b| b.text.as_str()).collect::<Vec<_>>().join(BLOCK_SEPARATOR)
    }

    /// Total characters of real text (not counting separators).
    pub fn text_chars(&self) -> usize {
        self.blocks.iter().map(|b| b.text.trim().chars().count()).sum()
    }

    /// Drops empty blocks and normalises whitespace inside each block.
    pub fn normalize(mut self) -> Self {
        for b in &mut self.blocks {
            b.text = match b.kind {
                BlockKind::Code | BlockKind::Table => b.text.trim_matches('\n').trim_end().to_string(),
                _ => collapse_whitespace(&b.text),
            };
        }
        self.blocks.retain(|b| !b.text.trim().is_empty());
        self
    }
}

/// Collapses runs of whitespace to single spaces and trims.
pub fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}
