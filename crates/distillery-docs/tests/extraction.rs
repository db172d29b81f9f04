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

/// The text of one page of a rotated fixture: its title, and its paragraphs' sentences in reading order
/// (as written by make_fixtures.py; pdftotext reads the same words).
struct RotatedPage {
    page: u32,
    title: &'static str,
    sentences: &'static [&'static str],
}

fn assert_reads_rotated(name: &str, want: &[RotatedPage]) {
    let e = extract(name).unwrap_or_else(|err| panic!("{name}: {err:?}"));
    let text = e.text();
    let h = headings(&e);
    let mut from = 0;
    for p in want {
        assert!(h.iter().any(|(_, t)| t == p.title), "{name}: heading {:?} missing from {h:?}", p.title);
        for s in p.sentences {
            let at = text[from..].find(s).unwrap_or_else(|| panic!("{name}: {s:?} missing or out of order in\n{text}"));
            from += at + s.len();
            let block = e.blocks.iter().find(|b| b.text.contains(s)).expect("block of the sentence");
            assert_eq!(block.page, Some(p.page), "{name}: {s:?}");
        }
    }
}

#[test]
fn pdf_pages_turned_by_rotate_are_read_upright() {
    // Landscape pages in a portrait MediaBox, /Rotate 90, 270 and 180, the content drawn turned by `cm`;
    // then an upright page that only a viewer turned.
    assert_reads_rotated(
        "rotated-page.pdf",
        &[
            RotatedPage {
                page: 1,
                title: "Quarterly Shift Rota",
                sentences: &[
                    "The landscape rota lists which operators staff the Bergen pumping station on each shift of the quarter.",
                    "Night shifts start at ten in the evening and end at six in the morning.",
                    "Operators swap shifts only with the approval of the station supervisor, who records every swap in the shift log before the change takes effect.",
                ],
            },
            RotatedPage {
                page: 2,
                title: "Spare Parts Table",
                sentences: &[
                    "Gaskets, transducer cables and fuses are kept in the locked cabinet beside the control room door.",
                    "The storekeeper counts the stock on the first Monday of every month.",
                ],
            },
            RotatedPage {
                page: 3,
                title: "Inverted Notice",
                sentences: &[
                    "This notice was scanned upside down and rotated back for display by the viewer.",
                    "Visitors sign the register at the gate and wear a hard hat on the pump floor.",
                ],
            },
            RotatedPage {
                page: 4,
                title: "Portrait Page Turned Sideways",
                sentences: &[
                    "A reader turned this page in the viewer, so only its page dictionary says that it is rotated.",
                    "The backup pump starts automatically when the pressure in the main falls below two bar.",
                ],
            },
        ],
    );
}

#[test]
fn pdf_text_turned_by_its_text_matrix_is_read_in_order() {
    // No /Rotate: the text matrices turn the text by 90 (`0 1 -1 0 x y Tm`), 180 (words set apart by TJ
    // offsets, no space characters) and 270 degrees.
    assert_reads_rotated(
        "rotated-text.pdf",
        &[
            RotatedPage {
                page: 1,
                title: "Sideways Safety Summary",
                sentences: &[
                    "Every valve on the treatment line carries a numbered tag that matches the isolation diagram.",
                    "Before maintenance the engineer locks the valve closed and hangs a personal padlock on it.",
                    "The padlock key stays with the engineer until the work is finished and the line is tested.",
                ],
            },
            RotatedPage {
                page: 2,
                title: "Upside Down Checklist",
                sentences: &[
                    "Confirm that the chlorine sensor reads below the alarm threshold before entering the dosing room.",
                    "Open both doors for ten minutes if the reading is above half the threshold.",
                ],
            },
            RotatedPage {
                page: 3,
                title: "Downward Margin Note",
                sentences: &[
                    "Sludge samples go to the laboratory in sealed jars labelled with the basin number and the hour of sampling.",
                    "Results arrive within three working days.",
                ],
            },
        ],
    );
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
