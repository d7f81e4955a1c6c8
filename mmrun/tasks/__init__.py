"""Task families: what the model does after the encoders (``task=<name>``, one module each).

* ``prediction``: fuse every modality, a head, the label type's loss and metrics
  (multiclass, binary, multilabel, regression: ``mmrun.tasks.objectives``);
* ``retrieval``: two sides (query, target), each fused and projected to a shared
  embedding (``two_tower``), a contrastive loss (``contrastive``), ranking metrics over the
  whole split;
* ``recommendation``: a user side and an item side over an item catalogue, ranked in full
  with seen items removed, for warm and cold items.

``mmrun.tasks.base.TaskFamily`` is the contract between a family and ``MultimodalModule``.
"""
