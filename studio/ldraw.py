"""LDraw reader: parse ``.dat`` files and flatten a part into a :class:`~studio.mesh.Mesh`.

Supports line types 0-5, sub-file references with their 3x3 matrices, colour 16/24 inheritance,
``~Moved to`` aliases and the BFC (back face culling) extension. Output winding: for triangles with
``two_sided=False``, ``cross(v1 - v0, v2 - v0)`` points out of the solid. An LDraw ``CCW`` polygon
already satisfies that in LDraw's own axes (checked against the official 3001, whose top face then
points to -Y, i.e. up), so only ``CW`` polygons, mirroring matrices and ``INVERTNEXT`` flip winding.

Every file is parsed once and each file's flattened local mesh (colour 16 kept symbolic) is cached,
so primitives used hundreds of times cost one matrix product per use.
"""

from __future__ import annotations

import logging
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from studio.errors import DataFileError, LDrawError, MissingPartError
from studio.mesh import MAIN_COLOR, Mesh

log = logging.getLogger(__name__)

_MOVED_RE = re.compile(r"^~\s*moved\s+to\s+(\S+)", re.IGNORECASE)
#: Codes from 0x2000000 up are "direct colours" (0x2RRGGBB and the dithered 0x3-0x6 forms).
_DIRECT_COLOUR_MIN = 0x2000000
#: Tokens per line type (type, colour, numbers); type 1 has a file name after its 14 tokens.
_TOKENS = {2: 8, 3: 11, 4: 14, 5: 14}
_BFC_WORDS = {"CERTIFY", "NOCERTIFY", "CW", "CCW", "CLIP", "NOCLIP", "INVERTNEXT"}
#: Plain stud primitives and the logo studs LDraw viewers draw instead with their "logo" option
#: (real studs carry the raised LEGO logo); used where the library holds the logo file.
LOGO_STUDS = {
    "stud.dat": "stud-logo4.dat",
    "stud2.dat": "stud2-logo4.dat",
    "stu2.dat": "stu2-logo4.dat",
    "stu22.dat": "stu22-logo4.dat",
}


class LDrawLine(NamedTuple):
    """One parsed line: ``kind`` 0-5, its colour, its numbers, a type-1 file name, a type-0 text."""

    kind: int
    colour: int
    values: tuple[float, ...]
    name: str
    text: str


def _parse_colour(token: str, where: str) -> int:
    try:
        code = int(token, 16) if token.lower().startswith("0x") else int(token)
    except ValueError:
        raise LDrawError(f"{where}: colour {token!r} is not an LDraw colour code; use an integer") from None
    if code >= _DIRECT_COLOUR_MIN:
        # The Mesh holds LDraw codes only; a direct RGB colour falls back to the part's colour.
        log.debug("%s: direct colour %s mapped to %d (main colour)", where, token, MAIN_COLOR)
        return MAIN_COLOR
    return code


def parse_line(text: str, source: str = "<string>", line_no: int = 0) -> LDrawLine | None:
    """Parse one LDraw line; ``None`` for a blank one. Raises :class:`LDrawError` if malformed.

    ``source`` and ``line_no`` only label the error message (``source:line_no: ...``).
    """
    stripped = text.strip().lstrip("\ufeff")
    if not stripped:
        return None
    where = f"{source}:{line_no}"
    head = stripped.split(None, 1)[0]
    if head == "0":
        return LDrawLine(0, 0, (), "", stripped[1:].strip())
    if head == "1":
        tokens = stripped.split(None, 14)
        if len(tokens) < 15:
            raise LDrawError(
                f"{where}: {stripped!r}: a type 1 line needs a colour, 12 numbers and a file name "
                f"(got {len(tokens) - 1} fields); fix or remove the line"
            )
        name = tokens[14].strip()
    elif head in ("2", "3", "4", "5"):
        tokens = stripped.split()
        want = _TOKENS[int(head)]
        if len(tokens) != want:
            raise LDrawError(
                f"{where}: {stripped!r}: a type {head} line needs a colour and {want - 2} numbers "
                f"(got {len(tokens) - 1} fields); fix or remove the line"
            )
        name = ""
    else:
        raise LDrawError(f"{where}: {stripped!r}: unknown line type {head!r}; LDraw lines start with 0 to 5")
    colour = _parse_colour(tokens[1], f"{where}: {stripped!r}")
    try:
        values = tuple(map(float, tokens[2:14])) if head == "1" else tuple(map(float, tokens[2:]))
    except ValueError:
        raise LDrawError(f"{where}: {stripped!r}: a coordinate is not a number; fix the line") from None
    return LDrawLine(int(head), colour, values, name, "")


