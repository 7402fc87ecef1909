#!/usr/bin/env bash
# The project's two commands. Each installs what is missing, skips what is already done, then:
#   ./render.sh [--scene SCENE] [--prompt TEXT | --prompt-file PATH] [--quality preview|1080p60|4k]
#               [--format mp4|gif|mov|webm] [--transparent] [--jobs N] [--theme dark|light] [--tokens SPEC]
#               [--media-dir DIR] [--print-path]
#       renders a scene's video (block_flow unless --scene says otherwise: block_flow, emoji_chat,
#       mamba2_ssd, generation, latent_moe, attention, hybrid_map) and prints its path. emoji_chat
#       streams the model's whole answer in a terminal beside the stack; --tokens is block_flow's alone.
#       The trace is the scene's default one, or a fresh trace of the bundled model for the prompt
#       (--prompt-file - reads it from standard input; for emoji_chat the answer is generated up to
#       <|endoftext|>, at most 400 tokens). The video is DIR/videos/SCENE/480p15/CLASS.mp4, e.g.
#       media/videos/block_flow/480p15/BlockFlow.mp4 (DIR: the repo's media/ unless given; 1080p60/ or
#       2160p60/ for those qualities), with its subtitles beside it (CLASS.srt), and the options that change
#       the picture go into its name, for example BlockFlow_theme-light_tokens-5.mp4 (TOY_THEME, TOY_TOKENS,
#       TOY_PACE, TOY_TRACE set in the environment count too, those the scene reads). --format gif writes a
#       GIF (at most 960 px wide, 10 or 20 fps); --transparent a transparent background, as MOV (QuickTime
#       Animation) or with --format webm as WebM (VP9). --jobs N renders the scene in N parts at once, cut at
#       its beats, and joins them (the same frames). --print-path prints the path and stops. Renders at the
#       same time never mix: each works in its own temporary folder and renames its finished files into
#       place.
#   ./render.sh test [pytest args]
#       runs the whole test suite
#   ./render.sh stills [DIR]
#       renders every scene and saves one still of each as DIR/<scene>.png (default docs/images: the README's
#       gallery; run it when a scene changes)
#   ./render.sh talk [--scenes a,b] [--quality preview|1080p60|4k] [--theme dark|light] [--jobs N] [--out DIR]
#       renders every scene's slides (in parallel, one process per scene, --jobs at a time: default the number
#       of cores; an interrupted build resumes) and converts them to one offline HTML deck and a PowerPoint
#       file: DIR/talk.html and DIR/talk.pptx (DIR: media/talk)
#   ./render.sh lab [jupyter lab options, e.g. --no-browser --port 8890]
#       installs JupyterLab (the project's "lab" extra) if needed and opens the course in notebooks/
# A bad option stops with one line, "error: ...", and exit status 2.
set -euo pipefail
start_dir=$PWD
cd "$(dirname "${BASH_SOURCE[0]}")"
repo=$PWD

VENV=.venv
PY="$VENV/bin/python"
say() { echo "[render.sh] $*" >&2; }
note() { [ ! -t 2 ] || say "$@"; }  # progress: on a terminal only, so bad input is one line wherever it shows
die() { local m="$*"; echo "error: ${m//$'\n'/\\n}" >&2; exit 2; }  # one line, always
usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$repo/render.sh"; }

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

# Two ./render.sh started at once (a fresh clone, or pyproject.toml changed) must not both run apt and pip:
# the set-up runs under a lock on this script itself (nothing is written for it), held only while it runs.
setup() {
    if command -v flock >/dev/null 2>&1; then
        exec 9<"$repo/render.sh"
        flock -n 9 || { say "waiting for another render.sh to finish setting up"; flock 9; }
    fi
    setup_system
    setup_python
    if command -v flock >/dev/null 2>&1; then
        flock -u 9
        exec 9<&-
    fi
}

