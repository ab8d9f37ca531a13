"""Stage: get a dataset (synthetic, a local release folder, or TFDS) and prepare it as a TFDS dataset."""

from __future__ import annotations

from pathlib import Path

from stages.common import ensure_parent, parser, run
from visionflow import tracking
from visionflow.config import ConfigError, Params, load_params, to_dict

TFDS_NAMES = {"pets": "oxford_iiit_pet", "flowers": "tf_flowers"}


def _local_dir(params: Params, dataset: str) -> Path:
    key = "pets_dir" if dataset == "pets" else "flowers_dir"
    value = getattr(params.data, key)
    if value is None:
        raise ConfigError(f"data.{key}: required when data.source is 'directory' (set it to the release folder)")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ConfigError(f"data.{key}: {path} is not a folder (point it at the dataset in its original release layout)")
    return path


def prepare(params: Params, dataset: str, out: Path, download_dir: Path):
    """Fill `out/tfds` (and `out/raw` for synthetic data); return the data report."""
    from visionflow.data import flowers, pets, synthetic, tfds_source

    module = pets if dataset == "pets" else flowers
    source = params.data.source
    if source == "tfds":
        return tfds_source.prepare_tfds(TFDS_NAMES[dataset], out / "tfds", download_dir)
    if source == "directory":
        root = _local_dir(params, dataset)
    else:
        syn = params.data.synthetic
        print(f"generating synthetic {dataset} in {out / 'raw'} ...", flush=True)
        if dataset == "pets":
            root = synthetic.generate_pets(out / "raw", syn.pets_images, syn.pets_min_side, syn.pets_max_side, params.seed)
        else:
            root = synthetic.generate_flowers(out / "raw", syn.flowers_per_class, params.seed)
    return module.prepare_local(root, out / "tfds", max_image_side=params.data.max_image_side, source=source)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--dataset", choices=sorted(TFDS_NAMES), required=True)
    p.add_argument("--out", type=Path, required=True, help="prepared dataset folder (a DVC output)")
    p.add_argument("--report", type=Path, required=True, help="data report JSON (a DVC metric)")
    p.add_argument("--download-dir", type=Path, default=Path("data/downloads"),
                   help="TFDS download area, kept outside the DVC output")
    args = p.parse_args()
    params = load_params(args.params)
    if params.data.source == "directory":
        _local_dir(params, args.dataset)  # fail before any work
    report = prepare(params, args.dataset, args.out, args.download_dir)
    ensure_parent(args.report)
    report.write_json(args.report)
    with tracking.start_run("data", f"download_{args.dataset}") as mlrun:
        mlrun.log_params({"dataset": args.dataset, "seed": params.seed, "data": to_dict(params.data)})
        summary = report.to_dict()
        mlrun.log_metrics({"images": summary["total_images"], "skipped": len(summary["skipped"]),
                           "fixed": len(summary["fixed"])})
        mlrun.log_artifact(args.report)
    print(f"prepared {args.dataset} ({params.data.source}) in {args.out}; report: {args.report}")


if __name__ == "__main__":
    run(main)
