"""Recognition: view fusion, thresholds, vector voting, hybrid fallback, and real engine outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.engines import create_engine
from edge.errors import ConfigError, ModelError
from edge.index import EmbeddingIndex
from edge.manifest import Manifest
from edge.recognize import Recognizer, fuse, log_softmax
from tests.helpers.onnx_models import ClassifierWeights, write_model_set

PARTS = ("3001", "3003", "3004", "3020", "3023")
COLORS = (0, 1, 4, 14, 15)
DIM = 8


@pytest.fixture(scope="module")
def model_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    folder = tmp_path_factory.mktemp("model_set")
    return folder, write_model_set(folder, parts=PARTS, colors=COLORS, embedding_dim=DIM)


@pytest.fixture
def manifest(model_set: tuple[Path, Manifest]) -> Manifest:
    return model_set[1]


def _outputs(part_logits: list[list[float]], color: int = 0, emb: np.ndarray | None = None) -> dict:
    n = len(part_logits)
    colors = np.full((n, len(COLORS)), -2.0, np.float32)
    colors[:, color] = 2.0
    out = {"part_logits": np.asarray(part_logits, np.float32), "color_logits": colors}
    if emb is not None:
        out["embedding"] = emb.astype(np.float32)
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _basis(i: int) -> np.ndarray:
    e = np.zeros(DIM, np.float32)
    e[i] = 1.0
    return e


def _gallery_index() -> EmbeddingIndex:
    """One vector per part along the first axes, plus 'new-1' (a part enrolled after training)."""
    index = EmbeddingIndex(DIM, threads=1)
    index.add(np.stack([_basis(i) for i in range(6)]), [*PARTS, "new-1"])
    return index


def test_fusion_picks_the_aggregate_winner_when_one_view_disagrees(manifest: Manifest) -> None:
    # views 1 and 2 favour 3001 clearly; view 3 favours 3003 more strongly than either
    logits = [[3, 0, 0, 0, 0], [3, 0, 0, 0, 0], [1, 3.5, 0, 0, 0]]
    for fusion in ("mean_log_prob", "mean_prob"):
        rec = Recognizer(manifest, fusion=fusion, threshold=0.5)  # type: ignore[arg-type]
        d = rec.decide(_outputs(logits))
        assert (d.part_num, d.status, d.source) == ("3001", "sorted", "classifier"), fusion
        assert [v.part_topk[0][0] for v in d.per_view] == ["3001", "3001", "3003"]
        assert d.part_topk[0][0] == "3001" and d.part_topk[1][0] == "3003"
    # 'max' lets the single most confident view decide: here the dissenting one
    assert Recognizer(manifest, fusion="max").decide(_outputs(logits)).part_topk[0][0] == "3003"


def test_fused_confidence_values(manifest: Manifest) -> None:
    # views' probabilities (0.5, 0.25, 0.25, 0, 0) and (0.8, 0.1, 0.1, 0, 0), up to a tiny epsilon
    tiny = 1e-12
    logits = np.log([[0.5, 0.25, 0.25, tiny, tiny], [0.8, 0.1, 0.1, tiny, tiny]]).tolist()
    # geometric mean: sqrt(.4) vs 2 * sqrt(.025) -> 0.6325 / (0.6325 + 0.3162) = 2/3
    expected = {"mean_log_prob": 2 / 3, "mean_prob": 0.65, "max": 0.8}
    for fusion, value in expected.items():
        d = Recognizer(manifest, fusion=fusion).decide(_outputs(logits))  # type: ignore[arg-type]
        assert d.confidence == pytest.approx(value, abs=1e-6), fusion
        assert d.part_num == "3001"
    probs = fuse(log_softmax(np.array(logits)), "mean_log_prob")
    assert probs.sum() == pytest.approx(1.0)


def test_thresholds_give_unknown_and_low_confidence(manifest: Manifest) -> None:
    rec = Recognizer(manifest, threshold=0.6)
    uniform = rec.decide(_outputs([[0, 0, 0, 0, 0]] * 3))  # 0.2 each: below 0.3
    assert (uniform.status, uniform.part_num) == ("unknown", None)
    assert uniform.confidence == pytest.approx(0.2)
    assert len(uniform.part_topk) == 5  # the guesses stay available for labelling
    # p(3001) = e^1 / (e^1 + 4) = 0.405: between threshold / 2 and threshold
    low = rec.decide(_outputs([[1, 0, 0, 0, 0]] * 2))
    assert (low.status, low.part_num, low.part_topk[0][0]) == ("low_confidence", None, "3001")
    assert low.confidence == pytest.approx(np.e / (np.e + 4))
    # the same outputs pass a lower threshold
    assert Recognizer(manifest, threshold=0.4).decide(_outputs([[1, 0, 0, 0, 0]] * 2)).status == "sorted"


def test_colour_comes_from_the_colour_head_fused(manifest: Manifest) -> None:
    out = _outputs([[3, 0, 0, 0, 0]] * 3, color=3)
    out["color_logits"][2] = [2, -2, -2, -1, -2]  # one view sees black, weakly
    d = Recognizer(manifest).decide(out)
    assert d.color_id == 14 and 0.5 < d.color_confidence < 1.0
    assert [v.color_topk[0][0] for v in d.per_view] == [14, 14, 0]
    no_colour = {"part_logits": out["part_logits"]}
    d = Recognizer(manifest).decide(no_colour)
    assert (d.color_id, d.color_confidence) == (None, 0.0)


def test_vector_mode_votes_with_similarities(manifest: Manifest) -> None:
    rec = Recognizer(manifest, mode="vector", index=_gallery_index(), vector_threshold=0.7)
    near_3004 = _unit(_basis(2) + 0.2 * _basis(7))  # cosine 0.98 to 3004
    near_3020 = _unit(_basis(3) + 0.2 * _basis(7))
    emb = np.stack([near_3004, near_3004, near_3004, near_3020])
    d = rec.decide(_outputs([[5, 0, 0, 0, 0]] * 4, emb=emb))  # the classifier is ignored in vector mode
    sim = float(near_3004 @ _basis(2))
    assert (d.part_num, d.source, d.status) == ("3004", "vector", "sorted")
    assert d.confidence == pytest.approx(3 * sim / 4, abs=1e-4)  # absent from view 4: it adds 0
    assert dict(d.part_topk)["3020"] == pytest.approx(sim / 4, abs=1e-4)
    assert [v.source for v in d.per_view] == ["vector"] * 4
    assert d.per_view[3].part_topk[0][0] == "3020" and d.per_view[0].embedding is not None
    # far from every gallery vector: unknown
    far = np.tile(_unit(_basis(6) + 0.3 * _basis(7)), (2, 1))
    d = rec.decide(_outputs([[5, 0, 0, 0, 0]] * 2, emb=far))
    assert (d.status, d.part_num) == ("unknown", None)


def test_vector_vote_counts_a_part_once_per_view(manifest: Manifest) -> None:
    index = EmbeddingIndex(DIM, threads=1)
    index.add(np.stack([_unit(_basis(0) + 0.1 * _basis(i)) for i in range(1, 6)]), ["3001"] * 5)
    rec = Recognizer(manifest, mode="vector", index=index)
    d = rec.decide(_outputs([[0] * 5], emb=_basis(0)[None]))
    assert d.part_num == "3001" and d.confidence <= 1.0  # 5 neighbours of 3001 do not add up to 5
    assert d.confidence == pytest.approx(float(_unit(_basis(0) + 0.1 * _basis(1))[0]), abs=1e-4)


def test_hybrid_takes_the_vector_answer_for_a_part_the_classifier_lacks(manifest: Manifest) -> None:
    rec = Recognizer(manifest, mode="hybrid", index=_gallery_index())
    confident = [[4, 0, 0, 0, 0]] * 2  # the classifier is sure it is 3001
    new_part = np.tile(_basis(5), (2, 1))  # but the embedding matches 'new-1' exactly
    d = rec.decide(_outputs(confident, emb=new_part))
    assert (d.part_num, d.source, d.status) == ("new-1", "vector", "sorted")
    assert d.confidence == pytest.approx(1.0, abs=1e-5)
    assert [v.source for v in d.per_view] == ["classifier", "classifier", "vector", "vector"]
    # an embedding close to a part the classifier knows does not override a confident classifier
    d = rec.decide(_outputs(confident, emb=np.tile(_basis(1), (2, 1))))
    assert (d.part_num, d.source) == ("3001", "classifier")
    # an unsure classifier falls back to the vector answer
    d = rec.decide(_outputs([[0, 0, 0, 0, 0]] * 2, emb=np.tile(_basis(3), (2, 1))))
    assert (d.part_num, d.source) == ("3020", "vector")


def test_hybrid_with_an_empty_index_is_the_classifier(manifest: Manifest) -> None:
    empty = EmbeddingIndex(DIM)
    out = _outputs([[0, 4, 0, 0, 0]] * 2, emb=np.tile(_basis(0), (2, 1)))
    d = Recognizer(manifest, mode="hybrid", index=empty).decide(out)
    assert (d.part_num, d.source) == ("3003", "classifier")
    assert [v.source for v in d.per_view] == ["classifier", "classifier"]
    with pytest.raises(ModelError, match="empty"):
        Recognizer(manifest, mode="vector", index=empty).decide(out)
    # classifier mode never consults an index it was given
    d = Recognizer(manifest, mode="classifier", index=_gallery_index()).decide(out)
    assert (d.part_num, len(d.per_view)) == ("3003", 2)


def test_the_rigs_own_views_are_taken_first_at_rig_threshold(manifest: Manifest) -> None:
    # The shipped gallery holds 3001 along axis 0; the rig enrolled 'bolt' from two of its own views
    # along a direction 0.35 from the query, while the query is 0.9 from the shipped 3001 vector:
    # in one merged search the render of the other part wins, searched first the rig's views do.
    query = _unit(0.9 * _basis(0) + np.sqrt(1 - 0.81) * _basis(6))
    rig_view = _unit(0.8 * _basis(6) + 0.6 * _basis(7))
    cos = float(query @ rig_view)
    rig = EmbeddingIndex(DIM, threads=1)
    rig.add(np.stack([rig_view, rig_view]), ["bolt", "bolt"])
    merged = _gallery_index()
    merged.add(np.stack([rig_view, rig_view]), ["bolt", "bolt"])
    unsure = [[0, 0, 0, 0, 0]]  # the classifier cannot tell
    out = _outputs(unsure, emb=query[None])

    d = Recognizer(manifest, mode="hybrid", index=merged).decide(out)  # no rig index: one search
    assert (d.part_num, d.source) == ("3001", "vector")
    first = Recognizer(manifest, mode="hybrid", index=merged, rig_index=rig, rig_threshold=cos - 0.01)
    d = first.decide(out)
    assert (d.part_num, d.source, d.status) == ("bolt", "vector", "sorted")
    assert d.confidence == pytest.approx(cos, abs=1e-4)
    # below rig_threshold the rig's answer is not taken and the merged search decides as before
    d = Recognizer(manifest, mode="hybrid", index=merged, rig_index=rig, rig_threshold=cos + 0.01).decide(out)
    assert (d.part_num, d.source) == ("3001", "vector")
    # unset, rig_threshold is vector_threshold
    by_default = Recognizer(manifest, mode="vector", index=merged, rig_index=rig, vector_threshold=cos - 0.01)
    assert by_default.rig_threshold == pytest.approx(cos - 0.01)
    assert by_default.decide(out).part_num == "bolt"
    # a rig's view beats even a confident classifier: it was taught on this rig
    d = first.decide(_outputs([[4, 0, 0, 0, 0]], emb=query[None]))
    assert (d.part_num, d.source) == ("bolt", "vector")
    # classifier mode never consults it
    d = Recognizer(manifest, mode="classifier", rig_index=rig, rig_threshold=0.1).decide(out)
    assert d.source == "classifier" and d.part_num is None
    # an empty rig index changes nothing
    empty = Recognizer(
        manifest, mode="hybrid", index=merged, rig_index=EmbeddingIndex(DIM), rig_threshold=0.1
    )
    assert empty.decide(out).part_num == "3001"


def test_configuration_errors(manifest: Manifest) -> None:
    for mode in ("vector", "hybrid"):
        with pytest.raises(ConfigError, match=r"needs an embedding index.*trainer index"):
            Recognizer(manifest, mode=mode)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'neural'"):
        Recognizer(manifest, mode="neural")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="fusion 'vote'"):
        Recognizer(manifest, fusion="vote")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"threshold 1\.5"):
        Recognizer(manifest, threshold=1.5)
    with pytest.raises(ConfigError, match=r"rig_threshold 0"):
        Recognizer(manifest, rig_threshold=0)
    with pytest.raises(ModelError, match="rig's enrolled index has dimension 4"):
        Recognizer(manifest, mode="hybrid", index=_gallery_index(), rig_index=EmbeddingIndex(4))
    with pytest.raises(ConfigError, match="k 0"):
        Recognizer(manifest, k=0)
    with pytest.raises(ModelError, match="dimension 4 but the model's embedding_dim is 8"):
        Recognizer(manifest, mode="vector", index=EmbeddingIndex(4))
    with pytest.raises(ModelError, match="'l2'"):
        Recognizer(manifest, mode="vector", index=EmbeddingIndex(DIM, space="l2"))
    outputs = manifest.outputs.model_copy(update={"embedding": None})
    no_embedding = manifest.model_copy(update={"outputs": outputs})
    with pytest.raises(ConfigError, match="embedding output"):
        Recognizer(no_embedding, mode="hybrid", index=_gallery_index())


def test_bad_outputs_are_model_errors(manifest: Manifest) -> None:
    rec = Recognizer(manifest)
    with pytest.raises(ModelError, match="'part_logits'"):
        rec.decide({"color_logits": np.zeros((1, 5), np.float32)})
    with pytest.raises(ModelError, match=r"shape \(2, 4\), expected \(N views >= 1, 5\)"):
        rec.decide({"part_logits": np.zeros((2, 4), np.float32)})
    with pytest.raises(ModelError, match="number of views: 3 vs 2"):
        rec.decide({"part_logits": np.zeros((2, 5)), "color_logits": np.zeros((3, 5))})
    with pytest.raises(ModelError, match="NaN"):
        rec.decide({"part_logits": np.full((1, 5), np.nan)})
    vec = Recognizer(manifest, mode="vector", index=_gallery_index())
    with pytest.raises(ModelError, match="needs the 'embedding' output"):
        vec.decide(_outputs([[0] * 5]))


def test_end_to_end_on_real_engine_outputs(model_set: tuple[Path, Manifest]) -> None:
    folder, manifest = model_set
    rng = np.random.default_rng(11)
    views = rng.normal(0.0, 1.0, (4, 3, 16, 16)).astype(np.float32)
    views += rng.normal(0.0, 1.0, (1, 3, 1, 1)).astype(np.float32)  # one part: shared colour cast
    with create_engine("onnxruntime", folder, threads=1) as engine:
        outputs = engine.run(views)
        other = engine.run(rng.normal(0.0, 1.0, (3, 3, 16, 16)).astype(np.float32))

    # classifier: the fused winner equals the numpy reference's highest summed log-probability
    ref = ClassifierWeights.for_manifest(manifest).reference(views)
    expected = PARTS[int(np.argmax(log_softmax(ref["part_logits"]).sum(axis=0)))]
    expected_colour = COLORS[int(np.argmax(log_softmax(ref["color_logits"]).sum(axis=0)))]
    d = Recognizer(manifest, threshold=0.01).decide(outputs)
    assert (d.part_num, d.color_id, d.status) == (expected, expected_colour, "sorted")
    assert len(d.per_view) == 4 and all(v.embedding is not None for v in d.per_view)

    # vector: enrol this part's embeddings under a label the classifier has never seen
    index = EmbeddingIndex(DIM, threads=1)
    index.add(outputs["embedding"], ["new-7"] * 4)
    index.add(other["embedding"], ["3001", "3003", "3004"])
    d = Recognizer(manifest, mode="vector", index=index).decide(outputs)
    assert (d.part_num, d.status) == ("new-7", "sorted") and d.confidence == pytest.approx(1.0, abs=1e-5)
    d = Recognizer(manifest, mode="hybrid", index=index).decide(outputs)
    assert (d.part_num, d.source) == ("new-7", "vector")


def test_manifest_temperatures_soften_or_sharpen_without_changing_the_answer(manifest: Manifest) -> None:
    outputs = _outputs([[2.0, 1.0, 0.0, -1.0, -1.0], [1.5, 1.2, 0.1, -1.0, -1.0]])
    plain = Recognizer(manifest).decide(outputs)
    sharp = Recognizer(manifest.model_copy(update={"temperatures": {"part_logits": 0.5}})).decide(outputs)
    soft = Recognizer(manifest.model_copy(update={"temperatures": {"part_logits": 2.0}})).decide(outputs)
    assert plain.part_topk[0][0] == sharp.part_topk[0][0] == soft.part_topk[0][0] == "3001"
    assert soft.confidence < plain.confidence < sharp.confidence
    assert soft.color_confidence == plain.color_confidence  # only the part logits were scaled
    with pytest.raises(ValueError, match="temperatures"):
        Manifest.model_validate(manifest.model_dump() | {"temperatures": {"part_logits": 0.0}})
