//! Media type detection from magic bytes first, then the file name.

/// Formats Distillery understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaType {
    Pdf,
    Docx,
    Markdown,
    Html,
    Text,
    /// Anything else (images, archives, spreadsheets, ...).
    Unsupported,
}

impl MediaType {
    pub fn mime(self) -> &'static str {
        match self {
            MediaType::Pdf => "application/pdf",
            MediaType::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            MediaType::Markdown => "text/markdown",
            MediaType::Html => "text/html",
            MediaType::Text => "text/plain",
            MediaType::Unsupported => "application/octet-stream",
        }
    }

    pub fn from_mime(mime: &str) -> MediaType {
        match mime.split(';').next().unwrap_or_default().trim() {
            "application/pdf" => MediaType::Pdf,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => MediaType::Docx,
            "text/markdown" | "text/x-markdown" => MediaType::Markdown,
            "text/html" | "application/xhtml+xml" => MediaType::Html,
            "text/plain" => MediaType::Text,
            _ => MediaType::Unsupported,
        }
    }

    /// From the file name's extension.
    pub fn from_name(name: &str) -> Option<MediaType> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        Some(match ext.as_str() {
            "pdf" => MediaType::Pdf,
            "docx" => MediaType::Docx,
            "md" | "markdown" | "mdown" | "mkd" => MediaType::Markdown,
            "html" | "htm" | "xhtml" => MediaType::Html,
            "txt" | "text" | "log" | "csv" | "tsv" | "rst" | "adoc" => MediaType::Text,
            _ => MediaType::Unsupported,
        })
    }

    /// Detects from the first bytes and the name. Magic bytes win over a misleading extension.
    pub fn detect(name: &str, head: &[u8]) -> MediaType {
        if head.starts_with(b"%PDF-") {
            return MediaType::Pdf;
        }
        let by_name = MediaType::from_name(name);
        if head.starts_with(b"PK\x03\x04") {
            // A zip: only a .docx (or a zip that says it is one) is a Word document.
            return if by_name == Some(MediaType::Docx) || contains(head, b"word/") {
                MediaType::Docx
            } else {
                MediaType::Unsupported
            };
        }
        if let Some(t) = by_name {
            // A .pdf or .docx without its magic bytes is still that format to the user: extraction will
            // report it as corrupt rather than unsupported.
            return t;
        }
        let probe = &head[..head.len().min(1024)];
        let lower = String::from_utf8_lossy(probe).to_ascii_lowercase();
        if lower.trim_start().starts_with("<!doctype html") || lower.contains("<html") {
            return MediaType::Html;
        }
        if looks_like_text(probe) {
            return MediaType::Text;
        }
        MediaType::Unsupported
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// No NUL bytes and mostly printable: text in some encoding.
pub fn looks_like_text(bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return true;
    }
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return true; // UTF-16 with BOM
    }
    if bytes.contains(&0) {
        return false;
    }
    let control = bytes.iter().filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0C)).count();
    control * 100 <= bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_win() {
        assert_eq!(MediaType::detect("report.txt", b"%PDF-1.7\n..."), MediaType::Pdf);
        assert_eq!(MediaType::detect("a.docx", b"PK\x03\x04rest"), MediaType::Docx);
        assert_eq!(MediaType::detect("a.zip", b"PK\x03\x04rest"), MediaType::Unsupported);
        assert_eq!(MediaType::detect("notes.md", b"# Title"), MediaType::Markdown);
        assert_eq!(MediaType::detect("page", b"<!DOCTYPE html><html>"), MediaType::Html);
        assert_eq!(MediaType::detect("README", b"plain words\n"), MediaType::Text);
        assert_eq!(MediaType::detect("photo.png", b"\x89PNG\r\n\x1a\n\0\0"), MediaType::Unsupported);
        assert_eq!(MediaType::detect("blob", b"\0\x01\x02binary"), MediaType::Unsupported);
        assert_eq!(MediaType::detect("fake.pdf", b"just text"), MediaType::Pdf);
    }
}
