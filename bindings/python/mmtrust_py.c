/* bindings/python/mmtrust_py.c: the Python module "mmtrust" over
 * libmmtrust, for Kamailio's app_python3 (KEMI) and any CPython 3 program.
 *
 *   import mmtrust
 *   with mmtrust.connect(path=mmtrust.QUERY_SOCKET, timeout_ms=500) as h:
 *       ans = h.inbound(src, dst=None, spi=0)
 *       ans = h.outbound(domain=None, dst=None, privacy_id=False)
 *       ans = h.spi(spi)
 *
 * Fail closed: every question returns a dict; on any error its "pai" is
 * "strip", "reason" a "query-*" text and "error" the message (no
 * exception).  Exceptions only for programming errors (TypeError: a wrong
 * argument type; ValueError: an SPI outside 0..2^32-1) and from connect()
 * (OSError: no daemon there).  The GIL is released while a question waits
 * for the daemon; a per-handle lock keeps one question at a time on the
 * handle (libmmtrust handles are not thread-safe).  docs/bindings.md. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>

#include <errno.h>
#include <string.h>

#include "bindings/answer.h"
#include "bindings/session.h"

typedef struct {
	PyObject_HEAD
	struct session *s;     /* NULL: closed */
	PyThread_type_lock lock;
} Handle;

/* The one conversion of an answer into a dict (bindings/answer.h): every
 * key always present, so ans["partner"] never raises; error: NULL for the
 * daemon's answer. */
static PyObject *answer_dict(const struct mmtrust_answer *a, int r, const char *error)
{
	PyObject *d = PyDict_New(), *v;

	if (!d)
		return NULL;
	v = PyUnicode_FromString(r == 0 && a->pai == MMTRUST_PAI_KEEP ? "keep" : "strip");
	if (!v || PyDict_SetItemString(d, "pai", v) < 0)
		goto fail;
	Py_DECREF(v);
	for (size_t i = 0; i < ANSWER_N_FIELDS; i++) {
		const struct answer_field *f = &answer_fields[i];

		switch (f->kind) {
		case ANSWER_TEXT:
			v = answer_text_len(a, f) ? PyUnicode_DecodeUTF8(answer_text(a, f),
									 answer_text_len(a, f), "replace")
						  : Py_NewRef(Py_None);
			break;
		case ANSWER_FLAG:
			v = PyBool_FromLong(answer_flag(a, f));
			break;
		case ANSWER_U32:
			v = answer_u32(a, f) ? PyLong_FromUnsignedLong(answer_u32(a, f)) : Py_NewRef(Py_None);
			break;
		default:
			v = NULL;
			PyErr_SetString(PyExc_SystemError, "mmtrust: unknown answer field kind");
		}
		if (!v || PyDict_SetItemString(d, f->name, v) < 0)
			goto fail;
		Py_DECREF(v);
	}
	v = r < 0 ? PyUnicode_FromString(error) : Py_NewRef(Py_None);
	if (!v || PyDict_SetItemString(d, "error", v) < 0)
		goto fail;
	Py_DECREF(v);
	v = r < 0 ? PyLong_FromLong(-r) : Py_NewRef(Py_None);
	if (!v || PyDict_SetItemString(d, "errno", v) < 0)
		goto fail;
	Py_DECREF(v);
	return d;
fail:
	Py_XDECREF(v);
	Py_DECREF(d);
	return NULL;
}

/* Ask with the GIL released; the handle's lock serialises questions (and
 * close()) on one handle. */
static PyObject *ask(Handle *h, const struct session_query *q)
{
	struct mmtrust_answer a;
	char error[512] = "";
	int r;

	Py_BEGIN_ALLOW_THREADS
	PyThread_acquire_lock(h->lock, WAIT_LOCK);
	if (h->s) {
		r = session_ask(h->s, q, &a);
		if (r < 0)
			snprintf(error, sizeof(error), "%s", session_error(h->s));
	} else {
		r = -EBADF;
		memset(&a, 0, sizeof(a));
		snprintf(a.reason, sizeof(a.reason), "query-closed");
		snprintf(error, sizeof(error), "the handle is closed");
	}
	PyThread_release_lock(h->lock);
	Py_END_ALLOW_THREADS
	return answer_dict(&a, r, error);
}

/* An optional str argument (None: not given); a str that cannot be
 * encoded (lone surrogates) is refused fail-closed like one with a NUL. */
static int opt_str(PyObject *o, const char *what, const char **ret, size_t *ret_len)
{
	Py_ssize_t n;

	*ret = NULL;
	*ret_len = 0;
	if (!o || o == Py_None)
		return 0;
	if (!PyUnicode_Check(o)) {
		PyErr_Format(PyExc_TypeError, "mmtrust: %s must be a str or None, not %s", what,
			     Py_TYPE(o)->tp_name);
		return -1;
	}
	*ret = PyUnicode_AsUTF8AndSize(o, &n);
	if (!*ret) {
		PyErr_Clear();
		*ret = "";
		*ret_len = 1;  /* "" of length 1: session_ask() answers query-invalid-argument */
		return 0;
	}
	*ret_len = (size_t)n;
	return 0;
}

