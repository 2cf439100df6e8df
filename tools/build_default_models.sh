#!/usr/bin/env bash
# Build the default model set (models/default) from renders of the LDraw.org Parts Library.
#
#   tools/build_default_models.sh LDRAW_DIR [WORK_DIR]
#   tools/build_default_models.sh --recipe     # the settings it would build with, as a command line
#   tools/build_default_models.sh --plan LDRAW_DIR [WORK_DIR]   # each step's command, nothing run
#
# LDRAW_DIR: an LDraw library (parts/, p/, lists/b200c_popular.txt); WORK_DIR (default
# ../build-default beside the repository) holds the renders, the training run and the full model
# set, fp32 file included. Every step resumes or is skipped when its output is already there, so
# a stopped build is re-run with the same command; WORK_DIR/recipe.txt names the recipe it holds,
# and a build of another recipe there is refused. RENDERS_FROM="DIR..." hard-links the render
# folders of other folders (earlier builds, or a folder of renders) that this build also renders,
# with their recorded times, and the first DIR's feature cache: e.g. a second seed. Each linked
# render is checked by `trainer render` itself, which keeps every part rendered with this build's
# settings and renders the rest anew (replacing the links, never writing through them), so a
# folder made with other settings costs its render again, never a wrong image.
# Environment: EPOCHS (default 10), PARTS (a parts
# list, default LDRAW_DIR/lists/b200c_popular.txt), TOP (200), WORKERS (2), MAX_SHIP_MB (8),
# MAX_DROP (points of part or colour top-1 a converted file may lose against fp32 and still ship, 3),
# PER_PART (training captures per part in each training render, 12, or one count per render, e.g.
# "6 12 16"), TRAIN_RENDERS (training renders in the rig layout, each with its own seed, 2),
# CROP_PER_PART (captures per part of one more training render in the crop layout: 224x224 crops,
# the part several times larger than in a rig frame, so nearer the pixels a close camera or a
# phone gives; 16, 0 = none), CROP_TILTS (one such crop render per word: `fixed`, the rig's 30
# degrees from vertical, into render-crop, or LOW,HIGH, the camera's tilt drawn per capture,
# `trainer render --camera-tilt`, into render-crop-tilt, render-crop-tilt2...; default "fixed 0,45":
# both, run v of docs/real_transfer.md), CROP_TILT_SEED (a number N, 20 as shipped: the first
# tilted crop render is drawn with seed N (above TRAIN_RENDERS + 3, the other renders'), the next
# with N+1..., new scenes, into render-crop-tilt-seedN...; `same`: drawn with the fixed crops' seed,
# the same scenes seen from another tilt, into render-crop-tilt...), CROP_TILT_RENDERER (pathtrace,
# as shipped: the tilted crop renders by the path tracer, 16 samples per pixel with BACKGROUNDS as
# grounds, into render-pathtrace-tilt...; about 30 times slower than the rasteriser on a CPU, runs
# pt, pt2 and pts of docs/real_transfer.md; or raster), CROP_FIXED_RENDERER (pathtrace: the fixed-tilt
# crops path-traced the same way, same seed, into render-pathtrace-crop; unset or raster: rasterised,
# as shipped), CROP_SHADING (1: those crop renders with
# `--contact-shading`, each folder's name ending -shaded; unset: off), PATHTRACE_PER_PART (captures per part of one more training render in
# the crop layout by the path tracer, `trainer render --renderer pathtrace`, which needs libLLVM 19
# (`make setup-all` installs it): about 30 times slower than the rasteriser on a CPU; 6, 0 = none;
# it takes BACKGROUNDS as its grounds when set) and PATHTRACE_WEIGHT (its sampling weight against 1
# for a rasterised image, 3), UNSEEN (parts after the first TOP rendered for the unseen-parts test,
# 10), INPUT_SIZE (network input side, 224; 128 < 160 < 224 on real photos,
# docs/real_transfer.md), BACKGROUND_SWAP (share of training images put on another background by
# trainer.backgrounds, 0.5, 0 = off) and BACKGROUNDS (a folder of photos of real empty stages for
# it, e.g. ../shared/real/backgrounds; unset: flat and textured grounds only), BACKGROUND (the
# input's background mode: keep, the default, or fill: every pixel outside the part's mask painted
# black, in training and on the rig; fill needs near-exact masks, docs/real_transfer.md),
# FREEZE_BLOCKS (backbone stages frozen at their ImageNet weights and cached, 5: stages 6-7 and the
# heads are trained; docs/real_transfer.md), PROBE_EPOCHS (epochs at the start in which only the heads
# learn, the trained stages held at their ImageNet weights, then fine-tuned over the rest: LP-FT; 0, the
# default, trains all from the start; the epochs are counted in EPOCHS), MODEL (the network, trainer.models: efficientnet_lite0,
# the default, or efficientnet_lite1 / efficientnet_lite2, larger and slower on the Pi:
# benchmarks/results/backbone_cost.md), MASK_JITTER (share of training masks grown, shrunk or
# given a stray region as a real segmenter's are, 0.5, 0 = off), MIXSTYLE (share of training batches
# whose front features have their statistics mixed between images, trainer.mixstyle; unset: off), PART_PHOTOMETRIC (share of training draws given strong camera colour changes
# for the part head, their colour labels dropped; 0.4, 0 = off), FRAME_EDGE (share of the other draws
# whose frame ends at or across the part, trainer.augment.FrameEdge; unset: off), COLOR_TONE (share of the draws given a
# camera's tone curve when the colour head is refitted on the trained network, trainer refit-color:
# 0.7; 0 = no refit, docs/real_transfer.md), REAL (a folder laid out as
# ../shared/real: belt/ with belt/_empty/, cutouts/; when set, the set is also scored on those real
# photos by trainer evaluate-real and the figures go into the report), SEED (stage 1's seed: splits,
# sampling, augmentation draws and the heads' initialisation, 0; a second seed of a recipe measures
# its spread, docs/real_transfer.md; the feature cache is keyed by it). The defaults are the
# recipe of the shipped set (run pts of docs/real_transfer.md, built with
# BACKGROUNDS=../shared/real/backgrounds REAL=../shared/real; tests/tools/test_build_defaults.py
# checks them against the command in models/default/REPORT.md).
#
# Chain: render train data as the rig sees it (full 640x480 frames of the sim rig, `real` layout;
# 'train' randomisation; TRAIN_RENDERS renders with seeds 1, 3, 4, ...: one render of twice the
# captures would do as well, but a new render can be added to a finished build and its cached
# features reused) and a separate test set (seed 2, stronger 'test' randomisation)
# -> trainer stage1 (synthetic only: no real captures exist, so
# stage 2 is not run) -> trainer refit-color (the colour head of the best checkpoint refitted
# under a camera's tone curve) -> export -> quantize (ONNX int8/fp16, TFLite
# fp16/int8) -> index (gallery: every image of the first training render (the index file stays
# under MAX_SHIP_MB), so that hybrid recognition and the
# unseen-parts test search all 200 parts) -> evaluate every artifact on the independent test
# render and the unseen parts ->
# models/default: the artifacts of at most MAX_SHIP_MB (a larger fp32 file stays in WORK_DIR and
# leaves the manifest, its figures kept) and the report as REPORT.md + PNGs -> the sim rig's replay
# frames (edge/data/sim): 60 captures of 60 parts of the test render, packed by trainer pack-frames.
set -euo pipefail

