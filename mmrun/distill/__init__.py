"""Knowledge distillation (``+distill=kd distill.teacher=<checkpoint>``): a trained mmrun model
teaches the run's model, which may read fewer modalities or be much smaller.

* ``teacher``: the teacher rebuilt from its checkpoint, frozen, always in eval mode, kept out
  of the student's module tree (and so out of its checkpoint), and its compatibility checks;
* ``inputs``: the data serves the union of both models' modalities; each sees only its own;
* ``losses``: kd (Hinton et al. 2015; for retrieval, on similarity distributions: TinyCLIP, Wu et al.
  2023), hint (FitNets, Romero et al. 2015), rkd (Park et al. 2019);
* ``distiller``: the loss terms added to the student's label loss during training;
* ``cache``: the teacher's outputs on the training split, computed once (``distill.cache_teacher``);
* ``run``: what ``mmrun train`` calls: set up the teacher and the data, and the metrics.json block;
* ``twin``: ``distill.scratch=train``, the scratch student trained first for the gap recovered.

Prediction tasks (multiclass, binary, multilabel, regression) and retrieval (kd only).
"""
