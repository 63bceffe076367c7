"""Hypothesis strategies that mutate seed files: generic byte mutations and structure-aware ones.

Generic (:func:`mutated_bytes`): bit flips, interesting bytes and integers written over the data,
truncation, deleted, duplicated and random spans, and splices from another seed. Positions are drawn
from the first 512 bytes half of the time (headers are where parsers decide how much to allocate).

Structure-aware: corrupt DICOM elements (VR, length, value, tag: :func:`dicom_element_mutation`), NIfTI
header fields (:func:`nifti_header_mutation`), ``key: value`` header lines of NRRD and MetaImage
(:func:`text_header_mutation`), PLY/STL/OBJ counts and indices, JSON trees (:func:`json_mutation`) and
zip header fields (:func:`zip_field_mutation`). Every strategy draws a recipe and applies it, so a failing
example shrinks to a short recipe that Hypothesis prints.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable, Sequence

from hypothesis import strategies as st

INTERESTING_INTS = [0, 1, -1, 2, 3, 7, 8, 127, 128, 255, 256, 32767, -32768, 65535, 2**31 - 1, -(2**31),
                    2**32 - 1, 2**63 - 1, 10**6, 10**9]
INTERESTING_FLOATS = [0.0, -0.0, 1e-30, -1.0, 1e30, 3.4e38, float("nan"), float("inf"), float("-inf")]
INTERESTING_TEXT = ["", "0", "-1", "nan", "inf", "-inf", "1e999", "999999999999", "-2147483649", "\\", "\\\\\\",
                    "a\\b\\c", "1\\2", "1\\2\\3\\4\\5\\6\\7", "\x00", "é", "\ufeff", "../../etc/passwd", "/dev/zero",
                    "()", "(nan,nan,nan)", "none", "LIST", "LOCAL", "1 2", "2147483647 2147483647 2147483647",
                    "65535 65535 65535", "0 0 0", "-8 6 4"]


def _pos(draw: st.DrawFn, n: int) -> int:
    if n <= 0:
        return 0
    if n > 512 and draw(st.booleans()):
        return draw(st.integers(0, 511))
    return draw(st.integers(0, n - 1))


def _op_flip(draw: st.DrawFn, data: bytearray, pool: Sequence[bytes]) -> None:
    if data:
        data[_pos(draw, len(data))] ^= 1 << draw(st.integers(0, 7))


def _op_byte(draw: st.DrawFn, data: bytearray, pool: Sequence[bytes]) -> None:
    if data:
        data[_pos(draw, len(data))] = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80, 0x20, 0x5C]) | st.integers(0, 255))


def _op_int(draw: st.DrawFn, data: bytearray, pool: Sequence[bytes]) -> None:
    width = draw(st.sampled_from([2, 4, 8]))
    if len(data) < width:
        return
    value = draw(st.sampled_from(INTERESTING_INTS)) % (1 << (8 * width))
    order = draw(st.sampled_from(["little", "big"]))
    at = min(_pos(draw, len(data)), len(data) - width)
    data[at:at + width] = value.to_bytes(width, order)  # type: ignore[arg-type]


def _op_truncate(draw: st.DrawFn, data: bytearray, pool: Sequence[bytes]) -> None:
    del data[_pos(draw, len(data)):]


def _span(draw: st.DrawFn, n: int) -> tuple[int, int]:
    a = _pos(draw, n)
    return a, min(n, a + draw(st.integers(1, 256)))


def _op_delete(draw: st.DrawFn, data: bytearray, pool: Sequence[bytes]) -> None:
    a, b = _span(draw, len(data))
    del data[a:b]


def _op_duplicate(draw: st.DrawFn, data: bytearray, pool: Sequence[bytes]) -> None:
    a, b = _span(draw, len(data))
    span = bytes(data[a:b]) * draw(st.integers(1, 4))
    at = _pos(draw, len(data) + 1)
    data[at:at] = span


def _op_insert(draw: st.DrawFn, data: bytearray, pool: Sequence[bytes]) -> None:
    at = _pos(draw, len(data) + 1)
    data[at:at] = draw(st.binary(min_size=1, max_size=64))


def _op_splice(draw: st.DrawFn, data: bytearray, pool: Sequence[bytes]) -> None:
    other = draw(st.sampled_from(list(pool))) if pool else bytes(data)
    a, b = _span(draw, len(other))
    at = _pos(draw, len(data) + 1)
    if draw(st.booleans()):
        data[at:at + (b - a)] = other[a:b]  # overwrite
    else:
        data[at:at] = other[a:b]  # insert


_OPS: list[Callable[[st.DrawFn, bytearray, Sequence[bytes]], None]] = [
    _op_flip, _op_byte, _op_int, _op_truncate, _op_delete, _op_duplicate, _op_insert, _op_splice]


@st.composite
def mutated_bytes(draw: st.DrawFn, seed: bytes, pool: Sequence[bytes] = (), max_ops: int = 4) -> bytes:
    """``seed`` with 1..max_ops generic mutations; ``pool``: other seeds to splice from."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, max_ops))):
        draw(st.sampled_from(_OPS))(draw, data, pool)
    return bytes(data)


