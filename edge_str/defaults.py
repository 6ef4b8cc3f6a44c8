"""One home for the defaults that the library constructors and the training config share.

The STR threshold init s decides when thresholds start to bite, and its scale depends on g:

* ``LOWRANK_S_INIT``: g = exp on singular values (FastGRNN's W and U, ``LowRankMatrix``):
  exp(-10) ~ 4.5e-5 keeps every rank alive at the start.
* ``SIGMOID_S_INIT``: g = sigmoid on weights (``apply_str``, ``sparsify``): sigmoid(-100) ~ 0
  keeps a layer dense at the start (the STR paper's range is -100 .. -12800).
* ``CNN_S_INIT``: the CNN training default. At s << 0, g'(s) ~ 0 and only weight decay moves s
  (Adam: ~lr per step), so -8 (g = 3.4e-4) bites within a 30-epoch run; the paper's values
  suit its 100+ epoch runs and leave short runs dense.
* ``STUDY_S_INIT``: the rank study's STR runs (``edge-str compare``). Their few hundred steps
  move s by about 1 at most, so s starts near the singular values it is to prune: exp(-2) = 0.14
  (the trainer's -10 prunes none).
"""

from __future__ import annotations

LOWRANK_S_INIT = -10.0
SIGMOID_S_INIT = -100.0
CNN_S_INIT = -8.0
STUDY_S_INIT = -2.0
