"""Task families: what the model does after the encoders (``task=<name>``, one module each).

* ``prediction``: fuse every modality, a head, the label type's loss and metrics
  (multiclass, binary, multilabel, regression: ``mmrun.tasks.objectives``);
* ``retrieval``: two sides (query, target), each fused and projected to a shared
  embedding, a contrastive loss, ranking metrics over the whole split.

``mmrun.tasks.base.TaskFamily`` is the contract between a family and ``MultimodalModule``.
"""
