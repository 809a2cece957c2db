/* NumPy .npy files (format versions 1.0, 2.0 and 3.0): reading and writing tensors.
 *
 * Read dtypes: <f4 (float32), <f8 (rounded to float32; beyond float range -> +-inf),
 * <i8 <i4 <i2 |i1 <u4 <u2 |u1 (widened to int64), |b1 (bool, one byte 0/1).
 * fortran_order True is accepted: the data is transposed to C order on read.
 * Big-endian data ('>' byte order on a multi-byte type) is refused (GCAM_E_UNSUPPORTED).
 * Every file is untrusted: magic, header length, the header dict (parsed as a Python literal),
 * shape, the element/byte counts (overflow-checked) and the exact data length are validated, and
 * every error message starts with the file name. */
#ifndef GC_NPY_H
#define GC_NPY_H

#include "../ir/ir.h"

/* Largest header accepted (the dict text), well above anything numpy writes for plain dtypes. */
#define GC_NPY_MAX_HEADER (1u << 20)

/* Reads a .npy file. On success out->data is malloc'ed (free() it; never NULL, even for an empty
 * array). On failure out->data is NULL and err says why. */
gcam_status gc_npy_read(const char *path, gc_tensor *out, gc_err *err);
/* The same from a buffer; name is used in messages. */
gcam_status gc_npy_read_memory(const void *buf, size_t size, const char *name, gc_tensor *out,
                               gc_err *err);

/* Writes t (GC_F32 as <f4, GC_I64 as <i8, GC_BOOL as |b1) in format 1.0. Writes to
 * "path.tmp-XXXXXX" first and rename()s it over path, so a failed write leaves neither a
 * partial file nor the temporary behind. */
gcam_status gc_npy_write(const char *path, const gc_tensor *t, gc_err *err);
/* The bytes gc_npy_write would write, malloc'd. */
gcam_status gc_npy_encode(const gc_tensor *t, uint8_t **data, size_t *size, gc_err *err);

#endif
