"""Record replay digests for calibration entries made before replays existed (``benchmark/claims/replay.py``).

Run it with the code that made the counts on the import path, e.g. a worktree of that commit::

    git worktree add /tmp/old COMMIT
    PYTHONPATH=/tmp/old python scripts/record_replay_digests.py --file benchmark/claims/calibration.json

Why a script outside the package: the code it runs is an older commit's, which has no replay module, so the
replay helpers are loaded from this checkout's file while every ``benchmark`` import resolves to the old code.
Only entries whose verdict-code hash equals that code's are recorded, and only when the replayed estimates are
the stored ones (``deviation_from_stored``): a digest recorded on other code or other latents would carry counts
that no longer describe the entry.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # run as a file: no shadowing


def _helpers() -> Any:
    path = HERE.parent / "benchmark" / "claims" / "replay.py"
    spec = importlib.util.spec_from_file_location("replay_helpers", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load the replay helpers from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _older_code_shim() -> None:
    """Code older than the replays kept the population seeding in ``calibrate``; the helpers read it from
    ``controls``: point them at the old names (this process only)."""
    from benchmark.claims import controls

    if not hasattr(controls, "population_seed"):
        from benchmark.claims import calibrate

        controls.population_seed = calibrate._population_seed
        controls.SEEDS_PER_POPULATION = calibrate.SEEDS_PER_POPULATION


def main(path: Path, claims: list[str]) -> int:
    from benchmark.claims.data import Budget
    from benchmark.claims.evaluate import verdict_code_sha256
    from benchmark.claims.registry import all_claims
    from benchmark.run.options import session_options
    from benchmark.run.session import POOL_OF_SIZE, ClaimSession, calibration_pools

    replay = _helpers()
    code = (
        verdict_code_sha256()
    )  # before the shim below touches nothing hashed: it patches modules, not files
    _older_code_shim()
    entries = json.loads(path.read_text(encoding="utf-8"))["entries"]
    specs = {s.id: s for s in all_claims()}
    sessions: dict[str, Any] = {}
    status = 0
    for key, entry in entries.items():
        claim, template, size = key.split("|")
        if (claims and claim not in claims) or "replay" in entry:
            continue
        if entry.get("code") != code:
            print(f"{key}: made by code {str(entry.get('code'))[:10]}, this is {code[:10]}: not recorded")
            continue
        profile = POOL_OF_SIZE[size]
        if profile not in sessions:
            options = session_options({"profile": profile, "device": "cpu"}.get, progress=False)
            sessions[profile] = ClaimSession(options)
        spec = specs[claim]
        pool = calibration_pools(sessions[profile], spec, [entry["pool_model"]], [template])[0]
        seeds = replay.replay_seeds(entry)
        rows = replay.seed_rows(spec, pool, entry["sizes"], seeds, Budget.for_profile(entry["budget"]))
        worst, wrong = replay.deviation_from_stored(entry, rows)
        if wrong:
            print(f"{key}: not recorded: {wrong}")
            status = 1
            continue
        replay.update_entries(
            path, lambda es, k=key, r=rows, w=worst: {**es, k: replay.record(es[k], r, code, w)}
        )
        print(f"{key}: recorded ({len(rows)} decisions, estimates within {worst:.1e} se of the stored ones)")
    return status


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, required=True)
    parser.add_argument("--claim", action="append", default=[])
    args = parser.parse_args()
    sys.exit(main(args.file, args.claim))
