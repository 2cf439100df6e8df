"""trainer: builds the models the Pi runs (the `train` extra), and renders synthetic data.

Depends on ``edge`` (it reuses edge's preprocessing and the studio), never the reverse. Heavy
dependencies (torch, timm, albumentations, onnx2tf) are imported inside the commands that need them.
"""
