"""tools/build_default_models.sh: its defaults are the recipe the shipped set was built with.

The README promises that the build script with its defaults (and the two folders of real photos
pointed to) rebuilds the shipped recipe; the shipped REPORT.md records the command that built it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "build_default_models.sh"
REPORT = REPO / "models" / "default" / "REPORT.md"
# Folders on the builder's machine, not recipe settings.
PATHS = {"BACKGROUNDS", "REAL"}


def script_recipe(**env: str) -> dict[str, str]:
    """`build_default_models.sh --recipe` in a clean environment (plus ``env``), as settings."""
    out = subprocess.run(
        ["bash", str(SCRIPT), "--recipe"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return settings(out)


def settings(command: str) -> dict[str, str]:
    """The leading `NAME=value` words of a command line."""
    words = shlex.split(command)
    return dict(w.split("=", 1) for w in words[: words.index("tools/build_default_models.sh")])


def report_recipe() -> dict[str, str]:
    """The `NAME=value` settings of the "Built by `...`" command in the shipped report."""
    match = re.search(r"Built by `([^`]*tools/build_default_models\.sh[^`]*)`", REPORT.read_text())
    assert match, f"{REPORT} names no build command"
    return settings(match[1])


def test_the_recipe_reads_its_environment(tmp_path: Path) -> None:
    defaults = script_recipe()
    assert defaults["SEED"] == "0" and defaults["CROP_TILTS"] == "fixed 0,45"
    assert "BACKGROUNDS" not in defaults and "REAL" not in defaults  # unset: left out
    changed = script_recipe(CROP_TILTS="fixed", SEED="1", REAL=str(tmp_path))
    assert changed["CROP_TILTS"] == "fixed" and changed["SEED"] == "1"
    assert changed["REAL"] == os.path.relpath(tmp_path, REPO)  # folders relative to the repository
    assert {k: v for k, v in changed.items() if k not in {"CROP_TILTS", "SEED", "REAL"}} == {
        k: v for k, v in defaults.items() if k not in {"CROP_TILTS", "SEED"}
    }


def test_the_shipped_report_names_its_recipe() -> None:
    recipe = report_recipe()
    assert recipe["CROP_TILTS"] == "fixed 0,45"  # shlex keeps the quoted words together
    assert len(recipe) >= 10


def test_every_setting_of_the_shipped_build_is_the_script_default() -> None:
    defaults, shipped = script_recipe(), report_recipe()
    differ = {
        name: (shipped.get(name), defaults.get(name))
        for name in shipped.keys() | defaults.keys()
        if name not in PATHS and defaults.get(name) != shipped.get(name)
    }
    assert not differ, f"shipped recipe (REPORT.md) against the script's defaults: {differ}"


def script_plan(ldraw: Path, work: Path, **env: str) -> list[str]:
    """`build_default_models.sh --plan`: the lines naming each step and its command."""
    out = subprocess.run(
        ["bash", str(SCRIPT), "--plan", str(ldraw), str(work)],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line.startswith("== ")]


def ldraw_with(tmp_path: Path, parts: str) -> Path:
    """An LDraw folder holding only the parts list (a plan reads nothing else)."""
    ldraw = tmp_path / "ldraw"
    (ldraw / "lists").mkdir(parents=True)
    (ldraw / "lists" / "b200c_popular.txt").write_text(parts)
    return ldraw


def plan_failing(ldraw: Path, *work: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`build_default_models.sh --plan` expected to refuse: its exit status and messages."""
    return subprocess.run(
        ["bash", str(SCRIPT), "--plan", str(ldraw), *map(str, work)],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
    )


def render_seeds(plan: list[str]) -> dict[str, int]:
    """Render step name -> the seed it draws with."""
    seeds = {}
    for line in plan:
        name, _, command = line[3:].partition(": ")
        if " render " in f" {command} ":
            seeds[name] = int(re.search(r"--seed (\d+)", command)[1])  # type: ignore[index]
    return seeds


