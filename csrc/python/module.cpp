// The Python extension module visionops._C. It holds no ops: importing it
// loads this shared library, whose static initializers register the ops with
// the dispatcher (TORCH_LIBRARY). It records which torch it was built against
// so that visionops/_extension.py can explain a mismatch, and says which CPU
// kernels this machine runs.
#include <Python.h>

#include "core/cpu_isa.h"

#ifndef VISIONOPS_TORCH_VERSION
#define VISIONOPS_TORCH_VERSION "unknown"
#endif
#ifndef VISIONOPS_WITH_CUDA
#define VISIONOPS_WITH_CUDA 0
#endif

static PyObject* has_avx512(PyObject*, PyObject*) {
  return PyBool_FromLong(vo::cpu_isa_supported() == vo::CpuIsa::Avx512);
}

static PyObject* cpu_isa(PyObject*, PyObject*) { return PyUnicode_FromString(vo::cpu_isa_name(vo::cpu_isa())); }

static PyObject* cpu_isa_supported(PyObject*, PyObject*) {
  return PyUnicode_FromString(vo::cpu_isa_name(vo::cpu_isa_supported()));
}

static PyMethodDef visionops_c_methods[] = {
    {"has_avx512", has_avx512, METH_NOARGS,
     "Whether this build and CPU can run the AVX-512 kernels ($VISIONOPS_CPU_ISA aside)."},
    {"cpu_isa", cpu_isa, METH_NOARGS,
     "The instruction set the CPU kernels run with: 'avx512', 'avx2' or 'portable' (the best supported, capped by "
     "$VISIONOPS_CPU_ISA)."},
    {"cpu_isa_supported", cpu_isa_supported, METH_NOARGS,
     "The best instruction set this build and CPU can run: 'avx512', 'avx2' or 'portable'."},
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
