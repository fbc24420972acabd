// The library's own event handlers. Each layer that owns an event type
// registers its handler here, so that event_lib_init sets them all before
// the first event can arrive.
#include "event/event_internal.h"

namespace parlib::detail {

void install_default_event_handlers() {}

}  // namespace parlib::detail
