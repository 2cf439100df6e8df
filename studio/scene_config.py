"""Configuration of turntable scenes: the rig's geometry and the domain randomisation factors.

Every factor has ``enabled`` and its ranges, so each can be switched off on its own;
:meth:`Randomization.off`, :meth:`Randomization.train` and :meth:`Randomization.test` are the presets.
"""

from __future__ import annotations

from typing import Annotated, get_args

from pydantic import Field, model_validator

from edge.config import StrictModel
from studio import effects

#: Millimetres per LDraw unit.
MM_PER_LDU = 0.4

# ---------------------------------------------------------------------- configuration

Byte = Annotated[int, Field(ge=0, le=255)]
# Bounded numbers for (low, high) ranges.
Deg = Annotated[float, Field(ge=-360, le=720)]
Scale = Annotated[float, Field(ge=0, le=5)]
Kelvin = Annotated[float, Field(ge=1667, le=25000)]
Stops = Annotated[float, Field(ge=-4, le=4)]
Frac = Annotated[float, Field(ge=0, le=1)]
Px = Annotated[float, Field(ge=0, le=50)]
#: An occlusion reach in LDU (``studio.lighting.Lighting.occlusion_radius``'s range).
Ldu = Annotated[float, Field(ge=0.5, le=200)]
Quality = Annotated[int, Field(ge=1, le=100)]


class RigGeometry(StrictModel):
    """The rig's camera and turntable, in millimetres and degrees."""

    disc_radius_mm: float = Field(default=100.0, gt=5, le=500, description="turntable disc radius in mm")
    disc_thickness_mm: float = Field(
        default=4.0, ge=0, le=50, description="height of the disc's visible side in mm"
    )
    camera_height_mm: float = Field(
        default=180.0, gt=10, le=3000, description="camera height above the disc in mm"
    )
    camera_tilt_deg: float = Field(
        default=30.0, ge=0, le=70, description="camera tilt from vertical in degrees (0 = straight down)"
    )
    fov_deg: float = Field(
        default=36.0, gt=5, le=120, description="camera's vertical field of view in degrees"
    )
    width: int = Field(default=640, ge=16, le=8192, description="camera frame width in pixels")
    height: int = Field(default=480, ge=16, le=8192, description="camera frame height in pixels")
    disc_rgb: tuple[Byte, Byte, Byte] = Field(
        default=(180, 40, 160),
        description="sRGB colour of the disc surface (0..255 each); the default magenta is keyable: no "
        "common LEGO colour has its hue",
    )
    background_rgb: tuple[Byte, Byte, Byte] = Field(
        default=(120, 30, 110),
        description="sRGB colour of what lies beyond the disc (0..255 each); default a darker magenta "
        "(the enclosure painted like the disc, so one HSV range keys both)",
    )
    light_elevation_deg: float = Field(
        default=55.0, ge=5, le=90, description="key light's elevation above the disc plane in degrees"
    )
    light_azimuth_deg: float = Field(
        default=45.0,
        ge=-180,
        le=180,
        description="key light's azimuth in degrees, 0 = from the camera's side",
    )


class _Factor(StrictModel):
    """One randomisation factor: switched by ``enabled``; every (low, high) range must be ordered."""

    enabled: bool = Field(default=True, description="apply this factor (false: its neutral value)")

    @model_validator(mode="after")
    def _ordered(self) -> _Factor:
        for name, value in self:
            if isinstance(value, tuple) and len(value) == 2 and value[0] > value[1]:
                raise ValueError(f"{name}={value!r}: the low end must not exceed the high end; swap them")
        return self


class PoseFactor(_Factor):
    """Draw the stable resting pose by its probability (off: always the most probable one)."""


class PlacementFactor(_Factor):
    """Where on the disc the part lands, and which way it faces."""

    max_offset_frac: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="largest offset from the disc centre, as a fraction of the room left (the feed "
        "drops parts near the centre)",
    )
    yaw_deg: tuple[Deg, Deg] = Field(
        default=(0.0, 360.0), description="range of the part's turn on the disc (deg)"
    )


class LightDirectionFactor(_Factor):
    """Jitter of the key light's direction around the rig's nominal one."""

    elevation_jitter_deg: float = Field(
        default=10.0, ge=0, le=45, description="+- elevation change in degrees"
    )
    azimuth_jitter_deg: float = Field(default=30.0, ge=0, le=180, description="+- azimuth change in degrees")


class LightIntensityFactor(_Factor):
    """Brightness of the lights (key and ambient together)."""

    scale: tuple[Scale, Scale] = Field(
        default=(0.85, 1.15), description="range of the light intensity multiplier"
    )


