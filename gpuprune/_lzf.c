/*
 * gpuprune._lzf: decode LZF blocks (the format of HDF5's filter 32000) straight into a
 * caller's buffer, with the GIL released.
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
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

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
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_lzf", "LZF decoding into caller buffers (HDF5 filter 32000).", -1, methods,
};

PyMODINIT_FUNC
PyInit__lzf(void)
{
    return PyModule_Create(&module);
}
