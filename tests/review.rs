//! Replay judging and the review page, on one small run against the real llama.cpp server:
//!
//! - `distillery rejudge --from DIR --threshold 5` re-reads the stored verdicts (no LLM call) and
//!   `distillery rejudge --from DIR --judge-model M --llm-base-url URL --threshold 1` judges every retained
//!   draft again with the real model (judge calls only, no generator call, no new draft): each writes a new
//!   dataset version with a diff, and the exports follow the latest version.
//! - `distillery serve --from DIR` serves `/review` behind the bearer token; a real headless Chromium
//!   (Debian `chromium`) loads the pages: screenshots are checked to be non-blank and to change after a
//!   review, the DOM (`--dump-dom`) shows the records with their source chunk, scores and rationale, a
//!   reject and an edit made through the page's form are stored and respected by the export, and the live
//!   view receives the records over server-sent events.
//! - the file deleted from the input, a rerun on the same folder marks its document deleted (no LLM call):
//!   `distillery status` shows it and no export holds its records.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Servers, binary, free_port, jsonl};
use distillery_dataset::sql::Table;
use distillery_dataset::{DatasetStore, SqlStore};
use serde_json::Value;

const TOKEN: &str = "review-test-token";

const DOC: &str = "# Parking policy\n\n## Permits\n\nEmployees apply for a parking permit in the facilities portal. \
A permit costs 25 euros per month and is deducted from the salary. Permits are valid for one calendar year \
and must be renewed in December.\n\n## Visitors\n\nVisitors park on level -1 of the north garage. The host \
registers each visitor at the reception desk before 10:00 on the day of the visit. Visitor parking is free for \
up to 4 hours.\n";

fn run(args: &[&str]) -> (String, String) {
    let out = Command::new(binary()).args(args).env_remove("DISTILLERY_LLM_BASE_URL").output().unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string());
    assert!(out.status.success(), "distillery {args:?} failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

fn report(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not a JSON report ({e}): {stdout}"))
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().filter(|l| !l.trim().is_empty()).count()).unwrap_or(0)
}

