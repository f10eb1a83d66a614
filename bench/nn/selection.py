"""Which epoch's weights a fit keeps, and which epoch its early stopping counts from.

The detectors' reference codes keep different epochs, and on an easy validation set (accuracy tied at
1.0 from the first epochs) the choice decides whether the kept network ever trained at a lowered rate:

- ``best``: the best validation epoch over the whole fit, strict ``>`` (a tie keeps the earlier one);
- ``last``: the last epoch trained (UnivFD's ``train.py`` overwrites ``model_epoch_best.pth`` with the
  current weights at the end of every epoch);
- ``last_lr_phase``: the best epoch since the last plateau rate drop (CNNDet's ``train.py`` starts a
  fresh ``EarlyStopping`` after every drop, and that one saves the first epoch it sees and every later
  gain, so the file left at the end comes from the last rate phase).

Early stopping, whatever the rule, counts the epochs without a gain over the best score since the last
rate drop: the originals' fresh ``EarlyStopping`` after each drop. Without drops that is the global best.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

RULES = ("best", "last", "last_lr_phase")


@dataclass
class Selection:
    rule: str = "best"
    phase_score: float = -math.inf  # the best score since the last rate drop
    since: int = -1  # the epoch that score came from (or the drop's epoch): patience counts from here
    best_score: float = -math.inf  # the best score of the whole fit (reported, and the ``best`` rule's)
    best_epoch: int = -1
    kept_epoch: int = -1

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown keep {self.rule!r} ({', '.join(RULES)})")

    def observe(self, epoch: int, score: float) -> bool:
        """Record one epoch's validation score; True when that epoch's weights become the kept ones."""
        phase_gain = score > self.phase_score
        if phase_gain:
            self.phase_score, self.since = score, epoch
        global_gain = score > self.best_score
        if global_gain:
            self.best_score, self.best_epoch = score, epoch
        keep = {"best": global_gain, "last": True, "last_lr_phase": phase_gain}[self.rule]
        if keep:
            self.kept_epoch = epoch
        return keep

    def exhausted(self, epoch: int, patience: int) -> bool:
        """``patience`` epochs have passed without a gain in this rate phase."""
        return epoch - self.since >= patience

    def rate_dropped(self, epoch: int) -> None:
        """A plateau lowered the rate after ``epoch``: a new phase whose first epoch sets its reference."""
        self.phase_score, self.since = -math.inf, epoch

    def state(self) -> dict:
        """Plain numbers, for a checkpoint loaded with ``weights_only=True``."""
        return asdict(self)

