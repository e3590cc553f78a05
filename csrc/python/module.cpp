// The Python extension module visionops._C. It holds no ops: importing it
// loads this shared library, whose static initializers register the ops with
// the dispatcher (TORCH_LIBRARY). It records which torch it was built against
// so that visionops/_extension.py can explain a mismatch, and says which CPU
// kernels this machine runs.
#include <Python.h>

#include "core/cpu_features.h"

#ifndef VISIONOPS_TORCH_VERSION
#define VISIONOPS_TORCH_VERSION "unknown"
#endif
#ifndef VISIONOPS_WITH_CUDA
#define VISIONOPS_WITH_CUDA 0
#endif

static PyObject* has_avx512(PyObject*, PyObject*) {
  return PyBool_FromLong(vo::avx512_kernels_supported());
}

static PyMethodDef visionops_c_methods[] = {
    {"has_avx512", has_avx512, METH_NOARGS,
     "Whether the hand-written AVX-512 kernels are compiled in and this CPU runs them (VISIONOPS_DISABLE_AVX512 "
     "aside)."},
    {nullptr, nullptr, 0, nullptr}};

static struct PyModuleDef visionops_c_module = {PyModuleDef_HEAD_INIT, "_C", "visionops native ops", -1,
                                                visionops_c_methods};

PyMODINIT_FUNC PyInit__C(void) {
  PyObject* m = PyModule_Create(&visionops_c_module);
  if (m == nullptr) return nullptr;
  if (PyModule_AddStringConstant(m, "TORCH_VERSION", VISIONOPS_TORCH_VERSION) < 0 ||
      PyModule_AddIntConstant(m, "WITH_CUDA", VISIONOPS_WITH_CUDA) < 0) {
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
