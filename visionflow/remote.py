"""Check the default DVC remote before `make push` / `make pull`, so a bad setup is one line, not a traceback.

    python -m visionflow.remote check

For an S3 (or S3-compatible) remote it asks the endpoint for the bucket with the credentials DVC would use
(the environment, or `dvc remote modify --local`), with a short timeout.
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


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args != ["check"]:
        sys.exit("usage: python -m visionflow.remote check")
    try:
        print(f"DVC remote '{check()}' is reachable")
    except ValueError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
