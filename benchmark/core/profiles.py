"""Names of the probe-set profiles, in one dependency-free place.

Why a module of its own: the CLI, the pytest options, the probe-set header check, the schema and the
resampling budget all restrict or branch on profile names; one tuple here keeps them from drifting apart when a
profile is added, and importing it costs the CLI nothing.

- ``ci``: the small, fixed subset every CI run evaluates.
- ``ci-alt``: the same design shape and size as ``ci`` on other sentences (and other voices where the set
  has them); it exists to check that verdicts do not hinge on the particular items of ``ci``.
- ``full``: the full-size design of the set (every sample of the sets that have no ``pool``); the size whose
  verdicts the claims' targets are stated at.
- ``pool`` (text-parallel, text-paraphrase and speech-grid only): every sample, ``full`` plus items authored
  later (m39-m80, p73-p144, grid sentences c09-c16). It exists for calibration: the controls draw fresh
  samples of design units of the calibrated size from a population, and at the ``full`` size that
  population has to be larger than ``full`` itself. It is not a CI-sized profile and has no expectations.
- ``custom`` (not declared in a header): every row of a user's folder.
"""

from __future__ import annotations

#: Profiles a ``probeset.json`` may declare.
PROFILE_NAMES: tuple[str, ...] = ("ci", "ci-alt", "full", "pool")
#: Every value ``--profile`` accepts (``custom`` = every row of a folder given with ``--probes``).
PROFILE_CHOICES: tuple[str, ...] = (*PROFILE_NAMES, "custom")
#: Profiles of the ci size: they share the ci resampling budget, so their verdicts are comparable.
CI_SIZED: tuple[str, ...] = ("ci", "ci-alt")
