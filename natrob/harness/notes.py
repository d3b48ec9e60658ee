"""Notes an evaluation row carries in its ``skipped`` list that the harness writes and the audit reads.

The harness (:mod:`natrob.harness.plan`) writes them and the audit's checks (:mod:`natrob.audit.checks`) read them;
this module imports nothing, so both import it downward and neither reaches into the other.
"""
from __future__ import annotations

# a survivors-only attack with no survivor left to attack (natrob.harness.plan): its count 0 of n is implied, so the
# note says why it did not run but is no limit of the measurement
NONE_LEFT = "no point survived the attacks before it"