def test_the_plan_names_every_step_and_writes_nothing(tmp_path: Path) -> None:
    ldraw = ldraw_with(tmp_path, "3001\n3002\n3003\n")
    work = tmp_path / "work"
    plan = script_plan(ldraw, work, TOP="2", UNSEEN="1")
    assert not work.exists()  # a plan runs nothing and makes no folder
    steps = [line[3:].partition(":")[0] for line in plan]
    for step in ("render-train", "stage1", "export", "quantize", "evaluate", "pack-frames"):
        assert step in steps
    # As shipped: the tilted crops path-traced with a seed of their own, every other render with its own.
    seeds = render_seeds(plan)
    assert seeds["render-pathtrace-tilt-seed20"] == 20 and "render-crop-tilt" not in seeds
    assert sorted(seeds[k] for k in seeds if k != "render-pathtrace-tilt-seed20") == [1, 2, 2, 3, 4, 5]
    assert any("ship model-set" in line for line in plan)


def test_a_tilt_seed_of_its_own_draws_new_scenes_into_its_own_folder(tmp_path: Path) -> None:
    ldraw = ldraw_with(tmp_path, "3001\n")
    env = {"CROP_TILT_RENDERER": "raster", "CROP_TILTS": "fixed 0,45 0,20"}
    plan = script_plan(ldraw, tmp_path / "work", CROP_TILT_SEED="6", **env)
    seeds = render_seeds(plan)
    assert seeds["render-crop"] == 4 and "render-crop-tilt" not in seeds
    assert seeds["render-crop-tilt-seed6"] == 6 and seeds["render-crop-tilt-seed7"] == 7
    config = next(line for line in plan if "ship config" in line)
    assert "render-crop-tilt-seed6 render-crop-tilt-seed7" in config  # trained on
    assert script_recipe(CROP_TILT_SEED="6")["CROP_TILT_SEED"] == "6"  # and named in the recipe
    # `same`: the fixed crops' seed, the same scenes seen from another tilt (run v's recipe).
    same = render_seeds(script_plan(ldraw, tmp_path / "same", CROP_TILT_SEED="same", **env))
    assert same["render-crop-tilt"] == same["render-crop-tilt2"] == same["render-crop"] == 4
    assert script_recipe(CROP_TILT_SEED="same")["CROP_TILT_SEED"] == "same"
    bad = plan_failing(ldraw, CROP_TILT_SEED="5")
    assert bad.returncode == 2 and "CROP_TILT_SEED 5 must be a whole number above 5" in bad.stderr
    assert "or 'same'" in bad.stderr


def test_mixstyle_is_off_unless_set_and_then_trained_with_and_named(tmp_path: Path) -> None:
    ldraw = ldraw_with(tmp_path, "3001\n")
    config = next(line for line in script_plan(ldraw, tmp_path / "a") if "ship config" in line)
    assert "mixstyle=" not in config and "MIXSTYLE" not in script_recipe()
    plan = script_plan(ldraw, tmp_path / "b", MIXSTYLE="0.5")
    config = next(line for line in plan if "ship config" in line)
    assert config.split().count("mixstyle=0.5") == 1
    assert script_recipe(MIXSTYLE="0.5")["MIXSTYLE"] == "0.5"


def test_the_colour_head_is_refitted_under_a_tone_curve_unless_color_tone_is_0(tmp_path: Path) -> None:
    ldraw = ldraw_with(tmp_path, "3001\n")
    work = tmp_path / "a"
    plan = script_plan(ldraw, work)
    steps = [line[3:].partition(":")[0] for line in plan]
    assert steps.index("stage1") < steps.index("refit-color") < steps.index("export")
    refit = next(line for line in plan if line.startswith("== refit-color:"))
    assert f"--checkpoint {work}/runs/stage1/best --out {work}/runs/color --tone 0.7 --seed 0" in refit
    export = next(line for line in plan if line.startswith("== export:"))
    assert f"--checkpoint {work}/runs/color/best " in export
    ship = next(line for line in plan if "ship model-set" in line)
    assert f"--add {work}/runs/color/refit.json" in ship
    off = script_plan(ldraw, tmp_path / "b", COLOR_TONE="0", SEED="1")
    assert not any(line.startswith("== refit-color:") for line in off)
    export = next(line for line in off if line.startswith("== export:"))
    assert f"--checkpoint {tmp_path}/b/runs/stage1/best " in export
    assert "refit.json" not in next(line for line in off if "ship model-set" in line)
    assert script_recipe(COLOR_TONE="0")["COLOR_TONE"] == "0"


