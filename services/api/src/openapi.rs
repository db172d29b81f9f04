//! The OpenAPI 3.1 document of the API (`GET /openapi.json`), written by hand: the routes' shapes are the
//! serde forms of `distillery-dataset` and `distillery-export` types, and the tests check both ways that
//! the document and the router list the same routes, and that the types serialize only the properties
//! described here.

use serde_json::{Value, json};

// (the document is one large `json!`; its macro needs more than the default recursion depth)

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn json_response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

fn id_param(what: &str) -> Value {
    json!({ "name": "id", "in": "path", "required": true, "description": what, "schema": { "type": "string" } })
}

fn protected(mut op: Value) -> Value {
    op["security"] = json!([{ "bearer": [] }]);
    op["responses"]["401"] = error_response("No or wrong bearer token");
    op
}

fn string() -> Value {
    json!({ "type": "string" })
}
fn nullable(t: &str) -> Value {
    json!({ "type": [t, "null"] })
}
fn integer() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}
fn counts() -> Value {
    json!({ "type": "object", "additionalProperties": { "type": "integer" } })
}
fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn schemas() -> Value {
    json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": { "code": string(), "message": string() }
                }
            }
        },
        "Status": {
            "type": "object",
            "required": ["status"],
            "properties": { "status": string() }
        },
        "DocumentProgress": {
            "type": "object",
            "description": "Where one document is: its chunks and outcomes so far and the tokens spent on it.",
            "required": ["name", "document_id", "chunks", "chunks_done", "chunks_failed", "chunks_pending",
                         "accepted", "rejected", "rejected_by_reason", "prompt_tokens", "completion_tokens", "tokens"],
            "properties": {
                "name": { "type": "string", "description": "The source object's key" },
                "document_id": string(),
                "chunks": integer(),
                "chunks_done": integer(),
                "chunks_failed": integer(),
                "chunks_pending": integer(),
                "accepted": integer(),
                "rejected": integer(),
                "rejected_by_reason": counts(),
                "deleted": { "type": "boolean", "description": "The source object is gone: its records are no longer exported." },
                "prompt_tokens": integer(),
                "completion_tokens": integer(),
                "tokens": integer()
            }
        },
        "DocumentList": {
            "type": "object",
            "required": ["documents"],
            "properties": { "documents": { "type": "array", "items": reference("DocumentProgress") } }
        },
        "Usage": {
            "type": "object",
            "required": ["generator_prompt", "generator_completion", "judge_prompt", "judge_completion"],
            "properties": {
                "generator_prompt": integer(),
                "generator_completion": integer(),
                "judge_prompt": integer(),
                "judge_completion": integer()
            }
        },
        "Stats": {
            "type": "object",
            "description": "The whole dataset's counts.",
            "required": ["documents", "chunks", "chunks_done", "chunks_failed", "chunks_pending", "drafts",
                         "regenerated", "repaired", "accepted", "rejected", "rejected_by_reason", "dead_letters",
                         "dpo_pairs", "verdicts", "mean_score", "rejection_rate", "runs", "llm_calls", "usage"],
            "properties": {
                "documents": integer(),
                "chunks": integer(),
                "chunks_done": integer(),
                "chunks_failed": integer(),
                "chunks_pending": integer(),
                "drafts": integer(),
                "regenerated": integer(),
                "repaired": integer(),
                "accepted": integer(),
                "rejected": integer(),
                "rejected_by_reason": counts(),
                "dead_letters": integer(),
                "dpo_pairs": integer(),
                "verdicts": integer(),
                "mean_score": nullable("number"),
                "rejection_rate": nullable("number"),
                "runs": integer(),
                "llm_calls": integer(),
                "usage": reference("Usage")
            }
        },
        "Scores": {
            "type": "object",
            "required": ["overall", "faithfulness", "correctness", "clarity", "usefulness"],
            "properties": {
                "overall": { "type": "integer" },
                "faithfulness": { "type": "integer" },
                "correctness": { "type": "integer" },
                "clarity": { "type": "integer" },
                "usefulness": { "type": "integer" }
            }
        },
        "Turn": {
            "type": "object",
            "required": ["role", "content"],
            "properties": {
                "role": string(),
                "content": string(),
                "chunk_ids": { "type": "array", "items": string() }
            }
        },
        "Model": {
            "type": "object",
            "required": ["provider", "model", "temperature", "seed", "template", "template_hash",
                         "prompt_tokens", "completion_tokens", "latency_ms"],
            "properties": {
                "provider": string(),
                "model": string(),
                "temperature": { "type": "number" },
                "max_tokens": nullable("integer"),
                "seed": nullable("integer"),
                "template": string(),
                "template_hash": string(),
                "prompt_tokens": { "type": "integer" },
                "completion_tokens": { "type": "integer" },
                "latency_ms": { "type": "integer" }
            }
        },
        "Previous": {
            "type": "object",
            "required": ["draft_id", "messages", "scores", "rationale"],
            "properties": {
                "draft_id": string(),
                "messages": { "type": "array", "items": reference("Turn") },
                "scores": reference("Scores"),
                "rationale": string(),
                "preference": {
                    "type": "object",
                    "description": "The judge's check that the regeneration is better than this draft (absent: never checked).",
                    "properties": {
                        "verified": { "type": "boolean" },
                        "votes": { "type": "array", "items": string() },
                        "reason": string()
                    }
                }
            }
        },
        "Record": {
            "type": "object",
            "description": "An accepted or rejected record as accepted.jsonl / rejected.jsonl carry it, with its outcome and the stored record's id (the page cursor).",
            "required": ["outcome", "record_id", "id", "kind", "at_ms"],
            "properties": {
                "outcome": { "type": "string", "enum": ["accepted", "rejected"] },
                "record_id": string(),
                "id": string(),
                "kind": { "type": "string", "description": "qa, conversation; for rejections without a draft: document, chunk or object" },
                "question": string(),
                "answer": string(),
                "messages": { "type": "array", "items": reference("Turn") },
                "reasoning": string(),
                "question_type": string(),
                "difficulty": string(),
                "evidence": string(),
                "scores": reference("Scores"),
                "rationale": string(),
                "attempt": { "type": "integer" },
                "document_id": string(),
                "chunk_id": string(),
                "context_id": string(),
                "source_uri": string(),
                "context_text": string(),
                "generator": reference("Model"),
                "judge": reference("Model"),
                "previous": reference("Previous"),
                "nearest_similarity": { "type": "number" },
                "superseded_by": string(),
                "reason": { "type": "string", "description": "Rejections: low_score, duplicate, ungrounded, ..." },
                "detail": string(),
                "stage": string(),
                "raw_output": string(),
                "at_ms": { "type": "integer" }
            }
        },
        "RecordPage": {
            "type": "object",
            "required": ["records", "next_after"],
            "properties": {
                "records": { "type": "array", "items": reference("Record") },
                "next_after": { "type": ["string", "null"], "description": "The ?after= of the next page; null on the last" }
            }
        },
        "Upload": {
            "type": "object",
            "required": ["name", "location", "bytes", "run_started"],
            "properties": {
                "name": string(),
                "location": string(),
                "bytes": integer(),
                "run_started": { "type": "boolean" }
            }
        },
        "ExportRequest": {
            "type": "object",
            "required": ["format"],
            "additionalProperties": false,
            "properties": { "format": { "type": "string", "description": "alpaca, sharegpt, openai, dpo, parquet, ... (the exporter's formats)" } }
        },
        "Export": {
            "type": "object",
            "required": ["id", "format", "status", "created_at_ms", "finished_at_ms", "records", "bytes", "file_name", "error"],
            "properties": {
                "id": string(),
                "format": string(),
                "status": { "type": "string", "enum": ["running", "done", "failed"] },
                "created_at_ms": { "type": "integer" },
                "finished_at_ms": nullable("integer"),
                "records": nullable("integer"),
                "bytes": nullable("integer"),
                "file_name": nullable("string"),
                "error": nullable("string")
            }
        },
        "TableRequest": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "description": string(),
                "schema": { "type": "object" },
                "rows": integer(),
                "format": { "type": "string", "enum": ["csv", "jsonl", "parquet"] },
                "seed": integer()
            }
        }
    })
}

