#!/usr/bin/env python3
"""The distilabel baseline of loadtest/sidebyside: a plain distilabel 1.5.3 pipeline that turns documents into
rated question/answer pairs through an OpenAI-compatible server (llama.cpp).

    load chunks --> TextGeneration (one QA pair per ~1,000-character chunk)
                      |--> ParseQA (keeps generations with a "Question: / Answer:" pair)
                      |        --> UltraFeedback(aspect="overall-rating", 1-5, same model)
                      '--> AllGenerations (every generation as it came, for the counts)

then keeps ratings >= 4 and marks exact/near-exact repeated questions (same normalised text) as duplicates.
Tokens are the server's `usage` fields, as distilabel records them per row (distilabel_metadata.statistics_*).

    python pipeline.py --docs docs.jsonl --base-url http://127.0.0.1:18097/v1 --model qwen2.5-0.5b --out DIR
    python pipeline.py --input examples/docs ...     # .md/.txt/.html read as text (PDF/DOCX: use --docs)

--docs is JSON lines {"document": name, "text": full text}; the side-by-side driver writes it from
`distillery extract`, so both systems read the same text. DIR gets generations.jsonl (every chunk, its
generation and parse status), rated.jsonl (every rated pair), kept.jsonl (rating >= 4, with `duplicate`)
and summary.json.
"""

import argparse
import json
import os
import re
import sys
import time
import unicodedata
from pathlib import Path

# distilabel and datasets must not reach for the Hugging Face Hub: everything here is local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

QA_TEMPLATE = """Here is a passage from a company document.

<passage>
{{ chunk }}
</passage>

Write one question that an employee or a customer could ask about this passage, and its answer, using only facts stated in the passage. Reply in exactly this format and nothing else:
Question: <the question>
Answer: <the answer>"""

GROUNDED_INSTRUCTION = """Answer the question using only the passage below.

<passage>
{chunk}
</passage>

Question: {question}"""

from distilabel.models import OpenAILLM  # noqa: E402
from distilabel.pipeline import Pipeline  # noqa: E402
from distilabel.steps import LoadDataFromDicts, Step, StepInput  # noqa: E402
from distilabel.steps.tasks import TextGeneration, UltraFeedback  # noqa: E402
from distilabel.typing import StepOutput  # noqa: E402,F401
from pydantic import SecretStr  # noqa: E402

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".text", ".html", ".htm", ".rst"}


def normalize_question(q: str) -> str:
    """Exact/near-exact key: NFKC, lower case, every non-alphanumeric run one space. The Rust driver
    (loadtest/src/bin/sidebyside.rs, `question_key`) computes the same key for both systems."""
    q = unicodedata.normalize("NFKC", q).lower()
    return " ".join("".join(c if c.isalnum() else " " for c in q).split())


def chunk_text(text: str, target: int) -> list[str]:
    """~`target`-character chunks: whole paragraphs packed greedily; a paragraph longer than the target is
    cut at sentence ends (a sentence longer than that at whitespace); a last piece under a fifth of the
    target joins the previous chunk."""
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = para.strip()
        if not para:
            continue
        if len(para) <= target:
            pieces.append(para)
            continue
        for sent in re.split(r"(?<=[.!?])\s+", para):
            while len(sent) > target:
                cut = sent.rfind(" ", 0, target)
                cut = cut if cut > target // 2 else target
                pieces.append(sent[:cut].strip())
                sent = sent[cut:].strip()
            if sent:
                pieces.append(sent)
    chunks: list[str] = []
    cur = ""
    for p in pieces:
        if cur and len(cur) + 2 + len(p) > target:
            chunks.append(cur)
            cur = p
        else:
            cur = f"{cur}\n\n{p}" if cur else p
    if cur:
        if chunks and len(cur) < target // 5:
            chunks[-1] = f"{chunks[-1]}\n\n{cur}"
        else:
            chunks.append(cur)
    return chunks


