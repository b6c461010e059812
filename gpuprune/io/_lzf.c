/*
 * gpuprune.io._lzf: LZF blocks (the format of HDF5's filter 32000): decode straight into a
 * caller's buffer, and encode, both with the GIL released.
 *
 * Snudda writes its hyper voxel files with that filter.  Decoding the raw chunks here is
 * several times faster than reading the same rows through h5py, and reading is most of
 * the CPU path's time.  The module is optional: without it (no C compiler at install)
 * gpuprune reads through h5py and gets the same bytes.
 *
 * An LZF block is a sequence of tokens, each starting with a control byte c:
 *   c < 32   a literal run: the next c + 1 input bytes are copied to the output;
 *   c >= 32  a back reference: length L = c >> 5 (7 means "add the next byte"), then
 *            offset = ((c & 31) << 8 | next byte) + 1 bytes back from the output
 *            position; L + 2 bytes are copied from there (the ranges may overlap, which
 *            repeats a pattern).
 * Every read and write is checked against the buffers' ends, so corrupt input gives an
 * error, never a write outside the destination.
 *
 * The encoder is a greedy one: a hash of the next three bytes finds the last position
 * with the same hash; a match of at least three bytes within 8192 bytes back becomes a
 * back reference (up to 264 bytes), everything else literal runs of up to 32 bytes.
 * Any LZF decoder (h5py's filter included) reads its output; it is deterministic, so
 * the same rows always give the same bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define HASH_BITS 14
#define MAX_OFFSET 8192
#define MAX_MATCH 264 /* (7 + 255) + 2 */
#define MAX_LITERAL 32

/* Returns the number of bytes written, or -1 for corrupt input, -2 when the output does
 * not fit in out_len bytes. */
static Py_ssize_t
lzf_decode(const unsigned char *src, Py_ssize_t src_len, unsigned char *out, Py_ssize_t out_len)
{
    const unsigned char *ip = src;
    const unsigned char *const ip_end = src + src_len;
    unsigned char *op = out;
    unsigned char *const op_end = out + out_len;

    while (ip < ip_end) {
        unsigned int ctrl = *ip++;
        if (ctrl < 32) {
            Py_ssize_t run = (Py_ssize_t)ctrl + 1;
            if (ip_end - ip < run)
                return -1;
            if (op_end - op < run)
                return -2;
            memcpy(op, ip, (size_t)run);
            op += run;
            ip += run;
        } else {
            Py_ssize_t len = ctrl >> 5;
            Py_ssize_t back = (Py_ssize_t)(ctrl & 31) << 8;
            if (len == 7) {
                if (ip >= ip_end)
                    return -1;
                len += *ip++;
            }
            if (ip >= ip_end)
                return -1;
            back += (Py_ssize_t)*ip++ + 1;
            len += 2;
            if (back > op - out)
                return -1;
            if (op_end - op < len)
                return -2;
            {
                const unsigned char *ref = op - back;
                if (back >= len) {
                    memcpy(op, ref, (size_t)len);
                    op += len;
                } else {
                    /* overlapping copy: byte by byte repeats the last `back` bytes */
                    while (len--)
                        *op++ = *ref++;
                }
            }
        }
    }
    return op - out;
}

static inline uint32_t
hash3(const unsigned char *p)
{
    uint32_t v = ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
    return (v * 2654435761u) >> (32 - HASH_BITS);
}

/* Returns the number of bytes written, or 0 when the encoding would not be shorter than
 * out_len bytes (the caller then stores the input as it is).  ``table`` holds 1 << HASH_BITS
 * zeroed entries: position + 1 of the last sequence seen with each hash, 0 for none. */
