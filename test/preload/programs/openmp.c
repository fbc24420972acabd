/* OpenMP (libgomp): parallel for with a reduction, critical sections,
 * barriers and tasks; the result does not depend on the thread count.
 * The critical sections and the tasks count into separate variables:
 * `omp critical` and `omp atomic` do not exclude each other, so updating
 * one variable from both would lose updates natively too. */
#include <omp.h>
#include <stdio.h>

int main(void) {
  long sum = 0, crit = 0, tasks = 0;
  int max_threads = 0;
  for (int round = 0; round < 20; round++) {
#pragma omp parallel reduction(+ : sum)
    {
#pragma omp for schedule(dynamic, 64)
      for (long i = 0; i < 100000; i++) sum += i % 7;
#pragma omp barrier
#pragma omp critical
      crit++;
#pragma omp single
      {
        for (int k = 0; k < 16; k++) {
#pragma omp task
          {
#pragma omp atomic
            tasks += 2;
          }
        }
      }
#pragma omp master
      if (omp_get_num_threads() > max_threads) max_threads = omp_get_num_threads();
    }
  }
  printf("sum %ld, critical+tasks %ld\n", sum, crit - 20L * max_threads + tasks);
  return 0;
}
