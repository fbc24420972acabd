// Per-uthread TLS. glibc lays out static TLS for x86-64 as "TLS blocks below
// the thread pointer, tcbhead_t (the start of struct pthread) at it". We let
// glibc build each block (_dl_allocate_tls: it knows every module's offset,
// init image and the DTV format) and fill in the tcbhead_t fields that glibc
// itself sets only in threads it creates. Released TCBs are cached and made
// new again the way glibc renews the TCB of a cached thread stack
// (_dl_allocate_tls_init). The assumptions, all checked at init or by tests,
// are listed in docs/design.md.
#include "uthread/tls.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <sys/syscall.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <parlib/uthread.h>

#include "common/raw_log.h"
#include "common/sanitizer_fiber.h"
#include "common/spinlock.h"
#include "vcore/arch/arch.h"

namespace parlib::detail::tls {
namespace {

// tcbhead_t offsets (glibc sysdeps/x86_64/nptl/tls.h, stable since 2.12).
constexpr size_t kTcbSelfTcb = 0x00;          // void *tcb: points to itself
constexpr size_t kTcbSelf = 0x10;             // struct pthread *self
constexpr size_t kTcbMultipleThreads = 0x18;  // int multiple_threads
constexpr size_t kTcbStackGuard = 0x28;       // -fstack-protector canary
constexpr size_t kTcbPointerGuard = 0x30;     // PTR_MANGLE key (setjmp, atexit)
constexpr size_t kTcbFeature1 = 0x48;         // CET feature bits

constexpr size_t kTcbDtv = 0x08;  // dtv_t *dtv

using AllocateTlsFn = void *(*)(void *);
// glibc 2.39 added a second parameter (false only for the main thread's
// TLS, which ld.so initialises itself); earlier versions ignore it.
using AllocateTlsInitFn = void *(*)(void *, bool);
using DeallocateTlsFn = void (*)(void *, bool);
using CallTlsDtorsFn = void (*)();

AllocateTlsFn g_allocate_tls = nullptr;
AllocateTlsInitFn g_allocate_tls_init = nullptr;
DeallocateTlsFn g_deallocate_tls = nullptr;
CallTlsDtorsFn g_call_tls_dtors = nullptr;

uintptr_t g_stack_guard = 0;
uintptr_t g_pointer_guard = 0;
uint32_t g_feature_1 = 0;

// glibc's own static TLS block (libc.so.6): position relative to the thread
// pointer and size; errno lives in it.
ptrdiff_t g_libc_offset = 0;
size_t g_libc_size = 0;
ptrdiff_t g_errno_offset = 0;
// struct pthread's tid. glibc's recursive and error-checking locks (its
// own dl_load_tls_lock among them, taken by _dl_allocate_tls_init) record
// their owner's tid there and take "owner == my tid" to mean "I hold it":
// with the 0 a fresh TCB has, two uthreads on two vcores could both enter.
// Each uthread TCB gets an id of its own from PID_MAX_LIMIT (2^22, the most
// pid_max can be on 64-bit Linux) up, which no kernel task can have, and
// below 2^28, so that the kernel's thread CPU clock ids can encode it (the
// preload shim's gettid() and pthread_getcpuclockid() hand these ids out).
// -1: the layout is unknown (nothing is written).
ptrdiff_t g_tid_offset = -1;
std::atomic<uint32_t> g_next_uthread_tid{0};
constexpr int32_t kFirstUthreadTid = 1 << 22;
constexpr uint32_t kNumUthreadTids = (1u << 28) - (1u << 22);

// struct pthread's list_t list: the link of glibc's thread lists
// (stack_used, stack_user). A uthread TCB is on none of them, but fork
// makes the forking thread's TCB the child's only thread and, to do so,
// unlinks it from its list (reclaim_stacks: list_del(&self->list)) before
// adding it to the child's list: on a zeroed link that is a store through
// a null pointer, and the child dies at once. A link that points to itself
// makes the unlink a no-op. -1: the layout is unknown (nothing is written).
ptrdiff_t g_list_offset = -1;
struct ListLink {
  ListLink *next, *prev;
};

// rseq: glibc reads the CPU number from the registered rseq area at
// __rseq_offset from the thread pointer. Only a kernel task's own area is
// registered, so a uthread TCB marks its copy "not registered" and
// sched_getcpu() falls back to the getcpu system call.
ptrdiff_t g_rseq_cpu_id_offset = 0;
ptrdiff_t g_rseq_area_offset = 0;
unsigned g_rseq_size = 0;
bool g_have_rseq = false;
constexpr long kRseqSignature = 0x53053053;  // glibc's RSEQ_SIG on x86
constexpr long kRseqFlagUnregister = 1;

struct SanitizerModule {
  ptrdiff_t offset;
  size_t size;
};
SanitizerModule g_sanitizer_modules[4];
int g_num_sanitizer_modules = 0;

#ifdef PARLIB_ASAN
// ASan also finds its per-thread state through a pthread key
// (pthread_getspecific reads struct pthread's first-level key array in the
// TCB). Those keys' slots are copied like the TLS modules.
constexpr int kFirstLevelKeys = 32;
constexpr size_t kKeySlotSize = 16;  // struct pthread_key_data { seq; data; }
ptrdiff_t g_key_slots_offset = -1;
int g_sanitizer_keys[kFirstLevelKeys];
int g_num_sanitizer_keys = 0;

// Finds the first-level key array by setting a key to a marker and looking
// for the marker in our own struct pthread.
void find_sanitizer_keys() {
  pthread_key_t probe;
  if (pthread_key_create(&probe, nullptr) != 0) return;
  static char marker;
  pthread_setspecific(probe, &marker);
  char *tp = static_cast<char *>(read_thread_pointer());
  for (size_t off = 0; off < 4096; off += sizeof(void *)) {
    if (*reinterpret_cast<void **>(tp + off) == &marker && probe < kFirstLevelKeys) {
      g_key_slots_offset = static_cast<ptrdiff_t>(off) - 8 - ptrdiff_t{kKeySlotSize} * probe;
      break;
    }
  }
  for (pthread_key_t k = 0; k < kFirstLevelKeys; ++k)
    if (k != probe && pthread_getspecific(k) != nullptr)
      g_sanitizer_keys[g_num_sanitizer_keys++] = static_cast<int>(k);
  pthread_setspecific(probe, nullptr);
  pthread_key_delete(probe);
  if (g_key_slots_offset < 0) raw_log("cannot find glibc's pthread key array; ASan may misreport");
}
#endif

// A DTV entry (glibc's dtv_t, stable since 2.26): dtv[-1].counter is the
// number of entries allocated, dtv[0].counter the generation it reflects,
// dtv[m] module m's block; to_free is what malloc returned for a block that
// __tls_get_addr allocated (NULL for static TLS and unallocated entries).
union DtvEntry {
  size_t counter;
  struct {
    void *val;
    void *to_free;
  } pointer;
};
static_assert(sizeof(DtvEntry) == 16);

// Released TCBs kept for reuse (see release() and renew()). Bounded: beyond
// the bound TCBs go back to glibc, their libc blocks to g_libc_pool. The
// link lives in the TCB's first word (tcbhead_t.tcb), rewritten on reuse.
constexpr int kMaxCachedTcbs = 128;
constexpr size_t kMaxLibcBlock = 1024;  // renew() saves libc's block on the stack
// The cache's lock, held with notifications disabled (uthread side; see
// lock_tcb_cache) for a few loads and stores. Its holder may be a vcore
// whose CPU is shared: a waiter gives its CPU away every 128 polls.
SpinLock<128> g_tcb_cache_lock;
void *g_tcb_cache = nullptr;
int g_num_cached_tcbs = 0;
// sizeof(struct pthread), which starts with tcbhead_t: the part of the TCB
// that _dl_allocate_tls zeroes. 0 disables the cache.
size_t g_pthread_size = 0;

// Saved libc blocks of released TCBs, handed to new ones (see release()).
std::mutex g_libc_pool_lock;
struct LibcState {
  LibcState *next;
  // followed by g_libc_size bytes
};
LibcState *g_libc_pool = nullptr;

template <typename T>
T &at(void *tcb, ptrdiff_t offset) {
  return *reinterpret_cast<T *>(static_cast<char *>(tcb) + offset);
}

template <typename Fn>
Fn resolve(const char *name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
}

bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

int find_tls_modules(dl_phdr_info *info, size_t, void *) {
  if (info->dlpi_tls_data == nullptr || info->dlpi_name == nullptr) return 0;
  size_t memsz = 0;
  for (int i = 0; i < info->dlpi_phnum; ++i)
    if (info->dlpi_phdr[i].p_type == PT_TLS) memsz = info->dlpi_phdr[i].p_memsz;
  ptrdiff_t offset =
      static_cast<char *>(info->dlpi_tls_data) - static_cast<char *>(read_thread_pointer());
  const char *name = info->dlpi_name;
  if (strstr(name, "/libc.so.") != nullptr || ends_with(name, "libc.so.6")) {
    g_libc_offset = offset;
    g_libc_size = memsz;
  }
  if ((strstr(name, "libasan") != nullptr || strstr(name, "libubsan") != nullptr ||
       strstr(name, "clang_rt") != nullptr) &&
      g_num_sanitizer_modules < 4) {
    g_sanitizer_modules[g_num_sanitizer_modules++] = SanitizerModule{offset, memsz};
  }
  return 0;
}

}  // namespace

void init() {
  g_allocate_tls = resolve<AllocateTlsFn>("_dl_allocate_tls");
  g_allocate_tls_init = resolve<AllocateTlsInitFn>("_dl_allocate_tls_init");
  g_deallocate_tls = resolve<DeallocateTlsFn>("_dl_deallocate_tls");
  g_call_tls_dtors = resolve<CallTlsDtorsFn>("__call_tls_dtors");
  if (g_allocate_tls == nullptr || g_deallocate_tls == nullptr || g_call_tls_dtors == nullptr)
    raw_fatal(
        "this C library lacks _dl_allocate_tls/_dl_deallocate_tls/__call_tls_dtors; "
        "parlib needs glibc for per-uthread TLS");
  void *tp = read_thread_pointer();
  g_stack_guard = at<uintptr_t>(tp, kTcbStackGuard);
  g_pointer_guard = at<uintptr_t>(tp, kTcbPointerGuard);
  g_feature_1 = at<uint32_t>(tp, kTcbFeature1);
  PARLIB_CHECK(at<void *>(tp, kTcbSelfTcb) == tp, "unexpected TCB layout");
  g_errno_offset = reinterpret_cast<char *>(&errno) - static_cast<char *>(tp);
  // libthread_db's descriptor of the field: {bits, count, offset}. Trusted
  // only if main's TCB holds main's tid there.
  if (auto *tid = resolve<const uint32_t *>("_thread_db_pthread_tid");
      tid != nullptr && tid[0] == 32 && tid[2] + sizeof(int32_t) <= 4096 &&
      at<int32_t>(tp, tid[2]) == static_cast<int32_t>(syscall(SYS_gettid)))
    g_tid_offset = tid[2];
  // The same descriptor for the list link, trusted only if main's link is
  // part of a list (the initial thread is on glibc's stack_user list).
  if (auto *list = resolve<const uint32_t *>("_thread_db_pthread_list");
      list != nullptr && list[2] + sizeof(ListLink) <= 4096) {
    auto &link = at<ListLink>(tp, list[2]);
    if (link.next != nullptr && link.next->prev == &link && link.prev->next == &link)
      g_list_offset = list[2];
  }
  dl_iterate_phdr(find_tls_modules, nullptr);
  // The TCB cache needs glibc's TLS initialiser and the size of struct
  // pthread (published for libthread_db); without them every uthread gets
  // a fresh TCB, as before the cache.
  auto *pthread_size = resolve<const uint32_t *>("_thread_db_sizeof_pthread");
  if (g_allocate_tls_init != nullptr && pthread_size != nullptr && *pthread_size >= kTcbFeature1 &&
      g_libc_size <= kMaxLibcBlock)
    g_pthread_size = *pthread_size;
#ifdef PARLIB_ASAN
  find_sanitizer_keys();
#endif
  auto *rseq_offset = resolve<const ptrdiff_t *>("__rseq_offset");
  auto *rseq_size = resolve<const unsigned *>("__rseq_size");
  if (rseq_offset != nullptr && rseq_size != nullptr && *rseq_size != 0) {
    g_have_rseq = true;
    g_rseq_area_offset = *rseq_offset;
    g_rseq_size = *rseq_size;
    g_rseq_cpu_id_offset = *rseq_offset + 4;  // struct rseq { u32 cpu_id_start; u32 cpu_id; ...}
  }
}

namespace {

// The tcbhead_t fields glibc fills in only for threads it creates.
void fill_tcbhead(void *tcb) {
  at<void *>(tcb, kTcbSelfTcb) = tcb;
  at<void *>(tcb, kTcbSelf) = tcb;
  // The process has several kernel tasks (the vcores), so glibc must take
  // its locks: mark the TCB the way pthread_create marks a new thread's.
  at<int>(tcb, kTcbMultipleThreads) = 1;
  at<uintptr_t>(tcb, kTcbStackGuard) = g_stack_guard;
  at<uintptr_t>(tcb, kTcbPointerGuard) = g_pointer_guard;
  at<uint32_t>(tcb, kTcbFeature1) = g_feature_1;
  if (g_have_rseq) at<int32_t>(tcb, g_rseq_cpu_id_offset) = -2;  // RSEQ_CPU_ID_REGISTRATION_FAILED
  if (g_tid_offset >= 0) {
    uint32_t n = g_next_uthread_tid.fetch_add(1, std::memory_order_relaxed) % kNumUthreadTids;
    at<int32_t>(tcb, g_tid_offset) = kFirstUthreadTid + static_cast<int32_t>(n);
  }
  if (g_list_offset >= 0) {
    auto &link = at<ListLink>(tcb, g_list_offset);
    link.next = link.prev = &link;
  }
}

// Notifications go off before the lock is taken and back on after it is
// released, so its holder is never switched out holding it, and a
// notification taken on enabling finds it free.
void lock_tcb_cache() {
  uth_disable_notifs();
  g_tcb_cache_lock.lock();
}
void unlock_tcb_cache() {
  g_tcb_cache_lock.unlock();
  uth_enable_notifs();
}

void *take_cached_tcb() {
  lock_tcb_cache();
  void *tcb = g_tcb_cache;
  if (tcb != nullptr) {
    g_tcb_cache = at<void *>(tcb, kTcbSelfTcb);
    --g_num_cached_tcbs;
  }
  unlock_tcb_cache();
  return tcb;
}

// Makes a released TCB what _dl_allocate_tls returns, except for libc's own
// block (malloc's tcache and arena: see release()), which it keeps, errno
// reset. The steps are those glibc takes for the TCB of a thread stack it
// reuses: free the dynamic TLS blocks __tls_get_addr allocated, clear the
// DTV, let _dl_allocate_tls_init copy every module's initialisation image
// (modules dlopen'ed meanwhile included; it grows the DTV if there are more
// modules now) and set the DTV's generation. Unlike glibc we also zero
// struct pthread, as _dl_allocate_tls does: its pthread_setspecific slots
// and other fields must not carry the previous uthread's values.
void renew(void *tcb) {
  char libc_block[kMaxLibcBlock];
  char *libc = static_cast<char *>(tcb) + g_libc_offset;
  memcpy(libc_block, libc, g_libc_size);
  auto *dtv = at<DtvEntry *>(tcb, kTcbDtv);
  size_t entries = dtv[-1].counter;
  for (size_t m = 1; m <= entries; ++m)
    if (dtv[m].pointer.to_free != nullptr) free(dtv[m].pointer.to_free);
  memset(dtv, 0, (entries + 1) * sizeof(DtvEntry));
  memset(tcb, 0, g_pthread_size);
  at<DtvEntry *>(tcb, kTcbDtv) = dtv;
  if (g_allocate_tls_init(tcb, true) == nullptr)
    raw_fatal("out of memory initialising a uthread TLS block");
  memcpy(libc, libc_block, g_libc_size);
  at<int>(tcb, g_errno_offset) = 0;
}

}  // namespace

void *allocate() {
  void *tcb = g_pthread_size != 0 ? take_cached_tcb() : nullptr;
  if (tcb != nullptr) {
    renew(tcb);
    fill_tcbhead(tcb);
    return tcb;
  }
  tcb = g_allocate_tls(nullptr);
  if (tcb == nullptr) raw_fatal("out of memory allocating a uthread TLS block");
  fill_tcbhead(tcb);

  LibcState *saved = nullptr;
  if (g_libc_size != 0) {
    std::lock_guard<std::mutex> guard(g_libc_pool_lock);
    saved = g_libc_pool;
    if (saved != nullptr) g_libc_pool = saved->next;
  }
  if (saved != nullptr) {
    memcpy(static_cast<char *>(tcb) + g_libc_offset, saved + 1, g_libc_size);
    free(saved);
    at<int>(tcb, g_errno_offset) = 0;
  }
  return tcb;
}

void release(void *tcb, bool keep_libc_state) {
  // Only a TCB whose destructors ran is cached: its libc block is then
  // fit for another uthread (no per-thread locale, see
  // uthread_run_destructors).
  if (keep_libc_state && g_pthread_size != 0) {
    lock_tcb_cache();
    bool cached = g_num_cached_tcbs < kMaxCachedTcbs;
    if (cached) {
      at<void *>(tcb, kTcbSelfTcb) = g_tcb_cache;
      g_tcb_cache = tcb;
      ++g_num_cached_tcbs;
    }
    unlock_tcb_cache();
    if (cached) return;
  }
  if (keep_libc_state && g_libc_size != 0) {
    auto *saved = static_cast<LibcState *>(malloc(sizeof(LibcState) + g_libc_size));
    if (saved != nullptr) {
      memcpy(saved + 1, static_cast<char *>(tcb) + g_libc_offset, g_libc_size);
      std::lock_guard<std::mutex> guard(g_libc_pool_lock);
      saved->next = g_libc_pool;
      g_libc_pool = saved;
    }
  }
  g_deallocate_tls(tcb, true);
}

void detach_from_kernel_task(void *tcb) {
  if (!g_have_rseq) return;
  long area = reinterpret_cast<long>(static_cast<char *>(tcb) + g_rseq_area_offset);
  // The kernel wants the length the area was registered with: glibc before
  // 2.40 registered 32 bytes whatever __rseq_size says.
  for (long len : {long{g_rseq_size}, 32L}) {
    if (raw_syscall4(SYS_rseq, area, len, kRseqFlagUnregister, kRseqSignature) == 0) break;
  }
  at<int32_t>(tcb, g_rseq_cpu_id_offset) = -2;  // RSEQ_CPU_ID_REGISTRATION_FAILED
}

void run_thread_local_destructors() { g_call_tls_dtors(); }

}  // namespace parlib::detail::tls

#if defined(PARLIB_ASAN)
namespace parlib::detail::san {

using tls::g_key_slots_offset;
using tls::g_num_sanitizer_keys;
using tls::g_num_sanitizer_modules;
using tls::g_sanitizer_keys;
using tls::g_sanitizer_modules;
using tls::kKeySlotSize;
using tls::SanitizerModule;

void move_tls_slow(void *from_tcb, void *to_tcb) {
  for (int i = 0; i < g_num_sanitizer_modules; ++i) {
    const SanitizerModule &m = g_sanitizer_modules[i];
    memcpy(static_cast<char *>(to_tcb) + m.offset, static_cast<char *>(from_tcb) + m.offset,
           m.size);
  }
  if (g_key_slots_offset < 0) return;
  for (int i = 0; i < g_num_sanitizer_keys; ++i) {
    ptrdiff_t off = g_key_slots_offset + ptrdiff_t{kKeySlotSize} * g_sanitizer_keys[i];
    memcpy(static_cast<char *>(to_tcb) + off, static_cast<char *>(from_tcb) + off, kKeySlotSize);
  }
}

}  // namespace parlib::detail::san
#endif
