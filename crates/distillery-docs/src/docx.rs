//! Word documents through office_oxide: headings become Markdown headings, lists and tables (as Markdown
//! tables) keep their structure; the Markdown then goes through the same block parser as `.md` files.
//! office_oxide bounds untrusted input (inflate ratio, part and package sizes), so a zip bomb is refused.

use std::io::Cursor;

use crate::ExtractError;
use crate::blocks::Extracted;

/// OLE2 compound file magic: how Office stores encrypted OOXML (and legacy .doc).
const CFB_MAGIC: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// Limits applied to every package (process-wide settings of office_oxide).
pub fn set_limits(max_uncompressed_bytes: u64) {
    office_oxide::limits::set_max_package_bytes(max_uncompressed_bytes);
    office_oxide::limits::set_max_part_bytes(max_uncompressed_bytes);
    office_oxide::limits::set_max_inflate_ratio(200);
}

pub fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    if bytes.starts_with(CFB_MAGIC) {
        let utf16: Vec<u8> = "EncryptedPackage".encode_utf16().flat_map(u16::to_le_bytes).collect();
        if bytes.windows(utf16.len()).any(|w| w == utf16.as_slice()) {
            return Err(ExtractError::Encrypted);
        }
        return Err(ExtractError::Unsupported("legacy Word (.doc) binary document".into()));
    }
    if !bytes.starts_with(b"PK") {
        return Err(ExtractError::Corrupt("not a DOCX (no zip header)".into()));
    }
    let doc = office_oxide::Document::from_reader(Cursor::new(bytes.to_vec()), office_oxide::DocumentFormat::Docx)
        .map_err(|e| {
            let msg = e.to_string();
            if msg.contains("limit") || msg.contains("ratio") || msg.contains("too large") {
                ExtractError::TooLarge(msg)
            } else {
                ExtractError::Corrupt(msg)
            }
        })?;
    let markdown = doc.to_markdown();
    Ok(crate::markdown::extract(markdown.as_bytes()))
}
