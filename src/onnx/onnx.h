/* Reading ONNX: protobuf (decoded by protobuf-c from Debian's onnx.proto) into the IR. */
#ifndef GC_ONNX_H
#define GC_ONNX_H

#include "../ir/ir.h"

/* Decodes a serialized ModelProto into m (which must be zeroed). base_dir resolves external
 * data (may be NULL: external data is then an error). The weights are copied: data may be freed
 * once this returns. */
gcam_status gc_onnx_load(gc_model *m, const uint8_t *data, size_t size, const char *base_dir);
/* The same from a file, mapped read-only: the weights that need no conversion point into the
 * mapping (or into external data files' mappings) where aligned for their type; the model owns the
 * mappings (regions). */
gcam_status gc_onnx_load_file(gc_model *m, const char *path, const char *base_dir);

/* Decodes a serialized TensorProto (the backend test data's input_0.pb) into a tensor whose data
 * is malloc'ed. what names it in messages. */
gcam_status gc_onnx_read_tensor_pb(gc_tensor *out, const uint8_t *data, size_t size,
                                   const char *what, gc_err *err);

/* Reads a whole file (at most max_bytes) into a malloc'ed buffer. */
gcam_status gc_read_file(const char *path, uint8_t **data, size_t *size, size_t max_bytes, gc_err *err);

#endif