# --- DICOM -------------------------------------------------------------------------------------------------

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_VRS = [b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB", b"OW", b"PN",
        b"SH", b"SL", b"SQ", b"SS", b"ST", b"TM", b"UI", b"UL", b"UN", b"US", b"UT", b"ZZ", b"\x00\x00", b"  ",
        b"ds", b"\xff\xfe"]


def dicom_elements(data: bytes) -> list[tuple[int, int, int, int]]:
    """(tag offset, length offset, length field size, value length) of each top-level element of an
    explicit-VR little-endian Part 10 file, up to the pixel data."""
    out, at = [], 132
    while at + 8 <= len(data):
        group, elem = struct.unpack_from("<HH", data, at)
        vr = data[at + 4:at + 6]
        if vr in _LONG_VRS:
            if at + 12 > len(data):
                break
            length, len_at, size = struct.unpack_from("<I", data, at + 8)[0], at + 8, 4
        else:
            length, len_at, size = struct.unpack_from("<H", data, at + 6)[0], at + 6, 2
        out.append((at, len_at, size, length))
        if (group, elem) == (0x7FE0, 0x0010) or length == 0xFFFFFFFF:
            break
        at = len_at + size + length
    return out


@st.composite
def dicom_element_mutation(draw: st.DrawFn, seed: bytes) -> bytes:
    """One element of ``seed`` with a corrupt VR, length, value or tag (then maybe a generic mutation)."""
    data = bytearray(seed)
    elements = dicom_elements(seed)
    tag_at, len_at, size, length = draw(st.sampled_from(elements))
    value_at = len_at + size
    what = draw(st.sampled_from(["vr", "length", "value", "tag"]))
    if what == "vr":
        data[tag_at + 4:tag_at + 6] = draw(st.sampled_from(_VRS) | st.binary(min_size=2, max_size=2))
    elif what == "length":
        value = draw(st.sampled_from([0, 1, length + 1, length - 1, 0xFFFF, 0xFFFFFFFF, 2**31, 3]))
        data[len_at:len_at + size] = (value % (1 << (8 * size))).to_bytes(size, "little")
    elif what == "value":
        text = draw(st.sampled_from(INTERESTING_TEXT) | st.text(max_size=12)).encode("utf-8", "replace")
        new = text + b" " * (len(text) % 2)
        data[value_at:value_at + length] = new
        data[len_at:len_at + size] = len(new).to_bytes(size, "little")
    else:
        data[tag_at + 2:tag_at + 4] = draw(st.integers(0, 0xFFFF)).to_bytes(2, "little")
    out = bytes(data)
    return draw(mutated_bytes(out, max_ops=1)) if draw(st.booleans()) else out


# --- NIfTI -------------------------------------------------------------------------------------------------

#: NIfTI-1 header fields: name -> (offset, struct format).
NIFTI_FIELDS = {
    "sizeof_hdr": (0, "<i"), "dim0": (40, "<h"), "dim1": (42, "<h"), "dim2": (44, "<h"), "dim3": (46, "<h"),
    "dim4": (48, "<h"), "dim5": (50, "<h"), "datatype": (70, "<h"), "bitpix": (72, "<h"),
    "pixdim0": (76, "<f"), "pixdim1": (80, "<f"), "pixdim3": (88, "<f"), "vox_offset": (108, "<f"),
    "scl_slope": (112, "<f"), "scl_inter": (116, "<f"), "xyzt_units": (123, "<b"), "qform_code": (252, "<h"),
    "sform_code": (254, "<h"), "quatern_b": (256, "<f"), "quatern_d": (264, "<f"), "qoffset_x": (268, "<f"),
    "srow_x0": (280, "<f"), "srow_z3": (324, "<f"), "magic": (344, "4s"),
}
_NIFTI_DTYPES = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304, 3, 999]


