"""Storage backends for raw files, artifacts and score exports: a local directory (default) or S3.

Selected by one setting, `CLV_STORAGE_URL`: unset or a path = local directory; `s3://bucket/prefix` = S3
through boto3, credentials and region from the environment (AWS_* variables, profile or instance role;
`AWS_ENDPOINT_URL` points it at an S3-compatible store). S3 paths are listed with glob patterns (`*`,
`?`, `[..]`) matched on the key and copied to a local cache before DuckDB reads them.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

STORAGE_URL_ENV = "CLV_STORAGE_URL"
_WILDCARDS = re.compile(r"[*?\[]")


def is_s3(url: str | Path) -> bool:
    return str(url).startswith("s3://")


def split_s3(url: str) -> tuple[str, str]:
    """('bucket', 'key/prefix') of an s3:// URL."""
    if not is_s3(url):
        raise ValueError(f"not an s3:// URL: {url}")
    bucket, _, key = url[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"s3 URL without a bucket: {url}")
    return bucket, key


def s3_client():
    import boto3

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def list_s3(url_pattern: str, client=None) -> list[str]:
    """s3:// URLs of the objects whose key matches the glob pattern, sorted. Lists only below the
    pattern's fixed prefix."""
    bucket, pattern = split_s3(url_pattern)
    client = client or s3_client()
    match = _WILDCARDS.search(pattern)
    prefix = pattern[: match.start()] if match else pattern
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [item["Key"] for item in page.get("Contents", [])]
    return [f"s3://{bucket}/{key}" for key in sorted(keys) if fnmatch.fnmatchcase(key, pattern)]


def download(url: str, cache_dir: Path, client=None) -> Path:
    """Copy one S3 object into the cache (same bucket/key layout); reuses the copy while the object's ETag
    is the one it was downloaded with (a corrected object of the same size is downloaded again). A key
    that would lead outside the cache (`../`) is refused."""
    bucket, key = split_s3(url)
    client = client or s3_client()
    root = Path(cache_dir).resolve()
    target = (root / bucket / key).resolve()
    if not target.is_relative_to(root) or target == root:
        raise ValueError(f"{url}: the object key leads outside the download cache {root}; not downloaded")
    etag = client.head_object(Bucket=bucket, Key=key)["ETag"]
    stamp = target.with_name(target.name + ".etag")
    if not (target.exists() and stamp.exists() and stamp.read_text() == etag):
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        client.download_file(bucket, key, str(partial))
        partial.replace(target)
        stamp.write_text(etag)
    return target


@dataclass(frozen=True)
class Storage:
    """Where runs put files other systems pick up (score exports, reports, model artifacts)."""

    url: str

    @classmethod
    def from_env(cls, default: Path) -> "Storage":
        return cls(os.environ.get(STORAGE_URL_ENV) or str(default))

    @property
    def remote(self) -> bool:
        return is_s3(self.url)

    def location(self, relative: str) -> str:
        return f"{self.url.rstrip('/')}/{relative}"

    def put(self, local: Path, relative: str, client=None) -> str:
        """Copy a local file to `relative` under the storage root; returns its URL or path."""
        destination = self.location(relative)
        if self.remote:
            bucket, key = split_s3(destination)
            (client or s3_client()).upload_file(str(local), bucket, key)
        else:
            Path(destination).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, destination)
        return destination

    def get(self, relative: str, local: Path, client=None) -> Path:
        source = self.location(relative)
        local.parent.mkdir(parents=True, exist_ok=True)
        if self.remote:
            bucket, key = split_s3(source)
            (client or s3_client()).download_file(bucket, key, str(local))
        else:
            shutil.copyfile(source, local)
        return local
