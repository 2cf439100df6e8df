"""The synthetic parts studio: LDraw geometry to turntable images.

Pure numpy/OpenCV. Used by ``trainer render``, the benchmarks and tools, and by ``edge``'s simulated
rig camera in live mode, which imports it lazily: ``edge`` never imports ``studio`` at module level.
"""
