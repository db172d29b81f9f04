//! The review page (`/review`): plain server-rendered HTML over the dataset store, behind the API's bearer
//! token. A person browses the documents and their records (question, answer, reasoning trace, scores,
//! rationale and the source context each was generated from), accepts, rejects or edits a record by hand
//! (stored as a review, which every export respects), and watches generation live (`/review/live`, fed by
//! server-sent events from `/review/events`).
//!
//! A browser cannot send an `Authorization` header on a plain link, so besides the header the page takes
//! the token once (`/review?token=...`, or the form it shows without one) and keeps it in an HttpOnly,
//! SameSite=Strict cookie scoped to `/review`; the forms post to the same origin only.

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::Form;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use distillery_core::{Metrics, Record, now_ms};
use distillery_dataset::{DatasetVersion, OutcomeKind, Overrides, Review, ReviewAction};
use distillery_export::ExampleView;
use serde::Deserialize;

use crate::dataset_api::DatasetApi;
use crate::http::{Bearer, Route};

/// The cookie that keeps the token for the review pages.
pub const COOKIE: &str = "distillery_review";
/// Records read per store call.
const PAGE: usize = 500;
/// How often the live feed asks the store for what arrived.
const POLL: Duration = Duration::from_millis(500);
/// Most arrivals sent per poll.
const FEED_BATCH: usize = 200;

/// What the review routes work with.
#[derive(Clone, Debug)]
pub struct ReviewState {
    pub api: DatasetApi,
    pub bearer: Bearer,
    pub metrics: ReviewMetrics,
}

/// The review page's counters.
#[derive(Clone)]
pub struct ReviewMetrics {
    /// Reviews stored, by action (`accept`, `reject`, `edit`).
    pub reviews: distillery_core::prometheus::IntCounterVec,
}

impl std::fmt::Debug for ReviewMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReviewMetrics")
    }
}

impl ReviewMetrics {
    pub fn of(m: &Metrics) -> ReviewMetrics {
        ReviewMetrics {
            reviews: m.counter_vec(
                "reviews_total",
                "Records reviewed by hand on the review page, by action",
                &["action"],
            ),
        }
    }
}

/// The review routes (their own token check: the header, or the cookie the page sets).
pub fn routes(state: ReviewState) -> Vec<Route> {
    let r = |method: Method, path: &'static str, handler: axum::routing::MethodRouter<ReviewState>| Route {
        method,
        path,
        protected: false,
        handler: handler
            .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_reviewer))
            .with_state(state.clone()),
    };
    vec![
        r(Method::GET, "/review", get(index)),
        r(Method::GET, "/review/documents/{id}", get(document)),
        r(Method::POST, "/review/drafts/{id}", post(decide)),
        r(Method::GET, "/review/live", get(live)),
        r(Method::GET, "/review/events", get(events)),
    ]
}

/// The token of a request: the bearer header, the cookie, or `?token=` (which then sets the cookie).
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (name, value) = c.trim().split_once('=')?;
        (name == COOKIE).then(|| value.to_string())
    })
}

fn query_token(req: &Request) -> Option<String> {
    let query = req.uri().query()?;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == "token").then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn bearer_value(token: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("Bearer {token}")).ok()
}

