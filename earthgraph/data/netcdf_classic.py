"""The size a classic netCDF file must have, from its header: truncated files are refused.

The netCDF-C library reads the missing tail of a truncated classic file
(CDF-1, CDF-2 "64-bit offset", CDF-5) as zeros and empty strings, without a
word. The header says where every variable's data starts and how long it is,
so the size the file must have is known before any data is read.
(Truncated netCDF-4/HDF5 files already fail to open.)

Header layout (the NetCDF Classic Format Specification):
``magic numrecs dim_list gatt_list var_list``, big-endian; sizes and counts are
4 bytes (8 in CDF-5), offsets 4 bytes in CDF-1 and 8 in CDF-2 and CDF-5;
names and attribute values are padded to 4 bytes.
"""

from __future__ import annotations

import os

MAGICS = {b"CDF\x01": 1, b"CDF\x02": 2, b"CDF\x05": 5}
_TYPE_BYTES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}
_STREAMING = (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)


class _Header:
    """A cursor over the header bytes."""

    def __init__(self, data: bytes, version: int):
        self.data, self.pos = data, 4
        self.count_bytes = 8 if version == 5 else 4
        self.offset_bytes = 4 if version == 1 else 8

    def _int(self, size: int) -> int:
        if self.pos + size > len(self.data):
            raise EOFError("the header is cut short")
        value = int.from_bytes(self.data[self.pos:self.pos + size], "big")
        self.pos += size
        return value

    def count(self) -> int:
        return self._int(self.count_bytes)

    def offset(self) -> int:
        return self._int(self.offset_bytes)

    def skip(self, size: int) -> None:
        self.pos += size + (-size) % 4

    def name(self) -> str:
        n = self.count()
        text = self.data[self.pos:self.pos + n].decode("utf-8", "replace")
        self.skip(n)
        return text

    def attributes(self) -> None:
        tag, n = self._int(4), self.count()
        for _ in range(n if tag else 0):
            self.name()
            nc_type = self._int(4)
            self.skip(self.count() * _TYPE_BYTES.get(nc_type, 1))


def classic_version(path: str | os.PathLike) -> int | None:
    """1, 2 or 5 for a classic netCDF file, None for anything else (netCDF-4/HDF5, CSV ...)."""
    with open(path, "rb") as f:
        return MAGICS.get(f.read(4))


def data_extents(path: str | os.PathLike) -> list[tuple[str, int]] | None:
    """(variable, byte where its data ends) of each variable of a classic netCDF file, from its
    header; None when it is not one. A file being streamed (numrecs unknown) has no end for
    its record variables. Raises EOFError when even the header is cut short."""
    version = classic_version(path)
    if version is None:
        return None
    size = 1 << 20  # headers are small: 1 MiB holds thousands of variables
    while True:
        with open(path, "rb") as f:
            data = f.read(size)
        try:
            return _extents(_Header(data, version))
        except EOFError:
            if len(data) < size:  # the whole file was read: its header is cut short
                raise
            size *= 8


def _extents(h: _Header) -> list[tuple[str, int]]:
    """:func:`data_extents` from a header's bytes."""
    numrecs = h.count()
    tag, n_dims = h._int(4), h.count()
    lengths = []
    for _ in range(n_dims if tag else 0):
        h.name()
        lengths.append(h.count())
    h.attributes()
    tag, n_vars = h._int(4), h.count()
    fixed, records = [], []
    for _ in range(n_vars if tag else 0):
        name = h.name()
        dims = [h.count() for _ in range(h.count())]
        h.attributes()
        nc_type = h._int(4)
        h.count()  # vsize: computed below instead (it saturates for variables over 4 GiB)
        begin = h.offset()
        record = bool(dims) and lengths[dims[0]] == 0  # a record variable: one slab per record
        n = _TYPE_BYTES.get(nc_type, 1)
        for d in dims[1:] if record else dims:
            n *= lengths[d]
        (records if record else fixed).append((name, begin, n))
    ends = [(name, begin + n) for name, begin, n in fixed]
    if records and numrecs not in _STREAMING and numrecs > 0:
        # A record holds each record variable's slab padded to 4 bytes, except when there is only one.
        record_size = records[0][2] if len(records) == 1 else sum(n + (-n) % 4 for _, _, n in records)
        ends += [(name, begin + (numrecs - 1) * record_size + n) for name, begin, n in records]
    return ends


def check_not_truncated(path: str | os.PathLike) -> None:
    """Raise EOFError naming the sizes and the first variable cut when a classic netCDF file is
    shorter than its header says."""
    have = os.path.getsize(path)
    cut = [(name, end) for name, end in data_extents(path) or [] if end > have]
    if cut:
        name, end = cut[0]
        raise EOFError(f"truncated: the file has {have} bytes, but its header puts the data of variable {name!r} "
                       f"up to byte {end}")