def load_documents(args) -> list[dict]:
    docs = []
    if args.docs:
        with open(args.docs, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    d = json.loads(line)
                    docs.append({"document": d["document"], "text": d["text"]})
    else:
        root = Path(args.input)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in files:
            if p.suffix.lower() in TEXT_SUFFIXES:
                text = p.read_text(encoding="utf-8", errors="replace")
                if p.suffix.lower() in {".html", ".htm"}:
                    text = re.sub(r"<[^>]+>", " ", text)
                docs.append({"document": str(p), "text": text})
            else:
                print(f"skipping {p}: not text (pass --docs from `distillery extract` for PDF/DOCX)", file=sys.stderr)
    return docs


QA_RE = re.compile(
    r"^\W*(?:Q|Question)\s*\d*\s*\W*?[:\uff1a]\W*(?P<q>.+?)\s*\n+\W*(?:A|Answer)\s*\d*\s*\W*?[:\uff1a]\W*(?P<a>.+?)\s*$",
    re.IGNORECASE | re.DOTALL | re.MULTILINE,
)


def parse_qa(text):
    """The first "Question: ... / Answer: ..." pair of a generation (markdown bold tolerated), else None."""
    if not text:
        return None
    m = QA_RE.search(text)
    if not m:
        return None
    q = m.group("q").strip().strip("*").strip()
    # Only the first answer: a model that goes on with "Question 2:" does not run into it.
    a = re.split(r"\n\s*\W*(?:Q|Question)\s*\d*\s*\W*?[:\uff1a]", m.group("a"), maxsplit=1, flags=re.IGNORECASE)[0]
    a = a.strip().strip("*").strip()
    if len(q) < 5 or not a or "?" not in q and len(q.split()) < 3:
        return None
    return q, a


def first_rating(ratings):
    """UltraFeedback's parser returns one entry per blank-line-separated section of the output; prose before
    the "Rating:" block gives a None first. The rating of the one text is the first integer one found."""
    for r in ratings or []:
        if isinstance(r, int):
            return r
    return None


def tokens_of(row: dict, step: str) -> tuple[int, int]:
    stats = (row.get("distilabel_metadata") or {}).get(f"statistics_{step}") or {}
    inp, out = stats.get("input_tokens") or 0, stats.get("output_tokens") or 0
    inp = sum(x or 0 for x in inp) if isinstance(inp, list) else int(inp)
    out = sum(x or 0 for x in out) if isinstance(out, list) else int(out)
    return inp, out


# Steps are module-level classes: distilabel pickles them into its worker processes.
class AllGenerations(Step):
    """A leaf with every generation as it came (distilabel_metadata included), for the counts."""

    @property
    def inputs(self):
        return ["generation"]

    @property
    def outputs(self):
        return []

    def process(self, inputs: StepInput) -> "StepOutput":
        yield inputs


class ParseQA(Step):
    """Keeps generations with a Question/Answer pair and shapes them for UltraFeedback (instruction plus
    one generation); the rest are counted from AllGenerations and never rated."""

    grounded: bool = False

    @property
    def inputs(self):
        return ["generation", "chunk"]

    @property
    def outputs(self):
        return ["instruction", "generations", "question", "answer"]

    def process(self, inputs: StepInput) -> "StepOutput":
        kept = []
        for row in inputs:
            qa = parse_qa(row.get("generation"))
            if qa is None:
                continue
            q, a = qa
            instruction = GROUNDED_INSTRUCTION.format(chunk=row["chunk"], question=q) if self.grounded else q
            kept.append({**row, "question": q, "answer": a, "instruction": instruction, "generations": [a]})
        yield kept


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--docs", help="JSON lines {document, text}")
    src.add_argument("--input", help="a folder or file of text documents")
    ap.add_argument("--base-url", required=True, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:18097/v1")
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--chunk-chars", type=int, default=1000)
    ap.add_argument("--threshold", type=int, default=4, help="keep ratings >= this")
    ap.add_argument("--batch-size", type=int, default=8, help="rows per batch (distilabel sends a batch at once)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per LLM request")
    ap.add_argument("--max-retries", type=int, default=2)
    ap.add_argument("--gen-max-tokens", type=int, default=384)
    ap.add_argument("--gen-temperature", type=float, default=0.7)
    ap.add_argument("--rate-max-tokens", type=int, default=256)
    ap.add_argument("--rate-temperature", type=float, default=0.1)
    ap.add_argument(
        "--grounded-rating",
        action="store_true",
        help="give the rater the passage with the question (off: UltraFeedback as designed, question and answer only)",
    )
    args = ap.parse_args()

    started = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    docs = load_documents(args)
    rows = []
    for d in docs:
        for i, c in enumerate(chunk_text(d["text"], args.chunk_chars)):
            rows.append({"document": d["document"], "chunk_index": i, "chunk": c})
    if not rows:
        print("error: no text to work on", file=sys.stderr)
        return 2
    print(f"{len(docs)} documents, {len(rows)} chunks of ~{args.chunk_chars} characters", file=sys.stderr)

    grounded = args.grounded_rating
    def llm():
        return OpenAILLM(
            model=args.model,
            base_url=args.base_url,
            api_key=SecretStr("none"),
            timeout=int(args.timeout),
            max_retries=args.max_retries,
        )

    with Pipeline(name="distillery-sidebyside-baseline", cache_dir=str(out / "cache")) as pipeline:
        load = LoadDataFromDicts(name="load_chunks", data=rows, batch_size=args.batch_size)
        generate = TextGeneration(
            name="text_generation",
            llm=llm(),
            template=QA_TEMPLATE,
            columns=["chunk"],
            input_batch_size=args.batch_size,
            add_raw_output=True,
            add_raw_input=False,
        )
        every = AllGenerations(name="all_generations", input_batch_size=args.batch_size)
        parse = ParseQA(name="parse_qa", grounded=grounded, input_batch_size=args.batch_size)
        rate = UltraFeedback(
            name="ultrafeedback",
            llm=llm(),
            aspect="overall-rating",
            input_batch_size=args.batch_size,
            add_raw_output=True,
            add_raw_input=False,
        )
        load >> generate >> [every, parse]
        parse >> rate

    distiset = pipeline.run(
        use_cache=False,
        parameters={
            "text_generation": {
                "llm": {
                    "generation_kwargs": {"max_new_tokens": args.gen_max_tokens, "temperature": args.gen_temperature}
                }
            },
            "ultrafeedback": {
                "llm": {
                    "generation_kwargs": {"max_new_tokens": args.rate_max_tokens, "temperature": args.rate_temperature}
                }
            },
        },
    )

    def subset(name):
        if name not in distiset:
            return []
        return distiset[name]["train"].to_list()

    generations = subset("all_generations")
    rated = subset("ultrafeedback")

    prompt_tokens = completion_tokens = 0
    gen_failed = qa_unparsed = 0
    gen_lines = []
    for r in generations:
        pi, po = tokens_of(r, "text_generation")
        prompt_tokens += pi
        completion_tokens += po
        qa = parse_qa(r.get("generation"))
        status = "ok" if qa else ("llm_failed" if r.get("generation") is None else "unparsed")
        gen_failed += status == "llm_failed"
        qa_unparsed += status == "unparsed"
        gen_lines.append(
            {"document": r["document"], "chunk_index": r["chunk_index"], "status": status, "generation": r.get("generation")}
        )

    rate_failed = rating_unparsed = 0
    histogram = {str(i): 0 for i in range(1, 6)}
    rated_lines, kept_lines, seen = [], [], set()
    for r in rated:
        pi, po = tokens_of(r, "ultrafeedback")
        prompt_tokens += pi
        completion_tokens += po
        raw = (r.get("distilabel_metadata") or {}).get("raw_output_ultrafeedback")
        rating = first_rating(r.get("ratings"))
        if raw is None:
            status = "llm_failed"
            rate_failed += 1
        elif rating is None:
            status = "unparsed"
            rating_unparsed += 1
        else:
            status = "ok"
            histogram[str(rating)] = histogram.get(str(rating), 0) + 1
        line = {
            "document": r["document"],
            "chunk_index": r["chunk_index"],
            "question": r["question"],
            "answer": r["answer"],
            "rating": rating,
            "status": status,
            "ratings": r.get("ratings"),
            "rationale": next((x for x in (r.get("rationales") or []) if x), None),
            "raw_rating_output": raw,
        }
        rated_lines.append(line)
        if rating is not None and rating >= args.threshold:
            key = normalize_question(r["question"])
            kept_lines.append({**line, "duplicate": key in seen})
            seen.add(key)

    def write(name, lines):
        with open(out / name, "w", encoding="utf-8") as f:
            for x in lines:
                f.write(json.dumps(x, ensure_ascii=False) + "\n")

    write("generations.jsonl", gen_lines)
    write("rated.jsonl", rated_lines)
    write("kept.jsonl", kept_lines)
    summary = {
        "system": "distilabel",
        "distilabel_version": __import__("distilabel").__version__,
        "model": args.model,
        "documents": len(docs),
        "chunks": len(rows),
        "generations": len(generations),
        "generation_llm_failed": gen_failed,
        "qa_unparsed": qa_unparsed,
        "rated": len(rated),
        "rating_llm_failed": rate_failed,
        "rating_unparsed": rating_unparsed,
        "rating_histogram": histogram,
        "kept": len(kept_lines),
        "kept_unique": len(seen),
        "llm_calls": len(generations) - gen_failed + len(rated) - rate_failed,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "grounded_rating": grounded,
        "duration_s": round(time.monotonic() - started, 3),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
