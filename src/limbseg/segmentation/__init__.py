"""The segmentation path, one module per step, in the order the data flows:

* :mod:`~limbseg.segmentation.locate`: the coarse 3D stage (where the bones are, a prior on them);
* :mod:`~limbseg.segmentation.region`: the network region (from the locator, else the body-shape heuristic
  of :mod:`~limbseg.segmentation.roi`) and the whole scan's intensity window;
* :mod:`~limbseg.segmentation.predict`: the fine 2.5D network, probabilities back to labels on the native grid;
* :mod:`~limbseg.segmentation.combine`: the coarse prior on the fine probabilities;
* :mod:`~limbseg.segmentation.sides` and :mod:`~limbseg.segmentation.postprocess`: left/right, per-slice
  clean-up, gap closing, largest component per bone and side.

Kept light (no imports here) so that importing one step does not import the others.
"""
