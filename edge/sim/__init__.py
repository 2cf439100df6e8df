"""The simulated rig and the synthetic parts studio: LDraw geometry to turntable images.

Pure numpy/OpenCV. Used by ``edge``'s simulated camera and by ``trainer render``.
"""
