//! Extraction of every supported format from committed fixtures (made by tests/fixtures/make_fixtures.py
//! from text written for this project), and a distinct rejection reason for every kind of bad input.

use distillery_docs::{BlockKind, ExtractError, MediaType, extract_guarded};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

fn extract(name: &str) -> Result<distillery_docs::Extracted, ExtractError> {
    let bytes = fixture(name);
    distillery_docs::docx::set_limits(64 * 1024 * 1024);
    extract_guarded(MediaType::detect(name, &bytes[..bytes.len().min(8192)]), &bytes)
}

fn headings(e: &distillery_docs::Extracted) -> Vec<(u8, String)> {
    e.blocks
        .iter()
        .filter_map(|b| if let BlockKind::Heading(l) = b.kind { Some((l, b.text.clone())) } else { None })
        .collect()
}

#[test]
fn pdf_keeps_headings_pages_and_text() {
    let e = extract("handbook.pdf").unwrap();
    let h = headings(&e);
    for want in ["Before the visit", "Installation", "Calibration check", "Reporting"] {
        assert!(h.iter().any(|(_, t)| t == want), "heading {want:?} missing from {h:?}");
    }
    let level = |t: &str| h.iter().find(|(_, x)| x == t).map(|(l, _)| *l).unwrap();
    assert!(level("Reporting") > level("Calibration check"), "h3 below h2: {h:?}");
    let text = e.text();
    assert!(text.contains("straight pipe run of at least ten diameters upstream"), "{text}");
    assert!(e.pages.is_some_and(|p| p >= 1));
    assert!(e.blocks.iter().all(|b| b.page.is_some()), "every PDF block knows its page");
    // The multi-page plan: pages advance, no page numbers or running text leak into the body.
    let plan = extract("plan.pdf").unwrap();
    let pages: Vec<u32> = plan.blocks.iter().filter_map(|b| b.page).collect();
    assert!(pages.windows(2).all(|w| w[0] <= w[1]) && pages.last() > pages.first(), "{pages:?}");
    assert!(plan.text().contains("Section 60: the quarterly maintenance plan covers pumping station 60"));
}

#[test]
fn docx_headings_lists_and_tables() {
    let e = extract("handbook.docx").unwrap();
    let h = headings(&e);
    assert!(h.iter().any(|(_, t)| t == "Installation"), "{h:?}");
    assert!(
        e.blocks.iter().any(|b| b.kind == BlockKind::ListItem && b.text.contains("FV-2 field verifier")),
        "{:?}",
        e.blocks
    );
    let table = e.blocks.iter().find(|b| b.kind == BlockKind::Table).expect("a table");
    assert!(table.text.contains("| DN200 | 2.0 m | 1.0 m |"), "{}", table.text);
    assert!(table.text.lines().nth(1).is_some_and(|l| l.contains("---")), "header separator: {}", table.text);
}

#[test]
fn html_main_text_without_chrome() {
    let e = extract("page.html").unwrap();
    let text = e.text();
    assert!(!text.contains("Cookie settings") && !text.contains("Jobs") && !text.contains("track()"), "{text}");
    assert_eq!(headings(&e).first().map(|(_, t)| t.as_str()), Some("Field Service Handbook"));
    assert!(e.blocks.iter().any(|b| b.kind == BlockKind::Table));
}

#[test]
fn text_in_legacy_encodings_becomes_utf8() {
    assert!(extract("latin1.txt").unwrap().text().starts_with("Règlement intérieur: les congés payés"));
    assert!(extract("utf16.txt").unwrap().text().contains("Déjà validé"));
    assert!(extract("shift_jis.txt").unwrap().text().starts_with("就業規則：年次有給休暇"));
}

#[test]
fn every_bad_input_has_its_own_reason() {
    assert_eq!(extract("encrypted.pdf"), Err(ExtractError::Encrypted));
    assert_eq!(extract("encrypted.docx"), Err(ExtractError::Encrypted));
    assert_eq!(extract("scanned.pdf"), Err(ExtractError::NoTextLayer));
    assert_eq!(extract("empty.docx"), Err(ExtractError::Empty));
    assert!(matches!(extract("truncated.pdf"), Err(ExtractError::Corrupt(_))));
    assert!(matches!(extract("corrupt.docx"), Err(ExtractError::Corrupt(_))));
    assert!(matches!(extract("zipbomb.docx"), Err(ExtractError::TooLarge(_))), "{:?}", extract("zipbomb.docx"));
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    assert!(matches!(extract_guarded(MediaType::detect("photo.png", png), png), Err(ExtractError::Unsupported(_))));
    // 200 000 nested tables neither crash nor hang the parser.
    let nested = extract("nested.docx");
    assert!(
        nested.is_ok() || matches!(nested, Err(ExtractError::TooLarge(_)) | Err(ExtractError::Corrupt(_))),
        "{nested:?}"
    );
}
