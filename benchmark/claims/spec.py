"""A claim is versioned data: what it needs, what it measures, how it decides, how its controls are built.

Claim files (YAML) live in ``benchmark/claims/specs/``; users add their own through a folder
(``$LALM_BENCH_CLAIMS_DIR``) or the ``lalm_bench.claims`` entry point. Every key is declared below with
``extra="forbid"``, and every key is read by the code that evaluates the claim: a misspelt or unknown key is
refused when the file loads. Changing a rule, a constant or the measure means bumping ``version``, which voids
the expectations recorded under the old one (they are keyed by version).

Shapes of measure (``measure.shape``):

``band_contrast``
    One or more *components* (a score of a labelling, net of its permutation null, per layer; see
    :mod:`benchmark.stats.scores`), combined into *parts* (means of layer columns minus means of others, e.g.
    ``early - middle``) and *reduced* (``single``, ``min``, ``max``, ``difference``, ``ratio``, ``log_ratio``).
    Almost every claim of the paper has this shape.
``metric_agreement``
    Whether several clustering metrics rank the layers alike (Q1): a statistic of curves, not of one layer.
``cross_model``
    A difference of one part of another claim between two models' records (T7).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from benchmark.core.schema import Modality
from benchmark.stats.scores import SCORES

Section = Literal["text", "speech", "crossmodal", "demography", "metrics"]
TemplateName = Literal["bare", "shared-suffix"]
BAND_NAMES = ("early", "middle", "late")
#: Column selectors a part may reference (besides ``block<i>``): bands, all blocks, named layers, controls.
SELECTORS = (*BAND_NAMES, "blocks", "emb", "final_norm", "last_block", "middle_block", "tok_last", "tok_mean")
_REF = re.compile(r"^(?:(?P<component>[A-Za-z0-9_]+)\.)?(?:(?P<tag>[^:.]+):)?(?P<selector>[a-z_]+[0-9]*)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Requires(_Strict):
    """What a probe set must offer; a claim whose needs are unmet answers ``n/a`` naming what is missing."""

    modalities: list[Modality]
    axes: list[str] = Field(default_factory=list, description="label axes every selected sample must carry")
    languages: list[str] = Field(
        default_factory=list, description="languages the model and the set must cover"
    )
    min_languages: int = Field(default=1, ge=1)
    min_levels: dict[str, int] = Field(
        default_factory=dict, description="axis -> least number of distinct values among the selected samples"
    )
    min_per_group: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="group axis -> {axis: least distinct values inside every group}, e.g. each meaning in >= 2 "
        "languages",
    )
    min_blocks: int = Field(
        default=1,
        ge=1,
        description="least number of decoder blocks the model must have (a statistic of curves over the blocks "
        "needs enough points to resolve; the caveats say why)",
    )


class Select(_Strict):
    """Which samples of the probe set the claim uses."""

    variant: str | None = Field(default=None, description="primary probe variant, e.g. nopunct")
    secondary_variants: list[str] = Field(
        default_factory=list, description="variants also evaluated under bare and reported as secondary"
    )
    filter: dict[str, list[str]] = Field(default_factory=dict, description="axis -> allowed values")


class Templates(_Strict):
    """Templates the claim is evaluated under (CLAIMS.md: both, unless restricted with a reason)."""

    run: list[TemplateName] = Field(default_factory=lambda: ["bare", "shared-suffix"])
    primary: TemplateName = Field(
        default="bare", description="the paper's reading; expectations attach to it"
    )
    reason: str | None = Field(default=None, description="why the claim runs under fewer than both templates")

    @model_validator(mode="after")
    def _restriction_has_reason(self) -> Templates:
        if not self.run or len(set(self.run)) != len(self.run):
            raise ValueError(f"templates.run must list distinct templates; got {self.run}")
        if len(self.run) < 2 and not self.reason:
            raise ValueError("a claim restricted to one template needs templates.reason")
        if self.primary not in self.run:
            raise ValueError(f"templates.primary {self.primary!r} is not among templates.run {self.run}")
        return self


class Component(_Strict):
    """One score of a labelling (see :mod:`benchmark.stats.scores`) with its parameters."""

    score: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _score_params(self) -> Component:
        if self.score not in SCORES:
            raise ValueError(f"unknown score {self.score!r}; known: {sorted(SCORES)}")
        signature = inspect.signature(SCORES[self.score])
        accepted = {n for n, p in signature.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
        required = {
            n
            for n, p in signature.parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
        }
        unknown = sorted(set(self.params) - accepted)
        if unknown:
            raise ValueError(
                f"score {self.score!r} takes no parameter {unknown}; it takes {sorted(accepted)}"
            )
        missing = sorted(required - set(self.params))
        if missing:
            raise ValueError(f"score {self.score!r} needs parameters {missing}")
        return self


class Part(_Strict):
    """``mean(columns of plus) - mean(columns of minus) - offset``; references ``[component.][tag:]selector``."""

    plus: list[str]
    minus: list[str] = Field(default_factory=list)
    offset: float = 0.0

    @field_validator("plus", "minus")
    @classmethod
    def _refs(cls, refs: list[str]) -> list[str]:
        for ref in refs:
            match = _REF.match(ref)
            if not match:
                raise ValueError(f"column reference {ref!r} is not [component.][tag:]selector")
            sel = match["selector"]
            if sel not in SELECTORS and not re.fullmatch(r"block[0-9]+", sel):
                raise ValueError(
                    f"column reference {ref!r}: unknown selector {sel!r}; known {SELECTORS} or block<i>"
                )
        return refs


Reduce = Literal["single", "min", "max", "difference", "ratio", "log_ratio"]


class BandContrast(_Strict):
    shape: Literal["band_contrast"]
    metric: Literal["cosine", "euclidean", "scaled_euclidean"] = "cosine"
    units: list[str] = Field(description="design units left out one level at a time by the jackknife")
    components: dict[str, Component]
    parts: dict[str, Part]
    reduce: Reduce

    @model_validator(mode="after")
    def _consistent(self) -> BandContrast:
        if not self.units:
            raise ValueError("measure.units must name at least one design unit")
        if not self.components or not self.parts:
            raise ValueError("a band_contrast measure needs components and parts")
        counts = {"single": (1, 1), "difference": (2, 2), "ratio": (2, 2), "log_ratio": (2, 2)}
        low, high = counts.get(self.reduce, (1, 10_000))
        if not low <= len(self.parts) <= high:
            raise ValueError(f"reduce {self.reduce!r} needs {low}..{high} parts; got {len(self.parts)}")
        for name, part in self.parts.items():
            for ref in [*part.plus, *part.minus]:
                component = _REF.match(ref)["component"]  # type: ignore[index]
                if component is None and len(self.components) > 1:
                    raise ValueError(
                        f"part {name!r}: {ref!r} must name its component ({sorted(self.components)})"
                    )
                if component is not None and component not in self.components:
                    raise ValueError(f"part {name!r}: unknown component {component!r}")
        return self


class MetricAgreement(_Strict):
    shape: Literal["metric_agreement"]
    metric: Literal["cosine"] = "cosine"
    units: list[str]
    label: str
    metrics: list[Literal["silhouette", "neg_davies_bouldin", "top_split_purity", "cophenetic_separation"]]

    @model_validator(mode="after")
    def _two_metrics(self) -> MetricAgreement:
        if len(set(self.metrics)) < 2:
            raise ValueError("metric_agreement needs at least two distinct metrics")
        return self


class CrossModel(_Strict):
    shape: Literal["cross_model"]
    base_claim: str = Field(description="the per-model claim whose part is compared")
    part: str = Field(description="the base claim's part compared between the two models")
    role_a: str = Field(description="family prefix of model A (expected smaller part)")
    role_b: str = Field(description="family prefix of model B (expected larger part)")


Measure = Annotated[BandContrast | MetricAgreement | CrossModel, Field(discriminator="shape")]


class TokenControl(_Strict):
    """CLAIMS.md's token-identity control: the claim's per-layer measure on token embeddings alone.

    ``compare`` is a part over layers (e.g. the early band, or a gap at block0); the controls are the same part
    with every layer selector replaced by ``tok_last`` / ``tok_mean``.
    """

    compare: Part
    decides: bool = Field(
        description="a claim about early layers: an early effect that does not exceed its control by delta "
        "cannot hold (it becomes inconclusive, labelled explained by tokens)"
    )


class RuleSpec(_Strict):
    """The decision rule over the reduced effect and its interval.

    presence: ``holds`` when the lower bound exceeds ``delta``, ``fails`` when the upper bound is at or below it.
    absence (equivalence): ``holds`` when the upper bound is below ``epsilon``, the power to detect ``epsilon``
    is at least ``min_power`` and the positive reference holds; ``fails`` when the lower bound exceeds ``epsilon``.
    change: a change in either direction beyond ``delta`` (two-sided, ``alpha`` split over the two sides):
    ``holds`` when the interval lies beyond ``+delta`` or beyond ``-delta``, ``fails`` when it lies within
    ``(-delta, delta)``; for the models named in ``directions`` only the stated direction is tested (one-sided).
    """

    kind: Literal["presence", "absence", "change"]
    formula: str = Field(description="the rule in words/maths, shown in reports")
    delta: float | None = None
    epsilon: float | None = None
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    min_power: float = Field(default=0.8, gt=0.0, lt=1.0)
    power_at: float | None = Field(
        default=None,
        description="presence/change: the planted effect at which power >= min_power is required (the positive "
        "control); absence claims plant 0 (true absence) and the boundary null plants epsilon",
    )
    directions: dict[str, Literal["increase", "decrease"]] = Field(
        default_factory=dict, description="change rules: model-name prefix -> the direction the paper reports"
    )
    reasons: dict[str, str] = Field(description="one sentence per constant: why this value")
    descriptive: str | None = Field(
        default=None,
        description="set when the suite's designs cannot power this rule: why. The claim is measured and its "
        "effect, interval and what the rule would read are recorded, but the verdict is n/a (a claim that can "
        "almost never hold is no finding) and it is not calibrated",
    )

    @model_validator(mode="after")
    def _constants(self) -> RuleSpec:
        if self.kind in ("presence", "change") and self.delta is None:
            raise ValueError(f"a {self.kind} rule needs delta")
        if self.kind == "absence" and self.epsilon is None:
            raise ValueError("an absence rule needs epsilon")
        if self.kind in ("presence", "change") and (
            self.power_at is None or self.power_at <= (self.delta or 0.0)
        ):
            raise ValueError(f"a {self.kind} rule needs power_at above delta (the planted positive control)")
        if self.directions and self.kind != "change":
            raise ValueError("directions are only read by change rules")
        for constant in ("delta", "epsilon", "alpha", "power_at"):
            if getattr(self, constant) is not None and constant not in self.reasons:
                raise ValueError(f"rule constant {constant!r} has no reason")
        return self

    @property
    def boundary(self) -> float:
        """delta (presence, change) or epsilon (absence): the value the boundary-null control plants."""
        return float(self.epsilon if self.kind == "absence" else self.delta)  # type: ignore[arg-type]

    @property
    def positive_size(self) -> float:
        """The effect the positive control plants: power_at, or 0 for absence claims."""
        return 0.0 if self.kind == "absence" else float(self.power_at)  # type: ignore[arg-type]


class Shuffle(_Strict):
    """How a control destroys the structure the claim measures (before a plant adds it back, known in size)."""

    within: list[str] | None = Field(default=None, description="permute latent rows within these axes")
    keep: dict[str, list[str]] = Field(
        default_factory=dict,
        description="axis -> labels whose rows a within-shuffle leaves in place: a member outside the claim's "
        "contrast that is a near-copy of another member (T1's same-words adversarial sentence), which no real "
        "probe set puts into the contrasted roles",
    )
    named: Literal["norm_growth", "version_swap", "group_relabel"] | None = Field(
        default=None,
        description="norm_growth: every layer a rescaled copy of block0 (T2); version_swap: swap the two versions "
        "of a pair (S3); group_relabel: give every group's rows to another group of the same cells (D1)",
    )
    group: str | None = Field(default=None, description="the group axis of version_swap / group_relabel")
    cells: list[str] = Field(default_factory=list, description="the cells group_relabel keeps")

    @model_validator(mode="after")
    def _one_kind(self) -> Shuffle:
        if (self.within is None) == (self.named is None):
            raise ValueError("a shuffle is either within: [axes] or named: <kind>")
        if self.keep and self.within is None:
            raise ValueError("shuffle keep: only a within-shuffle leaves rows in place")
        if self.named in ("version_swap", "group_relabel") and not self.group:
            raise ValueError(f"shuffle {self.named} needs group")
        if self.named == "group_relabel" and not self.cells:
            raise ValueError("shuffle group_relabel needs cells")
        return self

    @model_serializer(mode="wrap")
    def _empty_keep_left_out(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A shuffle that keeps nothing dumps as it did before ``keep`` existed, so the fingerprints of the claims
        that do not use it (recorded in results and calibration entries) stay what they were."""
        dumped = handler(self)
        if not self.keep:
            dumped.pop("keep", None)
        return dumped


