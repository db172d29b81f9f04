//! PII redaction throughput on a realistic business document: a generated Markdown file (meeting minutes,
//! e-mail threads, an HR table, support chats, prose with names, addresses, phone numbers and IBANs, and
//! near-misses such as company and product names). Prints KB/s and blocks/s for the rules alone, for the
//! rules with the NER model as the pipeline runs it (the model reads only the windows around runs of
//! capitalised words), and for the model reading every block whole; and the extraction (Markdown parse)
//! speed of the same document beside them.
//!
//!   cargo run --release -p distillery-loadtest --bin redact -- [--kb 200] [--repeat 3]
//!
//! Needs the NER model (`scripts/test-servers start`, or `bash -c 'source scripts/lib.sh && ensure_ner_model'`
//! with `DISTILLERY_NER_MODEL_DIR` set to the folder it prints); without it only the rules are measured.

use std::time::Instant;

use clap::Parser;
use distillery_docs::pii::{NerModel, PiiConfig, PiiKind, Redactor, installed_ner_model};
use distillery_docs::{Extracted, MediaType, extract_guarded};

#[derive(Parser, Debug)]
struct Args {
    /// Size of the generated document in KB.
    #[arg(long, default_value_t = 200)]
    kb: usize,
    /// Runs per configuration (the best is kept).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

const GIVEN: &[&str] = &[
    "Amara",
    "Lars",
    "Siobhán",
    "Kwame",
    "Mei-Ling",
    "Rahul",
    "Ingrid",
    "Tomasz",
    "Fatima",
    "Hans-Peter",
    "Yuki",
    "Chidi",
    "Grant",
    "Rose",
    "Mateus",
    "Oksana",
    "Dimitrios",
    "Aroha",
    "Björn",
    "Nkechi",
];
const FAMILY: &[&str] = &[
    "Okafor",
    "Nilsen",
    "Ní Bhriain",
    "Asante-Boateng",
    "Chow",
    "Venkataraman",
    "Johansson",
    "Zieliński",
    "al-Haddad",
    "Weber",
    "Tanaka",
    "Eze",
    "Fairbairn",
    "Delgado",
    "Albuquerque",
    "Shevchuk",
    "Papadopoulos",
    "Te Whata",
    "Haugen",
    "van der Berg",
];
const COMPANIES: &[&str] = &[
    "Harbourline Capital",
    "Johnson Controls",
    "Morgan Stanley",
    "Acme Fasteners",
    "Tidewater Logistics",
    "Microsoft Teams",
    "Google Sheets",
    "Queen Elizabeth Hospital",
];

/// A deterministic pseudo-random sequence (no dependency, same document every run).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
    fn name(&mut self) -> String {
        format!("{} {}", GIVEN[self.next(GIVEN.len())], FAMILY[self.next(FAMILY.len())])
    }
}

