//! PDF text with structure. pdf-extract (on lopdf) decodes fonts and reports every glyph with its text
//! matrix and size; this module lays glyphs out into lines, drops running headers, footers and page
//! numbers, joins lines into paragraphs (mending end-of-line hyphenation), recognises headings by font
//! size relative to the body text, normalises ligatures (NFKC), and keeps the page of every block.
//!
//! Text turned by a quarter, half or three-quarter turn (a landscape page kept in a portrait MediaBox
//! with `/Rotate`, or a rotated text matrix) is laid out in its own upright frame: every glyph's position
//! is taken along and across its baseline, so its lines read as the page displays them.

use std::collections::HashMap;

use pdf_extract::{MediaBox, OutputDev, OutputError, Transform};
use unicode_normalization::UnicodeNormalization;

use crate::ExtractError;
use crate::blocks::{Block, BlockKind, Extracted, collapse_whitespace};

/// A glyph, positioned in the upright frame of its orientation: `x` grows along the baseline, `y`
/// downwards across it.
#[derive(Debug, Clone)]
struct Glyph {
    x: f64,
    y: f64,
    end: f64,
    size: f64,
    /// Quarter turns (counter-clockwise, 0 to 3) of the baseline on the page.
    turn: u8,
    text: String,
    word_start: bool,
}

/// One page's glyphs, in content order.
struct Page {
    num: u32,
    /// The MediaBox's lower-left corner, its width and height.
    origin: (f64, f64),
    width: f64,
    height: f64,
    glyphs: Vec<Glyph>,
}

impl Page {
    /// Height of the upright frame of text turned by `turn` quarter turns.
    fn frame_height(&self, turn: u8) -> f64 {
        if turn.is_multiple_of(2) { self.height } else { self.width }
    }
}

/// Collects positioned glyphs per page.
#[derive(Default)]
struct Collector {
    word_start: bool,
    pages: Vec<Page>,
}

/// Quarter turns (0 to 3, counter-clockwise) nearest to the direction of the baseline vector `(dx, dy)`.
fn quarter_turns(dx: f64, dy: f64) -> u8 {
    let turns = (dy.atan2(dx) / std::f64::consts::FRAC_PI_2).round() as i64;
    turns.rem_euclid(4) as u8
}

/// A page point (`x`, `y` from the MediaBox's lower-left corner, y up) in the upright frame of text
/// turned by `turn` quarter turns on a page `width` by `height`: x along the baseline, y down across it.
fn to_frame(turn: u8, x: f64, y: f64, width: f64, height: f64) -> (f64, f64) {
    match turn {
        0 => (x, height - y),
        1 => (y, x),
        2 => (width - x, y),
        _ => (height - y, width - x),
    }
}

impl OutputDev for Collector {
    fn begin_page(
        &mut self,
        page_num: u32,
        media_box: &MediaBox,
        _art: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), OutputError> {
        let (width, height) = (media_box.urx - media_box.llx, media_box.ury - media_box.lly);
        let origin = (media_box.llx, media_box.lly);
        self.pages.push(Page { num: page_num, origin, width, height, glyphs: Vec::new() });
        Ok(())
    }

