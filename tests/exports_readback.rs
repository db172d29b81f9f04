//! Every export format of `distillery export`, read back by the libraries that train on them: a run folder
//! written from real records by the sink's own line builder (and the same records in a dataset store), the
//! built `distillery` binary run for each format, then Hugging Face `datasets` (`load_dataset("json")`,
//! `load_dataset("parquet")`), `pyarrow.parquet` and TRL's data utilities (`is_conversational`,
//! `maybe_extract_prompt`, imported without torch) load them and report rows and columns, which are checked
//! against what the records hold. The store export must match the folder export line for line.
//!
//! Python: `DISTILLERY_TEST_PYTHON` (scripts/test-servers installs the pinned packages and writes it into the
//! test environment). Without it, outside CI, the test is skipped with a message.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use distillery_core::codec::fixtures;
use distillery_core::{
    Accepted, Document, Draft, DraftKind, Judged, Message, PriorAttempt, Record, RejectReason, Rejected, Role,
    SubjectKind,
};
use distillery_dataset::{DatasetStore, SqlStore};
use distillery_export::{DatasetOut, FolderBackend};
use distillery_sink::{Sink, SinkConfig};
use serde_json::{Value, json};

const FORMATS: [&str; 9] =
    ["alpaca", "alpaca-text", "sharegpt", "openai", "dpo", "dpo-chat", "parquet", "qa-json", "card"];

fn document(id: &str, key: &str, supersedes: Option<&str>, chunks: i32) -> Document {
    let mut d = fixtures::document();
    d.id = id.into();
    d.source.key = key.into();
    d.supersedes = supersedes.map(String::from);
    d.chunks = Some(chunks);
    d
}

/// An accepted example of a document's chunk; `rejected_answer`: the low-scored attempt it replaced.
fn accepted(n: usize, doc: &str, chunk: &str, turns: &[&str], rejected_answer: Option<&str>) -> Record {
    let messages: Vec<Message> = turns
        .iter()
        .enumerate()
        .map(|(i, t)| Message::new(if i % 2 == 0 { Role::User } else { Role::Assistant }, *t))
        .collect();
    let previous = rejected_answer.map(|old| {
        let mut m = messages.clone();
        m.last_mut().expect("turns").content = old.into();
        PriorAttempt {
            draft_id: format!("d{n}-0"),
            messages: m,
            scores: fixtures::scores(2),
            rationale: "wrong".into(),
            // Only a preference the judge verified makes a DPO pair.
            preference: Some(distillery_core::Preference {
                verified: true,
                votes: vec!["new".into(), "new".into()],
                reason: "compared in both orders".into(),
            }),
        }
    });
    let draft = Draft {
        id: format!("d{n}"),
        kind: if turns.len() > 2 { DraftKind::Conversation } else { DraftKind::Qa },
        document_id: doc.into(),
        chunk_id: chunk.into(),
        context_id: format!("ctx-{chunk}"),
        context_text: format!("Source text of {chunk}."),
        messages,
        attempt: if previous.is_some() { 2 } else { 1 },
        previous,
        superseded_by: None,
        ..fixtures::draft()
    };
    let judged = Judged { id: format!("j{n}"), draft, ..fixtures::judged() };
    Record::Accepted(Accepted {
        id: format!("a{n}"),
        judged,
        nearest_similarity: Some(0.2),
        accepted_at_ms: 1_760_000_000_000 + n as i64,
    })
}

fn rejected_draft(n: usize, doc: &str, chunk: &str) -> Record {
    let draft = Draft {
        id: format!("r{n}"),
        document_id: doc.into(),
        chunk_id: chunk.into(),
        previous: None,
        superseded_by: None,
        ..fixtures::draft()
    };
    Record::Rejected(Rejected {
        document_id: Some(doc.into()),
        chunk_id: Some(chunk.into()),
        scores: Some(fixtures::scores(2)),
        draft: Some(draft),
        ..Rejected::new("judge", RejectReason::LowScore, SubjectKind::Draft, &format!("r{n}"), "scored 2 < 4")
    })
}

fn rejected_chunk(doc: &str, chunk: &str) -> Record {
    Record::Rejected(Rejected {
        document_id: Some(doc.into()),
        chunk_id: Some(chunk.into()),
        ..Rejected::new("generate", RejectReason::LlmError, SubjectKind::Chunk, chunk, "the model failed")
    })
}

struct Expected {
    accepted: usize,
    qa: usize,
    dpo: usize,
    pairs_by_doc: BTreeMap<&'static str, usize>,
}

