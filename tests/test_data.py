"""Data plugins on small files in the real formats: TinyStories text/jsonl/parquet, locally and on S3."""

from __future__ import annotations

import json

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from ff_plugins.text import TextData
from ff_plugins.textfiles import EOT, read_corpus

STORIES = [f"Once upon a time there was a little {w} who liked to play. The end." for w in
           ("cat", "dog", "girl named Lily", "boy named Tom", "bird")] * 40


def write_formats(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.txt").write_text("\n<|endoftext|>\n".join(STORIES) + "\n<|endoftext|>\n")
    (folder / "train.jsonl").write_text("\n".join(json.dumps({"text": s, "id": i}) for i, s in enumerate(STORIES)))
    pq.write_table(pa.table({"text": STORIES}), folder / "train.parquet")
    return folder


def test_every_format_reads_the_same_documents(tmp_path):
    folder = write_formats(tmp_path / "stories")
    expected = EOT.join(s.encode() for s in STORIES) + EOT
    for name in ("train.txt", "train.jsonl", "train.parquet"):
        assert read_corpus(folder / name) == expected, name
    assert read_corpus(folder) == expected * 3  # a folder: every supported file, in name order


def test_format_errors_name_the_place(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"body": "no text field"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: expected a JSON object with a 'text' field"):
        read_corpus(bad)
    pq.write_table(pa.table({"story": ["x"]}), tmp_path / "cols.parquet")
    with pytest.raises(ValueError, match=r"no column 'text' \(columns: story\)"):
        read_corpus(tmp_path / "cols.parquet")
    (tmp_path / "data.csv").write_text("text\nx\n")
    with pytest.raises(ValueError, match="unsupported suffix '.csv'"):
        read_corpus(tmp_path / "data.csv")


def test_batches_are_deterministic_resumable_and_sharded(tmp_path):
    data = TextData(str(write_formats(tmp_path / "s") / "train.txt"), eval_fraction=0.1)
    kwargs = dict(sequence_length=16, batch_size=8, seed=3)
    whole = data.batches("train", rank=0, world_size=1, **kwargs)
    steps = [next(whole) for _ in range(4)]
    x, y = steps[0]
    assert x.shape == y.shape == (8, 16) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one
    resumed = next(data.batches("train", rank=0, world_size=1, start=3, **kwargs))
    assert torch.equal(resumed[0], steps[3][0])
    halves = [next(data.batches("train", rank=r, world_size=2, **kwargs))[0] for r in (0, 1)]
    assert torch.equal(torch.cat(halves), x)  # two ranks together see exactly the global batch
    assert not torch.equal(next(data.batches("eval", rank=0, world_size=1, **kwargs))[0], x)


def test_eval_source_is_the_held_out_split(tmp_path):
    folder = write_formats(tmp_path / "s")
    (folder / "valid.txt").write_text("A short valid story.<|endoftext|>" * 30)
    data = TextData(str(folder / "train.parquet"), eval_source=str(folder / "valid.txt"))
    x, _ = next(data.batches("eval", sequence_length=8, batch_size=2, rank=0, world_size=1, seed=0))
    assert set(bytes(x.flatten().to(torch.uint8).tolist())) <= set(b"A short valid story.\x00")


def test_s3_object_and_prefix(tmp_path, s3_endpoint):
    folder = write_formats(tmp_path / "s")
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    for name in ("train.txt", "train.parquet"):
        client.upload_file(str(folder / name), "ff-test", f"tinystories/{name}")
    one = TextData("s3://ff-test/tinystories/train.parquet", endpoint_url=s3_endpoint, eval_fraction=0.1)
    local = TextData(str(folder / "train.parquet"), eval_fraction=0.1)
    assert np.array_equal(one._splits["train"], local._splits["train"])
    prefix = TextData("s3://ff-test/tinystories", endpoint_url=s3_endpoint, eval_fraction=0.1)
    assert len(prefix._splits["train"]) + len(prefix._splits["eval"]) == 2 * len(read_corpus(folder / "train.txt"))
    with pytest.raises(ValueError, match="no .txt, .jsonl, .parquet objects under this prefix"):
        TextData("s3://ff-test/nothing-here", endpoint_url=s3_endpoint)


def write_cifar(folder, per_file: int = 40, seed: int = 0):
    """Small files in the CIFAR-10 python format: dicts of b'data' (N x 3072 uint8) and b'labels'."""
    import pickle

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, per_file)
        # learnable: the label sets the mean brightness of the red plane
        data = rng.integers(0, 64, (per_file, 3072)).astype(np.uint8)
        data[:, :1024] += (labels[:, None] * 19).astype(np.uint8)
        with open(folder / name, "wb") as handle:
            pickle.dump({b"data": data, b"labels": labels.tolist(), b"batch_label": name.encode()}, handle)
    return folder


def test_cifar_batches_local_and_s3(tmp_path, s3_endpoint):
    from ff_plugins.cifar import CIFAR10

    folder = write_cifar(tmp_path / "cifar-10-batches-py")
    data = CIFAR10(str(folder))
    x, y = next(data.batches("train", sequence_length=1, batch_size=8, rank=0, world_size=1, seed=0))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (8,) and y.dtype == torch.int64
    assert len(data._splits["train"][0]) == 200 and len(data._splits["eval"][0]) == 40
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    for path in folder.iterdir():
        client.upload_file(str(path), "ff-test", f"cifar/{path.name}")
    remote = CIFAR10("s3://ff-test/cifar", endpoint_url=s3_endpoint)
    xr, _ = next(remote.batches("train", sequence_length=1, batch_size=8, rank=0, world_size=1, seed=0))
    assert torch.equal(x, xr)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "data_batch_1").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a CIFAR-10 python batch"):
        CIFAR10(str(tmp_path / "broken"))
    with pytest.raises(ValueError, match="none of data_batch_1"):
        CIFAR10(str(tmp_path))
