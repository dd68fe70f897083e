"""The snapshot file: a gzip'd tar holding ``manifest.json`` then ``state.msgpack``.

``manifest.json`` (UTF-8 JSON, ``Manifest``): format version, cluster name, Raft index and term
the state was taken at, the members, creation time (UTC, ISO 8601), raftreg version, counts and
the SHA-256 of ``state.msgpack``. ``state.msgpack`` is the restorable part of the state in the
state machine's own encoding (``raftreg.backup.payload``). ACL token secrets are never in it:
the state stores only their SHA-256 (``raftreg.state.acl``).

``read_archive`` checks everything a restore needs before anything changes: the tar and gzip
structure (a truncated file fails here), the format version, the members' names, and the
payload's length and SHA-256. ``ArchiveError`` (a ``ValueError``) says what is wrong.
Pure apart from the file object it is given: no clock (the caller stamps ``created``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zlib
from typing import IO

import msgspec

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
STATE_NAME = "state.msgpack"
# Whole archives larger than this are refused (the uncompressed payload bound as well).
MAX_PAYLOAD_BYTES = 1024 * 1024 * 1024


class ArchiveError(ValueError):
    """The file is not a snapshot this build can restore; the message says why."""


class Member(msgspec.Struct, frozen=True):
    name: str
    raft: str
    http: str
    role: str = "voter"


class Counts(msgspec.Struct, frozen=True):
    services: int = 0
    instances: int = 0
    keys: int = 0
    sessions: int = 0
    tokens: int = 0
    policies: int = 0


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """What ``raftreg snapshot inspect`` prints; ``sha256``/``size`` describe ``state.msgpack``."""

    format_version: int
    cluster: str
    index: int
    term: int
    members: list[Member]
    created: str
    raftreg_version: str
    counts: Counts
    sha256: str
    size: int


_manifest_decoder = msgspec.json.Decoder(Manifest)


def sha256_hex(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def write_archive(out: IO[bytes], manifest: Manifest, payload: bytes, *, compresslevel: int = 6) -> None:
    """Write the archive to ``out`` (streamed through gzip: the only whole copy is ``payload``).
    ``manifest.sha256`` and ``size`` must describe ``payload``."""
    if manifest.sha256 != sha256_hex(payload) or manifest.size != len(payload):
        raise ValueError("the manifest does not describe this payload")
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=compresslevel, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((MANIFEST_NAME, msgspec.json.encode(manifest)), (STATE_NAME, payload)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))


def read_manifest(data: bytes | IO[bytes]) -> Manifest:
    """The manifest alone (``inspect`` without verification)."""
    return _read(data, with_payload=False)[0]


def read_archive(data: bytes | IO[bytes]) -> tuple[Manifest, bytes]:
    """The manifest and the verified payload; ``ArchiveError`` for anything wrong."""
    manifest, payload = _read(data, with_payload=True)
    assert payload is not None
    return manifest, payload


def _read(data: bytes | IO[bytes], *, with_payload: bool) -> tuple[Manifest, bytes | None]:
    source = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    try:
        with gzip.GzipFile(fileobj=source, mode="rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            manifest = _manifest(tar)
            if not with_payload:
                return manifest, None
            payload = _payload(tar, manifest)
            if tar.next() is not None:
                raise ArchiveError(f"the archive holds more than {MANIFEST_NAME} and {STATE_NAME}")
            while gz.read(1 << 20):  # to the end of the gzip stream: its CRC and length are checked there
                pass
    except ArchiveError:
        raise
    except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:
        raise ArchiveError(f"not a readable snapshot archive (gzip'd tar), or truncated: {exc}") from None
    return manifest, payload


def _manifest(tar: tarfile.TarFile) -> Manifest:
    member = tar.next()
    if member is None or member.name != MANIFEST_NAME or not member.isfile():
        raise ArchiveError(f"the archive does not start with {MANIFEST_NAME}")
    raw = _member_bytes(tar, member, 1024 * 1024)
    try:
        manifest = _manifest_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise ArchiveError(f"{MANIFEST_NAME} is not valid: {exc}") from None
    if manifest.format_version != FORMAT_VERSION:
        raise ArchiveError(f"format_version {manifest.format_version}: this build reads {FORMAT_VERSION}")
    if not 0 <= manifest.size <= MAX_PAYLOAD_BYTES:
        raise ArchiveError(f"size {manifest.size} is out of range (at most {MAX_PAYLOAD_BYTES})")
    return manifest


def _payload(tar: tarfile.TarFile, manifest: Manifest) -> bytes:
    member = tar.next()
    if member is None or member.name != STATE_NAME or not member.isfile():
        raise ArchiveError(f"the archive holds no {STATE_NAME} after {MANIFEST_NAME}")
    if member.size != manifest.size:
        raise ArchiveError(f"{STATE_NAME} is {member.size} bytes, the manifest says {manifest.size}")
    payload = _member_bytes(tar, member, MAX_PAYLOAD_BYTES)
    if len(payload) != manifest.size:
        raise ArchiveError(f"{STATE_NAME} is truncated ({len(payload)} of {manifest.size} bytes)")
    digest = sha256_hex(payload)
    if digest != manifest.sha256:
        raise ArchiveError(f"{STATE_NAME} does not match the manifest's sha256 (got {digest}): the file is corrupted")
    return payload


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    if member.size > limit:
        raise ArchiveError(f"{member.name} is larger than {limit} bytes")
    stream = tar.extractfile(member)
    if stream is None:
        raise ArchiveError(f"{member.name} is not a regular file")
    return stream.read()