class ColorTemperatureFactor(_Factor):
    """Colour temperature of the lights, partly undone by the camera's white balance."""

    kelvin: tuple[Kelvin, Kelvin] = Field(
        default=(4000.0, 6500.0), description="range of colour temperatures in K"
    )
    camera_correction: float = Field(
        default=0.85,
        ge=0,
        le=1,
        description="fraction of the light's colour cast the camera's white balance removes",
    )


class WhiteBalanceFactor(_Factor):
    """Residual error of the camera's red and blue gains."""

    max_gain_error: float = Field(
        default=0.06, ge=0, le=0.5, description="largest log gain error of red and blue"
    )


class ExposureFactor(_Factor):
    """Exposure error in stops."""

    ev: tuple[Stops, Stops] = Field(
        default=(-0.4, 0.4), description="range of the exposure change in stops (EV)"
    )


class DiscFactor(_Factor):
    """The disc's colour and surface texture."""

    brightness: tuple[Scale, Scale] = Field(
        default=(0.85, 1.1), description="range of the disc albedo multiplier"
    )
    tint: float = Field(
        default=0.03, ge=0, le=0.5, description="deviation of the per-channel log tint of the disc"
    )
    noise: tuple[Frac, Frac] = Field(default=(0.0, 0.04), description="range of the disc's mottling strength")
    grain_probability: float = Field(
        default=0.3, ge=0, le=1, description="chance of concentric machining grain"
    )
    felt_probability: float = Field(default=0.2, ge=0, le=1, description="chance the disc looks like felt")


class BackgroundFactor(_Factor):
    """What lies beyond the disc."""

    kinds: list[effects.BackgroundKind] = Field(
        default_factory=lambda: list(get_args(effects.BackgroundKind)),
        min_length=1,
        description="backdrop kinds to choose from: solid, gradient, noise",
    )
    brightness: tuple[Scale, Scale] = Field(
        default=(0.7, 1.3), description="range of the backdrop brightness multiplier"
    )
    tint: float = Field(
        default=0.1, ge=0, le=1, description="deviation of the per-channel log tint of the backdrop"
    )
    strength: tuple[Frac, Frac] = Field(
        default=(0.0, 0.3), description="range of the gradient/noise strength"
    )


class ColorJitterFactor(_Factor):
    """Small changes of the part's colour (batch and moulding variation), never to another colour."""

    max_delta_e: float = Field(
        default=3.0, ge=0, le=6, description="largest CIE76 delta E from the catalogue colour"
    )


class DefocusFactor(_Factor):
    """Lens defocus (Gaussian), in rig-frame pixels."""

    sigma_px: tuple[Px, Px] = Field(
        default=(0.0, 0.8), description="range of the blur's standard deviation (px)"
    )


class MotionBlurFactor(_Factor):
    """Smear along the turntable's motion, in rig-frame pixels, drawn per view."""

    length_px: tuple[Px, Px] = Field(default=(0.0, 2.0), description="range of the blur length (px)")


class SensorNoiseFactor(_Factor):
    """Sensor noise, drawn per view (fractions of full scale, linear light)."""

    shot: tuple[Frac, Frac] = Field(
        default=(0.0002, 0.002), description="range of the shot noise variance per unit signal"
    )
    read: tuple[Frac, Frac] = Field(default=(0.001, 0.006), description="range of the read noise deviation")


class JpegFactor(_Factor):
    """JPEG compression of the camera stream."""

    quality: tuple[Quality, Quality] = Field(default=(75, 95), description="range of JPEG quality (1..100)")


class CameraTiltFactor(_Factor):
    """The camera's tilt from vertical, drawn per placement instead of the rig's fixed one: a model
    trained on one tilt meets rigs and belts seen from straight above. Off unless asked for
    (``trainer render --camera-tilt``), so the presets' renders stay as they were."""

    enabled: bool = Field(default=False, description="apply this factor (false: the rig's camera_tilt_deg)")
    tilt_deg: tuple[float, float] = Field(
        default=(0.0, 45.0), description="range of the camera's tilt from vertical in degrees (0..70)"
    )

    @model_validator(mode="after")
    def _in_rig_range(self) -> CameraTiltFactor:
        lo, hi = self.tilt_deg
        if not 0.0 <= lo <= hi <= 70.0:
            raise ValueError(f"tilt_deg={self.tilt_deg!r} must lie within 0..70 degrees, low end first")
        return self


