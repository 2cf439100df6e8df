"""The triangle soup a flattened LDraw part becomes, the renderer's input."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: LDraw colour code meaning "the colour of the part" (inherited from the caller).
MAIN_COLOR = 16
#: LDraw colour code meaning "the edge colour belonging to the main colour".
EDGE_COLOR = 24


@dataclass(frozen=True)
class Mesh:
    """A part as triangles and lines, in LDraw units (LDU) and LDraw axes (-Y is up).

    Attributes:
        triangles: (T, 3, 3) float32 vertex positions. Where ``two_sided`` is False the winding is
            counter-clockwise seen from outside (BFC resolved), so
            ``cross(v1 - v0, v2 - v0)`` points outwards.
        colors: (T,) int32 LDraw colour codes; ``MAIN_COLOR`` (16) where the part's own colour applies.
        two_sided: (T,) bool, True where the source file was not BFC-certified (winding unknown):
            the renderer must neither cull these nor trust their normal's sign.
        edges: (E, 2, 3) float32 end points of type-2 lines (the dark edge lines of real bricks).
        edge_colors: (E,) int32 LDraw colour codes of those lines (usually ``EDGE_COLOR``, 24).
        cond_edges: (C, 4, 3) float32 type-5 optional lines: two end points then two control points;
            a renderer draws one only where both control points project to the same side of it.
    """

    triangles: np.ndarray
    colors: np.ndarray
    two_sided: np.ndarray
    edges: np.ndarray
    edge_colors: np.ndarray
    cond_edges: np.ndarray

    @staticmethod
    def empty() -> Mesh:
        return Mesh(
            triangles=np.zeros((0, 3, 3), np.float32),
            colors=np.zeros(0, np.int32),
            two_sided=np.zeros(0, bool),
            edges=np.zeros((0, 2, 3), np.float32),
            edge_colors=np.zeros(0, np.int32),
            cond_edges=np.zeros((0, 4, 3), np.float32),
        )

    @property
    def normals(self) -> np.ndarray:
        """(T, 3) float32 unit face normals from the winding (zero for degenerate triangles)."""
        t = self.triangles
        n = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
        length = np.linalg.norm(n, axis=1, keepdims=True)
        return np.divide(n, length, out=np.zeros_like(n), where=length > 0).astype(np.float32)

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(min xyz, max xyz) over the triangles' vertices."""
        pts = self.triangles.reshape(-1, 3)
        if len(pts) == 0:
            z = np.zeros(3, np.float32)
            return z, z
        return pts.min(axis=0), pts.max(axis=0)

    def transformed(self, matrix: np.ndarray) -> Mesh:
        """This mesh under a 4x4 affine transform (windings flipped where it mirrors)."""
        m = np.asarray(matrix, np.float64)
        rot, shift = m[:3, :3], m[:3, 3]

        def apply(points: np.ndarray) -> np.ndarray:
            return (points.astype(np.float64) @ rot.T + shift).astype(np.float32)

        tris = apply(self.triangles)
        if np.linalg.det(rot) < 0:
            tris = tris[:, ::-1].copy()
        return Mesh(
            triangles=tris,
            colors=self.colors,
            two_sided=self.two_sided,
            edges=apply(self.edges),
            edge_colors=self.edge_colors,
            cond_edges=apply(self.cond_edges),
        )
