"""``trainer segmenter``: the small segmentation network edge's ``mobileseg`` option runs.

Learned from the studio's exact masks: every render holds ``name.jpg`` (or ``.png``) beside
``name_mask.png``. The part's pixels are kept and, with probability ``--swap``, the background is
replaced by :class:`trainer.backgrounds.BackgroundSwap` (flat and textured surfaces, unevenly lit,
with a soft shadow, and the photos of empty rigs given with ``--backgrounds``), so that the network
learns the part, not the render's ground; camera jitter (gain per channel, contrast, noise, blur)
and mirroring come on top. Images are split into training and validation by a hash of their path.

The network is a small encoder-decoder of depthwise-separable convolutions with skip connections
back to half resolution and mask logits bilinearly upsampled to the input: ``--encoder tiny``
(:class:`TinyUNet`, five stride-2 stages of 16..96 channels, trained from scratch) or ``lite0``
(EfficientNet-Lite0's stem and first five stages with their ImageNet weights, as the classifier
starts from). It is trained with binary cross-entropy plus a
soft Dice loss, AdamW and a cosine schedule, one checkpoint per epoch (``checkpoint/``:
safetensors weights and a JSON state), so an interrupted run resumes from its last finished epoch.
``--epochs`` may grow on a finished run: the cosine then spans the new total, so the extra epochs
start again from the learning rate that point of the longer schedule has (a warm restart).

The export is what edge loads: ``seg.onnx`` ((N, 3, H, W) float32 in, ``mask_logits`` (N, 1, H, W)
out, batch dynamic) and its sidecar ``seg.json`` (input size, mean and std; see
:mod:`edge.segment.mobileseg`), checked against torch before it is written. ``report.json`` holds
the mask IoU of the validation images (and of ``--test`` folders) measured through edge's own
``mobileseg`` segmenter with its default clean-up, at the frames' full size, as the Pi runs it.
"""

from __future__ import annotations

from trainer.segmenter.cli import add_parser

__all__ = ["add_parser"]
