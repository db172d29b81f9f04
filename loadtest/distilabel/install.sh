#!/usr/bin/env bash
# Installs the distilabel baseline (requirements.txt, fully pinned) into .cache/distilabel-venv and prints
# that venv's python on stdout. The wheels are kept per machine in
# ~/.cache/distillery/wheels/distilabel-pyXY (the pattern of scripts/lib.sh): a fresh checkout on the same
# machine installs offline from them; a miss downloads them from PyPI once. Re-running is a no-op while
# requirements.txt is unchanged.
source "$(dirname "$0")/../../scripts/lib.sh"

req="$REPO/loadtest/distilabel/requirements.txt"
venv="$PROJECT_CACHE/distilabel-venv"
py="${DISTILABEL_PYTHON:-python3}"
command -v "$py" >/dev/null || die "$py not found (set DISTILABEL_PYTHON to a Python 3.10-3.12)"
pyver="$("$py" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
case "$pyver" in 310|311|312) ;; *) die "distilabel 1.5.3 and its pinned wheels need Python 3.10-3.12; $py is $pyver" ;; esac
wheels="$MACHINE_CACHE/wheels/distilabel-py$pyver"
stamp="$venv/.requirements.sha256"
sum="$(sha256sum "$req" | cut -d' ' -f1)"

if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
  printf '%s\n' "$venv/bin/python"
  exit 0
fi

log "creating the distilabel venv in $venv"
rm -rf "$venv"
"$py" -m venv "$venv" >&2
mkdir -p "$wheels"
if ! "$venv/bin/pip" install -q --no-index --find-links "$wheels" -r "$req" >&2 2>/dev/null; then
  log "fetching distilabel's pinned wheels into $wheels (once per machine)"
  "$venv/bin/pip" wheel -q --find-links "$wheels" -w "$wheels" -r "$req" >&2 \
    || die "could not fetch the wheels of $req from PyPI"
  "$venv/bin/pip" install -q --no-index --find-links "$wheels" -r "$req" >&2 \
    || die "could not install $req from $wheels"
fi
HF_HUB_OFFLINE=1 "$venv/bin/python" -c "import distilabel, openai; assert distilabel.__version__ == '1.5.3', distilabel.__version__" >&2 \
  || die "distilabel does not import in $venv"
printf '%s\n' "$sum" > "$stamp"
printf '%s\n' "$venv/bin/python"