    fn end_page(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn output_character(
        &mut self,
        trm: &Transform,
        width: f64,
        _spacing: f64,
        font_size: f64,
        ch: &str,
    ) -> Result<(), OutputError> {
        // The baseline's direction picks the frame the glyph is read in; the font size is the side of the
        // square with the area of the transformed em square, the advance the em width along the baseline.
        let turn = quarter_turns(trm.m11, trm.m12);
        let text: String = ch.nfkc().filter(|c| !c.is_control() || *c == '\n').collect();
        if let Some(page) = self.pages.last_mut() {
            let (x, y) = to_frame(turn, trm.m31 - page.origin.0, trm.m32 - page.origin.1, page.width, page.height);
            let size = font_size * (trm.m11 * trm.m22 - trm.m12 * trm.m21).abs().sqrt();
            let advance = width * font_size * trm.m11.hypot(trm.m12);
            if size.is_finite() && advance.is_finite() && x.is_finite() && y.is_finite() {
                let word_start = self.word_start;
                page.glyphs.push(Glyph { x, y, end: x + advance, size, turn, text, word_start });
            }
        }
        self.word_start = false;
        Ok(())
    }

    fn begin_word(&mut self) -> Result<(), OutputError> {
        self.word_start = true;
        Ok(())
    }

    fn end_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn end_line(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Line {
    text: String,
    /// Position down the upright frame of the line's orientation.
    y: f64,
    size: f64,
    page: u32,
    /// Quarter turns of the line's baseline: lines of different turns are in different frames.
    turn: u8,
    /// Height of the line's frame.
    page_height: f64,
}

fn lines_of(page: &Page) -> Vec<Line> {
    let mut lines: Vec<Line> = Vec::new();
    let mut cur: Option<(Line, f64, Vec<f64>)> = None; // line, last end, sizes
    for g in &page.glyphs {
        if g.text.trim().is_empty() && g.text != " " {
            continue;
        }
        let size = g.size.max(1.0);
        let new_line = match &cur {
            None => true,
            Some((l, last_end, _)) => {
                g.turn != l.turn || (g.y - l.y).abs() > size * 0.5 || (g.x < *last_end - size * 2.0)
            }
        };
        if new_line {
            if let Some((mut l, _, sizes)) = cur.take() {
                l.size = median(sizes);
                lines.push(l);
            }
            let line = Line {
                text: String::new(),
                y: g.y,
                size,
                page: page.num,
                turn: g.turn,
                page_height: page.frame_height(g.turn),
            };
            cur = Some((line, g.end, vec![]));
        }
        let (l, last_end, sizes) = cur.as_mut().expect("line started");
        // Like pdftotext: a space where a new word starts after a gap; inside a word only a wide gap
        // (PDFs that position every glyph) counts.
        let gap = g.x - *last_end;
        if !l.text.is_empty() && !l.text.ends_with(' ') && ((g.word_start && gap > size * 0.1) || gap > size * 0.3) {
            l.text.push(' ');
        }
        l.text.push_str(&g.text);
        if !g.text.trim().is_empty() {
            sizes.push(size);
        }
        *last_end = g.end.max(*last_end);
    }
    if let Some((mut l, _, sizes)) = cur.take() {
        l.size = median(sizes);
        lines.push(l);
    }
    for l in &mut lines {
        l.text = collapse_whitespace(&l.text);
    }
    lines.retain(|l| !l.text.is_empty());
    lines
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Text of a running header/footer or page number, with digits masked, for recognising repeats.
fn furniture_key(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_digit() { '#' } else { c.to_ascii_lowercase() }).collect()
}

fn is_page_number(text: &str) -> bool {
    let t = text.trim().to_lowercase();
    let t = t.trim_start_matches("page").trim();
    let mut parts = t.split(|c: char| c == '/' || c.is_whitespace()).filter(|p| !p.is_empty() && *p != "of");
    matches!(parts.next(), Some(p) if p.chars().all(|c| c.is_ascii_digit()) || is_roman(p))
        && parts.all(|p| p.chars().all(|c| c.is_ascii_digit()))
}

fn is_roman(s: &str) -> bool {
    !s.is_empty() && s.len() <= 6 && s.chars().all(|c| "ivxlc".contains(c))
}

/// Extracts a PDF into blocks with page numbers.
pub fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let mut doc = pdf_extract::Document::load_mem(bytes).map_err(|e| classify(&e.to_string(), bytes))?;
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err(ExtractError::Encrypted);
    }
    let page_count = doc.get_pages().len() as u32;
    if page_count == 0 {
        return Err(ExtractError::Corrupt("the PDF has no pages".into()));
    }
    // Page by page, so that a font the decoder cannot handle (pdf-extract panics on some) costs that page,
    // not the document.
    let mut out = Collector::default();
    let mut failed_pages = Vec::new();
    for page in doc.get_pages().keys().copied().collect::<Vec<u32>>() {
        let before = out.pages.len();
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pdf_extract::output_doc_page(&doc, &mut out, page)
        }));
        if !matches!(res, Ok(Ok(()))) {
            out.pages.truncate(before);
            failed_pages.push(page);
        }
    }
    if !failed_pages.is_empty() {
        tracing::warn!(pages = ?failed_pages, "PDF pages could not be decoded and were skipped");
        if failed_pages.len() as u32 == page_count {
            return Err(ExtractError::Corrupt("no page of the PDF could be decoded".into()));
        }
    }

    let mut lines: Vec<Line> = Vec::new();
    for page in &out.pages {
        lines.extend(lines_of(page));
    }
    if lines.iter().map(|l| l.text.chars().filter(|c| c.is_alphanumeric()).count()).sum::<usize>() < 3 {
        return Err(ExtractError::NoTextLayer);
    }

    // Running headers and footers: the same text (digits masked) near the top or bottom of most pages.
    let pages_with_text = out.pages.iter().filter(|p| !p.glyphs.is_empty()).count().max(1);
    let band = |l: &Line| l.y < l.page_height * 0.12 || l.y > l.page_height * 0.88;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for l in lines.iter().filter(|l| band(l)) {
        *seen.entry(furniture_key(&l.text)).or_default() += 1;
    }
    // Page numbers: a number alone as the first or last line of its page (in its orientation's frame),
    // wherever the margins are.
    let mut edges: HashMap<(u32, u8), (f64, f64)> = HashMap::new();
    for l in &lines {
        let e = edges.entry((l.page, l.turn)).or_insert((f64::MAX, f64::MIN));
        e.0 = e.0.min(l.y);
        e.1 = e.1.max(l.y);
    }
    lines.retain(|l| {
        let (top, bottom) = edges[&(l.page, l.turn)];
        if (l.y == top || l.y == bottom || band(l)) && is_page_number(&l.text) {
            return false;
        }
        let repeated = band(l)
            && pages_with_text >= 3
            && seen.get(&furniture_key(&l.text)).copied().unwrap_or(0) * 2 >= pages_with_text;
        !repeated
    });

    // Body size: the size most characters are set in.
    let mut by_size: HashMap<i64, usize> = HashMap::new();
    for l in &lines {
        *by_size.entry((l.size * 2.0).round() as i64).or_default() += l.text.len();
    }
    let body = by_size.iter().max_by_key(|(_, n)| **n).map(|(s, _)| *s as f64 / 2.0).unwrap_or(10.0);
    let heading_sizes: Vec<i64> = {
        let mut s: Vec<i64> =
            lines.iter().filter(|l| looks_like_heading(l, body)).map(|l| (l.size * 2.0).round() as i64).collect();
        s.sort_unstable_by(|a, b| b.cmp(a));
        s.dedup();
        s
    };
    let level_of = |size: f64| -> u8 {
        let k = (size * 2.0).round() as i64;
        (heading_sizes.iter().position(|s| *s == k).unwrap_or(0) + 1).min(6) as u8
    };

    // Typical distance between consecutive body lines.
    let mut gaps: Vec<f64> = lines
        .windows(2)
        .filter(|w| same_frame(&w[0], &w[1]) && (w[0].size - body).abs() < 0.6 && w[1].y > w[0].y)
        .map(|w| w[1].y - w[0].y)
        .filter(|g| *g < body * 4.0)
        .collect();
    gaps.sort_by(f64::total_cmp);
    let spacing = if gaps.is_empty() { body * 1.2 } else { gaps[gaps.len() / 2] };

    let mut blocks: Vec<Block> = Vec::new();
    let mut para = String::new();
    let mut para_page: Option<u32> = None;
    let mut prev: Option<&Line> = None;
    let flush = |blocks: &mut Vec<Block>, para: &mut String, page: Option<u32>| {
        let text = collapse_whitespace(para);
        if !text.is_empty() {
            blocks.push(Block::new(BlockKind::Paragraph, text).on_page(page));
        }
        para.clear();
    };
    for l in &lines {
        if looks_like_heading(l, body) {
            flush(&mut blocks, &mut para, para_page);
            // A heading that wraps onto a second line continues the previous heading block.
            if let (Some(p), Some(last)) = (prev, blocks.last_mut())
                && looks_like_heading(p, body)
                && matches!(last.kind, BlockKind::Heading(_))
                && same_frame(l, p)
                && (l.size - p.size).abs() < 0.5
                && l.y - p.y < l.size * 2.0
            {
                last.text = format!("{} {}", last.text, l.text);
            } else {
                blocks.push(Block::new(BlockKind::Heading(level_of(l.size)), l.text.clone()).on_page(Some(l.page)));
            }
            prev = Some(l);
            para_page = None;
            continue;
        }
        let new_para = match prev {
            None => true,
            Some(p) => {
                // A paragraph flows on into the next column or page unless it ended a sentence there; it
                // does not flow between text of different orientations on a page.
                let sentence_done = para.trim_end().ends_with(['.', ':', '!', '?']);
                (p.page != l.page || l.y < p.y - spacing) && sentence_done
                    || (p.page == l.page && p.turn != l.turn)
                    || (same_frame(p, l) && l.y - p.y > spacing * 1.45)
                    || (l.size - p.size).abs() > 1.0
                    || looks_like_heading(p, body)
                    || starts_item(&l.text)
            }
        };
        if new_para {
            flush(&mut blocks, &mut para, para_page);
            para_page = Some(l.page);
        }
        if para.ends_with('-') && l.text.chars().next().is_some_and(char::is_lowercase) {
            para.pop();
        } else if !para.is_empty() {
            para.push(' ');
        }
        para.push_str(&l.text);
        prev = Some(l);
    }
    flush(&mut blocks, &mut para, para_page);
    let doc = Extracted { blocks, pages: Some(page_count) }.normalize();
    if doc.text_chars() == 0 {
        return Err(ExtractError::NoTextLayer);
    }
    Ok(doc)
}