class ContactShadingFactor(_Factor):
    """The part's own shadow from the key light and ambient occlusion (rasteriser only; the path
    tracer has both by nature): a brick's hollow underside and the gaps between studs come out dark
    as in a photo. Off unless asked for (``trainer render --contact-shading``), so the presets'
    renders stay as they were."""

    enabled: bool = Field(default=False, description="apply this factor (false: no shadow or occlusion)")
    shadow: tuple[Frac, Frac] = Field(
        default=(0.5, 0.9), description="range of the share of key light lost in the part's own shadow"
    )
    occlusion: tuple[Frac, Frac] = Field(
        default=(0.5, 0.9), description="range of the share of light lost by a fully enclosed point"
    )
    radius_ldu: tuple[Ldu, Ldu] = Field(
        default=(10.0, 24.0), description="range of the distance (LDU) within which geometry occludes"
    )


class Randomization(StrictModel):
    """Domain randomisation: one switchable factor per source of variation. Defaults = :meth:`train`."""

    pose: PoseFactor = Field(default_factory=PoseFactor, description="resting pose choice")
    placement: PlacementFactor = Field(
        default_factory=PlacementFactor, description="offset and yaw on the disc"
    )
    light_direction: LightDirectionFactor = Field(
        default_factory=LightDirectionFactor, description="key light direction"
    )
    light_intensity: LightIntensityFactor = Field(
        default_factory=LightIntensityFactor, description="light intensity"
    )
    color_temperature: ColorTemperatureFactor = Field(
        default_factory=ColorTemperatureFactor, description="light colour temperature"
    )
    white_balance: WhiteBalanceFactor = Field(
        default_factory=WhiteBalanceFactor, description="camera white balance"
    )
    exposure: ExposureFactor = Field(default_factory=ExposureFactor, description="exposure error")
    disc: DiscFactor = Field(default_factory=DiscFactor, description="disc colour and texture")
    background: BackgroundFactor = Field(
        default_factory=BackgroundFactor, description="backdrop beyond the disc"
    )
    color_jitter: ColorJitterFactor = Field(
        default_factory=ColorJitterFactor, description="part colour jitter"
    )
    defocus: DefocusFactor = Field(default_factory=DefocusFactor, description="defocus blur")
    motion_blur: MotionBlurFactor = Field(default_factory=MotionBlurFactor, description="motion blur")
    sensor_noise: SensorNoiseFactor = Field(default_factory=SensorNoiseFactor, description="sensor noise")
    jpeg: JpegFactor = Field(default_factory=JpegFactor, description="JPEG compression")
    camera_tilt: CameraTiltFactor = Field(
        default_factory=CameraTiltFactor, description="camera tilt drawn per placement (off by default)"
    )
    contact_shading: ContactShadingFactor = Field(
        default_factory=ContactShadingFactor,
        description="the part's own shadow and ambient occlusion (off by default)",
    )

    @classmethod
    def off(cls) -> Randomization:
        """Everything off: a clean render that depends on nothing but the part, colour and angles."""
        out = cls()
        for name in cls.model_fields:
            getattr(out, name).enabled = False
        return out

    @classmethod
    def train(cls) -> Randomization:
        """Moderate variation, for training sets."""
        return cls()

    @classmethod
    def test(cls) -> Randomization:
        """Stronger variation, for the held-out test split."""
        return cls.model_validate(
            {
                "placement": {"max_offset_frac": 0.35},
                "light_direction": {"elevation_jitter_deg": 15, "azimuth_jitter_deg": 60},
                "light_intensity": {"scale": (0.7, 1.3)},
                "color_temperature": {"kelvin": (3000, 7500), "camera_correction": 0.8},
                "white_balance": {"max_gain_error": 0.12},
                "exposure": {"ev": (-0.7, 0.7)},
                "disc": {
                    "brightness": (0.75, 1.2),
                    "tint": 0.06,
                    "noise": (0.0, 0.08),
                    "grain_probability": 0.5,
                    "felt_probability": 0.3,
                },
                "background": {"brightness": (0.5, 1.6), "tint": 0.2, "strength": (0.0, 0.5)},
                "color_jitter": {"max_delta_e": 5},
                "defocus": {"sigma_px": (0.0, 1.5)},
                "motion_blur": {"length_px": (0.0, 4.0)},
                "sensor_noise": {"shot": (0.0005, 0.004), "read": (0.002, 0.01)},
                "jpeg": {"quality": (60, 90)},
            }
        )


#: Names of the factors, in the order that numbers their random streams (append new ones).
FACTORS = tuple(Randomization.model_fields)