/// Lets a request through with the token in its header, its cookie or its query (then setting the cookie
/// and sending the browser to the same page without the token in its address); else the sign-in page.
async fn require_reviewer(State(s): State<ReviewState>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    if s.bearer.accepts(headers.get(header::AUTHORIZATION))
        || cookie_token(headers).and_then(|t| bearer_value(&t)).is_some_and(|v| s.bearer.accepts(Some(&v)))
    {
        return next.run(req).await;
    }
    if let Some(token) = query_token(&req)
        && bearer_value(&token).is_some_and(|v| s.bearer.accepts(Some(&v)))
    {
        // The same page, with the rest of its query, without the token in the address.
        let rest: Vec<&str> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|kv| !kv.is_empty() && !kv.starts_with("token="))
            .collect();
        let path = match rest.is_empty() {
            true => req.uri().path().to_string(),
            false => format!("{}?{}", req.uri().path(), rest.join("&")),
        };
        let mut res = Redirect::to(&path).into_response();
        let cookie = format!("{COOKIE}={token}; Path=/review; HttpOnly; SameSite=Strict");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
        return res;
    }
    let body = page(
        "Sign in",
        "<h1>Distillery review</h1><p>This page needs the API's bearer token.</p>\
         <form method=\"get\" action=\"/review\"><label>Token <input type=\"password\" name=\"token\" \
         id=\"token\"></label> <button type=\"submit\">Open</button></form>",
    );
    (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], Html(body)).into_response()
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;background:#fafafa;color:#222}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}\
th{background:#e8eef7}.record{border:1px solid #bbb;border-radius:6px;padding:10px;margin:12px 0;background:#fff}\
.accepted{border-left:8px solid #2e9d45}.rejected{border-left:8px solid #c8372d}\
.outcome{font-weight:bold;text-transform:uppercase}.q{font-weight:bold}.scores{color:#555}\
pre{white-space:pre-wrap;background:#f2f2f2;padding:6px}textarea{width:100%}\
button{margin-right:6px;padding:4px 10px}.reviewed{background:#fff6d5;padding:2px 6px}\
#feed .event{border-bottom:1px solid #ddd;padding:4px}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} - Distillery review</title>\
         <style>{STYLE}</style></head><body>{body}</body></html>",
        esc(title)
    )
}

fn nav() -> &'static str {
    "<p><a href=\"/review\">Documents</a> · <a href=\"/review/live\">Live</a></p>"
}

type PageResult = Result<Html<String>, (StatusCode, Html<String>)>;

fn unavailable(e: impl std::fmt::Display) -> (StatusCode, Html<String>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(page("Unavailable", &format!("<p>The dataset store did not answer: {}</p>", esc(&e.to_string())))),
    )
}

/// `GET /review`: the documents, the dataset versions.
async fn index(State(s): State<ReviewState>) -> PageResult {
    let docs = s.api.store.documents().await.map_err(unavailable)?;
    let versions: Vec<DatasetVersion> = s.api.store.versions().await.map_err(unavailable)?;
    let mut html = String::from("<h1>Distillery review</h1>");
    html.push_str(nav());
    html.push_str(&format!("<h2>Documents ({})</h2>", docs.len()));
    html.push_str(
        "<table id=\"documents\"><tr><th>Document</th><th>Chunks</th><th>Accepted</th><th>Rejected</th>\
         <th>Status</th></tr>",
    );
    for d in &docs {
        let status = if d.chunks_pending > 0 { "in progress" } else { "done" };
        html.push_str(&format!(
            "<tr class=\"document\"><td><a href=\"/review/documents/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{status}</td></tr>",
            esc(&d.document_id),
            esc(&d.name),
            d.chunks,
            d.accepted,
            d.rejected
        ));
    }
    html.push_str("</table>");
    if !versions.is_empty() {
        html.push_str(
            "<h2>Versions</h2><table id=\"versions\"><tr><th>Version</th><th>Judge</th><th>Threshold</th>\
                       <th>Re-decided</th><th>Newly accepted</th><th>Newly rejected</th></tr>",
        );
        for v in &versions {
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                v.version,
                esc(&v.judge_model),
                v.threshold,
                v.judged,
                v.newly_accepted,
                v.newly_rejected
            ));
        }
        html.push_str("</table>");
    }
    Ok(Html(page("Documents", &html)))
}

/// A record as the page shows it: what stands now, and whether a person reviewed it.
struct Shown {
    record: Record,
    review: Option<Review>,
}

/// Every record of a document as it stands now (versions and reviews applied).
async fn records_of(s: &ReviewState, document: &str) -> Result<Vec<Shown>, (StatusCode, Html<String>)> {
    let overrides: Overrides = s.api.store.overrides().await.map_err(unavailable)?;
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for kind in [OutcomeKind::Accepted, OutcomeKind::Rejected] {
        let mut after: Option<String> = None;
        loop {
            let page = s.api.store.outcomes(kind, after.as_deref(), PAGE).await.map_err(unavailable)?;
            let full = page.len() == PAGE;
            after = page.last().map(|r| r.id().to_string()).or(after);
            for r in page {
                if r.document_id() != Some(document) {
                    continue;
                }
                let draft = distillery_dataset::subject_draft(&r).map(|d| d.id.clone());
                if let Some(d) = &draft
                    && !seen.insert(d.clone())
                {
                    continue;
                }
                let review = draft.as_ref().and_then(|d| overrides.reviews.get(d)).cloned();
                out.push(Shown { record: overrides.current(r), review });
            }
            if !full {
                break;
            }
        }
    }
    Ok(out)
}

