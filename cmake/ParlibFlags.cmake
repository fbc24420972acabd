# One place that decides the compiler flags of every parlib target.

set(PARLIB_SANITIZER_FLAGS "")
if(PARLIB_SANITIZE)
  set(PARLIB_SANITIZER_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer
                             -fno-sanitize-recover=undefined)
elseif(PARLIB_UBSAN)
  set(PARLIB_SANITIZER_FLAGS -fsanitize=undefined -fno-omit-frame-pointer
                             -fno-sanitize-recover=undefined)
elseif(PARLIB_TSAN)
  set(PARLIB_SANITIZER_FLAGS -fsanitize=thread -fno-omit-frame-pointer)
endif()

# Does this toolchain's ASan runtime have the fiber-switch annotations?
include(CheckCXXSourceCompiles)
if(PARLIB_SANITIZE)
  set(CMAKE_REQUIRED_FLAGS "-fsanitize=address")
  set(CMAKE_REQUIRED_LINK_OPTIONS "-fsanitize=address")
  check_cxx_source_compiles([=[
    #include <sanitizer/common_interface_defs.h>
    int main() {
      void *fake = nullptr; const void *b; size_t s;
      __sanitizer_start_switch_fiber(&fake, nullptr, 0);
      __sanitizer_finish_switch_fiber(fake, &b, &s);
    }]=] PARLIB_HAVE_ASAN_FIBER_API)
  unset(CMAKE_REQUIRED_FLAGS)
  unset(CMAKE_REQUIRED_LINK_OPTIONS)
  if(NOT PARLIB_HAVE_ASAN_FIBER_API)
    message(FATAL_ERROR "PARLIB_SANITIZE needs __sanitizer_start_switch_fiber")
  endif()
endif()
# And TSan's fiber API (GCC 10, LLVM 9 and later)?
if(PARLIB_TSAN)
  set(CMAKE_REQUIRED_FLAGS "-fsanitize=thread")
  set(CMAKE_REQUIRED_LINK_OPTIONS "-fsanitize=thread")
  check_cxx_source_compiles([=[
    #include <sanitizer/tsan_interface.h>
    int main() {
      void *self = __tsan_get_current_fiber();
      void *f = __tsan_create_fiber(0);
      __tsan_set_fiber_name(f, "probe");
      __tsan_switch_to_fiber(f, 0);
      __tsan_switch_to_fiber(self, 0);
      __tsan_destroy_fiber(f);
    }]=] PARLIB_HAVE_TSAN_FIBER_API)
  unset(CMAKE_REQUIRED_FLAGS)
  unset(CMAKE_REQUIRED_LINK_OPTIONS)
  if(NOT PARLIB_HAVE_TSAN_FIBER_API)
    message(FATAL_ERROR "PARLIB_TSAN needs ThreadSanitizer's fiber API (__tsan_switch_to_fiber)")
  endif()
endif()

# parlib_apply_flags(<target>): warnings, sanitizers and visibility for a
# parlib library, test or benchmark target.
function(parlib_apply_flags target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:C,CXX>:-Wall -Wextra -Wno-missing-field-initializers>
    ${PARLIB_SANITIZER_FLAGS})
  target_link_options(${target} PRIVATE ${PARLIB_SANITIZER_FLAGS})
  if(PARLIB_SANITIZE)
    target_compile_definitions(${target} PRIVATE PARLIB_ASAN=1)
  elseif(PARLIB_TSAN)
    target_compile_definitions(${target} PRIVATE PARLIB_TSAN=1)
  endif()
endfunction()

# parlib_library_flags(<target>): additionally hide everything that the
# version script does not export, and keep the library's TLS static so that
# a uthread's copy of it sits at a fixed offset from its thread pointer.
function(parlib_library_flags target)
  parlib_apply_flags(${target})
  set_target_properties(${target} PROPERTIES
    C_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:C,CXX>:-ftls-model=initial-exec -fno-exceptions>
    # Calls between the library's own exported functions (vcore_entry,
    # uthread_paused, ...) are on the switch path: bind them directly
    # instead of through the PLT. Interposing them is not supported.
    $<$<COMPILE_LANGUAGE:C,CXX>:-fno-semantic-interposition>)
endfunction()