/// An `application/x-www-form-urlencoded` body, as a browser's form sends it.
fn form_body(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                b' ' => "+".to_string(),
                b => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

fn chromium() -> String {
    std::env::var("DISTILLERY_TEST_CHROMIUM").ok().filter(|c| !c.is_empty()).unwrap_or_else(|| "chromium".into())
}

/// Headless Chromium with a profile of its own (so its cookie jar starts empty).
fn browser(profile: &Path, extra: &[String], url: &str) -> std::process::Output {
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1200,1400",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.extend(extra.iter().cloned());
    args.push(url.to_string());
    let out = Command::new(chromium()).args(&args).output().unwrap_or_else(|e| panic!("running {}: {e}", chromium()));
    assert!(out.status.success(), "chromium {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn dump_dom(profile: &Path, url: &str, budget_ms: Option<u64>) -> String {
    let mut extra = vec!["--dump-dom".to_string()];
    if let Some(b) = budget_ms {
        extra.push(format!("--virtual-time-budget={b}"));
    }
    String::from_utf8_lossy(&browser(profile, &extra, url).stdout).to_string()
}

/// The RGBA pixels of a screenshot.
fn screenshot(profile: &Path, url: &str, file: &Path) -> Vec<u8> {
    browser(profile, &[format!("--screenshot={}", file.display())], url);
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(file).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    assert!(info.width >= 800 && info.height >= 600, "{}x{}", info.width, info.height);
    buf
}

/// How many distinct colours a picture has (a blank page has one).
fn colours(pixels: &[u8]) -> usize {
    let px = pixels.len() / 4;
    let step = (px / 50_000).max(1);
    pixels.chunks(4).step_by(step).map(|p| p.to_vec()).collect::<std::collections::HashSet<_>>().len()
}

struct Serve(Child);
impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve(dir: &Path, port: u16) -> Serve {
    // Held by `Serve` at once: killed and waited for on every path, a failed start included.
    let serve = Serve(
        Command::new(binary())
            .args(["serve", "--from", dir.to_str().unwrap(), "--addr", &format!("127.0.0.1:{port}"), "--no-run"])
            .env("DISTILLERY_API_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    for _ in 0..600 {
        if http.get(format!("http://127.0.0.1:{port}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
            return serve;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("distillery serve did not come up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejudge_writes_versions_and_the_review_page_decides_records() {
    let servers = Servers::from_env();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("docs");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("parking.md"), DOC).unwrap();
    let config = dir.path().join("run.toml");
    std::fs::write(&config, "[generate]\nmodes = [\"qa\"]\n").unwrap();
    // The subject here is rejudging and review, not generation: the small model sometimes has every draft
    // of this page refused before the judge, so a run that retained no judged draft is made again (a new
    // folder, new samples), at most three times.
    let mut attempt = 0;
    let (out, accepted_run, retained, screened) = loop {
        let out: PathBuf = dir.path().join(format!("out-{attempt}"));
        run(&[
            "run",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--llm-base-url",
            &servers.llm,
            "--llm-model",
            &servers.llm_model,
            "--config",
            config.to_str().unwrap(),
            "--quiet",
        ]);
        let accepted_run = lines(&out.join("accepted.jsonl"));
        // The judge's rejections (by the judge, or on a verdict), and of those the ones stopped by a check
        // before any judge call (a regeneration): these have no verdict.
        let judged: Vec<Value> = jsonl(&out.join("rejected.jsonl"))
            .into_iter()
            .filter(|r| {
                r["messages"].as_array().is_some_and(|m| !m.is_empty())
                    && r["reason"] != "duplicate"
                    && (r["stage"] == "judge" || r.get("scores").is_some_and(|s| !s.is_null()))
            })
            .collect();
        let judged_rejections = judged.len();
        let screened = judged.iter().filter(|r| r.get("scores").is_none_or(|s| s.is_null())).count();
        let retained = accepted_run + judged_rejections;
        attempt += 1;
        if retained > 0 || attempt == 3 {
            break (out, accepted_run, retained, screened);
        }
    };
    assert!(retained > 0, "{attempt} runs retained no judged draft");
    let store = SqlStore::open(out.join("distillery.db").to_str().unwrap()).await.unwrap();
    let drafts_before = store.count(Table::Drafts).await.unwrap();

    // 1. Only the threshold: the stored verdicts against it, no LLM call.
    let (stdout, _) = run(&["rejudge", "--from", out.to_str().unwrap(), "--threshold", "5"]);
    let v2 = report(&stdout);
    assert_eq!(v2["version"], 2, "{v2}");
    assert_eq!(v2["llm_calls"], 0, "{v2}");
    // Every retained draft with a verdict is re-read; one screened before any judge call has none to re-read
    // and keeps its outcome.
    assert_eq!(v2["judged"].as_u64().unwrap() as usize, retained - screened, "{v2}");
    let decided = ["unchanged", "newly_accepted", "newly_rejected"].map(|k| v2[k].as_u64().unwrap() as usize);
    assert_eq!(decided.iter().sum::<usize>(), retained, "{v2}");
    assert_eq!(v2["accepted_before"].as_u64().unwrap() as usize, accepted_run, "{v2}");
    let accepted_v2 = v2["accepted_after"].as_u64().unwrap() as usize;
    let accepted_high = jsonl(&out.join("accepted.jsonl")).iter().filter(|a| a["scores"]["overall"] == 5).count();
    assert_eq!(accepted_v2, accepted_high, "threshold 5 keeps exactly the accepted records scored 5: {v2}");
    let diff = jsonl(&out.join("versions/2/diff.jsonl"));
    assert_eq!(diff.len() as u64, v2["newly_accepted"].as_u64().unwrap() + v2["newly_rejected"].as_u64().unwrap());
    assert_eq!(v2["newly_rejected"].as_u64().unwrap() as usize, accepted_run - accepted_high, "{v2}");
    for c in &diff {
        assert_eq!(c["change"], "newly_rejected", "nothing below 5 passes at 5: {c}");
        assert!(c["before_overall"].as_i64().unwrap() < 5, "{c}");
    }
    assert_eq!(lines(&out.join("alpaca.jsonl")), accepted_v2, "the folder's alpaca.jsonl follows version 2");
    let export = dir.path().join("alpaca-v2.jsonl");
    run(&["export", "--from", out.to_str().unwrap(), "--format", "alpaca", "--out", export.to_str().unwrap()]);
    assert_eq!(lines(&export), accepted_v2);

    // 2. A judge model: the real judge scores every retained draft again (threshold 1), no generation.
    let (stdout, stderr) = run(&[
        "rejudge",
        "--from",
        out.to_str().unwrap(),
        "--judge-model",
        &servers.llm_model,
        "--llm-base-url",
        &servers.llm,
        "--threshold",
        "1",
    ]);
    let v3 = report(&stdout);
    eprintln!("rejudge with the judge: {v3}\n{stderr}");
    assert_eq!(v3["version"], 3, "{v3}");
    assert_eq!(v3["judge_model"], servers.llm_model.as_str());
    assert_eq!(v3["judged"].as_u64().unwrap() as usize, retained, "{v3}");
    assert!(v3["llm_calls"].as_u64().unwrap() >= 1, "the judge was called: {v3}");
    assert_eq!(v3["generator_calls"], 0, "{v3}");
    assert_eq!(store.count(Table::Drafts).await.unwrap(), drafts_before, "no draft was generated");
    assert_eq!(v3["accepted_before"].as_u64().unwrap() as usize, accepted_v2, "version 3 starts from version 2");
    let accepted_v3 = v3["accepted_after"].as_u64().unwrap() as usize;
    let diff3 = jsonl(&out.join("versions/3/diff.jsonl"));
    assert_eq!(diff3.len() as u64, v3["newly_accepted"].as_u64().unwrap() + v3["newly_rejected"].as_u64().unwrap());
    assert_eq!(
        accepted_v2 + v3["newly_accepted"].as_u64().unwrap() as usize - v3["newly_rejected"].as_u64().unwrap() as usize,
        accepted_v3
    );
    let versions = store.versions().await.unwrap();
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(lines(&out.join("alpaca.jsonl")), accepted_v3, "the folder's alpaca.jsonl follows version 3");

    // 3. The review page.
    let port = free_port();
    let _serve = serve(&out, port).await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = http.get(format!("{base}/review")).send().await.unwrap();
    assert_eq!(res.status(), 401, "the page needs the token");
    assert!(res.text().await.unwrap().contains("name=\"token\""), "the sign-in form");
    let res = http.get(format!("{base}/review")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = http.get(format!("{base}/review")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let index = res.text().await.unwrap();
    assert!(index.contains("parking.md"), "{index}");

    let docs: Value =
        http.get(format!("{base}/v1/documents")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    let doc_id = docs["documents"][0]["document_id"].as_str().unwrap().to_string();
    let page_url = format!("{base}/review/documents/{doc_id}?token={TOKEN}");
    let profile = dir.path().join("chromium");

    // The documents page in the browser (the token in the address becomes a cookie).
    let dom = dump_dom(&profile, &format!("{base}/review?token={TOKEN}"), None);
    assert!(dom.contains("id=\"documents\"") && dom.contains("parking.md"), "{dom}");
    assert!(dom.contains("id=\"versions\""), "the versions are listed");

    // A document's records: outcome, question and answer, scores, rationale, source chunk, the forms.
    let dom = dump_dom(&profile, &page_url, None);
    let records = dom.matches("class=\"record ").count();
    assert!(records >= retained, "every retained draft is shown ({records} < {retained})");
    assert_eq!(dom.matches("class=\"record accepted\"").count(), accepted_v3, "{dom}");
    assert!(dom.contains("class=\"source\"") && dom.contains("north garage"), "the source chunk is shown");
    assert!(dom.contains("class=\"rationale\"") && dom.contains("class=\"scores\""), "scores and rationale");
    assert!(dom.contains("action=\"/review/drafts/"), "the review forms");
    let shot1 = screenshot(&profile, &page_url, &dir.path().join("before.png"));
    assert!(colours(&shot1) > 8, "the screenshot is not blank ({} colours)", colours(&shot1));

    // Reject an accepted record and edit another (or the same one's neighbour) through the page's form.
    let drafts: Vec<String> = dom
        .split("class=\"record accepted\" id=\"record-")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .collect();
    let any: Vec<String> = dom
        .split("data-draft=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .filter(|d| !d.is_empty())
        .collect();
    assert!(!any.is_empty(), "no reviewable record in {dom}");
    let (to_reject, to_edit) = match drafts.first() {
        Some(d) => (d.clone(), any.iter().find(|x| *x != d).cloned()),
        None => (any[0].clone(), any.get(1).cloned()),
    };
    let post = |draft: &str, auth: bool, pairs: &[(&str, &str)]| {
        let req = http
            .post(format!("{base}/review/drafts/{draft}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(pairs));
        if auth { req.bearer_auth(TOKEN) } else { req }
    };
    let res = post(&to_reject, true, &[("action", "reject"), ("note", "off topic")]).send().await.unwrap();
    assert_eq!(res.status(), 303, "a review answers with a redirect to the document");
    const EDITED: &str = "Visitors park free for up to 4 hours on level -1 of the north garage.";
    if let Some(e) = &to_edit {
        let edit = [("action", "edit"), ("question", "Where and how long can visitors park?"), ("answer", EDITED)];
        let res = post(e, true, &edit).send().await.unwrap();
        assert_eq!(res.status(), 303);
    }
    let res = post(&to_reject, false, &[("action", "accept")]).send().await.unwrap();
    assert_eq!(res.status(), 401, "a review needs the token");

    let dom = dump_dom(&profile, &page_url, None);
    assert!(dom.contains(&format!("class=\"record rejected\" id=\"record-{to_reject}\"")), "the rejected record");
    assert!(dom.contains("reviewed: reject"));
    let shot2 = screenshot(&profile, &page_url, &dir.path().join("after.png"));
    assert!(colours(&shot2) > 8);
    assert!(shot1 != shot2, "the page looks different after the review");

    // The export respects the reviews.
    let reviewed = dir.path().join("alpaca-reviewed.jsonl");
    run(&["export", "--from", out.to_str().unwrap(), "--format", "sharegpt", "--out", reviewed.to_str().unwrap()]);
    let text = std::fs::read_to_string(&reviewed).unwrap();
    let expected = accepted_v3 - usize::from(drafts.contains(&to_reject))
        + usize::from(to_edit.as_ref().is_some_and(|e| !drafts.contains(e)));
    assert_eq!(lines(&reviewed), expected, "{text}");
    if to_edit.is_some() {
        assert!(text.contains(EDITED), "the edit is exported: {text}");
    }
    let res = http
        .post(format!("{base}/v1/exports"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"format": "alpaca"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let job: Value = res.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    let mut done = job;
    while done["status"] == "running" {
        tokio::time::sleep(Duration::from_millis(200)).await;
        done =
            http.get(format!("{base}/v1/exports/{id}")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    }
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["records"].as_u64().unwrap() as usize, expected, "the API's export respects the reviews too");

    // The live view: server-sent events carry the drafts and outcomes, and the page shows them.
    let mut res = http.get(format!("{base}/review/events")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    while !(seen.contains("event: draft") && (seen.contains("event: accepted") || seen.contains("event: rejected"))) {
        let chunk = tokio::time::timeout(Duration::from_secs(60), res.chunk()).await.expect("events").unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("data: {"), "{seen}");
    drop(res);
    // In the browser, the snapshot mode (the feed ends once it has sent what arrived, so the page settles).
    let dom = dump_dom(&profile, &format!("{base}/review/live?follow=false&token={TOKEN}"), Some(10_000));
    assert!(dom.contains("class=\"event draft\""), "the live page shows the drafts that arrived: {dom}");
    assert!(dom.contains("snapshot complete"), "{dom}");
    drop(_serve);

    // 4. The file is deleted from the input: a rerun on the same folder marks its document deleted (no LLM
    //    call), `distillery status` shows it, and no export holds its records any more.
    std::fs::remove_file(input.join("parking.md")).unwrap();
    let (stdout, _) = run(&[
        "run",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--llm-base-url",
        &servers.llm,
        "--llm-model",
        &servers.llm_model,
        "--config",
        config.to_str().unwrap(),
        "--quiet",
    ]);
    let summary: Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["llm_calls"], 0, "{stdout}");
    let (status, _) = run(&["status", out.to_str().unwrap()]);
    assert!(status.contains("parking.md [deleted"), "{status}");
    let (status, _) = run(&["status", out.to_str().unwrap(), "--json"]);
    let line: Value = serde_json::from_str(status.lines().next().unwrap()).unwrap();
    assert_eq!(line["deleted"], true, "{line}");
    assert_eq!(lines(&out.join("alpaca.jsonl")), 0, "the folder's exports drop a deleted document's records");
    let after = dir.path().join("after-delete.jsonl");
    run(&["export", "--from", out.to_str().unwrap(), "--format", "sharegpt", "--out", after.to_str().unwrap()]);
    assert_eq!(lines(&after), 0);
}
