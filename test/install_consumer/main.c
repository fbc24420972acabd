/* Smoke test of an installed parlib from C: the umbrella header compiles
 * as C11, the library links and loads, and the vcore layer comes up. */
#include <parlib/parlib.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  if (vcore_lib_init() != 0) {
    fprintf(stderr, "consumer: vcore_lib_init: %s\n", strerror(errno));
    return 1;
  }
  int n = max_vcores();
  printf("parlib consumer: max_vcores() = %d\n", n);
  return n > 0 ? 0 : 1;
}
