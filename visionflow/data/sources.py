"""Source dispatch: the synthetic generator, a local release folder, or the TFDS download."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

from visionflow.config import ConfigError, Params
from visionflow.data.images import DataSourceError

TFDS_NAMES = {"pets": "oxford_iiit_pet", "flowers": "tf_flowers"}
# Download hosts of the TFDS 4.9.10 builders (oxford_iiit_pet: https, tf_flowers: http).
_HOSTS = {"oxford_iiit_pet": ("thor.robots.ox.ac.uk", 443), "tf_flowers": ("download.tensorflow.org", 80)}
_OFFLINE_ALTERNATIVE = {
    "oxford_iiit_pet": "data.pets_dir pointing at an extracted Oxford-IIIT Pet release (images/, annotations/)",
    "tf_flowers": "data.flowers_dir pointing at an extracted flower_photos/ folder",
}
# The `make run-real` variable that sets each folder, named in the error when it is missing.
_MAKE_VARIABLE = {"pets_dir": "PETS_DIR", "flowers_dir": "FLOWERS_DIR"}


def local_dir(params: Params, dataset: str) -> Path:
    """The release folder `data.source: directory` reads for `dataset`; ConfigError when unset or absent."""
    key = "pets_dir" if dataset == "pets" else "flowers_dir"
    value = getattr(params.data, key)
    if value is None:
        raise ConfigError(
            f"data.{key}: required when data.source is 'directory': set it to the release folder "
            f"(make run-real {_MAKE_VARIABLE[key]}=/path/to/it, or dvc exp run -S data.{key}=/path/to/it)"
        )
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ConfigError(f"data.{key}: {path} is not a folder (point it at the dataset in its original release layout)")
    return path


def folder_digest(root: Path) -> str:
    """md5 over every file under `root` (relative path and bytes, in sorted order): one value for its content."""
    digest = hashlib.md5()
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def check_digest(params: Params, dataset: str) -> str | None:
    """The digest of a `directory` source's folder; ConfigError when params hold another (a stale one)."""
    if params.data.source != "directory":
        return None
    key = "pets" if dataset == "pets" else "flowers"
    root = local_dir(params, dataset)
    actual, expected = folder_digest(root), getattr(params.data, f"{key}_digest")
    if expected is not None and expected != actual:
        raise ConfigError(
            f"data.{key}_digest: {root} changed since the digest {expected} was set (its files now hash to "
            f"{actual}): run make run-real again, which sets it, or set data.{key}_digest: {actual}"
        )
    return actual


def offline_error(name: str, why: str) -> DataSourceError:
    """The error for a TFDS download that cannot happen, naming the offline alternatives."""
    return DataSourceError(
        f"data.source: tfds: cannot download {name}: {why}. The network is unreachable (or the download failed); "
        f"offline, set `data.source: synthetic` (generated data), or `data.source: directory` with "
        f"{_OFFLINE_ALTERNATIVE[name]}"
    )


def probe(name: str, timeout_s: float) -> None:
    """Fail fast when the download host is unreachable (TFDS retries for minutes before it gives up)."""
    host, port = _HOSTS[name]
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise offline_error(name, f"{host}:{port} is unreachable ({exc})") from None


def prepare(params: Params, dataset: str, out: Path, download_dir: Path):
    """Fill `out/tfds` (and `out/raw` for synthetic data) from the configured source; return the data report."""
    from visionflow.data import flowers, pets, synthetic, tfds_source

    module = pets if dataset == "pets" else flowers
    source = params.data.source
    if source == "tfds":
        return tfds_source.prepare_tfds(TFDS_NAMES[dataset], out / "tfds", download_dir)
    if source == "directory":
        root = local_dir(params, dataset)
    else:
        syn = params.data.synthetic
        print(f"generating synthetic {dataset} in {out / 'raw'} ...", flush=True)
        if dataset == "pets":
            root = synthetic.generate_pets(out / "raw", syn.pets_images, syn.pets_min_side, syn.pets_max_side,
                                           params.seed, jpeg_quality=syn.jpeg_quality)
        else:
            root = synthetic.generate_flowers(out / "raw", syn.flowers_per_class, params.seed,
                                              size_range=(syn.flowers_min_side, syn.flowers_max_side),
                                              jpeg_quality=syn.jpeg_quality)
    return module.prepare_local(root, out / "tfds", max_image_side=params.data.max_image_side, source=source)
