/* clock.h: the monotonic clock in milliseconds, for deadlines that must
 * not move with the wall clock. Layer: base. */
#ifndef DICOMVAULT_CLOCK_H
#define DICOMVAULT_CLOCK_H

#include <stdint.h>

int64_t clock_mono_ms(void);

#endif
