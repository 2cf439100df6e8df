"""Render rate of ``studio.render`` on one CPU core, against an OpenCV painter's-algorithm baseline.

    python benchmarks/render_rate.py --ldraw ../shared/ldraw --part 3001 --size 224 \
        --supersample 2 --seconds 10 [--contact-shading] [--json FILE] [--markdown FILE] [--profile]

Pins itself to one core and one thread per library before numpy/OpenCV load, warms up, then renders
the part repeatedly with the camera orbiting it (a new view every frame) and reports images/s and
per-image latency. In the same run it times a baseline of the same mesh and views: triangles sorted
far to near and filled one by one with ``cv2.fillConvexPoly`` in a flat Lambert shade, no
supersampling, no z-buffer, no lines. The renderer's cost is reported as a ratio to that baseline.
``--contact-shading`` times a third function in the same loop, the renderer with the part's own
shadow and ambient occlusion on (``Lighting.shadow``/``occlusion``), and reports its cost against
the plain renderer's.
Without ``--ldraw`` a synthetic 2x4 brick (box, 8 studs, 3 tubes) stands in for the part.
"""

from __future__ import annotations

import argparse
import os
import sys

# Thread limits must be in place before numpy / OpenCV load their thread pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import cProfile  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.machine import cpu_model  # noqa: E402
from studio.camera import Camera, look_at_part  # noqa: E402
from studio.lighting import OCCLUSION_SAMPLES, SHADOW_MAP_PX, Lighting  # noqa: E402
from studio.mesh import Mesh  # noqa: E402
from studio.render import linear_to_srgb, render_mesh, srgb_to_linear  # noqa: E402

SEGMENTS = 16


def _orient(tris: np.ndarray, outward: np.ndarray) -> np.ndarray:
    """Flip triangles whose winding normal disagrees with the wanted outward direction."""
    n = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    flip = np.einsum("ij,ij->i", n, outward) < 0
    tris[flip] = tris[flip][:, ::-1]
    return tris


def _quads(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    return np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])


def _circle(cx: float, cz: float, r: float, y: float) -> np.ndarray:
    ang = np.linspace(0, 2 * np.pi, SEGMENTS, endpoint=False)
    return np.stack([cx + r * np.cos(ang), np.full(SEGMENTS, y), cz + r * np.sin(ang)], 1)


def _cylinder(cx, cz, r, y0, y1, inward=False):  # type: ignore[no-untyped-def]
    """Side triangles, outward directions, both rim circles as lines, and the conditional lines."""
    lo, hi = _circle(cx, cz, r, y0), _circle(cx, cz, r, y1)
    lo2, hi2 = np.roll(lo, -1, 0), np.roll(hi, -1, 0)
    tris = _quads(lo, lo2, hi2, hi)
    mid = tris.mean(axis=1) - np.array([cx, 0, cz]) * [1, 0, 1]
    out = mid * [1, 0, 1] * (-1 if inward else 1)
    rims = np.concatenate([np.stack([lo, lo2], 1), np.stack([hi, hi2], 1)])
    cond = np.stack([lo, hi, np.roll(lo, 1, 0), lo2], 1)
    return _orient(tris, out), rims, cond


def _disc(cx, cz, r, y, normal_y, inner=0.0):  # type: ignore[no-untyped-def]
    o, o2 = _circle(cx, cz, r, y), np.roll(_circle(cx, cz, r, y), -1, 0)
    if inner > 0:
        i, i2 = _circle(cx, cz, inner, y), np.roll(_circle(cx, cz, inner, y), -1, 0)
        tris = _quads(i, i2, o2, o)
    else:
        tris = np.stack([np.tile([cx, y, cz], (SEGMENTS, 1)), o, o2], 1)
    return _orient(tris, np.tile([0.0, normal_y, 0.0], (len(tris), 1)))