fn record_html(shown: &Shown) -> String {
    let (outcome, view, draft_id) = match &shown.record {
        Record::Accepted(a) => ("accepted", ExampleView::accepted(a), Some(a.judged.draft.id.clone())),
        Record::Rejected(r) => ("rejected", ExampleView::rejected(r), r.draft.as_ref().map(|d| d.id.clone())),
        _ => return String::new(),
    };
    let mut h = format!(
        "<div class=\"record {outcome}\" id=\"record-{}\" data-draft=\"{}\"><span class=\"outcome\">{outcome}</span> ",
        esc(draft_id.as_deref().unwrap_or(&view.id)),
        esc(draft_id.as_deref().unwrap_or(""))
    );
    if let Some(r) = &shown.review {
        h.push_str(&format!("<span class=\"reviewed\">reviewed: {}</span>", r.action.as_str()));
    }
    if let Some(reason) = &view.reason {
        h.push_str(&format!(" <span class=\"reason\">{}</span>", esc(reason)));
    }
    for m in &view.messages {
        let class = if m.role == "user" { "q" } else { "a" };
        h.push_str(&format!("<p class=\"{class}\">{}: {}</p>", esc(&m.role), esc(&m.content)));
    }
    if view.messages.is_empty()
        && let Some(d) = &view.detail
    {
        h.push_str(&format!("<p class=\"detail\">{}</p>", esc(d)));
    }
    if let Some(s) = &view.scores {
        h.push_str(&format!(
            "<p class=\"scores\">overall {} · faithfulness {} · correctness {} · clarity {} · usefulness {}</p>",
            s.overall, s.faithfulness, s.correctness, s.clarity, s.usefulness
        ));
    }
    if let Some(r) = &view.rationale {
        h.push_str(&format!("<p class=\"rationale\"><b>Rationale:</b> {}</p>", esc(r)));
    }
    if let Some(r) = &view.reasoning {
        h.push_str(&format!(
            "<details><summary>Reasoning trace</summary><pre class=\"reasoning\">{}</pre></details>",
            esc(r)
        ));
    }
    if let Some(c) = &view.context_text {
        h.push_str(&format!(
            "<details><summary>Source chunk</summary><pre class=\"source\">{}</pre></details>",
            esc(c)
        ));
    }
    if let Some(d) = draft_id {
        let q = view.messages.iter().find(|m| m.role == "user").map_or("", |m| m.content.as_str());
        let a = view.messages.iter().rev().find(|m| m.role == "assistant").map_or("", |m| m.content.as_str());
        let d = esc(&d);
        h.push_str(&format!(
            "<form method=\"post\" action=\"/review/drafts/{d}\" class=\"decide\">\
             <button type=\"submit\" name=\"action\" value=\"accept\" id=\"accept-{d}\">Accept</button>\
             <button type=\"submit\" name=\"action\" value=\"reject\" id=\"reject-{d}\">Reject</button></form>\
             <details><summary>Edit</summary><form method=\"post\" action=\"/review/drafts/{d}\" class=\"edit\">\
             <input type=\"hidden\" name=\"action\" value=\"edit\">\
             <label>Question<textarea name=\"question\" rows=\"2\">{}</textarea></label>\
             <label>Answer<textarea name=\"answer\" rows=\"4\">{}</textarea></label>\
             <label>Note <input name=\"note\"></label> <button type=\"submit\">Save edit</button></form></details>",
            esc(q),
            esc(a)
        ));
    }
    h.push_str("</div>");
    h
}

/// `GET /review/documents/{id}`: a document's records.
async fn document(State(s): State<ReviewState>, Path(id): Path<String>) -> PageResult {
    let docs = s.api.store.documents().await.map_err(unavailable)?;
    let Some(doc) = docs.iter().find(|d| d.document_id == id) else {
        return Err((
            StatusCode::NOT_FOUND,
            Html(page("Not found", &format!("<p>No document {}</p>{}", esc(&id), nav()))),
        ));
    };
    let records = records_of(&s, &id).await?;
    let accepted = records.iter().filter(|r| matches!(r.record, Record::Accepted(_))).count();
    let mut html = format!(
        "<h1>{}</h1>{}<p id=\"counts\">{} records: <span id=\"accepted-count\">{accepted}</span> accepted, \
         <span id=\"rejected-count\">{}</span> rejected</p>",
        esc(&doc.name),
        nav(),
        records.len(),
        records.len() - accepted
    );
    for r in &records {
        html.push_str(&record_html(r));
    }
    Ok(Html(page(&doc.name, &html)))
}

