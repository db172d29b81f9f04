#!/usr/bin/env bash
# distilabel and Distillery side by side on one llama.cpp server (see loadtest/src/bin/sidebyside.rs):
#
#   loadtest/sidebyside.sh [FOLDER] [--model qwen2.5-0.5b|qwen2.5-1.5b] [--port 18097] [--parallel 2]
#                          [--threads 2] [--out loadtest/results/sidebyside] [--grounded-rating] ...
#
# Installs what is missing (the pinned distilabel venv, the embedding model; the server and the model are
# installed by scripts/local-llm), builds `distillery` and `sidebyside` in release mode, and runs them. Every
# option goes to sidebyside (`--help` lists them). FOLDER defaults to examples/docs.
source "$(dirname "$0")/../scripts/lib.sh"
cd "$REPO"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$MACHINE_CACHE/target}"
python="$("$REPO/loadtest/distilabel/install.sh")"
export DISTILLERY_EMBED_MODEL_DIR="${DISTILLERY_EMBED_MODEL_DIR:-$(ensure_embed_model)}"
log "building distillery and sidebyside (release) in $CARGO_TARGET_DIR"
cargo build --release --quiet -p distillery -p distillery-loadtest --bin distillery --bin sidebyside
exec "$CARGO_TARGET_DIR/release/sidebyside" --python "$python" "$@"
