"""The drawing of ``trainer evaluate-real``'s figures (:func:`trainer.report.plot_real`)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from trainer.report import goal_marks, plot_real, plot_rig_sweep, real_rows


def _figures(parts: dict[str, tuple[int, float, float]]) -> dict:
    known = {
        "part_top1": 0.5,
        "part_top5": 0.75,
        "majority_baseline": 0.6,
        "per_part": {p: {"photos": n, "top1": t1, "top5": t5} for p, (n, t1, t5) in parts.items()},
    }
    enrolled = {
        "parts": ["43857"],
        "vector_top1": 0.4,
        "decision_top1": 0.7,
        "queries": 10,
        "enrolled_per_part": 5,
        "rig_threshold": 0.7,
        "rig_sweep": [
            {"threshold": 0.5, "enrolled_top1": 0.9, "known_taken": 0.2},
            {"threshold": 0.7, "enrolled_top1": 0.7, "known_taken": 0.05},
            {"threshold": 0.9, "enrolled_top1": 0.4, "known_taken": 0.0},
        ],
    }
    return {
        "photos": 12,
        "segmenter": {"type": "bgdiff"},
        "artifacts": {
            "onnxruntime/int8": {"known": known, "enroll_5": enrolled},
            "litert/int8": {"known": {**known, "part_top1": 0.25}},
        },
    }


def test_rows_are_each_artifact_then_the_first_artifacts_parts_and_enrolment() -> None:
    rows = real_rows(_figures({"3023": (4, 0.25, 0.5), "15712": (6, 1.0, 1.0)}))
    assert rows == [
        ("onnxruntime/int8: all", 0.5, 0.75, 0.6),
        ("litert/int8: all", 0.25, 0.75, 0.6),
        ("15712 (6)", 1.0, 1.0, None),
        ("3023 (4)", 0.25, 0.5, None),
        ("43857 enrolled k=5 (decision)", 0.7, None, None),
        ("43857 enrolled k=5 (nearest, merged)", 0.4, None, None),
    ]


def test_goals_are_marked_on_the_rows_they_hold_to(tmp_path: Path) -> None:
    figures = _figures({"3023": (4, 0.25, 0.5), "15712": (6, 1.0, 1.0)})
    rows = real_rows(figures)
    goals = [
        {"set": "belt", "figure": "top1", "goal": 0.8},
        {"set": "belt", "figure": "enrolled5", "goal": 0.75},
        {"set": "belt", "figure": "enrolled1", "goal": 0.5},  # no k=1 row: no mark
        {"set": "belt", "figure": "family", "goal": 0.6},  # colour has no row here
    ]
    # each artifact's "all" row (0, 1) and the enrolled part's decision row (4)
    assert goal_marks(rows, goals) == [(0, 0.8), (1, 0.8), (4, 0.75)]
    plain = plot_real({"sets": {"belt": figures}}, tmp_path / "plain.png")
    marked = plot_real({"sets": {"belt": figures}, "goals": goals}, tmp_path / "marked.png")
    a, b = cv2.imread(str(plain)), cv2.imread(str(marked))
    assert a is not None and b is not None and a.shape == b.shape

    def green(image: np.ndarray) -> int:  # BGR pixels whose green is well above blue and red
        bgr = image.astype(int)
        return int(((bgr[..., 1] - bgr[..., 0] > 40) & (bgr[..., 1] - bgr[..., 2] > 40)).sum())

    assert green(a) == 0 and green(b) > 20  # only the goals' dots are green


def test_rows_show_the_size_and_part_prior_decisions_after_the_artifacts() -> None:
    figures = _figures({"3023": (4, 0.25, 0.5)})
    decided = {"part_top1": 0.9, "part_top5": 1.0}
    figures["artifacts"]["onnxruntime/int8"] |= {
        "size": {"photos": 3, "with": {"part_top1": 0.6, "part_top5": 0.8}, "with_prior": decided},
        "prior": {"photos": 4, "with": {"part_top1": 0.7, "part_top5": 0.9}},
    }
    assert real_rows(figures)[2:5] == [
        ("onnxruntime/int8: size prior (3)", 0.6, 0.8, None),
        ("onnxruntime/int8: size + part prior (3)", 0.9, 1.0, None),
        ("onnxruntime/int8: part prior (4)", 0.7, 0.9, None),
    ]


def test_rig_sweep_draws_one_panel_per_enrolled_set_and_nothing_without_enrolment(tmp_path: Path) -> None:
    one = {"sets": {"belt": _figures({"3023": (4, 0.25, 0.5)})}}
    two = {"sets": {**one["sets"], "cutouts": _figures({"3001": (3, 0.5, 1.0)})}}
    small, wide = plot_rig_sweep(one, tmp_path / "one.png"), plot_rig_sweep(two, tmp_path / "two.png")
    assert small is not None and wide is not None
    a, b = cv2.imread(str(small)), cv2.imread(str(wide))
    assert a is not None and b is not None and b.shape[1] > 1.5 * a.shape[1]  # a panel per set
    bare = {"sets": {"belt": _figures({"3023": (4, 0.25, 0.5)})}}
    del bare["sets"]["belt"]["artifacts"]["onnxruntime/int8"]["enroll_5"]
    assert plot_rig_sweep(bare, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


def test_plot_has_one_panel_per_set_and_grows_with_the_rows(tmp_path: Path) -> None:
    one = {"sets": {"belt": _figures({"3023": (4, 0.25, 0.5)})}}
    two = {"sets": {"belt": one["sets"]["belt"], "cutouts": _figures({p: (3, 0.5, 1.0) for p in "abcdef"})}}
    small, large = plot_real(one, tmp_path / "one.png"), plot_real(two, tmp_path / "two.png")
    a, b = cv2.imread(str(small)), cv2.imread(str(large))
    assert a is not None and b is not None and b.shape[0] > a.shape[0] and a.shape[1] == b.shape[1]


def test_a_report_without_figures_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no figures to plot"):
        plot_real({"sets": {"belt": {"photos": 3, "artifacts": {}}}}, tmp_path / "x.png")
