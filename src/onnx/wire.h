/* The protobuf wire format of a ModelProto, walked by hand only as far as the initialisers' raw_data,
 * so that protobuf-c never copies the weights: it unpacks a "skeleton" of the file in which each
 * initialiser's raw_data is replaced by a marker (an unknown field holding an index into a table of
 * the payloads' places in the file). The loader then points the tensors into the file's mapping. */
#ifndef GC_ONNX_WIRE_H
#define GC_ONNX_WIRE_H

#include "../common.h"

/* Field number of the marker in a TensorProto: unknown to onnx.proto (which ends well below), so
 * protobuf-c keeps it among the message's unknown fields. A marker already in the file is dropped. */
#define GC_WIRE_MARKER_FIELD 536870000u

/* One raw_data payload: its place in the original bytes. */
typedef struct gc_payload {
    size_t off, len;
} gc_payload;

typedef struct gc_skeleton {
    uint8_t *data;  /* the ModelProto without initialiser payloads (malloc'ed) */
    size_t size;
    gc_payload *pl; /* n_pl entries, indexed by the markers */
    size_t n_pl;
    size_t pl_bytes; /* sum of the payloads' lengths */
} gc_skeleton;

/* Builds the skeleton of the size bytes at buf. Every length, varint and tag is bounds-checked: a
 * malformed file gives GCAM_E_FORMAT with one line ("not a valid ONNX model (...)"). */
gcam_status gc_wire_skeleton(gc_skeleton *s, const uint8_t *buf, size_t size, gc_err *err);
void gc_wire_skeleton_free(gc_skeleton *s);

/* Decodes a varint of at most 10 bytes from p (n bytes available): its length, or 0 if truncated or
 * overlong. */
size_t gc_wire_varint(const uint8_t *p, size_t n, uint64_t *v);

#endif