/// The document.
pub fn document() -> Value {
    let page_params = json!([
        id_param("The document id"),
        { "name": "after", "in": "query", "required": false, "description": "The next_after of the previous page", "schema": string() },
        { "name": "limit", "in": "query", "required": false, "description": "Records per page (default 100)", "schema": { "type": "integer", "minimum": 1 } }
    ]);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Distillery API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The dataset a Distillery pipeline builds (documents, their accepted and rejected records, totals), uploads, exports, and synthetic tables. Every /v1 route needs `Authorization: Bearer <token>` when the dataset API is on."
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas()
        },
        "paths": {
            "/healthz": { "get": { "summary": "Alive", "operationId": "healthz",
                "responses": { "200": json_response("Alive", "Status") } } },
            "/readyz": { "get": { "summary": "Ready: the dataset store answers", "operationId": "readyz",
                "responses": { "200": json_response("Ready", "Status"), "503": error_response("Not ready") } } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "operationId": "metrics",
                "responses": { "200": { "description": "Prometheus text", "content": { "text/plain": { "schema": string() } } } } } },
            "/openapi.json": { "get": { "summary": "This document", "operationId": "openapi",
                "responses": { "200": { "description": "OpenAPI 3.1", "content": { "application/json": { "schema": { "type": "object" } } } } } } },
            "/v1/documents": {
                "get": protected(json!({ "summary": "Every document with its progress", "operationId": "listDocuments",
                    "responses": { "200": json_response("The documents, by name", "DocumentList"), "503": error_response("The store did not answer") } })),
                "post": protected(json!({ "summary": "Upload a document (the raw bytes as the body)", "operationId": "uploadDocument",
                    "parameters": [{ "name": "name", "in": "query", "required": true, "description": "The file name (a relative path)", "schema": string() }],
                    "requestBody": { "required": true, "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } },
                    "responses": { "201": json_response("Stored", "Upload"), "400": error_response("No name, a bad name or an empty body"),
                                   "413": error_response("Over the upload limit") } }))
            },
            "/v1/documents/{id}": {
                "get": protected(json!({ "summary": "One document's progress", "operationId": "getDocument",
                    "parameters": [id_param("The document id")],
                    "responses": { "200": json_response("The document", "DocumentProgress"), "404": error_response("No such document") } }))
            },
            "/v1/documents/{id}/records": {
                "get": protected(json!({ "summary": "A document's accepted and rejected records, in pages", "operationId": "documentRecords",
                    "parameters": page_params,
                    "responses": { "200": json_response("One page", "RecordPage"), "400": error_response("Bad limit"),
                                   "404": error_response("No such document") } }))
            },
            "/v1/stats": {
                "get": protected(json!({ "summary": "The dataset's totals", "operationId": "stats",
                    "responses": { "200": json_response("Totals", "Stats") } }))
            },
            "/v1/exports": {
                "post": protected(json!({ "summary": "Start an export", "operationId": "startExport",
                    "requestBody": { "required": true, "content": { "application/json": { "schema": reference("ExportRequest") } } },
                    "responses": { "202": json_response("Started (Location: /v1/exports/{id})", "Export"), "400": error_response("Unknown format") } }))
            },
            "/v1/exports/{id}": {
                "get": protected(json!({ "summary": "An export's status", "operationId": "getExport",
                    "parameters": [id_param("The export id")],
                    "responses": { "200": json_response("The export", "Export"), "404": error_response("No such export") } }))
            },
            "/v1/exports/{id}/download": {
                "get": protected(json!({ "summary": "The exported file", "operationId": "downloadExport",
                    "parameters": [id_param("The export id")],
                    "responses": { "200": { "description": "The file", "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } },
                                   "404": error_response("No such export"), "409": error_response("Still running, or failed") } }))
            },
            "/v1/tabular": {
                "post": protected(json!({ "summary": "A synthetic table (streamed)", "operationId": "tabular",
                    "requestBody": { "required": true, "content": { "application/json": { "schema": reference("TableRequest") } } },
                    "responses": { "200": { "description": "The table (csv, jsonl or parquet)", "content": { "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } },
                                   "400": { "description": "Invalid request" }, "502": { "description": "The schema model failed" } } }))
            },
            "/v1/tabular/schema": {
                "post": protected(json!({ "summary": "The schema a description gives", "operationId": "tabularSchema",
                    "requestBody": { "required": true, "content": { "application/json": { "schema": reference("TableRequest") } } },
                    "responses": { "200": { "description": "The schema, its source and tokens", "content": { "application/json": { "schema": { "type": "object" } } } },
                                   "400": { "description": "Invalid request" }, "502": { "description": "The schema model failed" } } }))
            }
        }
    })
}
