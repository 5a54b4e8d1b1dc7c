"""Read the metrics of an offline W&B run without uploading it.

An offline run (``wandb/offline-run-*/run-*.wandb``) is a LevelDB-style log
of protobuf records: a 7-byte header (``:W&B``, magic, version), then 32 KiB
blocks of chunks, each with a 7-byte header (CRC32, little-endian length,
type: 1 full, 2 first, 3 middle, 4 last). ``wandb sync`` uploads it; this
module lets tests and users look at what was logged, offline.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
FILE_HEADER = 7
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def iter_records(path: str | Path):
    """Yield the raw record payloads (bytes) of a ``.wandb`` file."""
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file (header {data[:4]!r})")
    pos = FILE_HEADER
    pending = b""
    while pos + CHUNK_HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < CHUNK_HEADER:  # block trailer padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + CHUNK_HEADER])
        if pos + CHUNK_HEADER + length > len(data):
            break  # the last chunk of a file still being written (W&B's writer runs in its own process)
        payload = data[pos + CHUNK_HEADER:pos + CHUNK_HEADER + length]
        pos += CHUNK_HEADER + length
        if kind == FULL:
            yield payload
        elif kind == FIRST:
            pending = payload
        elif kind == MIDDLE:
            pending += payload
        elif kind == LAST:
            yield pending + payload
            pending = b""
        elif length == 0 and kind == 0:
            break  # zero padding at the end of a file still being written
        else:
            raise ValueError(f"{path}: corrupt chunk of type {kind} at byte {pos}")


def read_history(run: str | Path) -> list[dict]:
    """Every ``history`` row logged to an offline run (a run folder or its ``.wandb`` file)."""
    from wandb.proto import wandb_internal_pb2 as pb

    run = Path(run)
    files = [run] if run.is_file() else sorted(run.glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no run-*.wandb file in {run}")
    rows = []
    for raw in iter_records(files[0]):
        rec = pb.Record()
        rec.ParseFromString(raw)
        if rec.WhichOneof("record_type") == "history":
            rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item})
    return rows


def read_config(run: str | Path) -> dict:
    """The run's configuration as logged (keys -> values)."""
    from wandb.proto import wandb_internal_pb2 as pb

    run = Path(run)
    files = [run] if run.is_file() else sorted(run.glob("run-*.wandb"))
    config: dict = {}
    for raw in iter_records(files[0]):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        items = rec.config.update if kind == "config" else rec.run.config.update if kind == "run" else []
        for i in items:
            config[i.key or "/".join(i.nested_key)] = json.loads(i.value_json)
    return config
