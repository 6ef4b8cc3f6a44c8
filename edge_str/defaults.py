"""One home for the defaults that the library constructors and the training config share.

The STR threshold init s decides when thresholds start to bite, and its scale depends on g:

* ``LOWRANK_S_INIT``: g = exp on singular values (FastGRNN's W and U, ``LowRankMatrix``):
  exp(-3) = 0.05 sits just under the smallest singular values of a standard init, so the
  thresholds act from the first steps (-10 pruned nothing in a 30-epoch run).
* ``SIGMOID_S_INIT``: g = sigmoid on weights (``apply_str``, ``sparsify``): sigmoid(-100) ~ 0
  keeps a layer dense at the start (the STR paper's range is -100 .. -12800).
* ``CNN_S_INIT``: the CNN training default. At s << 0, g'(s) ~ 0 and only weight decay moves s
  (Adam: ~lr per step), so -8 (g = 3.4e-4) bites within a 30-epoch run; the paper's values
  suit its 100+ epoch runs and leave short runs dense.
* ``STUDY_S_INIT``: the rank study's STR runs (``edge-str compare``). Their few hundred steps
  move s by about 1 at most, so s starts near the singular values it is to prune: exp(-2) = 0.14
  (the trainer's -3 also bites).

FastGRNN's initialisation (``FastGRNNCell``): W and U are shared by both gates, so b_z is the
only parameter of the gate alone and sets how long the state remembers at the start:
z = sigmoid(b_z) of h is kept per step. b_z = 1 (EdgeML's) gives z = 0.73, a memory of ~3
frames on 99-frame clips (measured: dense FastGRNN 81.7% with b_z 1, 85.8% with 3, 82.5% with 5
on a 1,500-clip synthetic Google-12 tree).
"""

from __future__ import annotations

LOWRANK_S_INIT = -3.0
SIGMOID_S_INIT = -100.0
CNN_S_INIT = -8.0
STUDY_S_INIT = -2.0
GATE_BIAS_INIT = 3.0  # b_z: z = sigmoid(3) = 0.95, a memory of ~20 frames at the start
UPDATE_BIAS_INIT = 1.0  # b_h
ZETA_INIT = 1.0  # sigmoid(zeta) scales (1 - z) in the update
NU_INIT = -4.0  # sigmoid(nu) = 0.018, the update's floor
