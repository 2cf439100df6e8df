"""The rig's hardware (turntable stepper, chute servo, light ring, panel) on gpiozero.

Every device takes an injectable ``pin_factory``; :func:`pin_factory_for` picks one from the
config's ``rig.pins`` (``mock`` for a simulated rig). Importing this package touches no hardware.
"""

from edge.rig.chute import Chute, LightRing, UnknownBinError
from edge.rig.panel import PANEL_STATES, Panel
from edge.rig.pins import PinFallbackWarning, pi_model, pin_factory_for
from edge.rig.rig import (
    ChuteConfig,
    LightConfig,
    PanelConfig,
    Rig,
    RigConfig,
    StepDirConfig,
    TurntableConfig,
    ULN2003Config,
)
from edge.rig.turntable import (
    HALF_STEP_SEQUENCE,
    StepDirTurntable,
    Turntable,
    TurntableMove,
    ULN2003Turntable,
)

__all__ = [
    "HALF_STEP_SEQUENCE",
    "PANEL_STATES",
    "Chute",
    "ChuteConfig",
    "LightConfig",
    "LightRing",
    "Panel",
    "PanelConfig",
    "PinFallbackWarning",
    "Rig",
    "RigConfig",
    "StepDirConfig",
    "StepDirTurntable",
    "Turntable",
    "TurntableConfig",
    "TurntableMove",
    "ULN2003Config",
    "ULN2003Turntable",
    "UnknownBinError",
    "pi_model",
    "pin_factory_for",
]
