"""How long until a store on an S3 endpoint that never answers reports it (accepts TCP, sends nothing).

Usage: python benchmarks/s3_silent.py. Prints the seconds and the message; the target is under a minute.
"""

from __future__ import annotations

import os
import socket
import threading
import time

from ff_core.errors import StoreError
from ff_core.store import open_store


def main() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "x")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "y")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held = []
    threading.Thread(target=lambda: [held.append(server.accept()) for _ in iter(int, 1)], daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
    began = time.perf_counter()
    try:
        open_store("s3://bucket/sweeps", endpoint).list("unit/")
        print("unexpected: the listing succeeded")
    except StoreError as error:
        print(f"reported after {time.perf_counter() - began:.1f} s: {error}")


if __name__ == "__main__":
    main()
