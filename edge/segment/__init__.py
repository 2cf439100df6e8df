"""Background removal: each backend turns an RGB frame into a 0/255 part mask.

Select one in the config with ``segmenter: {type: none | hsv | bgdiff | u2net | mobileseg, ...}`` and
build it with :func:`create_segmenter`. ``SegmenterConfig`` is the pydantic discriminated union
of every backend's config, for use as a field type::

    class DaemonConfig(StrictModel):
        segmenter: SegmenterConfig = Field(description="background removal")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge.segment.base import (
    MaskCleanup,
    Segmenter,
    available_backends,
    check_frame,
    clean_mask,
    count_objects,
    create_segmenter,
    parse_segmenter_config,
    register_segmenter,
    segmenter_config_type,
)

if TYPE_CHECKING:
    # Static checkers see the union spelled out; at run time it is discovered from the backend
    # modules (see segmenter_config_type), so a new backend file needs no edit here.
    from typing import Annotated, Union

    from pydantic import Field

    from edge.segment.bgdiff import BgDiffConfig
    from edge.segment.hsv import HsvConfig
    from edge.segment.mobileseg import MobileSegConfig
    from edge.segment.none import NoneConfig
    from edge.segment.u2net import U2NetConfig

    SegmenterConfig = Annotated[
        Union[NoneConfig, HsvConfig, BgDiffConfig, U2NetConfig, MobileSegConfig],  # noqa: UP007
        Field(discriminator="type"),
    ]

__all__ = [
    "MaskCleanup",
    "Segmenter",
    "SegmenterConfig",
    "available_backends",
    "check_frame",
    "clean_mask",
    "count_objects",
    "create_segmenter",
    "parse_segmenter_config",
    "register_segmenter",
    "segmenter_config_type",
]


def __getattr__(name: str) -> Any:
    # Built on first access: importing edge.segment for clean_mask loads no backend module.
    if name == "SegmenterConfig":
        return segmenter_config_type()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
