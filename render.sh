#!/usr/bin/env bash
# The project's two commands. Each installs what is missing, skips what is already done, then:
#   ./render.sh [--prompt TEXT] [--quality preview|1080p60] [--theme dark|light] [--tokens SPEC]
#                       render the block_flow video from the default trace (or a fresh one for --prompt)
#   ./render.sh test [pytest args]
#                       run the whole test suite
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

VENV=.venv
PY="$VENV/bin/python"
say() { echo "[render.sh] $*" >&2; }
die() { echo "[render.sh] error: $*" >&2; exit 2; }

# ---- set-up: Debian packages Manim compiles against, a virtualenv, the project with its extras
setup_system() {
    local missing=() p
    for p in libcairo2-dev libpango1.0-dev pkg-config; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        say "installing Debian packages: ${missing[*]}"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

setup_python() {
    if [ ! -x "$PY" ]; then
        python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python >= 3.11 is needed (python3 is $(python3 -V 2>&1))"
        say "creating $VENV"
        python3 -m venv "$VENV"
    fi
    # Reinstall only when the dependency list changed.
    local stamp="$VENV/.toy-model-installed" key
    key=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$key" ]; then
        if ! command -v nvidia-smi >/dev/null 2>&1 && ! "$PY" -c 'import torch' 2>/dev/null; then
            # No GPU: a CPU build of torch first, so nothing pulls gigabytes of CUDA wheels.
            say "installing a CPU build of torch"
            "$PY" -m pip install -q "torch==2.13.*"
        fi
        say "installing the project and its test extras"
        "$PY" -m pip install -q -e ".[test]"
        echo "$key" >"$stamp"
    fi
}

setup_system
setup_python

# ---- the jobs
if [ "${1:-}" = "test" ]; then
    shift
    exec "$PY" -m pytest -q "$@"
fi

quality="preview"
prompt=""
have_prompt=0
while (($#)); do
    case "$1" in
        --prompt) [ $# -ge 2 ] || die "--prompt needs a text"; prompt="$2"; have_prompt=1; shift 2 ;;
        --quality) [ $# -ge 2 ] || die "--quality needs preview or 1080p60"; quality="$2"; shift 2 ;;
        --theme) [ $# -ge 2 ] || die "--theme needs dark or light"; export TOY_THEME="$2"; shift 2 ;;
        --tokens) [ $# -ge 2 ] || die "--tokens needs a spec such as 0-7 or all"; export TOY_TOKENS="$2"; shift 2 ;;
        -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see ./render.sh --help)" ;;
    esac
done
case "$quality" in
    preview) qflag="-ql"; qdir="480p15" ;;
    1080p60) qflag="-qh"; qdir="1080p60" ;;
    *) die "--quality must be preview or 1080p60, not '$quality'" ;;
esac

if ((have_prompt)); then
    mkdir -p media
    say "recording a trace for the prompt"
    "$PY" -m toy_model trace --prompt "$prompt" --out media/prompt_trace.npz
    export TOY_TRACE="$PWD/media/prompt_trace.npz"
fi

say "rendering block_flow ($quality)"
"$VENV/bin/manim" render "$qflag" --disable_caching -v WARNING --progress_bar none --media_dir media scenes/block_flow.py
video="media/videos/block_flow/$qdir/BlockFlow.mp4"
[ -f "$video" ] || die "manim finished but $video is missing"
echo "$PWD/$video"
