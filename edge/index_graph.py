"""The hnswlib graph file beside an index's fp16 vectors: its header, read and checked before loading.

The graph file is hnswlib's own ``save_index`` output (not a pickle): a fixed header, then per
element its level-0 links, float32 vector and label, then the upper-level links. It records neither
the distance space nor the dimension, and hnswlib's ``load_index`` takes the dimension on trust: a
graph of another dimension loads without complaint and answers nonsense. So before hnswlib reads it,
:func:`read_graph_header` parses the header and :func:`check_graph_header` derives the dimension from
the element layout and compares it, the element count and M with the index's meta (the ``.npz``
vectors and the manifest: the source of truth). The space is recorded there too (the npz meta and
the manifest entry, which also holds the graph's checksum); :mod:`edge.index` then compares sampled
vectors of the loaded graph with the fp16 vectors, which catches a graph built in another space
wherever that matters (cosine stores normalised vectors; on unit vectors all three spaces rank alike).

The layout (hnswalg.h, ``saveIndex``): size_t is 8 bytes and the byte order little-endian on every
machine this runs on (x86-64 PCs, 64-bit Raspberry Pi OS).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ModelError

# offsetLevel0, max_elements, cur_element_count, size_data_per_element, label_offset, offsetData
# (size_t), maxlevel (int), enterpoint_node (uint32), maxM, maxM0, M (size_t), mult (double),
# ef_construction (size_t).
_HEADER = struct.Struct("<QQQQQQiIQQQdQ")
_FLOAT_BYTES = 4
_LABEL_BYTES = 8  # hnswlib labeltype: size_t


@dataclass(frozen=True)
class GraphHeader:
    """What an hnswlib index file says about itself (dimension derived from the element layout)."""

    count: int
    dim: int
    M: int
    max_M0: int
    ef_construction: int
    bytes_per_element: int
    file_bytes: int

    def describe(self) -> str:
        """``dim D, count N, M m`` for messages."""
        return f"dim {self.dim}, count {self.count}, M {self.M}"


def read_graph_header(path: Path, fix: str) -> GraphHeader:
    """Parse the header of hnswlib graph file ``path``; ModelError (ending with ``fix``) if it is not one."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_HEADER.size)
        size = path.stat().st_size
    except OSError as exc:
        raise ModelError(f"index graph {str(path)!r} cannot be read: {exc}; {fix}") from None
    if len(raw) < _HEADER.size:
        raise ModelError(
            f"index graph {str(path)!r} is {size} bytes, too short for an hnswlib index header; {fix}"
        )
    (
        offset_level0,
        _max_elements,
        count,
        per_element,
        label_offset,
        offset_data,
        _max_level,
        _enter_point,
        max_m,
        max_m0,
        m,
        _mult,
        ef_construction,
    ) = _HEADER.unpack(raw)
    data_bytes = label_offset - offset_data
    layout_ok = (
        offset_level0 == 0
        and max_m == m  # hnswlib: maxM_ = M_ (upper levels), maxM0_ = 2 * M_ (level 0)
        and offset_data == max_m0 * 4 + 4  # link count + maxM0 links of level 0
        and data_bytes > 0
        and data_bytes % _FLOAT_BYTES == 0
        and per_element == label_offset + _LABEL_BYTES
        and size >= _HEADER.size + count * (per_element + 4)  # + each element's upper-link size
    )
    if not layout_ok:
        raise ModelError(
            f"index graph {str(path)!r} is not an hnswlib index file of float vectors (header "
            f"inconsistent or file truncated: {size} bytes for {count} elements); {fix}"
        )
    return GraphHeader(
        count=count,
        dim=data_bytes // _FLOAT_BYTES,
        M=m,
        max_M0=max_m0,
        ef_construction=ef_construction,
        bytes_per_element=per_element,
        file_bytes=size,
    )


def check_graph_header(
    path: Path, header: GraphHeader, *, dim: int, count: int, M: int, ef_construction: int, fix: str
) -> None:
    """ModelError naming every way the graph's header disagrees with the vectors' meta."""
    expected = (
        ("dim", header.dim, dim),
        ("count", header.count, count),
        ("M", header.M, M),
        ("ef_construction", header.ef_construction, max(ef_construction, M)),  # hnswlib raises it to M
    )
    diffs = [
        f"{name} {got} in the graph, {want} in the vectors and manifest"
        for name, got, want in expected
        if got != want
    ]
    if header.max_M0 != 2 * header.M:
        diffs.append(f"level-0 links {header.max_M0} in the graph, 2*M = {2 * header.M} expected")
    if diffs:
        raise ModelError(
            f"index graph {str(path)!r} does not belong to these vectors: {'; '.join(diffs)}; {fix}"
        )
