"""Verdicts of one model under float32 and bfloat16, claim by claim: ``reports/dtype_verdicts.md``.

The two runs write to two results folders (the record store path carries no dtype, so one folder would keep only
the later run's records):

    pytest claims/ -q --profile ci --model gemma-3-270m-q4km --dtype float32 --results /tmp/h6-f32
    pytest claims/ -q --profile ci --model gemma-3-270m-q4km --dtype bfloat16 --results /tmp/h6-bf16
    python scripts/dtype_verdicts.py /tmp/h6-f32 /tmp/h6-bf16 --out reports/dtype_verdicts.md \\
        --command "pytest claims/ ..." --command "..." [--note "..."]

The same table is the "dtype comparison" section of ``lalm-bench report /tmp/h6-f32 /tmp/h6-bf16``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmark.core.provenance import utc_now
    from benchmark.report import _dedupe, load_records
    from benchmark.report.dtype import dtype_verdicts_markdown

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "results", nargs="+", type=Path, help="results folders (one per dtype) or record files"
    )
    parser.add_argument("--out", type=Path, default=Path("reports/dtype_verdicts.md"))
    parser.add_argument("--command", action="append", default=[], help="a command line that made the records")
    parser.add_argument("--note", action="append", default=[], help="a bullet under the summary")
    args = parser.parse_args(argv)

    records, _ = _dedupe(load_records(args.results))
    page = dtype_verdicts_markdown(
        records, commands=args.command, date=utc_now(), cpu=_cpu(), notes=args.note
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page, encoding="utf-8")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
