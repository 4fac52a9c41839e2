// Transitional: the clock moved to base/clock.h. This forwarding header stays
// until gateway/ includes base/clock.h; new code includes base/clock.h.

#ifndef EDGEROUTE_MESSAGE_CLOCK_H_
#define EDGEROUTE_MESSAGE_CLOCK_H_

#include "base/clock.h"

#endif  // EDGEROUTE_MESSAGE_CLOCK_H_
