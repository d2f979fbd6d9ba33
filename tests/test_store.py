"""Stores: the same behaviour from a local folder and from S3 over HTTP (moto's server)."""

from __future__ import annotations

import pytest

from ff_core.errors import StoreError
from ff_core.store import FileStore, MissingKey, S3Store, open_store


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path):
    if request.param == "file":
        return open_store(f"file://{tmp_path}/results")
    endpoint = request.getfixturevalue("s3_endpoint")
    return open_store(f"s3://ff-test/{tmp_path.name}", endpoint_url=endpoint)


def test_round_trip(store, tmp_path):
    assert store.list() == []
    store.put_json("sw/e1/result.json", {"loss": 1.5, "curve": [1, 2]})
    assert store.exists("sw/e1/result.json")
    assert not store.exists("sw/e2/result.json")
    assert store.get_json("sw/e1/result.json") == {"loss": 1.5, "curve": [1, 2]}
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x00\x01" * 1000)
    store.put_file("sw/e1/checkpoint/latest.pt", blob)
    store.get_file("sw/e1/checkpoint/latest.pt", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == blob.read_bytes()
    assert store.list() == ["sw/e1/checkpoint/latest.pt", "sw/e1/result.json"]
    assert store.list("sw/e1/r") == ["sw/e1/result.json"]
    store.delete("sw/e1/checkpoint/latest.pt")
    assert store.list() == ["sw/e1/result.json"]


def test_missing_and_corrupt(store):
    with pytest.raises(MissingKey, match="does not exist"):
        store.get_json("nope.json")
    if isinstance(store, FileStore):
        store.root.mkdir(parents=True, exist_ok=True)
        (store.root / "bad.json").write_text("{truncated")
    else:
        store._client.put_object(Bucket=store.bucket, Key=store._key("bad.json"), Body=b"{truncated")
    with pytest.raises(StoreError, match="bad.json: not valid JSON"):
        store.get_json("bad.json")


def test_file_store_leaves_no_temporary_files(tmp_path):
    store = FileStore(tmp_path)
    for i in range(5):
        store.put_json("a/b.json", {"i": i})
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.json"]
    with pytest.raises(StoreError, match="escapes the store root"):
        store.put_json("../outside.json", {})


def test_s3_errors_say_what_to_do(s3_endpoint):
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist; create it first"):
        S3Store("no-such-bucket", "", s3_endpoint).put_json("x.json", {})
    with pytest.raises(StoreError, match="check the endpoint URL"):
        S3Store("ff-test", "", "http://127.0.0.1:9").put_json("x.json", {})


def test_uri_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert open_store("file://./res").root == tmp_path / "res"
    assert open_store("plain/dir").root == tmp_path / "plain" / "dir"
    with pytest.raises(StoreError, match="unsupported store"):
        open_store("gs://bucket/x")
    with pytest.raises(StoreError, match="name a bucket"):
        open_store("s3://")


def test_an_unreachable_s3_store_says_to_check_the_endpoint(monkeypatch):
    from ff_core.store import StoreError, open_store

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with pytest.raises(StoreError, match="check the endpoint URL .*reachable from here"):
        open_store("s3://bucket/sweeps", "http://127.0.0.1:9").list("unit/")


class _Flaky:
    """An HTTP proxy in front of the S3 endpoint that answers every other request 503 SlowDown: the
    transient faults object stores give under load, which the store must ride out by retrying."""

    def __init__(self, upstream: str):
        import http.client
        import http.server
        import threading
        import urllib.parse

        target = urllib.parse.urlsplit(upstream)
        self.faults = self.forwarded = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if (proxy.faults + proxy.forwarded) % 2 == 0:
                    proxy.faults += 1
                    error = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                proxy.forwarded += 1
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                conn.request(self.command, self.path, body=body, headers=dict(self.headers))
                reply = conn.getresponse()
                data = reply.read()
                self.send_response(reply.status)
                for key, value in reply.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_transient_s3_faults_are_retried(s3_endpoint, tmp_path):
    from ff_core.store import S3Store

    flaky = _Flaky(s3_endpoint)
    try:
        store = S3Store("ff-test", "flaky", flaky.url)
        store.put_json("unit/e1/result.json", {"loss": 1.5})
        (tmp_path / "ckpt").write_bytes(b"x" * 100_000)
        store.put_file("unit/e1/checkpoint.pt", tmp_path / "ckpt")
        store.get_file("unit/e1/checkpoint.pt", tmp_path / "back")
        assert store.get_json("unit/e1/result.json") == {"loss": 1.5}
        assert store.list("unit/") == ["unit/e1/checkpoint.pt", "unit/e1/result.json"]
        assert store.exists("unit/e1/result.json") and (tmp_path / "back").read_bytes() == b"x" * 100_000
        assert flaky.faults >= 6  # every operation met a 503 first and still succeeded
    finally:
        flaky.server.shutdown()


def test_an_s3_endpoint_that_never_answers_is_reported_within_a_minute():
    """The client's own bound: every attempt waits at most its connect or read timeout, and standard-mode
    backoff adds at most 2^k s before retry k (measured: see benchmarks/s3_silent.py)."""
    from ff_core.store import S3Store

    config = S3Store("bucket", "", "http://127.0.0.1:9")._client.meta.config
    attempts = config.retries["total_max_attempts"]
    worst = attempts * max(config.connect_timeout, config.read_timeout) + sum(2 ** k for k in range(attempts - 1))
    assert attempts >= 2 and worst < 60, worst


def test_files_a_store_writes_are_group_readable(tmp_path):
    import stat

    from ff_core.store import FileStore

    store = FileStore(tmp_path / "s")
    store.put_json("unit/e1/result.json", {"loss": 1.0})
    (tmp_path / "ckpt").write_bytes(b"x")
    store.put_file("unit/e1/checkpoint/latest.pt", tmp_path / "ckpt")
    for key in ("unit/e1/result.json", "unit/e1/checkpoint/latest.pt"):
        assert (tmp_path / "s" / key).stat().st_mode & stat.S_IRGRP, key
