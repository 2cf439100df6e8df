"""Build ``edge/data/colors.csv``, the project's curated colour table (a one-off generator).

    python tools/make_color_table.py --rebrickable rebrickable_colors.csv \\
        --ldconfig LDConfig.ldr --out edge/data/colors.csv

Rebrickable colour ids are the project's canonical ids. The table keeps the most used opaque
colours and the most used transparent ones (by Rebrickable's ``num_parts``) and pairs each with
its LDraw colour code. LDraw codes and Rebrickable ids mostly coincide but not always (Rebrickable
326 is Olive Green, LDraw 326 is Yellowish_Green), and the names differ (Rebrickable follows
BrickLink's names, LDraw its own), so the pairing is made by normalised name, then corrected by
the hand-checked :data:`OVERRIDES`. Every selected colour must end up either paired or explicitly
marked as having no LDraw counterpart, and every name match whose LDraw code differs from the
Rebrickable id must be listed in :data:`CHECKED_NAME_MATCHES`; otherwise the script stops, so a
newer Rebrickable or LDraw table cannot slip in an unreviewed pairing.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from studio.ldconfig import LDrawColour, read_ldconfig

#: Rebrickable id -> LDraw code (or None: no LDraw counterpart), where name matching misses or
#: errs. Each was checked by hand against LDConfig.ldr, whose comments give LEGO's own colour
#: number for each LDraw code (BrickLink/Rebrickable names in parentheses are LEGO's names).
OVERRIDES: dict[int, int | None] = {
    # Rebrickable "Dark Purple" is BrickLink's name for LEGO 268 Medium Lilac, which is LDraw 85
    # Medium_Lilac (LDConfig: "LEGOID 268 - Medium Lilac"). Same id, different names.
    85: 85,
    # "Flat Silver" is LDraw 179 Pearl_Silver (same #898788; LDraw once called it Flat_Silver,
    # and its rubber variant 504 is still "Rubber_Flat_Silver" with that value).
    179: 179,
    # "Pearl Titanium" is LDraw 87 Metallic_Dark_Grey ("LEGOID 337 - Titanium"); Rebrickable's RGB
    # 3E3C39 is LDraw's value verbatim.
    1103: 87,
    # "Trans-Very Lt Blue" (Rebrickable's abbreviation) is LDraw 39 Trans_Very_Light_Blue.
    43: 39,
}

#: Name matches whose LDraw code differs from the Rebrickable id, each checked by hand against the
#: LEGO number in LDConfig.ldr's comments: Rebrickable id -> LDraw code.
CHECKED_NAME_MATCHES: dict[int, int] = {
    41: 43,  # Trans-Light Blue: LEGO 42 Transparent Light Blue (LDraw 41 is Trans_Medium_Blue)
    45: 37,  # Trans-Dark Pink: LEGO 113 Transparent Medium Reddish Violet (LDraw 45 is Trans_Pink)
    57: 38,  # Trans-Neon Orange: LEGO 47 Transparent Fluorescent Reddish Orange
    182: 57,  # Trans-Orange: LEGO 182 Transparent Bright Orange
    158: 326,  # Yellowish Green: LEGO 326 Spring Yellowish Green (LDraw 158 is Trans_Neon_Red)
    326: 330,  # Olive Green: LEGO 330 Olive Green (LDraw 326 is Yellowish_Green)
    1050: 353,  # Coral: LEGO 353 Vibrant Coral
    1053: 362,  # Opal Trans-Light Blue: LEGO 362 Transparent Blue Opal
    1055: 360,  # Opal Trans-Clear: LEGO 360 Transparent Clear Opal
    # Trans-Black (Rebrickable: parts from 2023 on; its RGB repeats Trans-Brown's) is LEGO 375
    # Transparent Black, LDraw 10375. The older colour BrickLink calls Trans-Black is Rebrickable
    # 40 Trans-Brown = LDraw 40 Trans_Brown (LEGO 111 Transparent Brown).
    1095: 10375,
}

_GREY = re.compile(r"\bgrey\b")


def normalise(name: str) -> str:
    """A colour name reduced for matching: lower case, '_'/'-' as spaces, Grey -> Gray."""
    text = re.sub(r"[_\-\s]+", " ", name.strip().lower())
    return _GREY.sub("gray", text)


@dataclass(frozen=True)
class RebrickableColour:
    """One row of Rebrickable's colours.csv (only the columns the table uses)."""

    id: int
    name: str
    rgb: str
    is_trans: bool
    num_parts: int


def read_rebrickable(path: Path) -> list[RebrickableColour]:
    """Rebrickable's colours.csv (id,name,rgb,is_trans,num_parts,...) as a list."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"id", "name", "rgb", "is_trans", "num_parts"} - set(reader.fieldnames or ())
        if missing:
            raise SystemExit(f"{path}: missing column(s) {sorted(missing)}; pass Rebrickable's colors.csv")
        return [
            RebrickableColour(
                id=int(row["id"]),
                name=row["name"].strip(),
                rgb=row["rgb"].strip().upper(),
                is_trans=row["is_trans"].strip().lower() == "true",
                num_parts=int(row["num_parts"] or 0),
            )
            for row in reader
        ]


def eligible(colour: RebrickableColour) -> bool:
    """False for Rebrickable's placeholder rows and for colours no sorting rig will meet."""
    if colour.id < 0 or colour.id >= 9999 or colour.name.startswith("["):
        return False  # -1 [Unknown], 9999 [No Color/Any Color]
    # Modulex is a separate, non-LEGO-System brick system (its colours have no LDraw codes).
    return not colour.name.startswith("Modulex")


