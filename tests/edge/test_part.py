"""The part record: the recognizer's verdict, overruled by the daemon's fault checks."""

from __future__ import annotations

from edge.part import PartRecord, ViewRecord
from edge.recognize import Decision


def _decision() -> Decision:
    return Decision("3001", 4, 0.9, 0.8, "sorted", "classifier", [], [("3001", 0.9)])


def test_a_decided_part_carries_the_verdict_until_rejected() -> None:
    part = PartRecord.decided(_decision(), [ViewRecord(0.0), ViewRecord(90.0)], {"infer": 1.0}, [1, 1], None)
    assert (part.status, part.part_num, part.color_id, part.confidence) == ("sorted", "3001", 4, 0.9)
    assert part.angles == [0.0, 90.0] and part.crops == [None, None]
    assert part.correct is None and part.right_bin is None  # no ground truth
    part.reject("two parts at once")
    assert (part.status, part.part_num, part.color_id, part.note) == ("error", None, 4, "two parts at once")


def test_truth_gives_correct_and_right_bin() -> None:
    truth = {"part_num": "3001", "color_id": 4}
    part = PartRecord.decided(_decision(), [], {}, [], truth)
    part.bin, part.truth_bin = "red", "red"
    assert part.correct is True and part.right_bin is True
    part.bin = "reject"
    assert part.right_bin is False


def test_two_parts_when_most_looks_see_more_than_one_object() -> None:
    part = PartRecord.decided(_decision(), [], {}, [2, 2, 1, 1], None)
    assert part.sees_two_parts(2)  # 3 of 5 looks see two
    assert not part.sees_two_parts(1)  # 2 of 5
    assert not PartRecord.decided(_decision(), [], {}, [2], None).sees_two_parts(1)  # 1 of 2: a tie
