"""edge: the lean runtime of a LEGO part sorting rig (Raspberry Pi 5).

Never imports torch or tensorflow. Optional backends are imported only when selected.
"""

__version__ = "0.1.0"
