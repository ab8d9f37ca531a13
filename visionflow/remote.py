"""Check the default DVC remote before `make push` / `make pull`, so a bad setup is one line, not a traceback;
and move the outputs of the run-cache's entries, which `dvc push/pull --run-cache` leave behind.

    python -m visionflow.remote check
    python -m visionflow.remote push-runs     # after `dvc push --run-cache`
    python -m visionflow.remote fetch-runs    # after `dvc pull --run-cache`

For an S3 (or S3-compatible) remote `check` asks the endpoint for the bucket with the credentials DVC would use
(the environment, or `dvc remote modify --local`), with a short timeout.

DVC 3 transfers only the run-cache's entry files; the outputs they name travel only when the workspace holds them
at `dvc push`, and a `cache: false` metric or plot (committed to the local cache for the entry alone) never does.
A stage is restored from an entry only when all its outputs are in the cache, so without these two steps a point
a teammate already ran would train again in another clone. Written here because DVC has no command for it.
"""

from __future__ import annotations

import sys
from urllib.parse import urlparse

SETUP = "dvc remote add -d team s3://BUCKET/visionflow (README: Working as a team)"


def default_remote() -> tuple[str, dict]:
    """(name, settings) of the repository's default DVC remote; ValueError when there is none."""
    from dvc.repo import Repo

    config = Repo().config
    name = config["core"].get("remote")
    if not name:
        raise ValueError(f"no default DVC remote is set: add one with `{SETUP}`")
    if name not in config["remote"]:
        raise ValueError(f"core.remote names '{name}', which is not a configured remote: `dvc remote list` shows "
                         f"them; add it with `{SETUP}`")
    return name, dict(config["remote"][name])


def bucket_problem(url: str, endpoint: str | None = None, region: str | None = None, key: str | None = None,
                   secret: str | None = None, timeout_s: float = 10.0) -> tuple[str, str] | None:
    """(kind, detail) of what stops reading the bucket of an s3:// url, or None; kind: credentials |
    endpoint | bucket | access."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=key, aws_secret_access_key=secret,
        config=Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 1}),
    )
    try:
        client.head_bucket(Bucket=urlparse(url).netloc)
    except NoCredentialsError:
        return "credentials", "no credentials"
    except EndpointConnectionError as exc:
        return "endpoint", str(exc)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        return ("bucket", code) if code in ("404", "NoSuchBucket") else ("access", code)
    except BotoCoreError as exc:
        return "endpoint", str(exc)
    return None


def check_s3(name: str, remote: dict) -> None:
    """Raise ValueError naming the remote and the fix when its bucket cannot be reached or read."""
    url, endpoint = remote["url"], remote.get("endpointurl")
    problem = bucket_problem(url, endpoint, remote.get("region"), remote.get("access_key_id"),
                             remote.get("secret_access_key"))
    if problem is None:
        return
    kind, detail = problem
    where = f"DVC remote '{name}' ({url}{', endpoint ' + endpoint if endpoint else ''})"
    fixes = {
        "credentials": "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                       f"`dvc remote modify --local {name} access_key_id ...` (and secret_access_key)",
        "endpoint": f"the endpoint does not answer ({detail}); check `dvc remote modify {name} endpointurl ...` "
                    "and that the store is running",
        "bucket": f"bucket '{urlparse(url).netloc}' does not exist: create it, or fix the url with "
                  f"`dvc remote modify {name} url s3://BUCKET/visionflow`",
        "access": f"access refused ({detail}): check the credentials and the bucket's permissions",
    }
    raise ValueError(f"{where}: {fixes[kind]}")


def check() -> str:
    """The default remote's name, after checking that it can be used."""
    name, remote = default_remote()
    if urlparse(remote["url"]).scheme == "s3":
        check_s3(name, remote)
    return name


def run_cache_objects(repo) -> set:
    """The hashes of every output that an entry of the local run-cache names."""
    from pathlib import Path

    runs = Path(repo.cache.legacy.path) / "runs"
    entries = [(path.parent.name, path.name) for path in runs.glob("*/*/*") if path.is_file()]
    return {hash_info for hashes in repo.stage_cache.get_used_objs(entries).values() for hash_info in hashes}


def _local_cache(repo, hash_info):
    return repo.cache.legacy if hash_info.name == "md5-dos2unix" else repo.cache.local


def push_runs() -> str:
    """Push to the default remote the outputs of the local run-cache's entries that this clone holds."""
    from dvc.repo import Repo

    repo = Repo()
    objs = {h for h in run_cache_objects(repo) if _local_cache(repo, h).exists(h.value)}
    result = repo.cloud.push(objs)
    if result.failed:
        raise ValueError(f"{len(result.failed)} run-cache outputs could not be pushed: run `make push` again")
    return f"run-cache outputs: {len(result.transferred)} pushed, {len(objs) - len(result.transferred)} already there"


def fetch_runs() -> str:
    """Fetch from the default remote the outputs of the local run-cache's entries that this clone lacks.

    DVC's transfer skips what the local cache holds, files of a folder output included (a folder's manifest
    may be here without all of its files), so every entry's outputs are handed to it.
    """
    from dvc.repo import Repo

    repo = Repo()
    result = repo.cloud.pull(run_cache_objects(repo))
    line = f"run-cache outputs: {len(result.transferred)} fetched"
    if result.failed:
        line += f"; {len(result.failed)} are on no remote, so the stages that made them would run again"
    return line


COMMANDS = {"check": lambda: f"DVC remote '{check()}' is reachable", "push-runs": push_runs, "fetch-runs": fetch_runs}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in COMMANDS:
        sys.exit(f"usage: python -m visionflow.remote {{{'|'.join(COMMANDS)}}}")
    try:
        print(COMMANDS[args[0]]())
    except ValueError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