def select(colours: list[RebrickableColour], n_solid: int, n_trans: int) -> list[RebrickableColour]:
    """The ``n_solid`` most used opaque and ``n_trans`` most used transparent colours, by use."""
    ranked = sorted((c for c in colours if eligible(c)), key=lambda c: (-c.num_parts, c.id))
    solid = [c for c in ranked if not c.is_trans][:n_solid]
    trans = [c for c in ranked if c.is_trans][:n_trans]
    if len(solid) < n_solid or len(trans) < n_trans:
        raise SystemExit(f"only {len(solid)} opaque and {len(trans)} transparent colours available")
    return sorted(solid + trans, key=lambda c: (-c.num_parts, c.id))


def match_ldraw(
    selected: list[RebrickableColour], ldraw: dict[int, LDrawColour]
) -> dict[int, LDrawColour | None]:
    """Rebrickable id -> LDraw colour, by normalised name, then :data:`OVERRIDES`."""
    by_name: dict[str, LDrawColour] = {}
    for ld in ldraw.values():
        by_name.setdefault(normalise(ld.name), ld)
    out: dict[int, LDrawColour | None] = {}
    unmatched: list[str] = []
    unchecked: list[str] = []
    for colour in selected:
        if colour.id in OVERRIDES:
            code = OVERRIDES[colour.id]
            if code is not None and code not in ldraw:
                raise SystemExit(f"override {colour.id} -> {code}: LDraw code {code} is not in LDConfig.ldr")
            out[colour.id] = ldraw[code] if code is not None else None
        elif normalise(colour.name) in by_name:
            match = by_name[normalise(colour.name)]
            if match.code != colour.id and CHECKED_NAME_MATCHES.get(colour.id) != match.code:
                unchecked.append(f"{colour.id} {colour.name!r} -> LDraw {match.code} {match.name!r}")
            out[colour.id] = match
        else:
            unmatched.append(f"{colour.id} {colour.name!r}")
    if unmatched:
        raise SystemExit(
            "no LDraw colour found by name for: " + ", ".join(unmatched) + "; read LDConfig.ldr and add "
            "each to OVERRIDES (an LDraw code, or None when it has no LDraw counterpart)"
        )
    if unchecked:
        raise SystemExit(
            "name matches with a different LDraw code, not yet reviewed: " + "; ".join(unchecked) + "; "
            "check each against LDConfig.ldr's LEGOID comments, then add it to CHECKED_NAME_MATCHES "
            "(or to OVERRIDES if it is wrong)"
        )
    codes = [c.code for c in out.values() if c is not None]
    dupes = sorted({c for c in codes if codes.count(c) > 1})
    if dupes:
        raise SystemExit(f"LDraw code(s) {dupes} paired with more than one Rebrickable colour; fix OVERRIDES")
    return out


def write_table(
    path: Path, selected: list[RebrickableColour], pairs: dict[int, LDrawColour | None], command: str
) -> None:
    """Write the curated CSV with a header comment naming its sources and generator."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(
            "# Curated LEGO colour table: ids, names and RGB from Rebrickable's colour table "
            "(colors.csv), LDraw codes/names from LDraw's LDConfig.ldr; rank 1 = most used (num_parts). "
            f"Generated by: {command}\n"
        )
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["id", "name", "rgb", "is_trans", "ldraw_code", "ldraw_name", "rank"])
        for rank, colour in enumerate(selected, start=1):
            ld = pairs[colour.id]
            writer.writerow(
                [
                    colour.id,
                    colour.name,
                    colour.rgb,
                    "true" if colour.is_trans else "false",
                    "" if ld is None else ld.code,
                    "" if ld is None else ld.name,
                    rank,
                ]
            )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebrickable", type=Path, required=True, help="Rebrickable colors.csv")
    parser.add_argument("--ldconfig", type=Path, required=True, help="LDraw LDConfig.ldr")
    parser.add_argument("--out", type=Path, required=True, help="CSV to write (edge/data/colors.csv)")
    parser.add_argument("--solid", type=int, default=50, help="how many opaque colours (default 50)")
    parser.add_argument("--trans", type=int, default=16, help="how many transparent colours (default 16)")
    parser.add_argument("--report", action="store_true", help="print each pairing for review")
    args = parser.parse_args(argv)

    selected = select(read_rebrickable(args.rebrickable), args.solid, args.trans)
    ldraw = read_ldconfig(args.ldconfig)
    pairs = match_ldraw(selected, ldraw)
    command = (
        "python tools/make_color_table.py --rebrickable <Rebrickable colors.csv> "
        "--ldconfig <LDraw LDConfig.ldr> "
        f"--out {args.out.as_posix()} --solid {args.solid} --trans {args.trans}"
    )
    write_table(args.out, selected, pairs, command)
    if args.report:
        for colour in selected:
            ld = pairs[colour.id]
            how = "override" if colour.id in OVERRIDES else "name"
            where = "-" if ld is None else f"{ld.code:>5} {ld.name} #{''.join(f'{v:02X}' for v in ld.rgb)}"
            print(f"{colour.id:>5} {colour.name:<24} {colour.rgb}  <-{how:>8}->  {where}")
    print(f"wrote {len(selected)} colours to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
