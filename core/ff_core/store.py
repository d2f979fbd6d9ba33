"""Result stores: one narrow interface, a local folder (file://) and S3 or any S3-compatible endpoint (s3://)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol

from ff_core.errors import StoreError
from ff_core.layout import s3_endpoint


_CHUNK = 8 << 20  # bytes per copy step when streaming files
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: files a store writes get the mode a plain open() would give (group-readable)
S3_RETRIES, S3_CONNECT_TIMEOUT, S3_READ_TIMEOUT = 3, 5, 10  # retries after the first try; seconds; see S3Store


class MissingKey(StoreError):
    """The key is not in the store."""


class Store(Protocol):
    """Keys are '/'-separated strings relative to the store's root; every write is all-or-nothing."""

    uri: str

    def put_json(self, key: str, value: Any) -> None: ...
    def get_json(self, key: str) -> Any: ...
    def put_file(self, key: str, path: str | Path) -> None: ...
    def get_file(self, key: str, path: str | Path) -> None: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str = "") -> list[str]: ...
    def delete(self, key: str) -> None: ...


def _decode(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StoreError(f"{where}: not valid JSON ({error}); delete it to let the experiment rerun") from None


class FileStore:
    """A folder; writes go to a temporary file in the same folder, then an atomic rename."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.uri = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if path != self.root and self.root not in path.parents:
            raise StoreError(f"key {key!r} escapes the store root {self.root}")
        return path

    def _write_atomic(self, key: str, write) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600: a store shared by a group must be readable
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_json(self, key: str, value: Any) -> None:
        data = json.dumps(value, indent=1, sort_keys=True).encode()
        self._write_atomic(key, lambda handle: handle.write(data))

    def get_json(self, key: str) -> Any:
        try:
            raw = self._path(key).read_bytes()
        except FileNotFoundError:
            raise MissingKey(f"{self.uri}/{key} does not exist") from None
        return _decode(raw, f"{self.uri}/{key}")

    def put_file(self, key: str, path: str | Path) -> None:
        # streamed: checkpoints can be many GB, never held in memory whole
        with open(path, "rb") as source:
            self._write_atomic(key, lambda handle: shutil.copyfileobj(source, handle, _CHUNK))

    def get_file(self, key: str, path: str | Path) -> None:
        try:
            shutil.copyfile(self._path(key), path)
        except FileNotFoundError:
            raise MissingKey(f"{self.uri}/{key} does not exist") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        keys = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Store:
    """A bucket and prefix on S3, MinIO or any endpoint boto3 speaks to; S3 PUTs are atomic by design."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None):
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        # "standard" retry mode backs off on throttling, 5xx and lost connections, the transient faults of object
        # stores; the timeouts bound an endpoint that never answers: 4 tries x 10 s + backoff, under a minute.
        config = Config(retries={"max_attempts": S3_RETRIES, "mode": "standard"}, connect_timeout=S3_CONNECT_TIMEOUT,
                        read_timeout=S3_READ_TIMEOUT)
        self._client = boto3.client("s3", endpoint_url=endpoint_url, config=config)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, key: str, fn, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.parsers import ResponseParserError

        try:
            return fn(Bucket=self.bucket, Key=self._key(key), **kwargs)
        except ResponseParserError:
            raise self._not_s3(f"{self.uri}/{key}", what) from None
        except (BotoCoreError, ClientError) as error:
            raise self._explain(error, f"{self.uri}/{key}", what) from None

    def _not_s3(self, where: str, what: str) -> StoreError:
        endpoint = self._client.meta.endpoint_url
        return StoreError(f"{where}: {what} failed: the endpoint {endpoint} answered, but not as S3 does (a web page? "
                          "the console port of MinIO instead of its API port?); check the endpoint URL")

    def _explain(self, error: Exception, where: str, what: str) -> StoreError:
        """A boto3 failure as what to change: credentials, bucket, endpoint; a missing key is MissingKey."""
        from botocore.exceptions import ClientError, NoCredentialsError

        if isinstance(error, NoCredentialsError):
            return StoreError(f"{self.uri}: no S3 credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                              "(or an AWS profile)")
        if isinstance(error, ClientError):
            code = error.response.get("Error", {}).get("Code", "")
            if code in ("404", "NotFound") and what != "head":
                # S3 names what is missing (NoSuchKey, NoSuchBucket) in every answer but a HEAD's; a bare 404
                # to a GET or a listing comes from something else (a web server, a proxy, a wrong path prefix)
                return self._not_s3(where, what)
            if code in ("NoSuchKey", "404", "NotFound"):
                return MissingKey(f"{where} does not exist")
            if code == "NoSuchBucket":
                return StoreError(f"{self.uri}: bucket {self.bucket!r} does not exist; create it first")
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return StoreError(f"{where}: {what} refused ({code}); check the S3 credentials and the bucket policy")
            return StoreError(f"{where}: {what} failed: {code} {error}")
        return StoreError(f"{where}: {what} failed: {error}; check the endpoint URL (--endpoint-url, "
                          "FF_S3_ENDPOINT_URL or spec.storage.endpointURL) and that the store is reachable from here")

    def put_json(self, key: str, value: Any) -> None:
        body = json.dumps(value, indent=1, sort_keys=True).encode()
        self._call("put", key, self._client.put_object, Body=body, ContentType="application/json")

    def get_json(self, key: str) -> Any:
        response = self._call("get", key, self._client.get_object)
        return _decode(response["Body"].read(), f"{self.uri}/{key}")

    def put_file(self, key: str, path: str | Path) -> None:
        with open(path, "rb") as body:
            self._call("put", key, self._client.put_object, Body=body)

    def get_file(self, key: str, path: str | Path) -> None:
        response = self._call("get", key, self._client.get_object)
        with open(path, "wb") as handle:
            shutil.copyfileobj(response["Body"], handle, _CHUNK)

    def exists(self, key: str) -> bool:
        try:
            self._call("head", key, self._client.head_object)
        except MissingKey:
            return False
        return True

    def list(self, prefix: str = "") -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.parsers import ResponseParserError

        start = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            )
            for page in pages:
                headers = page.get("ResponseMetadata", {}).get("HTTPHeaders", {})
                if "html" in headers.get("content-type", ""):  # a web page parses as an empty listing
                    raise self._not_s3(self.uri, "listing")
                keys.extend(item["Key"][start:] for item in page.get("Contents", []))
        except ResponseParserError:
            raise self._not_s3(self.uri, "listing") from None
        except (BotoCoreError, ClientError) as error:
            raise self._explain(error, self.uri, "listing") from None
        return sorted(keys)

    def delete(self, key: str) -> None:
        self._call("delete", key, self._client.delete_object)


def anchored(uri: str, folder: str | Path) -> str:
    """A relative file:// store of a sweep file (file://./results, file://results) anchored at the file's folder,
    so that the same command from another working directory finds the same results; others unchanged."""
    if not uri.startswith("file://") or uri[len("file://"):].startswith("/"):
        return uri
    return f"file://{(Path(folder) / uri[len('file://'):]).resolve()}"


def within(uri: str, folder: str) -> str:
    """The URI of `folder` inside the store at `uri` (a sweep's results folder under its storage URI)."""
    return f"{uri.rstrip('/')}/{folder}"


def open_store(uri: str, endpoint_url: str | None = None, spec_endpoint: str | None = None) -> Store:
    """A store for `file://path`, a plain path, or `s3://bucket/prefix`.

    The S3 endpoint (MinIO and others) follows ff_core.layout.s3_endpoint: `endpoint_url` (given on the
    command line), then $FF_S3_ENDPOINT_URL, then `spec_endpoint` (the sweep's spec.storage.endpointURL).
    """
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        if not bucket:
            raise StoreError(f"{uri!r}: name a bucket, as in s3://bucket/prefix")
        endpoint = s3_endpoint(endpoint_url, spec_endpoint)
        if endpoint is not None and "://" not in endpoint:
            raise StoreError(f"the S3 endpoint {endpoint!r} has no scheme; write http://{endpoint} or https://{endpoint}")
        return S3Store(bucket, prefix, endpoint)
    if "://" in uri and not uri.startswith("file://"):
        raise StoreError(f"{uri!r}: unsupported store; use file://path or s3://bucket/prefix")
    return FileStore(uri.removeprefix("file://") or ".")
