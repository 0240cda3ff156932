/* Randomness from the kernel (getrandom), for ids and epochs. */
#ifndef RT_BASE_RAND_H
#define RT_BASE_RAND_H

#include <stddef.h>
#include <stdint.h>

void rt_random_fill(void *buf, size_t n);
uint64_t rt_random_u64(void);
/* Writes a UUID v4 as 36 characters plus NUL into out. */
void rt_uuid4(char out[37]);
/* Writes n random ASCII letters plus NUL (epochs are 8 letters). */
void rt_random_letters(char *out, size_t n);

#endif