# Talk mode: reveal.js for manim-slides' offline HTML deck (from the npm registry, checked), and a browser for the
# deck's test (Debian's chromium)
REVEALJS_URL="https://registry.npmjs.org/reveal.js/-/reveal.js-6.0.1.tgz"
REVEALJS_SHA256="7a3bc5096c435b893fd7488ff444c1c1c232e1e6987b6de68696e706437d0a4f"
setup_revealjs() {
    local dest="$VENV/share/toy-model-revealjs/cache/manim-slides/revealjs6.0.1" tmp f
    [ ! -f "$dest/reveal.js" ] || return 0
    say "fetching reveal.js 6.0.1 for the offline deck"
    tmp=$(mktemp -d)
    curl -sfL "$REVEALJS_URL" -o "$tmp/r.tgz" || { rm -rf "$tmp"; die "cannot download $REVEALJS_URL"; }
    echo "$REVEALJS_SHA256  $tmp/r.tgz" | sha256sum -c --quiet - || { rm -rf "$tmp"; die "reveal.js: checksum mismatch"; }
    tar xzf "$tmp/r.tgz" -C "$tmp"
    mkdir -p "$dest.part"
    for f in reveal.css reveal.js theme/black.css plugin/highlight/zenburn.css plugin/markdown.js plugin/notes.js; do
        cp "$tmp/package/dist/$f" "$dest.part/"
    done
    rm -rf "$tmp" "$dest"
    mv "$dest.part" "$dest"
}
setup_browser() {
    [ ! -x /usr/lib/chromium/chromium ] || return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    say "installing Debian's chromium (the HTML deck's test)"
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null; } \
        || say "chromium could not be installed: the deck's browser test will skip"
}

# ---- the test suite, the gallery, the course, the talk
if [ "${1:-}" = "test" ]; then
    shift
    setup
    setup_revealjs
    setup_browser
    exec "$PY" -m pytest -q "$@"
fi
if [ "${1:-}" = "talk" ]; then
    shift
    setup
    setup_revealjs
    exec "$PY" -m toy_model.talk "$@"
