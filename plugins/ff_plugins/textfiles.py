"""Text corpora in the TinyStories release formats, from a local path or an s3:// URI, as byte-level tokens.

Formats, by file suffix: `.txt` (stories separated by `<|endoftext|>`), `.jsonl` (one JSON object per line,
the text under `text_field`), `.parquet` (a `text_field` column; needs pyarrow). A folder or an s3:// prefix
means every such file in it, in name order. Documents are joined with byte 0 (end of text), so a
byte-level model sees where one story ends and the next begins.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

EOT = b"\x00"
SEPARATOR = "<|endoftext|>"
SUFFIXES = (".txt", ".jsonl", ".parquet")


def _documents(path: Path, text_field: str) -> list[str]:
    if path.suffix == ".txt":
        return path.read_text(encoding="utf-8").split(SEPARATOR)
    if path.suffix == ".jsonl":
        docs = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                docs.append(json.loads(line)[text_field])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ValueError(f"{path}:{number}: expected a JSON object with a {text_field!r} field") from None
        return docs
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(f"{path}: reading parquet needs pyarrow (pip install 'flops-fit[plugins]')") from None
    table = pq.read_table(path)
    if text_field not in table.column_names:
        raise ValueError(f"{path}: no column {text_field!r} (columns: {', '.join(table.column_names)})")
    return [str(t) for t in table.column(text_field).to_pylist() if t is not None]


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES)
        if not files:
            raise ValueError(f"{path}: no {', '.join(SUFFIXES)} files in this folder")
        return files
    if not path.is_file():
        raise ValueError(f"text source {str(path)!r} is not a file or folder; give a path, an s3:// URI or 'synthetic'")
    if path.suffix not in SUFFIXES:
        raise ValueError(f"{path}: unsupported suffix {path.suffix!r}; use one of {', '.join(SUFFIXES)}")
    return [path]


def read_corpus(path: str | Path, text_field: str = "text") -> bytes:
    """All documents under a local file or folder, UTF-8 encoded and joined by EOT."""
    parts = []
    for file in _files(Path(path).expanduser()):
        parts += [doc.strip().encode("utf-8") for doc in _documents(file, text_field) if doc.strip()]
    if not parts:
        raise ValueError(f"{path}: no text found")
    return EOT.join(parts) + EOT


def fetch_s3(uri: str, into: Path, endpoint_url: str | None = None) -> Path:
    """Download an s3:// object, or every supported object under an s3:// prefix, into a local folder.

    The endpoint follows ff_core.layout.s3_endpoint ($FF_S3_ENDPOINT_URL, then the plugin's endpoint_url).
    """
    from ff_core.store import open_store

    bucket_and_key = uri[len("s3://"):]
    bucket, _, key = bucket_and_key.partition("/")
    parent, _, name = key.rpartition("/")
    if name.endswith(SUFFIXES):  # one object
        store = open_store(f"s3://{bucket}/{parent}", spec_endpoint=endpoint_url)
        store.get_file(name, into / name)
        return into / name
    store = open_store(f"s3://{bucket}/{key}", spec_endpoint=endpoint_url)
    keys = [k for k in store.list() if k.endswith(SUFFIXES) and "/" not in k]
    if not keys:
        raise ValueError(f"{uri}: no {', '.join(SUFFIXES)} objects under this prefix")
    for k in keys:
        store.get_file(k, into / k)
    return into


def load_corpus(source: str, text_field: str = "text", endpoint_url: str | None = None) -> bytes:
    """Byte tokens of a local path or an s3:// URI (downloaded to a temporary folder, then read)."""
    if source.startswith("s3://"):
        with tempfile.TemporaryDirectory(prefix="ff-data-") as tmp:
            return read_corpus(fetch_s3(source, Path(tmp), endpoint_url), text_field)
    return read_corpus(source, text_field)
