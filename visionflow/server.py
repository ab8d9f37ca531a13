"""`make server`: a shared MLflow tracking server on PostgreSQL with artifacts on S3, checked before it starts.

Settings (environment variables; README: Working as a team):
  VISIONFLOW_DB_URI        postgresql://USER@HOST:PORT/DB  (the password goes in PGPASSWORD, never in the URI)
  VISIONFLOW_ARTIFACTS     s3://BUCKET/PREFIX              (served through the server: clients need no S3 keys)
  MLFLOW_S3_ENDPOINT_URL   the endpoint of an S3-compatible store (unset for AWS)
  AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY   the server's S3 credentials
  VISIONFLOW_SERVER_PORT   default 5000; the server binds 127.0.0.1 (put a proxy with TLS and auth in front)
"""

from __future__ import annotations

import os
import sys
from urllib.parse import urlparse

from visionflow.remote import bucket_problem


def settings() -> dict[str, str]:
    """The server settings from the environment; ValueError naming a missing or malformed one."""
    db, artifacts = os.environ.get("VISIONFLOW_DB_URI", ""), os.environ.get("VISIONFLOW_ARTIFACTS", "")
    if not db.startswith(("postgresql://", "postgresql+psycopg2://")):
        raise ValueError(f"VISIONFLOW_DB_URI={db!r}: set it to postgresql://USER@HOST:PORT/DB (password in PGPASSWORD)")
    if urlparse(db).password:
        raise ValueError("VISIONFLOW_DB_URI holds a password: move it to PGPASSWORD, so it never appears in "
                         "process lists or logs")
    if not artifacts.startswith("s3://"):
        raise ValueError(f"VISIONFLOW_ARTIFACTS={artifacts!r}: set it to s3://BUCKET/PREFIX")
    return {"db": db, "artifacts": artifacts, "port": os.environ.get("VISIONFLOW_SERVER_PORT", "5000")}


def check(config: dict[str, str], timeout_s: int = 5) -> None:
    """PostgreSQL and the artifact bucket answer; ValueError naming which one does not, and the fix."""
    import psycopg2

    try:
        psycopg2.connect(config["db"].replace("postgresql+psycopg2://", "postgresql://"), connect_timeout=timeout_s).close()
    except psycopg2.Error as exc:
        reason = str(exc).strip().splitlines()[0]
        raise ValueError(f"VISIONFLOW_DB_URI={config['db']}: PostgreSQL does not accept the connection ({reason}); "
                         "start it, create the database, or fix the URI (password in PGPASSWORD)") from None
    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    problem = bucket_problem(config["artifacts"], endpoint, timeout_s=timeout_s)
    if problem:
        where = f"VISIONFLOW_ARTIFACTS={config['artifacts']}" + (f" (MLFLOW_S3_ENDPOINT_URL={endpoint})" if endpoint else "")
        raise ValueError(f"{where}: the artifact store cannot be used ({problem[0]}: {problem[1]}); check that it "
                         "runs, that the bucket exists and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY")


def command(config: dict[str, str]) -> list[str]:
    """The `mlflow server` argv for these settings."""
    return [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", config["port"],
            # psycopg2 explicitly: MLflow's SQLAlchemy would pick the psycopg 3 driver for plain postgresql://
            "--backend-store-uri", config["db"].replace("postgresql://", "postgresql+psycopg2://", 1),
            "--artifacts-destination", config["artifacts"], "--serve-artifacts"]


def main() -> None:
    """Check PostgreSQL and S3, then become the MLflow server (no half-started server when either is down)."""
    try:
        config = settings()
        check(config)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    print(f"MLflow server on http://127.0.0.1:{config['port']} (store {config['db']}, artifacts "
          f"{config['artifacts']}); clients: export MLFLOW_TRACKING_URI=http://127.0.0.1:{config['port']}", flush=True)
    os.execv(sys.executable, command(config))


if __name__ == "__main__":
    main()