fi
if [ "${1:-}" = "stills" ]; then
    shift
    (($# <= 1)) || die "stills takes at most one folder (see ./render.sh --help)"
    out=${1:-docs/images}
    case "$out" in /*) ;; *) out="$start_dir/$out" ;; esac
    [ "${1:-}" ] || { out="$repo/docs/images"; mkdir -p "$out"; }  # the README's gallery
    [ -d "$out" ] || die "stills: $out is not a folder"
    setup
    exec "$PY" -m toy_model.gallery "$out"
fi
if [ "${1:-}" = "lab" ]; then
    shift
    setup
    if ! "$PY" -c "import jupyterlab" 2>/dev/null; then
        say "installing JupyterLab (the lab extra)"
        "$PY" -m pip install -q -e ".[test,lab]"
    fi
    as_root=()
    [ "$(id -u)" != 0 ] || as_root=(--allow-root)  # Jupyter refuses root unless told (the set-up runs as root)
    exec "$VENV/bin/jupyter" lab "${as_root[@]}" "$@" notebooks/
fi

# ---- options (checked before anything is set up or written)
quality="preview"
format=""
transparent=0
jobs=1
scene="block_flow"
prompt=""
have_prompt=0
prompt_file=""
theme=""
tokens=""
media=""
print_path=0
while (($#)); do
    opt=$1
    has_value=0
    if [[ $opt == --*=* ]]; then
        value=${opt#*=}
        opt=${opt%%=*}
        has_value=1
    fi
    case "$opt" in
        --prompt) what="a text" ;;
        --prompt-file) what="a file name, or - for standard input" ;;
        --quality) what="preview, 1080p60 or 4k" ;;
        --format) what="mp4, gif, mov or webm" ;;
        --jobs) what="a number of parts rendered at once, 1 or more" ;;
        --transparent) ((!has_value)) || die "$opt takes no value"; transparent=1; shift; continue ;;
        --scene) what="block_flow, emoji_chat, mamba2_ssd, generation, latent_moe, attention or hybrid_map" ;;
        --theme) what="dark or light" ;;
        --tokens) what="a spec such as 5, 0-7, 3,5,9-12 or all" ;;
        --media-dir) what="a folder" ;;
        --print-path) ((!has_value)) || die "$opt takes no value"; print_path=1; shift; continue ;;
        -h|--help) ((!has_value)) || die "$opt takes no value"; usage; exit 0 ;;
        test) die "'test' must come first: ./render.sh test [pytest args]" ;;
        -*) die "unknown option '$opt' (see ./render.sh --help)" ;;
        *) die "unexpected argument '$opt' (see ./render.sh --help)" ;;
    esac
    if ((!has_value)); then
        [ $# -ge 2 ] || die "$opt needs a value: $what"
        value=$2
        shift
    fi
    shift
    [ -n "$value" ] || die "$opt is empty: give $what"
    case "$opt" in
        --prompt) prompt=$value; have_prompt=1 ;;
        --prompt-file) prompt_file=$value ;;
        --quality) quality=$value ;;
        --format) format=$value ;;
        --jobs) jobs=$value ;;
        --scene) scene=$value ;;
        --theme) theme=$value ;;
        --tokens) tokens=$value ;;
        --media-dir) media=$value ;;
    esac
done
# the scenes: the class Manim names the video after, and how many tokens a trace for --prompt generates
# (and the detail a trace for --prompt records: what the scene reads beyond the default)
case "$scene" in
    block_flow) class="BlockFlow"; generate=() ;;  # the trace command's default
    emoji_chat) class="EmojiChat"; generate=(--generate 400) ;;  # the whole answer: it stops at <|endoftext|>
    mamba2_ssd) class="Mamba2SSD"; generate=() ;;
    generation) class="Generation"; generate=() ;;
    latent_moe) class="LatentMoE"; generate=() ;;
    attention) class="Attention"; generate=(--detail default --detail resid:0) ;;
    hybrid_map) class="HybridMap"; generate=() ;;
    *) die "--scene must be block_flow, emoji_chat, mamba2_ssd, generation, latent_moe, attention or hybrid_map, not '$scene'" ;;
esac
[ "$scene" != hybrid_map ] || [ -z "$prompt$prompt_file" ] || die "--scene hybrid_map draws published configurations, not a trace: it takes no --prompt"
[ -z "$tokens" ] || [ "$scene" = block_flow ] || die "--tokens is for --scene block_flow ($scene shows every token)"
[ "$scene" = block_flow ] || unset TOY_TOKENS  # only block_flow reads it: it must not name another scene's video
[ "$scene" = emoji_chat ] || unset TOY_BEATS  # only emoji_chat reads it
case "$quality" in
    preview) qflag="-ql"; qdir="480p15" ;;
    1080p60) qflag="-qh"; qdir="1080p60" ;;
    4k) qflag="-qk"; qdir="2160p60" ;;
    *) die "--quality must be preview, 1080p60 or 4k, not '$quality'" ;;
esac
# the format: what Manim writes (the GIF is made from a lossless render: see toy_model/video.py), and the name
[ -n "$format" ] || { ((transparent)) && format=mov || format=mp4; }
case "${format,,}" in
    mp4) ext=mp4; made=mp4; fmtflags=() ;;
    gif) ext=gif; made=mov; fmtflags=(--format mov --video-codec qtrle --pixel-format rgb24) ;;
    mov) ext=mov; made=mov; fmtflags=(--format mov) ;;
    webm) ext=webm; made=webm; fmtflags=(--format webm) ;;
    *) die "--format must be mp4, gif, mov or webm, not '$format'" ;;
esac
if ((transparent)); then
    case "$ext" in
        mp4) die "--transparent: MP4 (H.264) has no alpha channel; use --format mov (the default) or webm" ;;
        gif) die "--transparent: a GIF's transparency is all or nothing, so anti-aliased edges would fringe; use --format mov or webm" ;;
    esac
    fmtflags+=(-t)
fi
[[ $jobs =~ ^[0-9]{1,4}$ ]] && ((10#$jobs >= 1)) || die "--jobs must be a whole number from 1 to 9999, not '$jobs'"
jobs=$((10#$jobs))
if [ -n "$theme" ]; then
    case "${theme,,}" in
        dark|light) export TOY_THEME="${theme,,}" ;;
        *) die "--theme must be dark or light, not '$theme'" ;;
    esac
fi
if [ -n "$tokens" ]; then
    [[ $tokens =~ [^[:space:]] ]] || die "--tokens is blank: give a spec such as 5, 0-7, 3,5,9-12 or all"
    export TOY_TOKENS="$tokens"
fi
if ((have_prompt)); then
    [ -z "$prompt_file" ] || die "give --prompt or --prompt-file, not both"
    [[ $prompt =~ [^[:space:]] ]] || die "--prompt is blank: give some text"
fi
at_start() {  # a path given relative to where render.sh was started
    case "$1" in
        /*) echo "$1" ;;
        "~") echo "$HOME" ;;
        "~/"*) echo "$HOME/${1#"~/"}" ;;
        *) echo "$start_dir/$1" ;;
    esac
}
if [ -n "$prompt_file" ] && [ "$prompt_file" != "-" ]; then
    f=$(at_start "$prompt_file")
    [ -e "$f" ] || die "--prompt-file '$prompt_file': no such file"
    [ ! -d "$f" ] || die "--prompt-file '$prompt_file': it is a folder, not a file"
    [ -r "$f" ] || die "--prompt-file '$prompt_file': cannot be read (permission denied)"
fi
# the scene reads these relative to the repo, where it runs: make them relative to where render.sh was started
if [[ ${TOY_TRACE:-} =~ [^[:space:]] ]] && ((!have_prompt)) && [ -z "$prompt_file" ]; then
    TOY_TRACE=$(printf '%s' "$TOY_TRACE" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
    TOY_TRACE=$(at_start "$TOY_TRACE")
    export TOY_TRACE
fi
if [ -n "$media" ]; then
    shown_media=$media
    media=$(at_start "$media")
    [ ! -e "$media" ] || [ -d "$media" ] || die "--media-dir '$shown_media' is not a folder"
else
    media="$repo/media"
fi

# ---- this run's own folder: Manim's partial movies, its text cache, the prompt's trace; removed at the end,
# on failure, on Ctrl-C and on SIGTERM (which also stops the render under way)
run=""
child=""
tmp_video=""
cleanup() {
    if [ -n "$child" ]; then  # the render under way: stopped, and waited for
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
        child=""
    fi
    [ -z "$tmp_video" ] || rm -f -- "$tmp_video"
    [ -z "$run" ] || rm -rf -- "$run"
}
on_signal() {
    trap - EXIT
    cleanup
    trap - "$1"
    kill -s "$1" $$
}
trap cleanup EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP
# "$@" in the background, waited for: a signal then reaches the trap at once, not when the child ends
run_child() {
    "$@" <&0 &  # keep standard input: a background job would otherwise read /dev/null
    child=$!
    local rc=0
    wait "$child" || rc=$?
    child=""
    return "$rc"
}

if ((!print_path)); then
    mkdir -p -- "$media" 2>/dev/null || die "cannot create the media folder $media"
    run=$(mktemp -d "$media/.run.XXXXXX" 2>/dev/null) || { run=""; die "cannot write into the media folder $media"; }
fi

# ---- the prompt: checked, kept as this run's own file, and hashed for the video's name
prompt_hash=""
if ((have_prompt)); then
    prompt_hash=$(printf '%s' "$prompt" | sha256sum | cut -c1-10)
elif [ -n "$prompt_file" ]; then
    # toy_model's trace command reads and checks the text (UTF-8, not empty, fits the context); standard input
    # is kept as this run's own file first, so it can be hashed for the name and then read by the trace
    if [ "$prompt_file" = - ]; then
        [ -n "$run" ] || run=$(mktemp -d)  # --print-path: a scratch folder, removed at exit like a run's
        prompt_src="$run/prompt.txt"
        cat >"$prompt_src"
    else
        prompt_src=$(at_start "$prompt_file")
    fi
    # the name's hash is of the prompt as the reader takes it: no byte-order mark, no final line end
    prompt_hash=$(python3 -c 'import hashlib, sys
data = open(sys.argv[1], "rb").read().removeprefix(b"\xef\xbb\xbf").rstrip(b"\r\n")
print(hashlib.sha256(data).hexdigest()[:10])' "$prompt_src") || die "--prompt-file '$prompt_file': cannot be read"
    have_prompt=1
fi

# ---- the video's name: the quality folder, and every option that changes the picture
part() {  # a name part: $1-$2, with $2 made safe for a file name (a hash when it is long or unusual)
    local v=${2,,}
    v=${v//[[:space:]]/}
    v=${v//,/_}
    if [[ ${#v} -gt 32 || ! $v =~ ^[a-z0-9._-]+$ ]]; then
        v=$(printf '%s' "$2" | sha256sum | cut -c1-10)
    fi
    printf '_%s-%s' "$1" "$v"
}
name="$class"
[[ ! ${TOY_THEME:-} =~ [^[:space:]] ]] || name+=$(part theme "$TOY_THEME")
[[ ! ${TOY_TOKENS:-} =~ [^[:space:]] ]] || name+=$(part tokens "$TOY_TOKENS")
[[ ! ${TOY_PACE:-} =~ [^[:space:]] ]] || name+=$(part pace "$TOY_PACE")
[[ ! ${TOY_BEATS:-} =~ [^[:space:]] ]] || name+=$(part beats "$TOY_BEATS")
if ((have_prompt)); then
    name+=$(part prompt "$prompt_hash")
    export TOY_TRACE="$run/trace.npz"
elif [[ ${TOY_TRACE:-} =~ [^[:space:]] ]]; then
    stem=$(basename -- "$TOY_TRACE" .npz)
    [[ $stem =~ ^[A-Za-z0-9._-]{1,24}$ ]] || stem=""
    name+=$(part trace "$stem${stem:+-}$(printf '%s' "$TOY_TRACE" | sha256sum | cut -c1-8)")
fi
((!transparent)) || name+="_transparent"
out_dir="$media/videos/$scene/$qdir"
video="$out_dir/$name.$ext"
subtitles="$out_dir/$name.srt"
target=$(readlink -m -- "$video")  # a link is followed: the file it points to is replaced, the link kept
[ ! -e "$target" ] || [ -f "$target" ] || die "$video exists and is not a regular file: move it away first"
srt_target=$(readlink -m -- "$subtitles")
[ "$ext" = gif ] || [ ! -e "$srt_target" ] || [ -f "$srt_target" ] \
    || die "$subtitles exists and is not a regular file: move it away first"
if ((print_path)); then
    echo "$video"
    exit 0
fi
mkdir -p -- "$out_dir" 2>/dev/null || die "cannot create the folder $out_dir"
target_dir=$(dirname -- "$target")
[ -d "$target_dir" ] && [ -w "$target_dir" ] || die "cannot write into the folder $target_dir"

setup

# ---- the job
if ((have_prompt)); then
    note "recording a trace for the prompt"
    quiet=()
    [ -t 2 ] || quiet=(--quiet)
    if [ -n "$prompt_file" ]; then
        run_child "$PY" -m toy_model trace --prompt-file - --out "$run/trace.npz" "${quiet[@]}" \
            "${generate[@]}" <"$prompt_src" >/dev/null || exit $?
    else
        run_child "$PY" -m toy_model trace --prompt="$prompt" --out "$run/trace.npz" "${quiet[@]}" "${generate[@]}" \
            >/dev/null || exit $?
    fi
fi

note "rendering $scene ($quality, $ext)"
[ ! -t 2 ] || export TOY_PROGRESS=-  # on a terminal, a line at each of the scene's beats
rendered="$run/videos/$scene/$qdir/$class.$made"
if ((jobs > 1)); then
    # in parts cut at the scene's beats, rendered at once, joined (toy_model/split.py): the same frames
    more=()
    [ -t 2 ] || more+=(--quiet)
    ((!${#fmtflags[@]})) || more+=(-- "${fmtflags[@]}")
    run_child "$PY" -m toy_model.split run "$scene" --parts "$jobs" --jobs "$jobs" --quality "$quality" \
        --out "$rendered" "${more[@]}" >/dev/null || exit $?
else
    # Manim logs to standard output: sent to standard error, so standard output is only the video's path
    run_child "$VENV/bin/manim" --hide-splash render "$qflag" --disable_caching -v WARNING --progress_bar none \
        "${fmtflags[@]}" --media_dir "$run" "scenes/$scene.py" >&2 || exit $?
fi
[ -f "$rendered" ] || { echo "error: manim finished but wrote no video" >&2; exit 1; }
srt_made="${rendered%.*}.srt"
if [ "$ext" = gif ]; then
    note "making the GIF"
    run_child "$PY" -m toy_model.video gif "$rendered" "$run/$class.gif" >/dev/null || exit $?
    rendered="$run/$class.gif"
    srt_made=""  # a GIF has no subtitles
fi
# beside the target first (a copy only if the media folder spans file systems), then one rename into place:
# a reader sees the previous file or the new one, never a part of one. The subtitles go first, so a video is
# never newer than its .srt.
place() {  # place SRC TARGET
    tmp_video=$(mktemp -p "$(dirname -- "$2")" ".$(basename -- "$2").XXXXXX")
    mv -f -- "$1" "$tmp_video"
    mv -fT -- "$tmp_video" "$2"
    tmp_video=""
}
if [ -n "$srt_made" ] && [ -f "$srt_made" ]; then
    place "$srt_made" "$srt_target"
fi
place "$rendered" "$target"
echo "$video"