def test_a_work_folder_of_another_recipe_is_refused(tmp_path: Path) -> None:
    ldraw = ldraw_with(tmp_path, "3001\n")
    work = tmp_path / "work"
    work.mkdir()
    assert script_plan(ldraw, work)  # a folder with no recipe yet: planned
    assert not (work / "recipe.txt").exists()  # and a plan leaves no stamp
    # Seed 1 built in the folder of seed 0's build would skip its training as done.
    seed0 = subprocess.run(
        ["bash", str(SCRIPT), "--recipe"], env={"PATH": os.environ["PATH"]}, capture_output=True, text=True
    ).stdout
    (work / "recipe.txt").write_text(seed0)  # no folders set, so the same with absolute paths
    assert script_plan(ldraw, work)  # the same recipe: planned
    refused = plan_failing(ldraw, work, SEED="1")
    assert refused.returncode == 2
    assert "was built with another recipe" in refused.stderr and "SEED=1" in refused.stderr
    assert "use another WORK_DIR" in refused.stderr


def test_renders_from_earlier_builds_are_linked_and_checked_by_the_render_step(tmp_path: Path) -> None:
    ldraw = ldraw_with(tmp_path, "3001\n")
    # A finished build of seed 0 (a render folder, the time it took, its feature cache) and a
    # folder holding one more finished render.
    first = tmp_path / "seed0"
    for name in ("render-train", "render-crop-tilt-seed6"):
        (first / name).mkdir(parents=True)
        (first / name / "render_report.json").write_text("{}")
    (first / "timings.tsv").write_text("render-train\t301\n")
    (first / "feature_cache").mkdir()
    extra = tmp_path / "extra"
    (extra / "render-pathtrace-tilt-seed20").mkdir(parents=True)
    (extra / "render-pathtrace-tilt-seed20" / "render_report.json").write_text("{}")
    work = tmp_path / "seed1"

    # Seed 1 with path-traced tilted crops: each folder this build renders is linked from the first
    # folder that holds it, and its render step still runs (trainer render keeps the parts made with
    # the step's settings and renders the rest anew).
    env = {"SEED": "1", "CROP_TILT_RENDERER": "pathtrace", "CROP_TILT_SEED": "20"}
    plan = script_plan(ldraw, work, RENDERS_FROM=f"{first} {extra}", **env)
    link = f"== cp -al {first}/render-train {work}/render-train"
    assert link in plan
    assert plan[plan.index(link) + 1].startswith("== render-train: ")  # checked by its own step
    pt_link = f"== cp -al {extra}/render-pathtrace-tilt-seed20 {work}/render-pathtrace-tilt-seed20"
    assert plan[plan.index(pt_link) + 1].startswith("== render-pathtrace-tilt-seed20: ")
    # The first folder's feature cache is linked too (entries are keyed by content).
    assert f"== cp -al {first}/feature_cache {work}/feature_cache" in plan
    # A folder this build does not render (the rasterised tilted crops) is left where it is, and
    # what no folder holds is rendered.
    assert not any("render-crop-tilt-seed6" in line for line in plan)
    assert not any(line.startswith("== cp -al") and "/render-crop " in f"{line} " for line in plan)

    missing = plan_failing(ldraw, tmp_path / "other", RENDERS_FROM=f"{first} {tmp_path / 'nothing'}")
    assert missing.returncode == 2 and f"RENDERS_FROM {tmp_path / 'nothing'} is no folder" in missing.stderr


