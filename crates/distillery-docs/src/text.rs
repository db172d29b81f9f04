//! Plain text in any common encoding: BOMs, UTF-8, then a statistical guess (chardetng) decoded with
//! encoding_rs, so Latin-1, Windows-125x, Shift_JIS, GBK and friends all arrive as UTF-8.

use crate::blocks::{Block, BlockKind, Extracted};

/// Decodes bytes to UTF-8, returning the text and the encoding used.
pub fn decode(bytes: &[u8]) -> (String, &'static str) {
    if let Some((enc, bom_len)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, _) = enc.decode_without_bom_handling(&bytes[bom_len..]);
        return (text.into_owned(), enc.name());
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return (s.to_string(), "UTF-8");
    }
    let mut det = chardetng::EncodingDetector::new();
    det.feed(bytes, true);
    let enc = det.guess(None, true);
    let (text, _, _) = enc.decode(bytes);
    (text.into_owned(), enc.name())
}

/// Paragraphs separated by blank lines. Line breaks inside a paragraph are kept as spaces.
pub fn extract(bytes: &[u8]) -> Extracted {
    let (text, _) = decode(bytes);
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut blocks = Vec::new();
    let mut current = String::new();
    for line in text.split('\n') {
        if line.trim().is_empty() {
            if !current.trim().is_empty() {
                blocks.push(Block::new(BlockKind::Paragraph, std::mem::take(&mut current)));
            }
            current.clear();
        } else {
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(line);
        }
    }
    if !current.trim().is_empty() {
        blocks.push(Block::new(BlockKind::Paragraph, current));
    }
    Extracted { blocks, pages: None }.normalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_common_encodings() {
        assert_eq!(decode("héllo".as_bytes()), ("héllo".into(), "UTF-8"));
        // UTF-16LE with BOM
        let mut u16le = vec![0xFF, 0xFE];
        for u in "Grüße".encode_utf16() {
            u16le.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode(&u16le).0, "Grüße");
        // windows-1252 / latin-1
        let (t, enc) = decode(b"Caf\xe9 cr\xe8me br\xfbl\xe9e, d\xe9j\xe0 vu, na\xefve r\xe9sum\xe9");
        assert_eq!(t, "Café crème brûlée, déjà vu, naïve résumé");
        assert!(enc == "windows-1252" || enc == "ISO-8859-2", "{enc}");
        // Shift_JIS
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode("日本語のテキストです。これは文書の本文です。");
        assert_eq!(decode(&sjis).0, "日本語のテキストです。これは文書の本文です。");
    }

    #[test]
    fn paragraphs_split_on_blank_lines() {
        let e = extract(b"First line\ncontinues here.\r\n\r\n\n  Second   para.  \n");
        assert_eq!(e.blocks.len(), 2);
        assert_eq!(e.blocks[0].text, "First line continues here.");
        assert_eq!(e.blocks[1].text, "Second para.");
    }
}