/// The dataset: an old version of the leave policy (replaced, so none of its records may be exported),
/// its current version and an onboarding guide; QA pairs (some regenerated: DPO pairs), a conversation
/// (regenerated too), rejections of a draft and of a whole chunk.
fn records() -> (Vec<Record>, Expected) {
    let mut r = vec![
        Record::Document(document("old-leave", "handbook/leave policy.md", None, 1)),
        Record::Document(document("leave", "handbook/leave policy.md", Some("old-leave"), 2)),
        Record::Document(document("onboarding", "guides/Onboarding Guide.pdf", None, 3)),
    ];
    r.push(accepted(0, "old-leave", "old-c0", &["How long is leave?", "20 days."], Some("10 days.")));
    r.push(accepted(1, "leave", "leave-c0", &["How many days of paid leave?", "25 days."], Some("20 days.")));
    r.push(accepted(2, "leave", "leave-c0", &["Who approves leave?", "The line manager."], None));
    r.push(accepted(3, "leave", "leave-c1", &["Can days carry over?", "Up to 5 days."], Some("All of them.")));
    r.push(accepted(4, "onboarding", "onb-c0", &["What happens on day one?", "A laptop is issued."], None));
    r.push(accepted(
        5,
        "onboarding",
        "onb-c1",
        &["Who is my buddy?", "A colleague from your team.", "When do we meet?", "In the first week."],
        Some("Never."),
    ));
    r.push(accepted(6, "onboarding", "onb-c1", &["Where is the handbook?", "On the intranet."], None));
    r.push(rejected_draft(7, "leave", "leave-c1"));
    r.push(rejected_draft(8, "old-leave", "old-c0"));
    r.push(rejected_chunk("onboarding", "onb-c2"));
    let expected = Expected {
        accepted: 6,
        qa: 5,
        dpo: 3,
        pairs_by_doc: [("leave_policy_qa.json", 3), ("Onboarding_Guide_qa.json", 2)].into_iter().collect(),
    };
    (r, expected)
}

