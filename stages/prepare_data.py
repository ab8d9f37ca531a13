"""Stage: get a dataset (synthetic, a local release folder, or TFDS) and prepare it as a TFDS dataset."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from stages.common import ensure_parent, parser, run
from visionflow import tracking
from visionflow.config import load_params, to_dict
from visionflow.data.sources import TFDS_NAMES, check_digest, local_dir, prepare


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--dataset", choices=sorted(TFDS_NAMES), required=True)
    p.add_argument("--out", type=Path, required=True, help="prepared dataset folder (a DVC output)")
    p.add_argument("--report", type=Path, required=True, help="data report JSON (a DVC metric)")
    p.add_argument("--download-dir", type=Path, default=Path("data/downloads"),
                   help="TFDS download area, kept outside the DVC output")
    args = p.parse_args()
    params = load_params(args.params)
    digest = check_digest(params, args.dataset)  # a missing folder or a stale digest fails before any work
    key = "pets_digest" if args.dataset == "pets" else "flowers_digest"
    if digest and getattr(params.data, key) is None:
        print(f"note: data.{key} is null, so DVC will not notice when files inside the folder change; "
              f"make run-real sets it (here: {digest})", file=sys.stderr)
    try:
        report = prepare(params, args.dataset, args.out, args.download_dir)
    except BaseException:  # DVC removed the output before the stage: leave no partial one (then re-raise)
        shutil.rmtree(args.out, ignore_errors=True)
        raise
    ensure_parent(args.report)
    report.write_json(args.report)
    with tracking.start_run(f"prepare_{args.dataset}", params) as mlrun:
        if params.data.source == "directory":
            mlrun.log_inputs({f"{args.dataset} release": local_dir(params, args.dataset)}, "source")
        mlrun.log_params({"dataset": args.dataset, "seed": params.seed, "data": to_dict(params.data)})
        summary = report.to_dict()
        mlrun.log_metrics({"images": summary["total_images"], "skipped": len(summary["skipped"]),
                           "fixed": len(summary["fixed"])})
        mlrun.log_artifact(args.report)
    print(f"prepared {args.dataset} ({params.data.source}) in {args.out}; report: {args.report}")


if __name__ == "__main__":
    run(main)