static Py_ssize_t
lzf_encode(const unsigned char *src, Py_ssize_t n, unsigned char *out, Py_ssize_t out_len, uint32_t *table)
{
    Py_ssize_t ip = 0, op = 0, ctrl = -1, lit = 0;

    while (ip < n) {
        Py_ssize_t len = 0, ref = -1;
        if (ip + 2 < n) {
            uint32_t h = hash3(src + ip);
            ref = (Py_ssize_t)table[h] - 1;
            table[h] = (uint32_t)(ip + 1);
            if (ref >= 0 && ip - ref <= MAX_OFFSET && src[ref] == src[ip] && src[ref + 1] == src[ip + 1]
                    && src[ref + 2] == src[ip + 2]) {
                Py_ssize_t max = n - ip < MAX_MATCH ? n - ip : MAX_MATCH;
                len = 3;
                while (len < max && src[ref + len] == src[ip + len])
                    len++;
            }
        }
        if (len) {
            Py_ssize_t off = ip - ref - 1, l = len - 2, k;
            if (lit) { /* close the open literal run */
                out[ctrl] = (unsigned char)(lit - 1);
                lit = 0;
            }
            if (op + 3 > out_len)
                return 0;
            if (l < 7) {
                out[op++] = (unsigned char)((l << 5) | (off >> 8));
            } else {
                out[op++] = (unsigned char)((7 << 5) | (off >> 8));
                out[op++] = (unsigned char)(l - 7);
            }
            out[op++] = (unsigned char)(off & 0xff);
            for (k = ip + 1; k < ip + len && k + 2 < n; k++) /* remember the positions inside the match */
                table[hash3(src + k)] = (uint32_t)(k + 1);
            ip += len;
        } else {
            if (lit == 0) { /* open a literal run: its control byte first */
                if (op + 2 > out_len)
                    return 0;
                ctrl = op++;
            } else if (op + 1 > out_len) {
                return 0;
            }
            out[op++] = src[ip++];
            if (++lit == MAX_LITERAL) {
                out[ctrl] = (unsigned char)(lit - 1);
                lit = 0;
            }
        }
    }
    if (lit)
        out[ctrl] = (unsigned char)(lit - 1);
    return op;
}

PyDoc_STRVAR(compress_doc,
"compress(src) -> bytes or None\n\n"
"Encode the bytes-like ``src`` as one LZF block.  Returns None when the block would not\n"
"be shorter than ``src`` (store it uncompressed then, as HDF5 does for an optional filter).");

static PyObject *
compress(PyObject *self, PyObject *args)
{
    Py_buffer src;
    PyObject *out;
    Py_ssize_t n;
    uint32_t *table;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*:compress", &src))
        return NULL;
    if (src.len == 0 || src.len > (Py_ssize_t)UINT32_MAX - 1) {
        PyBuffer_Release(&src);
        Py_RETURN_NONE;
    }
    out = PyBytes_FromStringAndSize(NULL, src.len - 1);
    table = PyMem_RawCalloc((size_t)1 << HASH_BITS, sizeof(uint32_t)); /* on the heap: threads' stacks may be small */
    if (out == NULL || table == NULL) {
        Py_XDECREF(out);
        PyMem_RawFree(table);
        PyBuffer_Release(&src);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    n = lzf_encode((const unsigned char *)src.buf, src.len, (unsigned char *)PyBytes_AS_STRING(out), src.len - 1,
                   table);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(table);
    PyBuffer_Release(&src);
    if (n == 0) {
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    if (_PyBytes_Resize(&out, n) < 0)
        return NULL;
    return out;
}

PyDoc_STRVAR(decompress_into_doc,
"decompress_into(src, dst) -> int\n\n"
"Decode the LZF block ``src`` (a bytes-like object) into the writable, C-contiguous\n"
"buffer ``dst`` and return the number of bytes written.  Raises ValueError when the\n"
"block is corrupt or decodes to more than len(dst) bytes.");

static PyObject *
decompress_into(PyObject *self, PyObject *args)
{
    Py_buffer src, dst;
    Py_ssize_t n;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*w*:decompress_into", &src, &dst))
        return NULL;
    if (!PyBuffer_IsContiguous(&dst, 'C')) {
        PyBuffer_Release(&src);
        PyBuffer_Release(&dst);
        PyErr_SetString(PyExc_ValueError, "decompress_into: dst must be C-contiguous");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    n = lzf_decode((const unsigned char *)src.buf, src.len, (unsigned char *)dst.buf, dst.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    if (n == -1) {
        PyErr_SetString(PyExc_ValueError, "corrupt LZF block");
        return NULL;
    }
    if (n == -2) {
        PyErr_SetString(PyExc_ValueError, "LZF block decodes to more bytes than expected");
        return NULL;
    }
    return PyLong_FromSsize_t(n);
}

static PyMethodDef methods[] = {
    {"decompress_into", decompress_into, METH_VARARGS, decompress_into_doc},
    {"compress", compress, METH_VARARGS, compress_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_lzf", "LZF blocks (HDF5 filter 32000): decoding into caller buffers, and encoding.", -1, methods,
};

PyMODINIT_FUNC
PyInit__lzf(void)
{
    return PyModule_Create(&module);
}
