//! Markdown via pulldown-cmark: headings keep their level, list items and tables (as Markdown tables)
//! become their own blocks, code blocks keep their layout.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use crate::blocks::{Block, BlockKind, Extracted};

pub fn extract(bytes: &[u8]) -> Extracted {
    let (text, _) = crate::text::decode(bytes);
    let parser =
        Parser::new_ext(&text, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_FOOTNOTES);
    let mut blocks = Vec::new();
    let mut buf = String::new();
    let mut kind: Option<BlockKind> = None;
    let mut list_depth = 0usize;
    let mut quote_depth = 0usize;
    let mut table: Vec<Vec<String>> = Vec::new();
    let mut in_table = false;
    let mut cell = String::new();

    let flush = |blocks: &mut Vec<Block>, buf: &mut String, kind: BlockKind| {
        if !buf.trim().is_empty() {
            blocks.push(Block::new(kind, std::mem::take(buf)));
        }
        buf.clear();
    };

    for event in parser {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                kind = Some(BlockKind::Heading(heading_level(level)));
            }
            Event::End(TagEnd::Heading(_)) => {
                flush(&mut blocks, &mut buf, kind.take().unwrap_or(BlockKind::Paragraph));
            }
            Event::Start(Tag::Paragraph) if kind.is_none() => {
                kind = Some(if list_depth > 0 {
                    BlockKind::ListItem
                } else if quote_depth > 0 {
                    BlockKind::Quote
                } else {
                    BlockKind::Paragraph
                });
            }
            Event::End(TagEnd::Paragraph) => {
                if list_depth == 0 {
                    flush(&mut blocks, &mut buf, kind.take().unwrap_or(BlockKind::Paragraph));
                } else {
                    buf.push(' ');
                }
            }
            Event::Start(Tag::List(_)) => {
                if list_depth > 0 {
                    // A nested list ends the current item's own text.
                    flush(&mut blocks, &mut buf, BlockKind::ListItem);
                }
                list_depth += 1;
            }
            Event::End(TagEnd::List(_)) => list_depth = list_depth.saturating_sub(1),
            Event::Start(Tag::Item) => {
                flush(&mut blocks, &mut buf, BlockKind::ListItem);
                kind = Some(BlockKind::ListItem);
            }
            Event::End(TagEnd::Item) => {
                flush(&mut blocks, &mut buf, BlockKind::ListItem);
                kind = None;
            }
            Event::Start(Tag::BlockQuote(_)) => quote_depth += 1,
            Event::End(TagEnd::BlockQuote(_)) => quote_depth = quote_depth.saturating_sub(1),
            Event::Start(Tag::CodeBlock(_)) => kind = Some(BlockKind::Code),
            Event::End(TagEnd::CodeBlock) => flush(&mut blocks, &mut buf, kind.take().unwrap_or(BlockKind::Code)),
            Event::Start(Tag::Table(_)) => {
                in_table = true;
                table.clear();
            }
            Event::End(TagEnd::Table) => {
                in_table = false;
                blocks.push(Block::new(BlockKind::Table, render_table(&table)));
                table.clear();
            }
            Event::Start(Tag::TableHead) | Event::Start(Tag::TableRow) => table.push(Vec::new()),
            Event::Start(Tag::TableCell) => cell.clear(),
            Event::End(TagEnd::TableCell) => {
                if let Some(row) = table.last_mut() {
                    row.push(cell.trim().to_string());
                }
            }
            Event::Text(t) | Event::Code(t) | Event::InlineMath(t) | Event::DisplayMath(t) => {
                if in_table {
                    cell.push_str(&t);
                } else {
                    buf.push_str(&t);
                }
            }
            Event::SoftBreak => {
                if in_table {
                    cell.push(' ')
                } else {
                    buf.push(' ')
                }
            }
            Event::HardBreak => buf.push('\n'),
            Event::Html(h) | Event::InlineHtml(h) => {
                // Keep text inside inline HTML out; only comments and tags are dropped.
                let stripped = strip_tags(&h);
                if in_table { cell.push_str(&stripped) } else { buf.push_str(&stripped) }
            }
            Event::FootnoteReference(_) | Event::TaskListMarker(_) | Event::Rule => {}
            _ => {}
        }
    }
    flush(&mut blocks, &mut buf, kind.unwrap_or(BlockKind::Paragraph));
    Extracted { blocks, pages: None }.normalize()
}

fn heading_level(l: HeadingLevel) -> u8 {
    match l {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// Rows as a Markdown table (first row is the header).
pub fn render_table(rows: &[Vec<String>]) -> String {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        out.push('|');
        for c in 0..width {
            out.push(' ');
            out.push_str(&row.get(c).map(|s| s.replace('|', "\\|").replace('\n', " ")).unwrap_or_default());
            out.push_str(" |");
        }
        out.push('\n');
        if i == 0 {
            out.push('|');
            for _ in 0..width {
                out.push_str(" --- |");
            }
            out.push('\n');
        }
    }
    out.trim_end().to_string()
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structure_is_kept() {
        let md = b"# Handbook\n\nIntro text\nwrapped.\n\n## Leave\n\n- Item one\n- Item **two**\n\n| Type | Days |\n|---|---|\n| Annual | 25 |\n\n```\ncode  keeps\n  layout\n```\n\n> quoted\n";
        let e = extract(md);
        let kinds: Vec<BlockKind> = e.blocks.iter().map(|b| b.kind).collect();
        assert_eq!(
            kinds,
            vec![
                BlockKind::Heading(1),
                BlockKind::Paragraph,
                BlockKind::Heading(2),
                BlockKind::ListItem,
                BlockKind::ListItem,
                BlockKind::Table,
                BlockKind::Code,
                BlockKind::Quote
            ]
        );
        assert_eq!(e.blocks[1].text, "Intro text wrapped.");
        assert_eq!(e.blocks[4].text, "Item two");
        assert_eq!(e.blocks[5].text, "| Type | Days |\n| --- | --- |\n| Annual | 25 |");
        assert_eq!(e.blocks[6].text, "code  keeps\n  layout");
    }
}
