//! HTML: the main text of the page (Readability's algorithm, via dom_smoothie), rendered as Markdown so
//! headings, lists and tables keep their structure, then parsed into blocks. Pages too short for the
//! article heuristics fall back to the whole body.

use dom_smoothie::{Config, Readability, TextMode};

use crate::ExtractError;
use crate::blocks::{Block, BlockKind, Extracted};

pub fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let (html, _) = crate::text::decode(bytes);
    // Page chrome never carries the content: drop it before the article heuristics look.
    let clean = || {
        let doc = dom_query::Document::from(html.as_str());
        doc.select("script, style, noscript, nav, footer, header, aside, template, form, iframe").remove();
        doc
    };
    let cfg = Config { text_mode: TextMode::Markdown, char_threshold: 200, ..Config::default() };
    let article = Readability::with_document(clean(), None, Some(cfg))
        .map_err(|e| ExtractError::Corrupt(e.to_string()))?
        .parse()
        .ok()
        .filter(|a| a.text_content.trim().chars().count() > 80);
    let (title, markdown) = match article {
        Some(a) => (a.title.trim().to_string(), a.text_content.to_string()),
        None => {
            let doc = clean();
            let title = doc.select("title").text().trim().to_string();
            let body = doc.select("body").nodes().first().map(|n| n.md(None).to_string()).unwrap_or_default();
            (title, body)
        }
    };
    let mut out = crate::markdown::extract(markdown.as_bytes());
    // Readability lifts the page title out of the content; put it back as the top heading.
    let has_top = out.blocks.iter().any(|b| b.kind == BlockKind::Heading(1));
    if !title.is_empty() && !has_top && out.blocks.first().is_none_or(|b| b.text != title) {
        out.blocks.insert(0, Block::new(BlockKind::Heading(1), title));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_text_keeps_headings_and_drops_chrome() {
        let para = "Employees receive 25 days of paid annual leave per calendar year, plus public holidays. ".repeat(4);
        let html = format!(
            "<html><head><title>Handbook</title><script>var x = 1;</script></head><body>\
             <nav><a href='/'>Home</a> | <a href='/about'>About</a></nav>\
             <article><h1>Leave policy</h1><p>{para}</p><h2>Carry-over</h2><p>{para}</p>\
             <ul><li>First item</li><li>Second item</li></ul>\
             <table><tr><th>Type</th><th>Days</th></tr><tr><td>Annual</td><td>25</td></tr></table></article>\
             <footer>© 2026 Larkspur</footer></body></html>"
        );
        let e = extract(html.as_bytes()).unwrap();
        let text = e.text();
        assert!(e.blocks.iter().any(|b| b.kind == BlockKind::Heading(2) && b.text == "Carry-over"), "{:?}", e.blocks);
        assert!(text.contains("25 days of paid annual leave"));
        assert!(!text.contains("var x"), "{text}");
        assert!(!text.contains("Home"), "{text}");
        assert!(
            e.blocks.iter().any(|b| b.kind == BlockKind::Table && b.text.contains("| Annual | 25 |")),
            "{:?}",
            e.blocks
        );
    }

    #[test]
    fn short_pages_fall_back_to_the_body() {
        let e = extract(b"<html><head><title>Note</title></head><body><p>Short note about the VPN.</p></body></html>")
            .unwrap();
        assert!(e.text().contains("Short note about the VPN."));
        assert_eq!(e.blocks[0], Block::new(BlockKind::Heading(1), "Note"));
    }
}
