/* Prints what vcore_lib_init() makes of the environment, for the ctest
 * entries below it in CMakeLists.txt: "ok max=N spares=M", or
 * "error EINVAL" after the library's one-line message naming the
 * variable. */
#include <errno.h>
#include <parlib/vcore.h>
#include <stdio.h>

int main(void) {
  if (vcore_lib_init() != 0) {
    printf("error %s\n", errno == EINVAL ? "EINVAL" : "other");
    return 0;
  }
  printf("ok max=%d spares=%d\n", max_vcores(), max_spare_vcores());
  return 0;
}