# --recipe: print the recipe this environment gives (the settings, as a command line) and stop.
recipe_only= plan=
if [[ "${1:-}" == --plan ]]; then
    plan=1
    shift
fi
if [[ -z "$plan" && "${1:-}" == --recipe ]]; then
    recipe_only=1
    shift
    set -- "${1:-LDRAW_DIR}"
elif [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 [--plan] LDRAW_DIR [WORK_DIR]   or: $0 --recipe" >&2
    exit 2
fi
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LDRAW="$1"
[[ -n "$recipe_only" ]] || LDRAW="$(cd "$1" && pwd)"
BIN="$REPO/.venv/bin"
PARTS="${PARTS:-$LDRAW/lists/b200c_popular.txt}"
TOP="${TOP:-200}"
EPOCHS="${EPOCHS:-10}"
PER_PART="${PER_PART:-12}"
TRAIN_RENDERS="${TRAIN_RENDERS:-2}"
CROP_PER_PART="${CROP_PER_PART:-16}"
CROP_TILTS="${CROP_TILTS:-fixed 0,45}"
CROP_TILT_SEED="${CROP_TILT_SEED:-20}"
CROP_TILT_RENDERER="${CROP_TILT_RENDERER:-pathtrace}"
CROP_FIXED_RENDERER="${CROP_FIXED_RENDERER:-}"
[[ "$CROP_FIXED_RENDERER" == raster ]] && CROP_FIXED_RENDERER=  # the default, named or not
CROP_SHADING="${CROP_SHADING:-}"
UNSEEN="${UNSEEN:-10}"
WORKERS="${WORKERS:-2}"
MAX_SHIP_MB="${MAX_SHIP_MB:-8}"
MAX_DROP="${MAX_DROP:-3}"
INPUT_SIZE="${INPUT_SIZE:-224}"
MODEL="${MODEL:-efficientnet_lite0}"
BACKGROUND_SWAP="${BACKGROUND_SWAP:-0.5}"
BACKGROUNDS="${BACKGROUNDS:-}"
BACKGROUND="${BACKGROUND:-keep}"
MASK_JITTER="${MASK_JITTER:-0.5}"
PART_PHOTOMETRIC="${PART_PHOTOMETRIC:-0.4}"
COLOR_TONE="${COLOR_TONE:-0.7}"
MIXSTYLE="${MIXSTYLE:-}"
FRAME_EDGE="${FRAME_EDGE:-}"
FREEZE_BLOCKS="${FREEZE_BLOCKS:-5}"
PROBE_EPOCHS="${PROBE_EPOCHS:-0}"
SEED="${SEED:-0}"
PATHTRACE_PER_PART="${PATHTRACE_PER_PART:-6}"
PATHTRACE_WEIGHT="${PATHTRACE_WEIGHT:-3}"
REAL="${REAL:-}"

# The settings that make a recipe, as the command line that gives them (folders relative to the
# repository; `recipe absolute`: as absolute paths); it goes into the report, so a shipped set
# names the command that rebuilds it.
recipe() {
    local words=() name value absolute="${1:-}"
    for name in TRAIN_RENDERS PER_PART CROP_PER_PART CROP_TILTS CROP_TILT_SEED CROP_TILT_RENDERER \
        CROP_FIXED_RENDERER CROP_SHADING PATHTRACE_PER_PART PATHTRACE_WEIGHT INPUT_SIZE MODEL FREEZE_BLOCKS PROBE_EPOCHS \
        BACKGROUND MASK_JITTER BACKGROUND_SWAP BACKGROUNDS PART_PHOTOMETRIC FRAME_EDGE COLOR_TONE MIXSTYLE EPOCHS SEED TOP \
        UNSEEN REAL; do
        value="${!name}"
        [[ -z "$value" ]] && continue
        if [[ "$name" == BACKGROUNDS || "$name" == REAL ]] && [[ -d "$value" ]]; then
            if [[ -n "$absolute" ]]; then
                value="$(realpath "$value")"
            else
                value="$(realpath --relative-to="$REPO" "$value")"
            fi
        fi
        [[ "$value" == *" "* ]] && value="\"$value\""
        words+=("$name=$value")
    done
    echo "${words[*]} tools/build_default_models.sh LDRAW_DIR WORK_DIR"
}
if [[ -n "$recipe_only" ]]; then
    recipe
    exit 0
fi
# The renders' seeds: 1, 3... for the training renders, 2 for the tests, TRAIN_RENDERS + 2 for the
# crops and TRAIN_RENDERS + 3 for the path-traced crops; a tilt seed of its own comes after them.
if [[ "$CROP_TILT_SEED" != same ]] && ! [[ "$CROP_TILT_SEED" =~ ^[0-9]+$ && "$CROP_TILT_SEED" -gt $((TRAIN_RENDERS + 3)) ]]; then
    echo "CROP_TILT_SEED $CROP_TILT_SEED must be a whole number above $((TRAIN_RENDERS + 3)) (the other" \
        "renders' seeds are 1 to $((TRAIN_RENDERS + 3))), or 'same' to draw the tilted crops with the fixed crops' seed" >&2
    exit 2
fi
if [[ "$CROP_TILT_RENDERER" != raster && "$CROP_TILT_RENDERER" != pathtrace ]]; then
    echo "CROP_TILT_RENDERER $CROP_TILT_RENDERER is no renderer: use pathtrace (the default) or raster" >&2
    exit 2
fi
if [[ -n "$CROP_FIXED_RENDERER" && "$CROP_FIXED_RENDERER" != pathtrace ]]; then
    echo "CROP_FIXED_RENDERER $CROP_FIXED_RENDERER is no renderer: use pathtrace, or raster (the default)" >&2
    exit 2
fi
WORK="${2:-$REPO/../build-default}"
if [[ -n "$plan" ]]; then
    WORK="$(realpath -m "$WORK")"
else
    mkdir -p "$WORK"
    WORK="$(cd "$WORK" && pwd)"
fi
# A WORK folder holds one recipe: its finished steps are skipped on a re-run, so another recipe
# built in it would reuse renders and a training run made with other settings without a word.
STAMP="$WORK/recipe.txt"
if [[ -f "$STAMP" && "$(cat "$STAMP")" != "$(recipe absolute)" ]]; then
    {
        echo "$WORK was built with another recipe:"
        echo "  $(cat "$STAMP")"
        echo "this build's:"
        echo "  $(recipe absolute)"
        echo "use another WORK_DIR (links to the render folders the two recipes share save rendering"
        echo "them again), or delete $STAMP to build this recipe over the old one's finished steps"
    } >&2
    exit 2
fi
[[ -n "$plan" || -f "$STAMP" ]] || recipe absolute > "$STAMP"
DEST="$REPO/models/default"
SET="$WORK/model-set"
TIMES="$WORK/timings.tsv"

[[ -f "$PARTS" ]] || { echo "parts list $PARTS not found; set PARTS=FILE" >&2; exit 2; }
[[ -n "$plan" || -x "$BIN/trainer" ]] || { echo "$BIN/trainer missing; run: make setup-all" >&2; exit 2; }


# step NAME CMD...: run a step, log it and append its wall time to timings.tsv (--plan: print it).
step() {
    local name="$1"; shift
    if [[ -n "$plan" ]]; then
        echo "== $name: $*"
        return
    fi
    local t0; t0=$(date +%s)
    echo "== $name: $*"
    "$@"
    printf '%s\t%d\n' "$name" "$(( $(date +%s) - t0 ))" >> "$TIMES"
}

# act CMD...: run a command that is no timed step (--plan: print it).
act() {
    if [[ -n "$plan" ]]; then
        echo "== $*"
        return
    fi
    "$@"
}

# RENDERS_FROM="DIR...": folders whose render folders this build may link rather than render.
renders_from=()
for from in ${RENDERS_FROM:-}; do
    if [[ ! -d "$from" ]]; then
        echo "RENDERS_FROM $from is no folder: name earlier build folders or folders of renders" >&2
        exit 2
    fi
    renders_from+=("$(realpath "$from")")
done

# link_render NAME: hard-link NAME from the first RENDERS_FROM folder that holds it finished (its
# render_report.json) into WORK, with the time that folder recorded for it (its timings.tsv), kept
# in WORK/NAME/.linked until the render step has checked the folder. cp -al makes new folders of
# links: a file a later render writes is renamed into place, never written through a link, so the
# other folder's renders stay as they were.
link_render() {
    local name="$1" from row
    [[ -e "$WORK/$name" ]] && return
    for from in "${renders_from[@]}"; do
        [[ -f "$from/$name/render_report.json" ]] || continue
        act cp -al "$from/$name" "$WORK/$name"
        row="$(grep "^$name"$'\t' "$from/timings.tsv" 2>/dev/null | tail -n 1 || true)"
        [[ -n "$plan" ]] || printf '%s\n' "${row:-$name}" > "$WORK/$name/.linked"
        return
    done
}

# once NAME DONE CMD...: a step that is skipped when its DONE file exists and its time is recorded
# (a re-run after a change to the later steps keeps the renders' and training's measured times).
# A render folder linked from RENDERS_FROM is rendered by its step all the same: trainer render
# keeps each part rendered with this step's settings (seconds) and renders the others anew; the
# step records the linked folder's own time when it rendered nothing, its measured time otherwise.
once() {
    local name="$1" done="$2"; shift 2
    [[ "$name" == render-* && ${#renders_from[@]} -gt 0 ]] && link_render "$name"
    local linked="$WORK/$name/.linked"
    if [[ -e "$done" && ! -e "$linked" ]] && grep -q "^$name"$'\t' "$TIMES" 2>/dev/null; then
        echo "== $name: done before ($done), skipped"
        return
    fi
    if [[ -n "$plan" || ! -e "$linked" ]]; then
        step "$name" "$@"
        return
    fi
    echo "== $name: linked, checked: $*"
    local t0 now; t0=$(date +%s)
    "$@"
    now="$("$BIN/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["images_rendered_now"])' \
        "$done")"
    if [[ "$now" == 0 && "$(cat "$linked")" == *$'\t'* ]]; then
        cat "$linked" >> "$TIMES"  # the linked folder's own render time
    else
        echo "== $name: $now images rendered anew (made with other settings)"
        printf '%s\t%d\n' "$name" "$(( $(date +%s) - t0 ))" >> "$TIMES"
    fi
    rm "$linked"
}

# The first RENDERS_FROM folder's feature cache is linked too: an entry is keyed by the image's
# content (with the front, the augmentation and the seed), so a build of the same seed that
# changes only the training finds its entries; entries are written as new files, never through a
# link.
if (( ${#renders_from[@]} )) && [[ -d "${renders_from[0]}/feature_cache" && ! -e "$WORK/feature_cache" ]]; then
    act cp -al "${renders_from[0]}/feature_cache" "$WORK/feature_cache"
fi

cd "$REPO"
render=("$BIN/trainer" render --ldraw "$LDRAW" --parts "$PARTS" --top "$TOP" --colors 30
        --layout real --supersample 1 --workers "$WORKERS" --sheet 0)
read -r -a per_part <<< "$PER_PART"
# captures K: the K-th training render's captures per part (the last count given repeats).
captures() { local k="$1"; (( k <= ${#per_part[@]} )) && echo "${per_part[k - 1]}" || echo "${per_part[-1]}"; }
once render-train "$WORK/render-train/render_report.json" "${render[@]}" --per-part "$(captures 1)" --views 3 --seed 1 --randomization train \
    --out "$WORK/render-train"
train_dirs=(render-train)
for ((k = 2; k <= TRAIN_RENDERS; k++)); do
    once "render-train$k" "$WORK/render-train$k/render_report.json" "${render[@]}" --per-part "$(captures "$k")" \
        --views 3 --seed "$((k + 1))" --randomization train --out "$WORK/render-train$k"
    train_dirs+=("render-train$k")
done
# The close-up crop renders (rasterised, then path-traced) share everything but the renderer.
crop=("$BIN/trainer" render --ldraw "$LDRAW" --parts "$PARTS" --top "$TOP" --colors 30 --layout legacy
      --workers "$WORKERS" --sheet 0 --views 3 --randomization train)
if (( CROP_PER_PART > 0 )); then
    tilted=0
    # As the path-traced crops below (their supersampling is the renderer's default).
    pathtraced=(--renderer pathtrace --spp 16 ${BACKGROUNDS:+--backgrounds "$BACKGROUNDS"})
    for tilt in $CROP_TILTS; do
        crop_seed=$((TRAIN_RENDERS + 2))
        renderer=(--supersample 1 ${CROP_SHADING:+--contact-shading})
        if [[ "$tilt" == fixed ]]; then
            crop_dir=render-crop tilt_arg=()
            [[ "$CROP_FIXED_RENDERER" == pathtrace ]] && crop_dir=render-pathtrace-crop renderer=("${pathtraced[@]}")
        else
            tilted=$((tilted + 1)) tilt_arg=(--camera-tilt "$tilt")
            crop_dir=render-crop-tilt
            [[ "$CROP_TILT_RENDERER" == pathtrace ]] && crop_dir=render-pathtrace-tilt renderer=("${pathtraced[@]}")
            if [[ "$CROP_TILT_SEED" != same ]]; then
                crop_seed=$((CROP_TILT_SEED + tilted - 1))
                crop_dir="$crop_dir-seed$crop_seed"
            else
                (( tilted > 1 )) && crop_dir="$crop_dir$tilted"
            fi
        fi
        [[ -n "$CROP_SHADING" && "$crop_dir" != render-pathtrace-* ]] && crop_dir="$crop_dir-shaded"
        once "$crop_dir" "$WORK/$crop_dir/render_report.json" "${crop[@]}" "${renderer[@]}" \
            "${tilt_arg[@]}" --per-part "$CROP_PER_PART" --seed "$crop_seed" --out "$WORK/$crop_dir"
        train_dirs+=("$crop_dir")
    done
fi
weights=()
for _ in "${train_dirs[@]}"; do weights+=(1); done
if (( PATHTRACE_PER_PART > 0 )); then
    once render-pathtrace "$WORK/render-pathtrace/render_report.json" "${crop[@]}" --renderer pathtrace --spp 16 \
        ${BACKGROUNDS:+--backgrounds "$BACKGROUNDS"} --per-part "$PATHTRACE_PER_PART" \
        --seed "$((TRAIN_RENDERS + 3))" --out "$WORK/render-pathtrace"
    train_dirs+=(render-pathtrace)
    weights+=("$PATHTRACE_WEIGHT")
fi
once render-test "$WORK/render-test/render_report.json" "${render[@]}" --per-part 2 --views 4 --seed 2 --randomization test \
    --out "$WORK/render-test"
# Unseen parts: the next UNSEEN parts of the list (after the first TOP), never trained on: the
# unseen-parts protocol enrolls one capture of each into the index and queries the others.
unseen_list() { grep -v '^[[:space:]]*\(#\|$\)' "$PARTS" | sed -n "$((TOP + 1)),$((TOP + UNSEEN))p" > "$1"; }
act unseen_list "$WORK/unseen_parts.txt"
once render-unseen "$WORK/render-unseen/render_report.json" "$BIN/trainer" render --ldraw "$LDRAW" --parts "$WORK/unseen_parts.txt" --colors 30 \
    --layout real --supersample 1 --workers "$WORKERS" --sheet 0 --per-part 3 --views 4 --seed 2 \
    --randomization test --out "$WORK/render-unseen"

# Stage 1 config (trainer ship config): the shipped one, pointed at the training renders (relative
# paths in a config are taken from its folder, so the copy lives in WORK). Stem + FREEZE_BLOCKS
# stages frozen and cached (2 augmented copies): by default (5) the CPU trains stages 6-7 and the
# heads; the cache is shared by runs (keyed by content and depth). No parts held out: the unseen parts are render-unseen's.
act "$BIN/trainer" ship config --base "$REPO/config/stage1_synthetic.yaml" --out "$WORK/stage1.yaml" \
    --source "${train_dirs[@]}" --kind auto --weight "${weights[@]}" \
    --set epochs="$EPOCHS" seed="$SEED" out=runs/stage1 input_size="$INPUT_SIZE" model="$MODEL" pretrained=true \
    freeze_blocks="$FREEZE_BLOCKS" probe_epochs="$PROBE_EPOCHS" holdout_parts=0 cache.mode=on cache.copies=2 cache.dir=feature_cache \
    background="$BACKGROUND" mask_jitter="$MASK_JITTER" part_photometric="$PART_PHOTOMETRIC" \
    background_swap="$BACKGROUND_SWAP" ${BACKGROUNDS:+background_photos="$(cd "$BACKGROUNDS" && pwd)"} \
    ${MIXSTYLE:+mixstyle="$MIXSTYLE"} ${FRAME_EDGE:+frame_edge="$FRAME_EDGE"}
RUN="$WORK/runs/stage1"
resume=()
[[ -d "$RUN/checkpoints" ]] && resume=(--resume)
once stage1 "$RUN/.complete" "$BIN/trainer" stage1 --config "$WORK/stage1.yaml" --no-progress "${resume[@]}"
act touch "$RUN/.complete"

# The colour head refitted on the stage 1 network under a camera's tone curve, the rest of the
# network frozen as trained (trainer refit-color; its features are stored and keyed by the
# network's weights, so a re-run only refits, in seconds). COLOR_TONE=0: no refit, the stage 1
# network exported as trained.
EXPORT_FROM="$RUN/best" refit_add=()
if [[ "$COLOR_TONE" != 0 ]]; then
    step refit-color "$BIN/trainer" refit-color --config "$WORK/stage1.yaml" --checkpoint "$RUN/best" \
        --out "$WORK/runs/color" --tone "$COLOR_TONE" --seed "$SEED" --no-progress
    EXPORT_FROM="$WORK/runs/color/best" refit_add=(--add "$WORK/runs/color/refit.json")
fi

step export "$BIN/trainer" export --checkpoint "$EXPORT_FROM" --out "$SET" --force
step quantize "$BIN/trainer" quantize --model-set "$SET" --calib "${train_dirs[@]/#/$WORK/}"
step index "$BIN/trainer" index --model-set "$SET" --data "$WORK/render-train" --split all
step categories "$BIN/trainer" categories --model-set "$SET" --ldraw "$LDRAW"
step footprints "$BIN/trainer" footprints --model-set "$SET" --ldraw "$LDRAW"
# As the studio's rig camera sees them (30 degrees from vertical): the simulated rig's size prior.
step footprints-tilted "$BIN/trainer" footprints --model-set "$SET" --ldraw "$LDRAW" --tilt 30
# The parts list is ordered most common first: its ranks are the part prior's weights (the daemon's
# default: popularity at strength 0.25; the evaluations below use that strength too).
step popularity "$BIN/trainer" popularity --model-set "$SET" --parts "$PARTS"
# The colour calibration's reference bricks as the renders show them: `edge calibrate color` makes a
# rig's camera look like the renders rather than like the colour table (shipped beside the set).
step color-reference "$BIN/trainer" color-reference --ldraw "$LDRAW" --out "$SET/color_reference.json" \
    --work "$WORK/color-reference"
step evaluate "$BIN/trainer" evaluate --model-set "$SET" --data "$WORK/render-test" \
    "$WORK/render-unseen" --split all \
    --gallery "$WORK/render-train" --out "$WORK/report" --part-prior popularity
if [[ -n "$REAL" ]]; then
    # Real photos, evaluation only: read in place, never copied or trained on; the colour head scored
    # on the photos labelled by eye with a colour family (config/real/*_colors.csv).
    step evaluate-real "$BIN/trainer" evaluate-real --model-set "$SET" --out "$WORK/real" \
        --set "belt=$REAL/belt:$REPO/config/real/belt.yaml:$REAL/belt/_empty" \
        --set "cutouts=$REAL/cutouts:$REPO/config/real/cutouts.yaml" \
        --enroll-every-part --enroll-partial --scale-from 15712:5 --part-prior popularity \
        --colors "belt=$REPO/config/real/belt_colors.csv" --colors "cutouts=$REPO/config/real/cutouts_colors.csv" \
        --goal belt:top1=80 --goal belt:enrolled5=80 --goal cutouts:top1=70 \
        --tried "[docs/real_transfer.md](../../docs/real_transfer.md) (its sections \"In short\" and \"What is left\")" \
        --report "$WORK/report/report.md" \
        --record
fi
step pack-frames "$BIN/trainer" pack-frames --from "$WORK/render-test" --out "$REPO/edge/data/sim" \
    --captures 240 --margin 0.35

# Ship (trainer ship model-set): every artifact of at most MAX_SHIP_MB that loses at most MAX_DROP
# points against fp32, checksums verified; larger or worse files stay in WORK and leave the
# manifest (recorded under evaluation.not_shipped, with why); the training history and the step
# times are recorded too; the report becomes REPORT.md with its plots, and the stage 1 config
# (and the colour refit's settings and history) are added. Built in $DEST.tmp and verified
# there, then swapped in: a failure leaves $DEST as it was.
note="Built by \`$(recipe)\` (stage 1 on synthetic renders only:"
note+=' no real captures exist yet, so stage 2 was not run).'
(( ${#renders_from[@]} == 0 )) || note+=" Render folders were hard-linked from earlier builds (RENDERS_FROM) and\
 checked part by part against this build's settings; their times are those builds' own."

act "$BIN/trainer" ship model-set --from "$SET" --to "$DEST" --max-mb "$MAX_SHIP_MB" --max-drop "$MAX_DROP" \
    --run "$RUN" --timings "$TIMES" --report "$WORK/report" --add "$WORK/stage1.yaml" "${refit_add[@]}" \
    --add "$SET/color_reference.json" --note "$note" \
    --credit "Rendered from the LDraw.org Parts Library (CC BY)."
[[ -n "$plan" ]] && exit 0
echo "model set: $DEST"
ls -l "$DEST"