@dataclass
class SubFileRef:
    """A type-1 line: ``p -> matrix @ p + offset`` applied to file ``name``."""

    line_no: int
    colour: int
    matrix: np.ndarray
    offset: np.ndarray
    name: str
    invert: bool  # a `0 BFC INVERTNEXT` preceded it (certified files only)
    clip: bool  # False while `0 BFC NOCLIP` was in force: the whole sub-tree is two-sided


@dataclass
class LDrawFile:
    """One parsed file: header facts, its own geometry (winding made CCW) and its references."""

    source: str
    title: str = ""
    name: str | None = None
    category: str | None = None
    moved_to: str | None = None
    certified: bool = False
    triangles: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 3), np.float32))
    tri_colors: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    tri_clip: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    edges: np.ndarray = field(default_factory=lambda: np.zeros((0, 2, 3), np.float32))
    edge_colors: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    cond_edges: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 3), np.float32))
    refs: list[SubFileRef] = field(default_factory=list)
    #: The first malformed line's error; raised when the geometry is needed, so titles still read.
    error: LDrawError | None = None


def decode_ldraw(data: bytes) -> str:
    """Bytes to text: drop a UTF-8 BOM, read UTF-8, fall back to latin-1 (old comments use it)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse_ldraw(text: str, source: str = "<string>") -> LDrawFile:
    """Parse a whole file's text. Malformed lines do not raise here: see ``LDrawFile.error``."""
    out = LDrawFile(source=source)
    tris: list[tuple[float, ...]] = []
    tri_colors: list[int] = []
    tri_clip: list[bool] = []
    edges: list[tuple[float, ...]] = []
    edge_colors: list[int] = []
    conds: list[tuple[float, ...]] = []
    certify: bool | None = None
    ccw, clip, invert_next, seen_geometry, first = True, True, False, False, True
    for line_no, raw in enumerate(text.splitlines(), start=1):
        try:
            line = parse_line(raw, source, line_no)
        except LDrawError as exc:
            out.error = out.error or exc
            continue
        if line is None:
            continue
        if line.kind == 0:
            if first:
                out.title = line.text
                moved = _MOVED_RE.match(line.text)
                out.moved_to = moved.group(1).removesuffix(".dat").lower() if moved else None
            words = line.text.split()
            key = words[0].upper() if words else ""
            if key == "NAME:" and len(words) > 1:
                out.name = line.text.split(None, 1)[1].strip()
            elif key == "!CATEGORY" and len(words) > 1:
                out.category = line.text.split(None, 1)[1].strip()
            elif key == "BFC":
                for word in (w.upper() for w in words[1:]):
                    if word == "CERTIFY" and not seen_geometry and certify is None:
                        certify = True
                    elif word == "NOCERTIFY":
                        certify = False
                    elif word in ("CW", "CCW"):
                        ccw = word == "CCW"
                    elif word in ("CLIP", "NOCLIP"):
                        clip = word == "CLIP"
                    elif word == "INVERTNEXT":
                        invert_next = True
                    elif word not in _BFC_WORDS:
                        log.debug("%s:%d: unknown BFC word %r ignored", source, line_no, word)
            first = False
            continue
        first, seen_geometry = False, True
        v = line.values
        if line.kind == 1:
            matrix = np.array(v[3:12], np.float64).reshape(3, 3)
            out.refs.append(
                SubFileRef(line_no, line.colour, matrix, np.array(v[:3]), line.name, invert_next, clip)
            )
        elif line.kind == 2:
            edges.append(v)
            edge_colors.append(line.colour)
        elif line.kind == 5:
            conds.append(v)
        else:
            pts = [v[i : i + 3] for i in range(0, len(v), 3)]
            if not ccw:
                pts.reverse()
            polys = [pts] if line.kind == 3 else [pts[:3], [pts[0], pts[2], pts[3]]]
            for poly in polys:
                tris.append(tuple(c for p in poly for c in p))
                tri_colors.append(line.colour)
                tri_clip.append(clip)
        invert_next = False  # applies to the very next type-1 line only
    out.certified = bool(certify)
    if tris:
        out.triangles = np.array(tris, np.float32).reshape(-1, 3, 3)
        out.tri_colors = np.array(tri_colors, np.int32)
        out.tri_clip = np.array(tri_clip, bool)
    if edges:
        out.edges = np.array(edges, np.float32).reshape(-1, 2, 3)
        out.edge_colors = np.array(edge_colors, np.int32)
    if conds:
        out.cond_edges = np.array(conds, np.float32).reshape(-1, 4, 3)
    return out


def read_ldraw(path: str | Path, source: str | None = None) -> LDrawFile:
    """Read and parse one file (``source`` labels messages; default: the path).

    Raises :class:`DataFileError` if the file cannot be read.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataFileError(f"LDraw file {str(path)!r} cannot be read: {exc.strerror}") from None
    return parse_ldraw(decode_ldraw(data), source or str(path))


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
