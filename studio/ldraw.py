"""LDraw reader: find a part's files in a library and flatten it into a :class:`~studio.mesh.Mesh`.

Supports line types 0-5, sub-file references with their 3x3 matrices, colour 16/24 inheritance,
``~Moved to`` aliases and the BFC (back face culling) extension (one file's text is parsed by
:mod:`studio.ldraw_parse`). Output winding: for triangles with ``two_sided=False``,
``cross(v1 - v0, v2 - v0)`` points out of the solid. An LDraw ``CCW`` polygon already satisfies that in
LDraw's own axes (checked against the official 3001, whose top face then points to -Y, i.e. up), so
only ``CW`` polygons, mirroring matrices and ``INVERTNEXT`` flip winding.

Every file is parsed once and each file's flattened local mesh (colour 16 kept symbolic) is cached,
so primitives used hundreds of times cost one matrix product per use.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from studio.errors import DataFileError, LDrawError, MissingPartError
from studio.ldraw_parse import LDrawFile, SubFileRef, read_ldraw
from studio.mesh import MAIN_COLOR, Mesh

#: Plain stud primitives and the logo studs LDraw viewers draw instead with their "logo" option
#: (real studs carry the raised LEGO logo); used where the library holds the logo file.
LOGO_STUDS = {
    "stud.dat": "stud-logo4.dat",
    "stud2.dat": "stud2-logo4.dat",
    "stu2.dat": "stu2-logo4.dat",
    "stu22.dat": "stu22-logo4.dat",
}


def _norm(name: str) -> str:
    """Canonical lookup key: forward slashes, lower case, no surrounding blanks."""
    key = name.strip().replace("\\", "/").lower()
    return key[2:] if key.startswith("./") else key


def _part_id(part_num: str) -> str:
    if not isinstance(part_num, str) or not part_num.strip():
        raise LDrawError(f"part number {part_num!r} is empty or not a string; pass e.g. '3001'")
    return _norm(part_num).removesuffix(".dat")


def _freeze(mesh: Mesh) -> Mesh:
    for arr in (mesh.triangles, mesh.colors, mesh.two_sided, mesh.edges, mesh.edge_colors, mesh.cond_edges):
        arr.flags.writeable = False  # cached and shared: a caller must copy before editing
    return mesh


def _size(mesh: Mesh) -> int:
    return len(mesh.triangles) + len(mesh.edges) + len(mesh.cond_edges)


class _LRU:
    """An ordered dict evicting the least recently used entries beyond a count and a total size."""

    def __init__(self, max_items: int, max_weight: int | None = None) -> None:
        self.data: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self.max_items, self.max_weight, self.weight = max_items, max_weight, 0
        self.hits = self.misses = 0

    def get(self, key: Any) -> Any:
        item = self.data.get(key)
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        self.data.move_to_end(key)
        return item[0]

    def put(self, key: Any, value: Any, weight: int = 0) -> None:
        old = self.data.pop(key, None)
        if old is not None:
            self.weight -= old[1]
        self.data[key] = (value, weight)
        self.weight += weight
        while len(self.data) > 1 and (
            len(self.data) > self.max_items or (self.max_weight is not None and self.weight > self.max_weight)
        ):
            _, (_, w) = self.data.popitem(last=False)
            self.weight -= w


class LDrawLibrary:
    """An LDraw parts library on disk (``parts/``, ``parts/s/``, ``p/``, ``p/48/``, ``p/8/``).

    Lookups are case-insensitive and accept either slash. Parsed files and flattened meshes are
    cached in bounded LRUs: at most ``max_files`` of each, and meshes holding at most
    ``max_mesh_elements`` triangles + lines in all (about 150 MB at the default). An instance is
    not meant to be shared between threads.

    With ``logo_studs`` the plain studs are drawn with the LEGO logo (see :data:`LOGO_STUDS`) wherever
    the library has the logo file; a stud without one stays plain.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        max_files: int = 8192,
        max_mesh_elements: int = 4_000_000,
        logo_studs: bool = False,
    ) -> None:
        if max_files < 1 or max_mesh_elements < 0:
            raise ValueError(
                f"cache sizes max_files={max_files!r}, max_mesh_elements={max_mesh_elements!r} are "
                "invalid; use max_files >= 1 and max_mesh_elements >= 0"
            )
        self.root = Path(root)
        self.logo_studs = bool(logo_studs)
        self._dir_cache: dict[Path, dict[str, tuple[Path, bool]]] = {}
        parts = self._sub(self.root, "parts")
        if parts is None:
            raise DataFileError(
                f"LDraw library root {str(self.root)!r} has no parts/ folder; point it at the folder "
                "that holds parts/ and p/ (the unpacked official library, or write_demo_library())"
            )
        p = self._sub(self.root, "p")
        self._parts_dir = parts
        self._roots = [d for d in (parts, p) if d is not None]
        # Bare names are also looked for in these folders (after the roots, before the caller's folder).
        self._fallbacks = [
            d for d in (self._sub(parts, "s"), self._sub(p, "48"), self._sub(p, "8")) if d is not None
        ]
        self._files = _LRU(max_files)
        self._meshes = _LRU(max_files, max_mesh_elements)
        self.files_parsed = 0

    # -- file lookup -----------------------------------------------------------------------------

    def _listing(self, folder: Path) -> dict[str, tuple[Path, bool]]:
        """Lower-cased name -> (path, is a folder) for one folder's entries, listed once per folder."""
        found = self._dir_cache.get(folder)
        if found is None:
            try:
                with os.scandir(folder) as it:
                    found = {e.name.lower(): (folder / e.name, e.is_dir()) for e in it}
            except OSError:
                found = {}
            self._dir_cache[folder] = found
        return found

    def _sub(self, folder: Path | None, name: str) -> Path | None:
        hit = self._listing(folder).get(name) if folder is not None else None
        return hit[0] if hit is not None and hit[1] else None

    def _lookup(self, folder: Path, key: str) -> Path | None:
        *dirs, base = key.split("/")
        for d in dirs:
            nxt = self._sub(folder, d) if d not in ("", ".") else folder
            if nxt is None:
                return None
            folder = nxt
        hit = self._listing(folder).get(base)
        return hit[0] if hit is not None and not hit[1] else None

    def _search_path(self, folder: Path | None) -> list[Path]:
        return self._roots + self._fallbacks + ([folder] if folder is not None else [])

    def _try_find(self, name: str, folder: Path | None) -> Path | None:
        key = _norm(name)
        for d in self._search_path(folder):
            hit = self._lookup(d, key)
            if hit is not None:
                return hit
        return None

    def find(self, name: str, relative_to: Path | None = None) -> Path:
        """The file for a reference like ``s\\3001s01.dat`` or ``48/1-4cyli.dat``.

        Searches ``parts/``, ``p/``, then ``parts/s/``, ``p/48/``, ``p/8/``, then the folder of
        ``relative_to`` (a referencing file, or a folder). Raises :class:`MissingPartError`.
        """
        folder = None
        if relative_to is not None:
            relative_to = Path(relative_to)
            folder = relative_to if relative_to.is_dir() else relative_to.parent
        hit = self._try_find(name, folder)
        if hit is None:
            raise MissingPartError(
                f"LDraw file {name!r} not found; searched {self._describe(folder)}; "
                "add the file to the library or correct the name"
            )
        return hit

    def _describe(self, folder: Path | None) -> str:
        return ", ".join(str(d) for d in self._search_path(folder))

    def _label(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def _parsed(self, path: Path) -> LDrawFile:
        cached = self._files.get(path)
        if cached is None:
            cached = read_ldraw(path, self._label(path))
            self.files_parsed += 1
            self._files.put(path, cached)
        return cached

    # -- parts -----------------------------------------------------------------------------------

    def _part_path(self, part_id: str) -> Path | None:
        return self._lookup(self._parts_dir, f"{part_id}.dat")

    def has_part(self, part_num: str) -> bool:
        """Whether ``parts/<part_num>.dat`` exists (an alias counts; its target is not checked)."""
        return self._part_path(_part_id(part_num)) is not None

    def resolve_part(self, part_num: str) -> str:
        """Follow ``~Moved to`` aliases (``"3023"`` -> ``"3023b"``); the id itself if not an alias.

        Raises :class:`MissingPartError` for an unknown part and :class:`LDrawError` for a cycle.
        """
        current = _part_id(part_num)
        chain = [current]
        while True:
            path = self._part_path(current)
            if path is None:
                via = f" (reached via {' -> '.join(chain)})" if len(chain) > 1 else ""
                raise MissingPartError(
                    f"part {current!r}{via} not found in {str(self._parts_dir)!r}; check the part "
                    "number or use a library that has it"
                )
            target = self._parsed(path).moved_to
            if target is None:
                return current
            if target in chain:
                raise LDrawError(
                    f"'~Moved to' cycle: {' -> '.join([*chain, target])}; fix one of these files"
                )
            chain.append(target)
            current = target

    def _resolved_file(self, part_num: str) -> LDrawFile:
        path = self._part_path(self.resolve_part(part_num))
        assert path is not None  # resolve_part found it
        return self._parsed(path)

    def part_title(self, part_num: str) -> str:
        """The part's description from its first line (after following aliases)."""
        return self._resolved_file(part_num).title

    def part_category(self, part_num: str) -> str | None:
        """``0 !CATEGORY`` if present, else the title's first word (``~``, ``_``, ``=``, ``|`` dropped)."""
        pf = self._resolved_file(part_num)
        if pf.category:
            return pf.category
        words = pf.title.lstrip("~_=| ").split()
        return words[0] if words else None

    def part_mesh(self, part_num: str) -> Mesh:
        """The part flattened into one mesh (cached, read-only arrays), colour 16 left symbolic.

        Raises :class:`MissingPartError` / :class:`LDrawError` for missing files, cycles or
        malformed lines anywhere in the part's tree; callers processing many parts catch per part.
        """
        path = self._part_path(self.resolve_part(part_num))
        assert path is not None
        return self._local_mesh(path, (path,))

    def cache_info(self) -> dict[str, int]:
        """Counters for the caches: files parsed, cached files and meshes, mesh cache hits/misses."""
        return {
            "files_parsed": self.files_parsed,
            "files_cached": len(self._files.data),
            "meshes_cached": len(self._meshes.data),
            "mesh_hits": self._meshes.hits,
            "mesh_misses": self._meshes.misses,
        }

    # -- flattening ------------------------------------------------------------------------------

    def _local_mesh(self, path: Path, chain: tuple[Path, ...]) -> Mesh:
        """The file's geometry in its own frame, its descendants included, colour 16 symbolic.

        ``two_sided`` here assumes certified ancestors; callers widen it (see ``_place``).
        """
        cached = self._meshes.get(path)
        if cached is not None:
            return cached
        pf = self._parsed(path)
        if pf.error is not None:
            raise pf.error
        pieces = [
            Mesh(
                triangles=pf.triangles,
                colors=pf.tri_colors,
                two_sided=~pf.tri_clip if pf.certified else np.ones(len(pf.triangles), bool),
                edges=pf.edges,
                edge_colors=pf.edge_colors,
                cond_edges=pf.cond_edges,
            )
        ]
        for ref in pf.refs:
            child_path = self._logo_stud(ref.name, path.parent) if self.logo_studs else None
            child_path = child_path or self._try_find(ref.name, path.parent)
            if child_path is None:
                raise MissingPartError(
                    f"{ref.name!r} referenced at {pf.source}:{ref.line_no} not found{self._via(chain)}; "
                    f"searched {self._describe(path.parent)}; add the file or fix the reference"
                )
            if child_path in chain:
                names = " -> ".join(self._label(p) for p in (*chain, child_path))
                raise LDrawError(
                    f"reference cycle {names} (at {pf.source}:{ref.line_no}); a file must not include itself"
                )
            child = self._local_mesh(child_path, (*chain, child_path))
            pieces.append(_place(child, ref, pf.certified))
        mesh = _freeze(_concat(pieces))
        self._meshes.put(path, mesh, _size(mesh))
        return mesh

    def _logo_stud(self, name: str, folder: Path) -> Path | None:
        """The logo version of a plain stud reference (same sub-folder, e.g. ``48/``), if there is one."""
        head, _, base = _norm(name).rpartition("/")
        logo = LOGO_STUDS.get(base)
        return None if logo is None else self._try_find(f"{head}/{logo}" if head else logo, folder)

    def _via(self, chain: tuple[Path, ...]) -> str:
        return f" (while flattening {' -> '.join(self._label(p) for p in chain)})" if len(chain) > 1 else ""


def _place(child: Mesh, ref: SubFileRef, parent_certified: bool) -> Mesh:
    """A sub-file's local mesh moved into its parent's frame, with colour 16 and BFC resolved."""
    rot, shift = ref.matrix, ref.offset

    def apply(points: np.ndarray) -> np.ndarray:
        return (points.astype(np.float64) @ rot.T + shift).astype(np.float32)

    tris = apply(child.triangles)
    # A mirroring matrix turns outward windings inward; INVERTNEXT asks for the inside-out solid.
    if (np.linalg.det(rot) < 0) != (ref.invert and parent_certified):
        tris = tris[:, ::-1]

    def recolour(codes: np.ndarray) -> np.ndarray:
        return codes if ref.colour == MAIN_COLOR else np.where(codes == MAIN_COLOR, ref.colour, codes)

    two_sided = child.two_sided
    if not (parent_certified and ref.clip):
        two_sided = np.ones(len(tris), bool)  # culling needs every ancestor certified and clipping on
    return Mesh(
        triangles=tris,
        colors=recolour(child.colors),
        two_sided=two_sided,
        edges=apply(child.edges),
        edge_colors=recolour(child.edge_colors),
        cond_edges=apply(child.cond_edges),
    )


def _concat(pieces: list[Mesh]) -> Mesh:
    if len(pieces) == 1:
        return pieces[0]
    return Mesh(
        triangles=np.concatenate([m.triangles for m in pieces]).astype(np.float32, copy=False),
        colors=np.concatenate([m.colors for m in pieces]).astype(np.int32, copy=False),
        two_sided=np.concatenate([m.two_sided for m in pieces]).astype(bool, copy=False),
        edges=np.concatenate([m.edges for m in pieces]).astype(np.float32, copy=False),
        edge_colors=np.concatenate([m.edge_colors for m in pieces]).astype(np.int32, copy=False),
        cond_edges=np.concatenate([m.cond_edges for m in pieces]).astype(np.float32, copy=False),
    )