class Plant(_Strict):
    """Label-dependent offsets the planter scales so that the pool's effect equals a target size."""

    keys: list[list[str]] = Field(
        description="each entry: axes whose value combination gets its own direction"
    )
    layers: list[str] = Field(description="bands or layer names that receive offsets")
    members: dict[str, list[str]] = Field(default_factory=dict, description="only samples with these values")
    profile: Literal["flat", "linear"] = Field(
        default="flat", description="linear: offsets grow over the blocks"
    )
    sign: Literal[1, -1] = Field(default=1, description="-1 plants the effect's negative (a reduction)")


class Control(_Strict):
    shuffle: Shuffle
    plant: list[Plant] = Field(
        description="offsets summed over the entries (e.g. text and speech layers differ)"
    )


class Figures(_Strict):
    tsne_layers: list[str] = Field(default_factory=list)
    tsne_labels: list[str] = Field(default_factory=list)
    dendrogram_layers: list[str] = Field(default_factory=list)


class Secondary(_Strict):
    """A decision reported beside the claim's verdict and never deciding it (e.g. S2's device absence)."""

    title: str
    measure: Measure
    rule: RuleSpec
    references: list[str] = Field(default_factory=list)


class ClaimSpec(_Strict):
    """One finding of the paper as data."""

    id: str
    version: int = Field(ge=1)
    title: str
    paper: str = Field(description="figure / table / section of the paper")
    section: Section
    finding: str
    probe_set: str
    requires: Requires
    select: Select = Field(default_factory=Select)
    templates: Templates = Field(default_factory=Templates)
    measure: Measure
    token_control: TokenControl | None = None
    rule: RuleSpec
    control: Control | None = None
    references: list[str] = Field(
        default_factory=list,
        description="positive reference claims on the same latents (absence claims): all must hold",
    )
    secondary: dict[str, Secondary] = Field(default_factory=dict)
    figures: Figures = Field(default_factory=Figures)
    caveats: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _coherent(self) -> ClaimSpec:
        if self.rule.kind == "absence" and not self.references:
            raise ValueError(f"claim {self.id}: an absence claim needs a positive reference")
        cross = isinstance(self.measure, CrossModel)
        if not cross and self.control is None:
            raise ValueError(
                f"claim {self.id}: every single-model claim declares its control (shuffle and plant)"
            )
        if self.token_control is not None and not isinstance(self.measure, BandContrast):
            raise ValueError(f"claim {self.id}: token_control needs a band_contrast measure")
        for name, sec in self.secondary.items():
            if sec.rule.kind == "absence" and not sec.references:
                raise ValueError(
                    f"claim {self.id}: secondary {name!r} is an absence test and needs a reference"
                )
        return self

    @property
    def cross_model(self) -> bool:
        return isinstance(self.measure, CrossModel)

    def fingerprint(self) -> str:
        """Hash of the claim's definition, recorded with every result."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