/// The review form.
#[derive(Debug, Deserialize)]
pub struct DecideForm {
    pub action: String,
    pub question: Option<String>,
    pub answer: Option<String>,
    pub note: Option<String>,
}

/// `POST /review/drafts/{id}`: stores a review, then back to the document.
async fn decide(State(s): State<ReviewState>, Path(id): Path<String>, Form(f): Form<DecideForm>) -> Response {
    let Some(action) = ReviewAction::from_name(&f.action) else {
        return (StatusCode::BAD_REQUEST, Html(page("Bad request", "<p>action must be accept, reject or edit</p>")))
            .into_response();
    };
    let document = match find_draft_document(&s, &id).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                Html(page("Not found", &format!("<p>No record of draft {}</p>", esc(&id)))),
            )
                .into_response();
        }
        Err(e) => return e.into_response(),
    };
    let nonempty = |s: Option<String>| s.filter(|v| !v.trim().is_empty());
    let review = Review {
        draft_id: id.clone(),
        action,
        question: nonempty(f.question),
        answer: nonempty(f.answer),
        note: nonempty(f.note),
        reviewed_at_ms: now_ms(),
    };
    if let Err(e) = s.api.store.review(&review).await {
        return unavailable(e).into_response();
    }
    s.metrics.reviews.with_label_values(&[action.as_str()]).inc();
    tracing::info!(draft = %id, action = action.as_str(), "record reviewed");
    Redirect::to(&format!("/review/documents/{document}#record-{id}")).into_response()
}

/// The document of a draft that has an outcome.
async fn find_draft_document(s: &ReviewState, draft: &str) -> Result<Option<String>, (StatusCode, Html<String>)> {
    for kind in [OutcomeKind::Accepted, OutcomeKind::Rejected] {
        let mut after: Option<String> = None;
        loop {
            let page = s.api.store.outcomes(kind, after.as_deref(), PAGE).await.map_err(unavailable)?;
            let full = page.len() == PAGE;
            after = page.last().map(|r| r.id().to_string()).or(after);
            for r in &page {
                if let Some(d) = distillery_dataset::subject_draft(r)
                    && d.id == draft
                {
                    return Ok(Some(d.document_id.clone()));
                }
            }
            if !full {
                break;
            }
        }
    }
    Ok(None)
}

const LIVE_SCRIPT: &str = r#"
const feed = document.getElementById('feed');
const status = document.getElementById('status');
let n = 0;
function add(kind, e) {
  const d = JSON.parse(e.data);
  const div = document.createElement('div');
  div.className = 'event ' + kind;
  const b = document.createElement('b'); b.textContent = kind + ' '; div.appendChild(b);
  const q = document.createElement('span'); q.className = 'q'; q.textContent = d.question || d.detail || d.id; div.appendChild(q);
  if (d.answer) { const a = document.createElement('div'); a.className = 'a'; a.textContent = d.answer; div.appendChild(a); }
  if (d.reasoning) { const r = document.createElement('pre'); r.className = 'reasoning'; r.textContent = d.reasoning; div.appendChild(r); }
  if (d.scores) { const s = document.createElement('div'); s.className = 'scores'; s.textContent = 'overall ' + d.scores.overall + (d.rationale ? ': ' + d.rationale : ''); div.appendChild(s); }
  feed.insertBefore(div, feed.firstChild);
  n += 1;
  status.textContent = n + ' events';
  document.getElementById('count-' + kind).textContent = String(Number(document.getElementById('count-' + kind).textContent) + 1);
}
const src = new EventSource(feed.dataset.events);
for (const k of ['draft', 'accepted', 'rejected']) src.addEventListener(k, (e) => add(k, e));
src.onopen = () => { status.textContent = n + ' events (connected)'; };
src.addEventListener('end', () => { src.close(); status.textContent = n + ' events (snapshot complete)'; });
"#;

/// `GET /review/live`: drafts, acceptances and rejections as they arrive (`?follow=false`: what has arrived
/// so far, then the feed closes).
async fn live(Query(q): Query<EventsQuery>) -> Html<String> {
    let events = if q.follow == Some(false) { "/review/events?follow=false" } else { "/review/events" };
    let body = format!(
        "<h1>Live generation</h1>{}<p>Drafts <span id=\"count-draft\">0</span> · accepted \
         <span id=\"count-accepted\">0</span> · rejected <span id=\"count-rejected\">0</span> · \
         <span id=\"status\">connecting</span></p><div id=\"feed\" data-events=\"{events}\"></div>\
         <script>{LIVE_SCRIPT}</script>",
        nav()
    );
    Html(page("Live", &body))
}