def test_path_traced_tilted_crops_replace_the_rasterised_ones(tmp_path: Path) -> None:
    ldraw = ldraw_with(tmp_path, "3001\n")
    photos = tmp_path / "backgrounds"
    photos.mkdir()
    env = {"CROP_TILT_RENDERER": "pathtrace", "CROP_TILT_SEED": "20", "BACKGROUNDS": str(photos)}
    plan = script_plan(ldraw, tmp_path / "work", **env)
    assert plan == script_plan(ldraw, tmp_path / "work", BACKGROUNDS=str(photos))  # as shipped
    renders = {line[3:].partition(":")[0]: line for line in plan if " render " in line}
    assert "render-crop-tilt" not in renders and "render-crop-tilt-seed20" not in renders
    tilted = renders["render-pathtrace-tilt-seed20"]
    for words in ("--renderer pathtrace --spp 16", f"--backgrounds {photos}", "--camera-tilt 0,45"):
        assert words in tilted
    assert "--seed 20" in tilted
    assert "--renderer" not in renders["render-crop"]  # the fixed-tilt crops stay rasterised
    config = next(line for line in plan if "ship config" in line)
    sources = "render-crop render-pathtrace-tilt-seed20 render-pathtrace --kind auto --weight 1 1 1 1 3"
    assert sources in config
    recipe = script_recipe(**env)
    assert recipe["CROP_TILT_RENDERER"] == "pathtrace" and recipe["CROP_TILT_SEED"] == "20"
    assert script_recipe(CROP_TILT_RENDERER="raster")["CROP_TILT_RENDERER"] == "raster"
    bad = plan_failing(ldraw, CROP_TILT_RENDERER="mitsuba")
    assert bad.returncode == 2 and "CROP_TILT_RENDERER mitsuba is no renderer" in bad.stderr


def test_path_traced_fixed_crops_replace_the_rasterised_ones_only_when_asked(tmp_path: Path) -> None:
    ldraw = ldraw_with(tmp_path, "3001\n")
    photos = tmp_path / "backgrounds"
    photos.mkdir()
    shipped = script_plan(ldraw, tmp_path / "work", BACKGROUNDS=str(photos))
    assert (
        script_plan(ldraw, tmp_path / "work", BACKGROUNDS=str(photos), CROP_FIXED_RENDERER="raster")
        == shipped
    )
    plan = script_plan(ldraw, tmp_path / "work", BACKGROUNDS=str(photos), CROP_FIXED_RENDERER="pathtrace")
    renders = {line[3:].partition(":")[0]: line for line in plan if " render " in line}
    assert "render-crop" not in renders
    fixed = renders["render-pathtrace-crop"]
    for words in ("--renderer pathtrace --spp 16", f"--backgrounds {photos}", "--seed 4", "--per-part 16"):
        assert words in fixed
    assert "--camera-tilt" not in fixed and "--supersample" not in fixed
    # the same scenes as the rasterised crops (their seed), the rest of the plan unchanged
    raster = next(line for line in shipped if line.startswith("== render-crop: "))
    assert render_seeds(shipped)["render-crop"] == render_seeds(plan)["render-pathtrace-crop"]
    assert raster.split("--layout legacy")[0] == fixed.split("--layout legacy")[0].replace(
        "render-pathtrace-crop", "render-crop"
    )
    config = next(line for line in plan if "ship config" in line)
    assert "render-pathtrace-crop render-pathtrace-tilt-seed20 render-pathtrace --kind auto" in config
    assert script_recipe(CROP_FIXED_RENDERER="pathtrace")["CROP_FIXED_RENDERER"] == "pathtrace"
    assert "CROP_FIXED_RENDERER" not in script_recipe(CROP_FIXED_RENDERER="raster")  # the default: unnamed
    bad = plan_failing(ldraw, CROP_FIXED_RENDERER="mitsuba")
    assert bad.returncode == 2 and "CROP_FIXED_RENDERER mitsuba is no renderer" in bad.stderr


def test_the_real_photos_are_scored_for_part_and_colour_when_real_is_given(tmp_path: Path) -> None:
    ldraw = ldraw_with(tmp_path, "3001\n")
    assert not any(line.startswith("== evaluate-real") for line in script_plan(ldraw, tmp_path / "work"))
    real = tmp_path / "real"
    plan = script_plan(ldraw, tmp_path / "work", REAL=str(real))
    step = next(line for line in plan if line.startswith("== evaluate-real"))
    assert f"--set belt={real}/belt:{REPO}/config/real/belt.yaml:{real}/belt/_empty" in step
    for name in ("belt", "cutouts"):
        labels = REPO / "config" / "real" / f"{name}_colors.csv"
        assert f"--colors {name}={labels}" in step and labels.is_file()