def synthetic_brick() -> Mesh:
    """A 2x4 brick like LDraw 3001 (LDU, -Y up): hollow box, 8 studs, 3 tubes, edges, cond. lines."""
    parts, edges, cond = [], [], []

    def box_face(corners: list[tuple[float, float, float]], outward: tuple[float, float, float]) -> None:
        c = np.array(corners, np.float64)[:, None]
        tris = _quads(c[0], c[1], c[2], c[3])
        parts.append(_orient(tris, np.tile(outward, (len(tris), 1))))

    x0, x1, z0, z1, wall, top = -40, 40, -20, 20, 4, 4
    box_face([(x0, 0, z0), (x1, 0, z0), (x1, 0, z1), (x0, 0, z1)], (0, -1, 0))  # top
    for sgn, (xa, xb, za, zb) in ((1, (x0, x1, z0, z1)), (-1, (x0 + wall, x1 - wall, z0 + wall, z1 - wall))):
        yt = 0 if sgn > 0 else top  # outer walls from the top, inner walls from the ceiling
        box_face([(xa, yt, za), (xb, yt, za), (xb, 24, za), (xa, 24, za)], (0, 0, -sgn))
        box_face([(xa, yt, zb), (xb, yt, zb), (xb, 24, zb), (xa, 24, zb)], (0, 0, sgn))
        box_face([(xa, yt, za), (xa, yt, zb), (xa, 24, zb), (xa, 24, za)], (-sgn, 0, 0))
        box_face([(xb, yt, za), (xb, yt, zb), (xb, 24, zb), (xb, 24, za)], (sgn, 0, 0))
        ring = [(xa, 24, za), (xb, 24, za), (xb, 24, zb), (xa, 24, zb)]
        edges += [(ring[k], ring[(k + 1) % 4]) for k in range(4)]
    box_face(
        [
            (x0 + wall, top, z0 + wall),
            (x1 - wall, top, z0 + wall),
            (x1 - wall, top, z1 - wall),
            (x0 + wall, top, z1 - wall),
        ],
        (0, 1, 0),
    )
    for xa, xb, za, zb in (
        (x0, x1, z0, z0 + wall),
        (x0, x1, z1 - wall, z1),
        (x0, x0 + wall, z0, z1),
        (x1 - wall, x1, z0, z1),
    ):  # bottom rim
        box_face([(xa, 24, za), (xb, 24, za), (xb, 24, zb), (xa, 24, zb)], (0, 1, 0))
    edges += [((x, 0, z0), (x, 0, z1)) for x in (x0, x1)] + [((x0, 0, z), (x1, 0, z)) for z in (z0, z1)]
    edges += [((x, 0, z), (x, 24, z)) for x in (x0, x1) for z in (z0, z1)]
    for sx in (-30, -10, 10, 30):
        for sz in (-10, 10):
            side, rims, cnd = _cylinder(sx, sz, 6, -4, 0)
            parts += [side, _disc(sx, sz, 6, -4, -1)]
            edges += list(rims)
            cond.append(cnd)
    for tx in (-20, 0, 20):
        outer, rims_o, cond_o = _cylinder(tx, 0, 8, top, 24)
        inner, rims_i, cond_i = _cylinder(tx, 0, 6, top, 24, inward=True)
        parts += [outer, inner, _disc(tx, 0, 8, 24, 1, inner=6), _disc(tx, 0, 6, top, 1)]
        edges += list(rims_o) + list(rims_i)
        cond += [cond_o, cond_i]
    tris = np.concatenate(parts).astype(np.float32)
    edge_arr = np.array(edges, np.float32).reshape(-1, 2, 3)
    return Mesh(
        triangles=tris,
        colors=np.full(len(tris), 16, np.int32),
        two_sided=np.zeros(len(tris), bool),
        edges=edge_arr,
        edge_colors=np.full(len(edge_arr), 24, np.int32),
        cond_edges=np.concatenate(cond).astype(np.float32),
    )


def orbit_cameras(mesh: Mesh, size: int, count: int = 240) -> list[Camera]:
    """Views circling the part at varying heights (deterministic)."""
    cams = []
    for k in range(count):
        az = 2 * np.pi * k / count
        elev = 0.35 + 0.5 * np.sin(3 * az)  # radians above the horizon
        d = (np.cos(az) * np.cos(elev), -np.sin(elev), np.sin(az) * np.cos(elev))
        cams.append(look_at_part(mesh, size, size, direction=d))
    return cams


