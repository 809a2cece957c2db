#!/usr/bin/python3
"""Fixtures for tests/test_npy.c, written by numpy itself.

  export_npy_fixtures.py write DIR   writes the .npy files test_npy.c reads (values below)
  export_npy_fixtures.py check DIR   checks the rt_*.npy files test_npy.c wrote with gc_npy_write
"""
import os
import sys

import numpy as np


def arange_f(shape, dtype, scale=0.5, off=-3.0):
    n = int(np.prod(shape))
    return (np.arange(n, dtype=np.float64) * scale + off).astype(dtype).reshape(shape)


def write(d):
    def save(name, a, **kw):
        np.save(os.path.join(d, name), a, **kw)

    save("f4.npy", arange_f((2, 3, 4), np.float32))
    save("f8.npy", np.array([1.5, -2.25, 1e300, -1e300, np.nan, 1e-50], dtype="<f8"))
    save("i8.npy", np.array([-(2 ** 63), 2 ** 63 - 1, 0, -1, 5], dtype="<i8"))
    save("i4.npy", np.array([-(2 ** 31), 2 ** 31 - 1, -7], dtype="<i4"))
    save("i2.npy", np.array([-32768, 32767, 3], dtype="<i2"))
    save("i1.npy", np.array([-128, 127, 0], dtype="i1"))
    save("u1.npy", np.array([0, 255, 17], dtype="u1"))
    save("u2.npy", np.array([0, 65535], dtype="<u2"))
    save("u4.npy", np.array([0, 4294967295], dtype="<u4"))
    save("b1.npy", np.array([[True, False], [True, True]]))
    save("fortran_f4.npy", np.asfortranarray(arange_f((2, 3, 4), np.float32)))
    save("fortran_i4.npy", np.asfortranarray(np.arange(6, dtype="<i4").reshape(3, 2) - 2))
    save("scalar.npy", np.float32(3.25))
    save("empty.npy", np.zeros((0, 3), dtype=np.float32))
    save("big_f4.npy", arange_f((100003,), np.float32, 1.0, 0.0))
    save("big_f8.npy", arange_f((10007,), np.float64, 0.25, 0.0))
    for v in (1, 2, 3):
        with open(os.path.join(d, "v%d.npy" % v), "wb") as f:
            np.lib.format.write_array(f, arange_f((2, 3), np.float32), version=(v, 0))
    save("be_f4.npy", np.arange(4).astype(">f4"))
    save("f2.npy", np.arange(4).astype("<f2"))
    save("u8.npy", np.arange(4).astype("<u8"))
    save("struct.npy", np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]))
    save("object.npy", np.array([1, "x"], dtype=object), allow_pickle=True)


def check(d):
    exp = {
        "rt_f32.npy": arange_f((2, 3, 4), np.float32, 0.25, -1.0),
        "rt_i64.npy": np.array([[-(2 ** 63), 2 ** 63 - 1, 7]], dtype=np.int64),
        "rt_bool.npy": np.array([True, False, False, True, True, False]).reshape(3, 1, 2),
        "rt_scalar.npy": np.float32(-0.5),
        "rt_1d.npy": arange_f((5,), np.float32, 1.0, 0.0),
        "rt_empty.npy": np.zeros((4, 0, 2), dtype=np.float32),
        "rt_big.npy": arange_f((70001,), np.float32, 1.0, 0.0),
    }
    bad = 0
    for name, e in exp.items():
        a = np.load(os.path.join(d, name))
        if a.dtype != e.dtype or a.shape != e.shape or not np.array_equal(a, e):
            print("numpy check: %s differs: %s %s vs expected %s %s" % (name, a.dtype, a.shape, e.dtype, e.shape))
            bad += 1
    print("numpy check: %d of %d files written by gc_npy_write read back correctly" % (len(exp) - bad, len(exp)))
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        sys.stderr.write(__doc__)
        sys.exit(2)
    if sys.argv[1] == "write":
        write(sys.argv[2])
        sys.exit(0)
    sys.exit(check(sys.argv[2]))