/// `?since=` (milliseconds since the epoch; default: everything) and `?follow=false` (what has arrived so
/// far, then an `end` event and the stream ends; default: follow what arrives).
#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    pub since: Option<i64>,
    pub follow: Option<bool>,
}

/// Where one client's feed is.
struct Feed {
    store: std::sync::Arc<dyn distillery_dataset::DatasetStore>,
    /// The time of the newest arrival sent.
    since: i64,
    /// What was sent (arrivals of the cursor's millisecond come again).
    sent: HashSet<String>,
    queue: std::collections::VecDeque<Event>,
    polls: u64,
}

/// The event of one arrival: its kind and its flat view.
fn arrival_event(record: &Record) -> Option<Event> {
    let (kind, view) = match record {
        Record::Draft(d) => {
            let mut v = ExampleView::accepted(&distillery_core::Accepted {
                id: d.id.clone(),
                judged: distillery_core::Judged {
                    id: d.id.clone(),
                    draft: d.clone(),
                    scores: distillery_core::Scores {
                        overall: 0,
                        faithfulness: 0,
                        correctness: 0,
                        clarity: 0,
                        usefulness: 0,
                    },
                    rationale: String::new(),
                    passed: false,
                    judge: d.generator.clone(),
                    judged_at_ms: d.created_at_ms,
                },
                nearest_similarity: None,
                accepted_at_ms: d.created_at_ms,
            });
            (v.scores, v.rationale, v.judge) = (None, None, None);
            ("draft", v)
        }
        Record::Accepted(a) => ("accepted", ExampleView::accepted(a)),
        Record::Rejected(r) => ("rejected", ExampleView::rejected(r)),
        _ => return None,
    };
    let data = serde_json::to_string(&view).ok()?;
    Some(Event::default().event(kind).id(view.at_ms.to_string()).data(data))
}

/// `GET /review/events`: server-sent events `draft`, `accepted` and `rejected` (the record's flat view as
/// JSON), everything since `?since=` (or the `Last-Event-ID` a reconnecting browser sends) and then what
/// arrives, polled from the store.
async fn events(
    State(s): State<ReviewState>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok());
    let since = q.since.or(last).unwrap_or(0);
    let follow = q.follow.unwrap_or(true);
    let feed = Feed { store: s.api.store.clone(), since, sent: HashSet::new(), queue: Default::default(), polls: 0 };
    let stream = futures::stream::unfold(Some(feed), move |feed| async move {
        let mut f = feed?;
        loop {
            if let Some(e) = f.queue.pop_front() {
                return Some((Ok::<Event, Infallible>(e), Some(f)));
            }
            if f.polls > 0 && follow {
                tokio::time::sleep(POLL).await;
            }
            f.polls += 1;
            let new = match f.store.arrivals(f.since, FEED_BATCH).await {
                Ok(batch) => {
                    let mut new = 0;
                    for (at, record) in batch {
                        // Records of the cursor's millisecond come again on the next poll.
                        // By kind and id: an accepted record may carry its draft's id.
                        let key = format!("{:?}:{}", record.kind(), record.id());
                        if f.sent.insert(key)
                            && let Some(e) = arrival_event(&record)
                        {
                            f.queue.push_back(e);
                            new += 1;
                        }
                        f.since = f.since.max(at);
                    }
                    new
                }
                Err(e) => {
                    tracing::warn!(error = %e, "live review feed: the store did not answer");
                    0
                }
            };
            if new == 0 && !follow {
                return Some((Ok(Event::default().event("end").data("{}")), None));
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn tokens_are_read_from_cookies_and_queries() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=b; distillery_review=s3cret; c=d"));
        assert_eq!(cookie_token(&h).as_deref(), Some("s3cret"));
        assert_eq!(percent_decode("a%20b+c%2F"), "a b c/");
        assert_eq!(percent_decode("100%"), "100%");
        let req = Request::builder().uri("/review?x=1&token=t%3Dk").body(axum::body::Body::empty()).unwrap();
        assert_eq!(query_token(&req).as_deref(), Some("t=k"));
    }
}