def painter_baseline(mesh: Mesh, camera: Camera, rgb: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Far-to-near ``cv2.fillConvexPoly`` of every triangle in a flat Lambert shade (uint8 BGR)."""
    xy, depth = camera.project(mesh.triangles.reshape(-1, 3))
    xy, depth = xy.reshape(-1, 3, 2), depth.reshape(-1, 3)
    shade = 0.35 + np.clip(np.abs(mesh.normals @ light), 0, 1)
    col = np.round(linear_to_srgb(np.clip(rgb[None] * shade[:, None], 0, 1)) * 255).astype(np.uint8)[:, ::-1]
    pts = np.round(xy * 16).astype(np.int32)  # 4 fractional bits
    img = np.zeros((camera.height, camera.width, 3), np.uint8)
    for i in np.argsort(-depth.mean(axis=1), kind="stable"):
        cv2.fillConvexPoly(img, pts[i], col[i].tolist(), lineType=cv2.LINE_8, shift=4)
    return img


def _interleaved(fns, cams, seconds: float) -> dict[str, dict[str, np.ndarray]]:  # type: ignore[no-untyped-def]
    """Alternate the timed functions frame by frame, so both see the same background load.

    Returns per function: wall-clock and CPU (thread) milliseconds per image.
    """
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    start, k = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        for name, fn in fns.items():
            t, c = time.perf_counter(), time.thread_time()
            fn(cams[k % len(cams)])
            cpu[name].append(time.thread_time() - c)
            wall[name].append(time.perf_counter() - t)
        k += 1
    return {n: {"wall": np.array(wall[n]) * 1e3, "cpu": np.array(cpu[n]) * 1e3} for n in fns}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, measure, print and optionally write JSON / Markdown."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ldraw", type=Path, help="LDraw library root (default: a synthetic 2x4 brick)")
    ap.add_argument("--part", default="3001", help="part number to load with --ldraw")
    ap.add_argument("--size", type=int, default=224, help="image width and height in pixels")
    ap.add_argument("--supersample", type=int, default=2, help="supersampling factor per axis")
    ap.add_argument("--seconds", type=float, default=10.0, help="measuring time (renderer and baseline)")
    ap.add_argument("--no-edges", action="store_true", help="skip edge lines")
    ap.add_argument("--cpu", type=int, default=0, help="core to pin to")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--markdown", type=Path, help="write a Markdown report here")
    ap.add_argument("--note", default="", help="a remark for the Markdown report (e.g. machine load)")
    ap.add_argument("--profile", action="store_true", help="print the top of a cProfile of the renderer")
    ap.add_argument(
        "--contact-shading",
        action="store_true",
        help="also time the renderer with its self-shadow and ambient occlusion on",
    )
    args = ap.parse_args(argv)
    os.sched_setaffinity(0, {args.cpu})
    cv2.setNumThreads(1)

    if args.ldraw:
        from studio.ldraw import LDrawLibrary  # written alongside; only needed with --ldraw

        mesh, source = LDrawLibrary(args.ldraw).part_mesh(args.part), f"LDraw part {args.part}"
    else:
        mesh, source = synthetic_brick(), "synthetic 2x4 brick"
    rgb = srgb_to_linear(np.array([0xC9, 0x1A, 0x09]) / 255.0)  # LDraw red
    tri_rgb = np.tile(rgb, (len(mesh.triangles), 1))
    lighting = Lighting(direction=np.array([0.4, -1.0, 0.6]))
    cams = orbit_cameras(mesh, args.size)

    def render(cam: Camera) -> object:
        return render_mesh(
            mesh, tri_rgb, cam, lighting, supersample=args.supersample, edge_lines=not args.no_edges
        )

    def paint(cam: Camera) -> object:
        return painter_baseline(mesh, cam, rgb, lighting.direction)

    shaded_light = replace(lighting, shadow=0.7, occlusion=0.7, occlusion_radius=16.0)

    def shaded(cam: Camera) -> object:
        return render_mesh(
            mesh, tri_rgb, cam, shaded_light, supersample=args.supersample, edge_lines=not args.no_edges
        )

    fns = {"render": render, "paint": paint, **({"shaded": shaded} if args.contact_shading else {})}
    for cam in cams[:10]:  # warm-up: caches, allocator, lazy imports
        for fn in fns.values():
            fn(cam)
    times = _interleaved(fns, cams, args.seconds)
    ms, bms = times["render"]["wall"], times["paint"]["wall"]
    cpu, bcpu = times["render"]["cpu"], times["paint"]["cpu"]
    res = {
        "source": source,
        "triangles": len(mesh.triangles),
        "edges": len(mesh.edges),
        "cond_edges": len(mesh.cond_edges),
        "size": args.size,
        "supersample": args.supersample,
        "edge_lines": not args.no_edges,
        "frames": len(ms),
        "images_per_s": 1e3 / ms.mean(),
        "ms_p50": float(np.percentile(ms, 50)),
        "ms_p95": float(np.percentile(ms, 95)),
        "cpu_ms_p50": float(np.percentile(cpu, 50)),
        "cpu_images_per_s": 1e3 / cpu.mean(),
        "baseline_images_per_s": 1e3 / bms.mean(),
        "baseline_ms_p50": float(np.percentile(bms, 50)),
        "baseline_ms_p95": float(np.percentile(bms, 95)),
        "baseline_cpu_ms_p50": float(np.percentile(bcpu, 50)),
        "ratio_p50": float(np.percentile(ms, 50) / np.percentile(bms, 50)),
        "cpu_ratio_p50": float(np.percentile(cpu, 50) / np.percentile(bcpu, 50)),
        "cpu": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "cores_allowed": sorted(os.sched_getaffinity(0)),
    }
    if args.contact_shading:
        sms, scpu = times["shaded"]["wall"], times["shaded"]["cpu"]
        res.update(
            shaded_images_per_s=1e3 / sms.mean(),
            shaded_ms_p50=float(np.percentile(sms, 50)),
            shaded_ms_p95=float(np.percentile(sms, 95)),
            shaded_cpu_ms_p50=float(np.percentile(scpu, 50)),
            shading_ratio_p50=float(np.percentile(sms, 50) / np.percentile(ms, 50)),
            shading_cpu_ratio_p50=float(np.percentile(scpu, 50) / np.percentile(cpu, 50)),
        )
    for key, value in res.items():
        print(f"{key:>22}: {value:.2f}" if isinstance(value, float) else f"{key:>22}: {value}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    if args.markdown:
        _write_markdown(args.markdown, res, argv if argv is not None else sys.argv[1:], args.note)
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for cam in cams[:60]:
            render(cam)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(18)
    return 0


def _write_markdown(path: Path, res: dict, argv: list[str], note: str) -> None:  # type: ignore[type-arg]
    """The figures as a short Markdown report, with the command that produced them."""
    command = "python benchmarks/render_rate.py " + " ".join(f"'{a}'" if " " in a else a for a in argv)
    lines = [
        "# Render rate (studio.render, one core)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {res['platform']}; CPU: {res['cpu']}; pinned to core(s) {res['cores_allowed']}; "
        f"Python {res['python']}, numpy {res['numpy']}, OpenCV {res['opencv']}.",
        "",
        f"Mesh: {res['source']}: {res['triangles']} triangles, {res['edges']} edge lines, "
        f"{res['cond_edges']} conditional lines. Image {res['size']}x{res['size']}, "
        f"supersample {res['supersample']}, edge lines {'on' if res['edge_lines'] else 'off'}.",
        "",
        f"{res['frames']} frames each, renderer and baseline alternating frame by frame.",
        "",
        "| measure | renderer | painter's baseline |",
        "|---|---|---|",
        f"| images/s (wall clock) | {res['images_per_s']:.1f} | {res['baseline_images_per_s']:.1f} |",
        f"| ms p50 (wall clock) | {res['ms_p50']:.2f} | {res['baseline_ms_p50']:.2f} |",
        f"| ms p95 (wall clock) | {res['ms_p95']:.2f} | {res['baseline_ms_p95']:.2f} |",
        f"| ms p50 (CPU time of the thread) | {res['cpu_ms_p50']:.2f} | {res['baseline_cpu_ms_p50']:.2f} |",
        "",
        f"Renderer cost / baseline cost (p50): **{res['ratio_p50']:.2f}x** wall clock, "
        f"{res['cpu_ratio_p50']:.2f}x CPU time. Images/s from CPU time: {res['cpu_images_per_s']:.1f}.",
        "",
        *(_shading_lines(res) if "shaded_ms_p50" in res else []),
        *([f"Note: {note}", ""] if note else []),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def _shading_lines(res: dict) -> list[str]:  # type: ignore[type-arg]
    """The contact-shading column: the renderer with self-shadow and ambient occlusion on."""
    return [
        "With contact shading (`Lighting(shadow=0.7, occlusion=0.7, occlusion_radius=16)`: a "
        f"{SHADOW_MAP_PX} px shadow map and {OCCLUSION_SAMPLES} occlusion samples per pixel), timed in "
        "the same loop:",
        "",
        "| measure | renderer, contact shading |",
        "|---|---|",
        f"| images/s (wall clock) | {res['shaded_images_per_s']:.1f} |",
        f"| ms p50 (wall clock) | {res['shaded_ms_p50']:.2f} |",
        f"| ms p95 (wall clock) | {res['shaded_ms_p95']:.2f} |",
        f"| ms p50 (CPU time of the thread) | {res['shaded_cpu_ms_p50']:.2f} |",
        "",
        f"Contact shading cost / plain renderer cost (p50): **{res['shading_ratio_p50']:.2f}x** wall "
        f"clock, {res['shading_cpu_ratio_p50']:.2f}x CPU time.",
        "",
    ]


if __name__ == "__main__":
    raise SystemExit(main())
