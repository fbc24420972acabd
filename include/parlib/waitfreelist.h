/* parlib/waitfreelist.h: the wait-free list (WFL), a concurrent bag of
 * non-NULL pointers.
 *
 * A WFL is a singly linked list of slots. A slot holds one item or NULL
 * (empty). wfl_insert() puts the item into the first empty slot it can
 * claim (compare-and-swap NULL -> item) or, if none, appends a new slot
 * that already holds it; wfl_remove() takes the item out of the first
 * non-empty slot it can (atomic swap with NULL). Slots are never freed
 * before wfl_cleanup(), so a slot pointer stays valid for the life of the
 * list and traversals need no locks or hazard pointers.
 *
 * Guarantees: every inserted item is removed at most once, and an item
 * that is in the list when a wfl_remove() starts and stays there is found
 * unless another remover takes something first. No ordering, and a removal
 * may miss an item inserted concurrently (it then stays in the list). No
 * item is ever lost or duplicated by concurrent inserts and removes.
 *
 * Inserting may allocate a slot with malloc (uthread context or plain
 * threads; from vcore context only where malloc is allowed, i.e. not on
 * event or alarm paths). Every other operation allocates nothing and may be
 * called from any context. Items must not be NULL. */
#ifndef PARLIB_WAITFREELIST_H
#define PARLIB_WAITFREELIST_H

#include <parlib/common.h>

PARLIB_BEGIN_DECLS

/* One slot; the list's first slot is embedded in struct wfl. */
struct wfl_slot {
	struct wfl_slot *next_;  /* immutable once the slot is published */
	void *data_;             /* the item, or NULL when empty */
};

struct wfl {
	struct wfl_slot *head_;  /* newest slot first; ends with &first_ */
	struct wfl_slot first_;
};

/* Static initializer: WFL_INITIALIZER(my_list) (the list refers to its own
 * first slot). */
#define WFL_INITIALIZER(list) { &(list).first_, { 0, 0 } }

/* wfl_init: makes *list an empty list with one slot. Any context. list must
 * be valid and not in use (not checked). */
PARLIB_API void wfl_init(struct wfl *list);

/* wfl_cleanup: frees every slot the list allocated. The list must not be
 * used concurrently and should be empty: items still in it are not freed
 * (they are the caller's); aborts with a message when list is NULL.
 * Uthread context or plain threads (it calls free). The list may be
 * wfl_init()ed again afterwards. */
PARLIB_API void wfl_cleanup(struct wfl *list);

/* wfl_insert: adds data; returns the slot that holds it (valid until
 * wfl_cleanup), or NULL, doing nothing, when list or data is NULL or a new
 * slot cannot be allocated (errno ENOMEM). Any context where malloc is
 * allowed (see above). */
PARLIB_API struct wfl_slot *wfl_insert(struct wfl *list, void *data);

/* wfl_insert_into: puts data into that slot if it is empty; returns true
 * if it did, false if the slot was occupied or an argument is NULL. Any
 * context. */
PARLIB_API bool wfl_insert_into(struct wfl *list, struct wfl_slot *slot, void *data);

/* wfl_remove: takes some item out of the list and returns it, or NULL when
 * it found none (or list is NULL). Any context. */
PARLIB_API void *wfl_remove(struct wfl *list);

/* wfl_remove_from: takes the item out of that slot; returns it, or NULL
 * when the slot was empty or an argument is NULL. Any context. */
PARLIB_API void *wfl_remove_from(struct wfl *list, struct wfl_slot *slot);

/* wfl_remove_all: removes every occurrence of data; returns how many it
 * removed (0 when list or data is NULL). Any context. */
PARLIB_API size_t wfl_remove_all(struct wfl *list, void *data);

/* wfl_capacity: the number of slots (racy: it only grows). 0 for NULL. Any
 * context. */
PARLIB_API size_t wfl_capacity(struct wfl *list);

/* wfl_size: the number of items (a racy snapshot under concurrent use). 0
 * for NULL. Any context. */
PARLIB_API size_t wfl_size(struct wfl *list);

PARLIB_END_DECLS

#endif /* PARLIB_WAITFREELIST_H */
