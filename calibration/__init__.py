"""calibration: rig calibration (background thresholds, colour correction, turntable and crop geometry).

Writes a calibration file that ``edge`` reads; ``edge`` never imports this package.
"""
