"""The segmentation path, one module per step: locate (coarse 3D stage) -> predict (fine 2.5D network,
:mod:`limbseg.inference`) -> combine (coarse prior on the fine probabilities) -> post-process and sides."""
