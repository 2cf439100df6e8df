"""Settings of the path tracer: sampling, the grounds a part may lie on, materials, lights, lens.

The scene factors the rasteriser shares (pose, placement, key light direction and strength, colour
temperature, exposure, noise...) come from :class:`~studio.scene_config.Randomization`; these are
the path tracer's own. Each has a random stream of its own, derived from the scene seed and the
factor's name (:func:`pt_stream`), so switching one off or changing its range leaves the rest as drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from edge.config import StrictModel

#: Surfaces a part can lie on: the rig's own turntable (as the rasteriser draws it), plain white,
#: grey and black boards, a backlit (emissive) white panel, a conveyor belt, a photo of an empty
#: sorting machine (``backgrounds``), and procedural textures (felt, machined, mottled).
GroundKind = Literal["rig", "white", "grey", "black", "backlit", "belt", "photo", "procedural"]
DEFAULT_GROUNDS: tuple[GroundKind, ...] = ("rig", "white", "grey", "black", "backlit", "belt", "procedural")
#: The path tracer's random streams, in the order that numbers them (append new ones).
PT_FACTORS = ("ground", "materials", "lights", "lens", "render")
_STREAM_BASE = 1000  # above every index of scene_config.FACTORS

Frac = Annotated[float, Field(ge=0, le=1)]
Deg = Annotated[float, Field(ge=0.1, le=120)]
Mm = Annotated[float, Field(ge=50, le=5000)]
Gain = Annotated[float, Field(ge=0, le=10)]
K1 = Annotated[float, Field(ge=-0.5, le=0.5)]


def pt_stream(seed: int, factor: str, view: int | None = None) -> np.random.Generator:
    """The random stream of one of the path tracer's factors (``PT_FACTORS``) for a scene seed."""
    key = [int(seed), _STREAM_BASE + PT_FACTORS.index(factor)] + ([] if view is None else [view + 1])
    return np.random.default_rng(key)


class PathTraceSettings(StrictModel):
    """How the path tracer samples and what it randomises beyond the shared scene factors."""

    spp: int = Field(default=16, ge=1, le=4096, description="samples per pixel")
    max_depth: int = Field(
        default=12, ge=2, le=64, description="longest light path (transparent parts need ~10)"
    )
    denoise: bool = Field(default=True, description="denoise with Open Image Denoise (albedo + normals)")
    variant: Literal["auto", "cuda", "llvm"] = Field(
        default="auto", description="Mitsuba variant: a CUDA GPU where one works ('auto'), else the CPU"
    )
    grounds: list[GroundKind] = Field(
        default_factory=lambda: list(DEFAULT_GROUNDS),
        min_length=1,
        description="surfaces the part may lie on, drawn uniformly per placement",
    )
    backgrounds: Path | None = Field(
        default=None,
        description="folder of photos of empty sorting machines (jpg/png) for the 'photo' ground",
    )
    abs_roughness: tuple[Frac, Frac] = Field(
        default=(0.08, 0.32), description="range of the ABS plastic's roughness (principled BSDF)"
    )
    abs_specular: tuple[Frac, Frac] = Field(
        default=(0.35, 0.6), description="range of the ABS plastic's specular level (0.5 ~ IOR 1.5)"
    )
    key_size_deg: tuple[Deg, Deg] = Field(
        default=(4.0, 45.0), description="range of the key light's angular size seen from the part"
    )
    key_distance_mm: tuple[Mm, Mm] = Field(
        default=(400.0, 1200.0), description="range of the key light's distance from the part"
    )
    fill_strength: tuple[Gain, Gain] = Field(
        default=(0.0, 0.5), description="range of the fill light's strength relative to the key light"
    )
    env_strength: tuple[Gain, Gain] = Field(
        default=(0.6, 1.4),
        description="range of the environment light's strength (1 = the rasteriser's ambient)",
    )
    light_kelvin_spread: float = Field(
        default=1500.0,
        ge=0,
        le=5000,
        description="+- colour temperature of each light relative to the scene's (mixed lighting), in K",
    )
    lens_k1: tuple[K1, K1] = Field(
        default=(-0.12, 0.03), description="range of the radial lens distortion k1 (negative = barrel)"
    )
    lens_k2: tuple[K1, K1] = Field(default=(-0.03, 0.03), description="range of the radial distortion k2")
    vignetting: tuple[Gain, Gain] = Field(
        default=(0.0, 1.5), description="range of the vignetting strength (1 = the cos^4 law)"
    )

    @model_validator(mode="after")
    def _check(self) -> PathTraceSettings:
        for name, value in self:
            if isinstance(value, tuple) and len(value) == 2 and value[0] > value[1]:
                raise ValueError(f"{name}={value!r}: the low end must not exceed the high end; swap them")
        if "photo" in self.grounds and self.backgrounds is None:
            raise ValueError("the 'photo' ground needs backgrounds: a folder of background photos")
        if self.backgrounds is not None and not Path(self.backgrounds).is_dir():
            raise ValueError(
                f"backgrounds={str(self.backgrounds)!r} is not a folder; pass a folder of photos"
            )
        return self

    def with_backgrounds(self, folder: Path | str | None) -> PathTraceSettings:
        """These settings with ``folder`` as the photo backgrounds and 'photo' among the grounds."""
        if folder is None:
            return self
        grounds = self.grounds if "photo" in self.grounds else [*self.grounds, "photo"]
        return self.model_validate({**self.model_dump(), "backgrounds": Path(folder), "grounds": grounds})