@st.composite
def nifti_header_mutation(draw: st.DrawFn, seed: bytes) -> bytes:
    """1..3 NIfTI-1 header fields of ``seed`` set to interesting values (huge or negative dims, bad
    datatype, NaN scaling or orientation, wrong magic, vox_offset past the end)."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(sorted(NIFTI_FIELDS)))
        at, fmt = NIFTI_FIELDS[name]
        if fmt == "4s":
            value: object = draw(st.sampled_from([b"n+2\0", b"ni1\0", b"\0\0\0\0", b"n+1 "]))
        elif fmt == "<f":
            value = draw(st.sampled_from(INTERESTING_FLOATS + [352.0, 351.0, 1e9, 4e9]))
        elif name == "datatype":
            value = draw(st.sampled_from(_NIFTI_DTYPES))
        else:
            lo, hi = {"<i": (-(2**31), 2**31 - 1), "<h": (-32768, 32767), "<b": (-128, 127)}[fmt]
            value = draw(st.sampled_from([v for v in INTERESTING_INTS if lo <= v <= hi]) | st.integers(lo, hi))
        struct.pack_into(fmt, data, at, value)
    return bytes(data)


# --- text headers (NRRD, MetaImage), meshes, CSV -----------------------------------------------------------

@st.composite
def text_header_mutation(draw: st.DrawFn, seed: bytes, separator: bytes, values: Sequence[str] = ()) -> bytes:
    """One ``key<separator>value`` header line of ``seed`` given a new value, removed or duplicated."""
    end = seed.find(b"\n\n") if b"\n\n" in seed else len(seed)
    head = seed[:end].split(b"\n")
    keyed = [n for n, line in enumerate(head) if separator in line]
    n = draw(st.sampled_from(keyed))
    key = head[n].split(separator, 1)[0]
    what = draw(st.sampled_from(["value", "value", "drop", "duplicate"]))
    if what == "value":
        value = draw(st.sampled_from(list(values) + INTERESTING_TEXT) | st.text(max_size=20))
        head[n] = key + separator + value.encode("utf-8", "replace").replace(b"\n", b" ")
    elif what == "drop":
        del head[n]
    else:
        head.insert(n, head[n])
    return b"\n".join(head) + seed[end:]


NRRD_VALUES = ["int8", "uint8", "float", "double", "block", "int64", "gzip", "bzip2", "ascii", "hex", "raw",
               "text", "big", "little", "8 6", "8 6 4 2", "8 6 -4", "(1,0,0) (0,1,0)", "(1,0,0) (0,1,0) none",
               "(nan,0,0) (0,1,0) (0,0,1)", "(0,0,0) (0,0,0) (0,0,0)", "right-anterior-superior", "scanner-xyz",
               "seed.raw", "LIST", "%d 0 3 1", "4", "2", "-1", "(1,2)", "domain domain", "1 2 3"]
META_VALUES = ["MET_UCHAR", "MET_DOUBLE", "MET_FLOAT_ARRAY", "MET_NONE", "MET_OTHER", "True", "False", "LIST",
               "LOCAL", "seed.raw", "-1", "0", "2", "4", "8 6", "8 6 4 2", "1 0 0 0 1 0", "nan nan nan",
               "65535 65535 65535", "1.0 1.0", "Image", "100000", "3"]
MESH_VALUES_PLY = ["element vertex 2147483647", "element face 4294967295", "element vertex 0", "element face -1",
                   "property list uchar int vertex_indices", "property list uint int vertex_indices",
                   "property double x", "property int64 x", "format ascii 1.0", "format binary_big_endian 1.0",
                   "element vertex 8", "element face 12", "element edge 3"]


@st.composite
def ply_header_mutation(draw: st.DrawFn, seed: bytes) -> bytes:
    end = seed.index(b"end_header")
    head = seed[:end].split(b"\n")
    n = draw(st.integers(1, max(1, len(head) - 2)))
    head[n] = draw(st.sampled_from(MESH_VALUES_PLY)).encode()
    return b"\n".join(head) + seed[end:]


@st.composite
def stl_count_mutation(draw: st.DrawFn, seed: bytes) -> bytes:
    """Binary STL with a false triangle count (bytes 80-84)."""
    data = bytearray(seed)
    data[80:84] = (draw(st.sampled_from(INTERESTING_INTS)) % 2**32).to_bytes(4, "little")
    return bytes(data)


@st.composite
def obj_mutation(draw: st.DrawFn, seed: bytes) -> bytes:
    """An OBJ line replaced by a face with bad indices or a vertex with bad coordinates."""
    lines = seed.split(b"\n")
    n = draw(st.integers(0, len(lines) - 1))
    lines[n] = draw(st.sampled_from([
        b"f 1 2 99999", b"f 0 0 0", b"f -1 -2 -3", b"f 1 2", b"f 1/1/1 2//2 3", b"f 2147483648 1 2",
        b"v nan 0 0", b"v inf inf inf", b"v 1e309 0 0", b"v 1 2", b"vn 0 0", b"o", b"usemtl x", b"mtllib ../../x",
        b"f " + b" ".join(b"%d" % i for i in range(1, 200)), b"l 1 2", b"s off", b"g"]))
    return b"\n".join(lines)


@st.composite
def csv_mutation(draw: st.DrawFn, seed: bytes) -> bytes:
    """A cell, a line or the header of a CSV replaced by hostile text."""
    lines = seed.decode().split("\n")
    n = draw(st.integers(0, len(lines) - 1))
    hostile = st.sampled_from(['"', '"a,b', "id,id,scan", "id,scan", "id,scan,tibia,femur,bogus", "\x00", ",,,",
                               "case,/dev/zero,/dev/zero", "c,../../../x.nii.gz,a.ply", "c,scans/a.nii.gz,;;;",
                               "c,scans/a.nii.gz,a.nii.gz;b.stl;c.vtk", "\ufeffid,scan,tibia", "é,ü,ß"])
    lines[n] = draw(hostile | st.text(max_size=40))
    return "\n".join(lines).encode("utf-8", "surrogatepass")


# --- JSON --------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.sampled_from(INTERESTING_INTS) | st.sampled_from(INTERESTING_FLOATS)
    | st.sampled_from(INTERESTING_TEXT) | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


def _paths(tree: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def json_mutation(draw: st.DrawFn, seed: bytes) -> bytes:
    """1..3 subtrees of a JSON document replaced by hostile values, or deleted."""
    tree = json.loads(seed)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(tree)))
        if not path:
            tree = draw(json_values)
            continue
        parent = tree
        try:
            for key in path[:-1]:
                parent = parent[key]
            if draw(st.integers(0, 4)) == 0 and isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent[path[-1]] = draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue
    return json.dumps(tree).encode()


@st.composite
def safetensors_mutation(draw: st.DrawFn, seed: bytes) -> bytes:
    """A safetensors file with its header length or its JSON header (dtype, shape, offsets) corrupted."""
    (n,) = struct.unpack_from("<Q", seed, 0)
    header, body = seed[8:8 + n], seed[8 + n:]
    if draw(st.booleans()):
        length = draw(st.sampled_from([0, 1, n - 1, n + 1, 2**31, 2**63, 100_000_001]))
        return struct.pack("<Q", length % 2**64) + header + body
    new = draw(json_mutation(header))
    return struct.pack("<Q", len(new)) + new + body


# --- zip ---------------------------------------------------------------------------------------------------

#: (signature, field offset, width) of zip header fields: local header, central directory, end record.
_ZIP_FIELDS = [(b"PK\x03\x04", off, w) for off, w in [(6, 2), (8, 2), (18, 4), (22, 4), (26, 2), (28, 2)]] + \
    [(b"PK\x01\x02", off, w) for off, w in [(8, 2), (10, 2), (20, 4), (24, 4), (28, 2), (30, 2), (38, 4), (42, 4)]] + \
    [(b"PK\x05\x06", off, w) for off, w in [(8, 2), (10, 2), (12, 4), (16, 4), (20, 2)]]


@st.composite
def zip_field_mutation(draw: st.DrawFn, seed: bytes) -> bytes:
    """A size, count, offset, method or flag field of a zip header set to an interesting value."""
    data = bytearray(seed)
    sig, off, width = draw(st.sampled_from(_ZIP_FIELDS))
    starts = [m.start() for m in re.finditer(re.escape(sig), seed)]
    if not starts:
        return seed
    at = draw(st.sampled_from(starts)) + off
    value = draw(st.sampled_from(INTERESTING_INTS + [99, 12, 14, 0x41, 0x08])) % (1 << (8 * width))
    data[at:at + width] = value.to_bytes(width, "little")
    return bytes(data)
