"""Stage: decode, resize, normalise and split a prepared dataset into a tf.data cache (Dataset.save)."""

from __future__ import annotations

from pathlib import Path

from stages.common import parser, run
from visionflow import cache, tracking
from visionflow.config import load_params


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--dataset", choices=["pets", "flowers"], required=True)
    p.add_argument("--data", type=Path, required=True, help="prepared dataset folder (output of download)")
    p.add_argument("--out", type=Path, required=True, help="cache folder (a DVC output)")
    p.add_argument("--shards", type=int, default=4, help="files per split (no effect on results)")
    args = p.parse_args()
    params = load_params(args.params)
    from visionflow.data.tfds_source import open_prepared

    splits, info = cache.dataset_splits(open_prepared(args.data / "tfds"), args.dataset, params)
    with tracking.start_run(f"build_cache_{args.dataset}", params) as mlrun:
        mlrun.log_inputs({f"{args.dataset} prepared": args.data}, "preparation")
        written = cache.write_cache(splits, args.out, info, args.shards)
        mlrun.log_params({"image_size": info["image_size"], "offline_copies": params.augment.offline_copies,
                          "shards": args.shards})
        mlrun.log_metrics({f"{split}_examples": n for split, n in written["counts"].items()})
    print(f"cache {args.out}: " + ", ".join(f"{k}={v}" for k, v in written["counts"].items()))


if __name__ == "__main__":
    run(main)
