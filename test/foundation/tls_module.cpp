// A module with TLS of its own, for dlopen: built twice with different
// initial values (TLS_MODULE_INITIAL) by CMakeLists.txt. Compiled as PIC
// with the default (general-dynamic) TLS model, so a uthread reaches it
// through its DTV and __tls_get_addr, as any dlopen'ed library's TLS.
#ifndef TLS_MODULE_INITIAL
#error "build with -DTLS_MODULE_INITIAL=<value>"
#endif

namespace {
__thread int module_value = TLS_MODULE_INITIAL;  // .tdata
__thread int module_zeroed[64];                  // .tbss
}  // namespace

// tls_module_value: this thread's copy of the initialised variable.
extern "C" __attribute__((visibility("default"))) int *tls_module_value() { return &module_value; }

// tls_module_zeroed: this thread's copy of the zero-initialised array.
extern "C" __attribute__((visibility("default"))) int *tls_module_zeroed() { return module_zeroed; }