/// Whether two lines' positions compare: on the same page, in the same orientation.
fn same_frame(a: &Line, b: &Line) -> bool {
    a.page == b.page && a.turn == b.turn
}

fn looks_like_heading(l: &Line, body: f64) -> bool {
    let words = l.text.split_whitespace().count();
    l.size >= body * 1.15
        && words <= 16
        && l.text.chars().any(char::is_alphabetic)
        && !l.text.ends_with(['.', ','])
        && l.text.chars().count() < 150
}

fn starts_item(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with(['•', '◦', '▪', '–', '·']) || t.starts_with("- ")
}

fn classify(err: &str, bytes: &[u8]) -> ExtractError {
    if !bytes.starts_with(b"%PDF-") {
        return ExtractError::Corrupt("not a PDF (no %PDF- header)".into());
    }
    if err.to_lowercase().contains("decrypt") || err.to_lowercase().contains("encrypt") {
        return ExtractError::Encrypted;
    }
    ExtractError::Corrupt(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_numbers_are_recognised() {
        for t in ["12", "Page 3", "page 4 of 10", "3/10", "iv"] {
            assert!(is_page_number(t), "{t}");
        }
        for t in ["12 Monkeys", "Section 2", "2024 annual report"] {
            assert!(!is_page_number(t), "{t}");
        }
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        assert!(matches!(extract(b"%PDF-1.4\ngarbage"), Err(ExtractError::Corrupt(_))));
        assert!(matches!(extract(b"hello"), Err(ExtractError::Corrupt(_))));
    }
}