/// A run folder as the sink writes it (its own line builder), with a summary.json carrying no diversity.
async fn write_folder(dir: &Path, records: &[Record]) {
    let out = DatasetOut::start(FolderBackend::new(dir).expect("folder"), 1000, Duration::from_millis(1));
    let sink = Sink::new(out.clone(), SinkConfig::default(), None);
    let mut lines = Vec::new();
    for r in records {
        lines.extend(sink.lines(r, None).expect("sink lines"));
    }
    out.append(lines).await.expect("write the run folder");
    std::fs::write(dir.join("summary.json"), br#"{"accepted": 6}"#).expect("summary");
}

fn export(args: &[&str]) -> String {
    let out = Command::new(common::binary()).arg("export").args(args).output().expect("run distillery export");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "distillery export {args:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).lines().count()
}

const READER: &str = r####"
import json, sys
from datasets import load_dataset
import pyarrow.parquet as pq
from trl.data_utils import is_conversational, maybe_extract_prompt

cfg = json.loads(sys.argv[1])
out = {}
for name, path in cfg["jsonl"].items():
    ds = load_dataset("json", data_files=path, split="train")
    rows = [ds[i] for i in range(ds.num_rows)]
    info = {"rows": ds.num_rows, "columns": sorted(ds.column_names)}
    if name in ("dpo", "dpo-chat"):
        info["conversational"] = [is_conversational(r) for r in rows]
        # An explicit prompt of the same form as chosen/rejected: TRL keeps the row as it is.
        info["prompt_kept"] = all(maybe_extract_prompt(dict(r))["prompt"] == r["prompt"] for r in rows)
    if name == "dpo-chat":
        info["prompt_keys"] = sorted({k for r in rows for m in r["prompt"] for k in m})
        info["chosen_roles"] = sorted({m["role"] for r in rows for m in r["chosen"]})
        info["rejected_roles"] = sorted({m["role"] for r in rows for m in r["rejected"]})
        info["one_message"] = all(len(r["chosen"]) == 1 and len(r["rejected"]) == 1 for r in rows)
    if name == "dpo":
        info["strings"] = all(isinstance(r[k], str) for r in rows for k in ("prompt", "chosen", "rejected"))
    if name == "alpaca-text":
        info["templated"] = all(
            r["text"].startswith("Below is an instruction") and "### Instruction:\n" in r["text"]
            and "### Response:\n" in r["text"] for r in rows)
    if name == "sharegpt":
        info["turn_keys"] = sorted({k for r in rows for t in r["conversations"] for k in t})
    if name == "openai":
        info["turn_keys"] = sorted({k for r in rows for t in r["messages"] for k in t})
    out[name] = info
path = cfg["parquet"]
table = pq.read_table(path)
ds = load_dataset("parquet", data_files=path, split="train")
out["parquet"] = {"rows": table.num_rows, "columns": table.column_names, "datasets_rows": ds.num_rows}
qa = load_dataset("json", data_files=cfg["training_data"], field="training_pairs", split="train")
out["qa-json"] = {"rows": qa.num_rows, "columns": sorted(qa.column_names)}
print(json.dumps(out))
"####;

fn read_back(py: &str, dir: &Path, files: &BTreeMap<&str, PathBuf>) -> Value {
    let jsonl: BTreeMap<&str, &PathBuf> =
        files.iter().filter(|(f, _)| !matches!(**f, "parquet" | "qa-json" | "card")).map(|(f, p)| (*f, p)).collect();
    let cfg = json!({
        "jsonl": jsonl,
        "parquet": files["parquet"],
        "training_data": files["qa-json"].join("training_data.json"),
    });
    let cache = dir.join("hf-cache");
    let out = Command::new(py)
        .arg("-c")
        .arg(READER)
        .arg(cfg.to_string())
        .env("HF_DATASETS_CACHE", &cache)
        .env("HF_HOME", &cache)
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_DATASETS_OFFLINE", "1")
        .env("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
        .output()
        .expect("run python");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the Python readers failed:\n{stdout}\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn cols(v: &Value) -> Vec<&str> {
    v["columns"].as_array().expect("columns").iter().map(|c| c.as_str().expect("name")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_reads_back_in_datasets_pyarrow_and_trl() {
    let Some(py) = common::python() else {
        println!("skipped: DISTILLERY_TEST_PYTHON is not set (scripts/test-servers start writes it)");
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let (records, want) = records();
    let run = tmp.path().join("run");
    write_folder(&run, &records).await;

    // One format per call: --out is the file itself (the folder for qa-json, README.md for card).
    let single = tmp.path().join("single");
    let mut files = BTreeMap::new();
    for f in FORMATS {
        let path = match f {
            "qa-json" => single.join("qa"),
            "card" => single.join("README.md"),
            "parquet" => single.join("data.parquet"),
            other => single.join(format!("{other}.jsonl")),
        };
        let stdout = export(&["--from", run.to_str().unwrap(), "--format", f, "--out", path.to_str().unwrap()]);
        assert!(stdout.contains(&format!("{f}: ")), "{stdout}");
        assert!(path.exists(), "{f}: {} missing", path.display());
        files.insert(f, path);
    }

    let got = read_back(&py, tmp.path(), &files);
    let rows = |f: &str| got[f]["rows"].as_u64().unwrap_or_else(|| panic!("{f}: {got}")) as usize;
    assert_eq!(rows("alpaca"), want.qa);
    assert_eq!(cols(&got["alpaca"]), ["input", "instruction", "output"]);
    assert_eq!(rows("alpaca-text"), want.qa);
    assert_eq!(cols(&got["alpaca-text"]), ["text"]);
    assert_eq!(got["alpaca-text"]["templated"], true);
    assert_eq!(rows("sharegpt"), want.accepted);
    assert_eq!(cols(&got["sharegpt"]), ["conversations"]);
    assert_eq!(got["sharegpt"]["turn_keys"], json!(["from", "value"]));
    assert_eq!(rows("openai"), want.accepted);
    assert_eq!(cols(&got["openai"]), ["messages"]);
    assert_eq!(got["openai"]["turn_keys"], json!(["content", "role"]));
    // TRL's preference columns: standard (strings) and conversational (lists of {role, content}).
    let meta = ["chosen_because", "chosen_score", "rejected_because", "rejected_score"];
    for f in ["dpo", "dpo-chat"] {
        assert_eq!(rows(f), want.dpo, "{f}");
        let mut expect = vec!["chosen", "prompt", "rejected"];
        expect.extend(meta);
        expect.sort();
        assert_eq!(cols(&got[f]), expect, "{f}");
        assert_eq!(got[f]["prompt_kept"], true, "{f}: {}", got[f]);
    }
    assert_eq!(got["dpo"]["strings"], true);
    assert_eq!(got["dpo"]["conversational"], json!(vec![false; want.dpo]));
    assert_eq!(got["dpo-chat"]["conversational"], json!(vec![true; want.dpo]));
    assert_eq!(got["dpo-chat"]["prompt_keys"], json!(["content", "role"]));
    assert_eq!(got["dpo-chat"]["chosen_roles"], json!(["assistant"]));
    assert_eq!(got["dpo-chat"]["rejected_roles"], json!(["assistant"]));
    assert_eq!(got["dpo-chat"]["one_message"], true);
    assert_eq!(rows("parquet"), want.accepted);
    assert_eq!(got["parquet"]["datasets_rows"].as_u64(), Some(want.accepted as u64));
    for c in ["id", "question", "answer", "score", "rejected_answer", "generator_model"] {
        assert!(cols(&got["parquet"]).contains(&c), "parquet lacks {c}: {}", got["parquet"]);
    }
    assert_eq!(rows("qa-json"), want.qa);
    for c in ["question", "answer", "source_file", "file_name", "file_type", "chunk_id", "chunk_index", "source_text"] {
        assert!(cols(&got["qa-json"]).contains(&c), "training pair lacks {c}: {}", got["qa-json"]);
    }

    // qa-json: one file per current document with its pairs, and the combined file.
    for (name, n) in &want.pairs_by_doc {
        let doc: Value = serde_json::from_slice(&std::fs::read(files["qa-json"].join(name)).expect(name)).unwrap();
        assert_eq!(doc["training_pairs"].as_array().map(Vec::len), Some(*n), "{name}");
        assert_eq!(doc["summary"]["total_qa_pairs"].as_u64(), Some(*n as u64), "{name}");
    }
    let onboarding: Value =
        serde_json::from_slice(&std::fs::read(files["qa-json"].join("Onboarding_Guide_qa.json")).unwrap()).unwrap();
    assert_eq!(onboarding["summary"]["failed_chunks"], 1, "{onboarding}");
    assert_eq!(onboarding["metadata"]["file_type"], ".pdf");
    let qa_files = std::fs::read_dir(&files["qa-json"]).unwrap().count();
    assert_eq!(qa_files, want.pairs_by_doc.len() + 1, "no file for the superseded version");

    // The card: counts of the current documents only, no diversity measured.
    let card = std::fs::read_to_string(&files["card"]).unwrap();
    assert!(card.starts_with("---\n") && card.contains("license: other") && card.contains("task_categories:"));
    assert!(card.contains("| documents | 2 |"), "{card}");
    assert!(card.contains(&format!("| accepted | {} |", want.accepted)), "{card}");
    assert!(card.contains("| rejected | 2 |") && card.contains("| low_score | 1 |"), "{card}");
    assert!(card.contains("## Diversity\n\nnot measured"), "{card}");
    assert!(card.contains("| generator | openai/smollm2 |"), "{card}");

    // Several formats (and none): a folder, each format under its name.
    let all = tmp.path().join("all");
    export(&["--from", run.to_str().unwrap(), "--out", all.to_str().unwrap()]);
    for f in ["alpaca.jsonl", "alpaca-text.jsonl", "sharegpt.jsonl", "openai.jsonl", "dpo.jsonl", "dpo-chat.jsonl"] {
        let single_name = f.to_string();
        assert_eq!(lines(&all.join(f)), lines(&single.join(&single_name)), "{f}");
    }
    assert!(all.join("dataset.parquet").is_file() && all.join("qa-json/training_data.json").is_file());
    let card = std::fs::read_to_string(all.join("README.md")).unwrap();
    assert!(card.contains("data_files: \"alpaca.jsonl\""), "the card points at the data files: {card}");

    // The same records in a dataset store: the same exports.
    let db = tmp.path().join("store").join("distillery.db");
    let store = SqlStore::open(&distillery_dataset::sql::sqlite_url(&db)).await.expect("open the store");
    store.write(records.clone()).await.expect("write the store");
    let from_store = tmp.path().join("from-store");
    let url = format!("sqlite:{}", db.display());
    let stdout = export(&["--store", &url, "--out", from_store.to_str().unwrap()]);
    assert!(stdout.contains("records of superseded documents left out"), "{stdout}");
    for f in ["alpaca.jsonl", "alpaca-text.jsonl", "sharegpt.jsonl", "openai.jsonl", "dpo.jsonl", "dpo-chat.jsonl"] {
        assert_eq!(lines(&from_store.join(f)), lines(&all.join(f)), "{f} from the store");
    }
    let training = |dir: &Path| -> Value {
        serde_json::from_slice(&std::fs::read(dir.join("qa-json/training_data.json")).unwrap()).unwrap()
    };
    assert_eq!(training(&from_store)["metadata"]["total_qa_pairs"], training(&all)["metadata"]["total_qa_pairs"]);
    let mut store_files = BTreeMap::new();
    for f in FORMATS {
        store_files.insert(f, from_store.join(distillery_export::Format::parse(f).unwrap().file_name()));
    }
    let from_db = read_back(&py, tmp.path(), &store_files);
    for f in ["alpaca", "alpaca-text", "sharegpt", "openai", "dpo", "dpo-chat", "parquet", "qa-json"] {
        assert_eq!(from_db[f]["rows"], got[f]["rows"], "{f} from the store");
        assert_eq!(from_db[f]["columns"], got[f]["columns"], "{f} from the store");
    }
    // A plain path to the store file works as --store too.
    let one = tmp.path().join("one.jsonl");
    export(&["--store", db.to_str().unwrap(), "--format", "alpaca", "--out", one.to_str().unwrap()]);
    assert_eq!(lines(&one), want.qa);
}