/// A Markdown document of about `kb` KB mixing the kinds of text a company's documents hold.
fn document(kb: usize) -> String {
    let mut r = Lcg(42);
    let mut doc = String::from("# Operations review\n\n");
    let mut section = 0;
    while doc.len() < kb * 1000 {
        section += 1;
        let (a, b, c, d) = (r.name(), r.name(), r.name(), r.name());
        let co = COMPANIES[r.next(COMPANIES.len())];
        let phone = format!("+44 20 7946 {:04}", r.next(10_000));
        match section % 5 {
            0 => doc.push_str(&format!(
                "## Minutes {section}\n\nAttendees: {a}, {b}, {c} and {d}.\n\n{a} opened the meeting and asked \
                 {b} to summarise the {co} contract. The Quarterly Business Review moved to Thursday; {c} will \
                 circulate the Data Retention Policy before the Steering Committee meets in March.\n\n"
            )),
            1 => doc.push_str(&format!(
                "## Correspondence {section}\n\nFrom: {a} <ops{section}@harbourline.example>\nTo: {b}\nCc: {c}\n\
                 Subject: Re: invoice {section}-{n}\n\nHi,\n\nPlease pay the {co} invoice to IBAN GB82 WEST 1234 \
                 5698 7654 32 by Friday and call me on {phone} if the amount looks wrong.\n\nKind regards,\n{d}\n\
                 Senior Financial Analyst\n\n",
                n = r.next(9000) + 1000
            )),
            2 => doc.push_str(&format!(
                "## Team {section}\n\n| Employee | Department | Start date |\n|---|---|---|\n| {a} | Finance | \
                 2021-03-01 |\n| {b} | Logistics | 2022-11-14 |\n| {c} | Legal | 2023-01-09 |\n| {d} | Support | \
                 2024-05-20 |\n\n"
            )),
            3 => doc.push_str(&format!(
                "## Support log {section}\n\n[09:14] Agent: Hello, who am I speaking with?\n[09:15] Customer: this \
                 is {a}, my order #{n} from {co} has not arrived.\n[09:16] Agent: Thanks — I have escalated it to \
                 {b}, who will e-mail you at customer{section}@mail.example today.\n\n",
                n = r.next(900_000) + 100_000
            )),
            _ => doc.push_str(&format!(
                "## Project notes {section}\n\nThe migration to the new warehouse system is on schedule. Version \
                 3.2.1 of the scanner firmware fixes the Bluetooth pairing issue reported in build 4471. {a} and \
                 {b} tested it on the Leeds and Durban sites; the remaining work is the label printer driver, which \
                 {c} expects to finish after the May bank holiday. Costs stay within the approved budget of 48,500 \
                 EUR, and no change to the Service Level Agreement is needed.\n\n"
            )),
        }
    }
    doc
}

/// The best of `repeat` runs of `f` in seconds.
fn best(repeat: usize, mut f: impl FnMut()) -> f64 {
    (0..repeat.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn line(what: &str, secs: f64, bytes: usize, blocks: usize) {
    println!(
        "  {what:<46} {:>9.1} KB/s {:>9.1} blocks/s  ({:.3} s)",
        bytes as f64 / 1000.0 / secs,
        blocks as f64 / secs,
        secs
    );
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let doc = document(args.kb);
    let parsed: Extracted = extract_guarded(MediaType::Markdown, doc.as_bytes())?;
    let blocks = parsed.blocks.len();
    let bytes: usize = parsed.blocks.iter().map(|b| b.text.len()).sum();
    println!("PII redaction of a generated {:.0} KB Markdown document ({blocks} blocks)", doc.len() as f64 / 1000.0);

    let extract = best(args.repeat, || {
        let _ = extract_guarded(MediaType::Markdown, doc.as_bytes());
    });
    line("extraction (Markdown parse, no redaction)", extract, bytes, blocks);

    let rules = Redactor::with_ner(PiiConfig::default(), None);
    let run = |r: &Redactor| {
        let mut d = parsed.clone();
        r.redact_document(&mut d)
    };
    let counts = run(&rules);
    line("redaction, rules alone", best(args.repeat, || drop(run(&rules))), bytes, blocks);
    println!("    persons found: {}", counts.get(&PiiKind::Person).copied().unwrap_or(0));

    let Some(dir) = installed_ner_model() else {
        println!("  (no NER model installed: the rules + model figures are not measured)");
        return Ok(());
    };
    let model = NerModel::shared(&dir).map_err(anyhow::Error::msg)?;
    let with = Redactor::with_ner(PiiConfig::default(), Some(model.clone()));
    let counts = run(&with);
    line("redaction, rules + NER model (as in the pipeline)", best(args.repeat, || drop(run(&with))), bytes, blocks);
    println!("    persons found: {}", counts.get(&PiiKind::Person).copied().unwrap_or(0));

    let texts: Vec<&str> = parsed.blocks.iter().map(|b| b.text.as_str()).collect();
    let whole = best(args.repeat, || {
        let _ = model.person_scores(&texts, None);
    });
    line("NER model over every block whole (scores only)", whole, bytes, blocks);
    Ok(())
}