static int opt_spi(PyObject *o, uint32_t *ret)
{
	unsigned long long v;

	*ret = 0;
	if (!o || o == Py_None)
		return 0;
	if (!PyLong_Check(o) || PyBool_Check(o)) {
		PyErr_Format(PyExc_TypeError, "mmtrust: spi must be an int, not %s", Py_TYPE(o)->tp_name);
		return -1;
	}
	v = PyLong_AsUnsignedLongLong(o);
	if ((v == (unsigned long long)-1 && PyErr_Occurred()) || v > UINT32_MAX) {
		PyErr_Clear();
		PyErr_SetString(PyExc_ValueError, "mmtrust: spi must be from 0 to 4294967295");
		return -1;
	}
	*ret = (uint32_t)v;
	return 0;
}

static int opt_bool(PyObject *o, const char *what, int *ret)
{
	*ret = 0;
	if (!o || o == Py_None)
		return 0;
	if (!PyBool_Check(o)) {
		PyErr_Format(PyExc_TypeError, "mmtrust: %s must be a bool, not %s", what,
			     Py_TYPE(o)->tp_name);
		return -1;
	}
	*ret = o == Py_True;
	return 0;
}

static PyObject *Handle_inbound(Handle *h, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "src", "dst", "spi", NULL };
	struct session_query q = { .op = SESSION_INBOUND };
	PyObject *src, *dst = NULL, *spi = NULL;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO:inbound", kwlist, &src, &dst, &spi))
		return NULL;
	if (src == Py_None) {
		PyErr_SetString(PyExc_TypeError, "mmtrust: inbound: src must be a str, not None");
		return NULL;
	}
	if (opt_str(src, "inbound: src", &q.src, &q.src_len) < 0 ||
	    opt_str(dst, "inbound: dst", &q.dst, &q.dst_len) < 0 || opt_spi(spi, &q.spi) < 0)
		return NULL;
	return ask(h, &q);
}

static PyObject *Handle_outbound(Handle *h, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "domain", "dst", "privacy_id", NULL };
	struct session_query q = { .op = SESSION_OUTBOUND };
	PyObject *domain = NULL, *dst = NULL, *privacy_id = NULL;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|OOO:outbound", kwlist, &domain, &dst,
					 &privacy_id))
		return NULL;
	if (opt_str(domain, "outbound: domain", &q.domain, &q.domain_len) < 0 ||
	    opt_str(dst, "outbound: dst", &q.dst, &q.dst_len) < 0 ||
	    opt_bool(privacy_id, "outbound: privacy_id", &q.privacy_id) < 0)
		return NULL;
	return ask(h, &q);
}

static PyObject *Handle_spi(Handle *h, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "spi", NULL };
	struct session_query q = { .op = SESSION_SPI };
	PyObject *spi;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "O:spi", kwlist, &spi))
		return NULL;
	if (spi == Py_None) {
		PyErr_SetString(PyExc_TypeError, "mmtrust: spi must be an int, not None");
		return NULL;
	}
	if (opt_spi(spi, &q.spi) < 0)
		return NULL;
	return ask(h, &q);
}

static void close_session(Handle *h)
{
	struct session *s;

	Py_BEGIN_ALLOW_THREADS
	PyThread_acquire_lock(h->lock, WAIT_LOCK);
	s = h->s;
	h->s = NULL;
	PyThread_release_lock(h->lock);
	Py_END_ALLOW_THREADS
	session_free(s);
}

static PyObject *Handle_close(Handle *h, PyObject *Py_UNUSED(ignored))
{
	close_session(h);
	Py_RETURN_NONE;
}

static PyObject *Handle_enter(Handle *h, PyObject *Py_UNUSED(ignored))
{
	return Py_NewRef((PyObject *)h);
}

static PyObject *Handle_exit(Handle *h, PyObject *Py_UNUSED(args))
{
	close_session(h);
	Py_RETURN_FALSE;
}

static PyObject *Handle_get_closed(Handle *h, void *Py_UNUSED(closure))
{
	return PyBool_FromLong(h->s == NULL);
}

static PyObject *Handle_repr(Handle *h)
{
	if (!h->s)
		return PyUnicode_FromString("<mmtrust.Handle closed>");
	return PyUnicode_FromFormat("<mmtrust.Handle %s>", session_path(h->s));
}

static void Handle_dealloc(Handle *h)
{
	/* No other reference: no question can be running. */
	session_free(h->s);
	if (h->lock)
		PyThread_free_lock(h->lock);
	Py_TYPE(h)->tp_free((PyObject *)h);
}

#define METHOD_KW(f) (PyCFunction)(void (*)(void))(f)

