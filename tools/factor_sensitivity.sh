#!/usr/bin/env bash
# How much each source of variation in the sim rig's renders costs a model set: one factor at a time.
#
#   tools/factor_sensitivity.sh MODEL_SET LDRAW_DIR WORK_DIR [ARTIFACT]
#
# Renders the first TOP (200) parts of LDRAW_DIR/lists/b200c_popular.txt, one capture of 2 views
# each (seed SEED, 5: neither a training nor the test render's seed), with the 'train' preset, then
# again with one group of factors taken from the stronger 'test' preset (`trainer render --factors
# ... --factors-from test`), and once with all of them ('test'). Each render is evaluated with
# ARTIFACT (default onnxruntime/fp32) of a copy of MODEL_SET (`trainer evaluate --split all`), and
# a markdown table of part top-1 (single view and 2 views fused) and colour top-1 per group is
# written to WORK_DIR/sensitivity.md. Renders are kept and skipped when re-run, so a second model
# set is compared on the same images. About 40 s of rendering and 25 s of evaluation per group on
# 2 cores. Environment: TOP (200), SEED (5), WORKERS (2).
set -euo pipefail

if [[ $# -lt 3 || $# -gt 4 ]]; then
    echo "usage: $0 MODEL_SET LDRAW_DIR WORK_DIR [ARTIFACT]" >&2
    exit 2
fi
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SET="$(cd "$1" && pwd)"
LDRAW="$(cd "$2" && pwd)"
mkdir -p "$3"
WORK="$(cd "$3" && pwd)"
ARTIFACT="${4:-onnxruntime/fp32}"
TOP="${TOP:-200}"
SEED="${SEED:-5}"
WORKERS="${WORKERS:-2}"
BIN="$REPO/.venv/bin"
[[ -f "$SET/manifest.json" ]] || { echo "$SET has no manifest.json: not a model set" >&2; exit 2; }
[[ -x "$BIN/trainer" ]] || { echo "$BIN/trainer missing; run: make setup-all" >&2; exit 2; }

# group name, then the factors it raises to 'test' strength (none: the 'train' preset itself).
FACTOR_GROUPS=(
    "train:"
    "placement:placement"
    "lighting:light_direction,light_intensity"
    "white-balance:color_temperature,white_balance,exposure"
    "backdrop:disc,background"
    "colour-jitter:color_jitter"
    "blur:defocus,motion_blur"
    "noise-jpeg:sensor_noise,jpeg"
    "test:ALL"
)

table="$WORK/sensitivity.md"
{
    echo "# Sensitivity of $(basename "$SET") ($ARTIFACT) to the render factors"
    echo
    echo "$TOP parts x 1 capture x 2 views per row (seed $SEED); 'train' preset with the named factors"
    echo "at 'test' strength. Made by \`tools/factor_sensitivity.sh\`."
    echo
    echo "| factors at 'test' strength | part top-1 | 2 views fused | colour top-1 |"
    echo "|---|---:|---:|---:|"
} > "$table"

for entry in "${FACTOR_GROUPS[@]}"; do
    name="${entry%%:*}" factors="${entry#*:}"
    data="$WORK/render-$name"
    if [[ "$factors" == ALL ]]; then
        extra=(--randomization test)
    elif [[ -n "$factors" ]]; then
        extra=(--randomization train --factors "$factors" --factors-from test)
    else
        extra=(--randomization train)
    fi
    echo "== $name: ${extra[*]}"
    "$BIN/trainer" -q render --ldraw "$LDRAW" --parts "$LDRAW/lists/b200c_popular.txt" --top "$TOP" \
        --colors 30 --layout real --supersample 1 --workers "$WORKERS" --sheet 0 --per-part 1 --views 2 \
        --seed "$SEED" "${extra[@]}" --out "$data"
    copy="$WORK/set-$name"
    rm -rf "$copy" && cp -r "$SET" "$copy"  # evaluate writes its figures into the manifest
    "$BIN/trainer" -q evaluate --model-set "$copy" --data "$data" --split all --views 2 \
        --artifacts "$ARTIFACT" --out "$WORK/report-$name"
    "$BIN/python" - "$WORK/report-$name/report.json" "$ARTIFACT" "$name" "${factors:-none}" >> "$table" <<'EOF'
import json, sys
figures = json.load(open(sys.argv[1]))["artifacts"][sys.argv[2]]
label = {"none": "none ('train')", "ALL": "all ('test')"}.get(sys.argv[4], f"{sys.argv[3]}: {sys.argv[4]}")
print(f"| {label} | {figures['part_top1']:.3f} | {figures['fused_part_top1']:.3f} | {figures['color_top1']:.3f} |")
EOF
    rm -rf "$copy"
done
echo "written: $table"
cat "$table"