static PyMethodDef Handle_methods[] = {
	{ "inbound", METHOD_KW(Handle_inbound), METH_VARARGS | METH_KEYWORDS,
	  "inbound(src, dst=None, spi=0) -> dict: a message from src arrived on our dst" },
	{ "outbound", METHOD_KW(Handle_outbound), METH_VARARGS | METH_KEYWORDS,
	  "outbound(domain=None, dst=None, privacy_id=False) -> dict: may PAI go to this next hop" },
	{ "spi", METHOD_KW(Handle_spi), METH_VARARGS | METH_KEYWORDS,
	  "spi(spi) -> dict: which partner's SA has this SPI" },
	{ "close", METHOD_KW(Handle_close), METH_NOARGS,
	  "close(): later questions answer reason query-closed" },
	{ "__enter__", METHOD_KW(Handle_enter), METH_NOARGS, NULL },
	{ "__exit__", METHOD_KW(Handle_exit), METH_VARARGS, NULL },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef Handle_getset[] = {
	{ "closed", (getter)Handle_get_closed, NULL, "close() was called", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyTypeObject HandleType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "mmtrust.Handle",
	.tp_doc = "A connection to mmtrustd's query socket (mmtrust.connect()).",
	.tp_basicsize = sizeof(Handle),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_dealloc = (destructor)Handle_dealloc,
	.tp_repr = (reprfunc)Handle_repr,
	.tp_methods = Handle_methods,
	.tp_getset = Handle_getset,
};

/* mmtrust.connect(path=QUERY_SOCKET, timeout_ms=500) -> Handle, or OSError */
static PyObject *mm_connect(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "path", "timeout_ms", NULL };
	PyObject *path_o = NULL, *timeout_o = NULL;
	const char *path = NULL;
	long timeout_ms = SESSION_DEFAULT_TIMEOUT_MS;
	Py_ssize_t len = 0;
	Handle *h;
	int r;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:connect", kwlist, &path_o, &timeout_o))
		return NULL;
	if (path_o && path_o != Py_None) {
		if (!PyUnicode_Check(path_o)) {
			PyErr_Format(PyExc_TypeError, "mmtrust: path must be a str, not %s",
				     Py_TYPE(path_o)->tp_name);
			return NULL;
		}
		path = PyUnicode_AsUTF8AndSize(path_o, &len);
		if (!path)
			return NULL;
		if (strlen(path) != (size_t)len) {
			PyErr_SetString(PyExc_ValueError, "mmtrust: path contains a NUL byte");
			return NULL;
		}
	}
	if (timeout_o && timeout_o != Py_None) {
		if (!PyLong_Check(timeout_o) || PyBool_Check(timeout_o)) {
			PyErr_Format(PyExc_TypeError, "mmtrust: timeout_ms must be an int, not %s",
				     Py_TYPE(timeout_o)->tp_name);
			return NULL;
		}
		timeout_ms = PyLong_AsLong(timeout_o);
		if ((timeout_ms == -1 && PyErr_Occurred()) || timeout_ms < 0 || timeout_ms > INT32_MAX) {
			PyErr_Clear();
			PyErr_SetString(PyExc_ValueError, "mmtrust: timeout_ms must be from 0 to 2147483647");
			return NULL;
		}
	}
	h = PyObject_New(Handle, &HandleType);
	if (!h)
		return NULL;
	h->s = NULL;
	h->lock = PyThread_allocate_lock();
	if (!h->lock) {
		Py_DECREF(h);
		return PyErr_NoMemory();
	}
	Py_BEGIN_ALLOW_THREADS
	r = session_new(path, (int)timeout_ms, &h->s);
	Py_END_ALLOW_THREADS
	if (r < 0) {
		Py_DECREF(h);
		errno = -r;
		return PyErr_SetFromErrnoWithFilename(PyExc_OSError, path ? path : MMTRUST_QUERY_SOCKET);
	}
	return (PyObject *)h;
}

static PyMethodDef module_methods[] = {
	{ "connect", METHOD_KW(mm_connect), METH_VARARGS | METH_KEYWORDS,
	  "connect(path=QUERY_SOCKET, timeout_ms=500) -> Handle; OSError when no daemon answers there" },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef module_def = {
	PyModuleDef_HEAD_INIT,
	.m_name = "mmtrust",
	.m_doc = "mmtrustd's answers for a CSCF script (libmmtrust); docs/bindings.md",
	.m_size = -1,
	.m_methods = module_methods,
};

PyMODINIT_FUNC PyInit_mmtrust(void);
PyMODINIT_FUNC PyInit_mmtrust(void)
{
	PyObject *m;

	if (PyType_Ready(&HandleType) < 0)
		return NULL;
	m = PyModule_Create(&module_def);
	if (!m)
		return NULL;
	if (PyModule_AddStringConstant(m, "QUERY_SOCKET", MMTRUST_QUERY_SOCKET) < 0 ||
	    PyModule_AddIntConstant(m, "DEFAULT_TIMEOUT_MS", SESSION_DEFAULT_TIMEOUT_MS) < 0 ||
	    PyModule_AddObjectRef(m, "Handle", (PyObject *)&HandleType) < 0) {
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
