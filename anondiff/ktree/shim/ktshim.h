/* SPDX-License-Identifier: GPL-2.0 */
/*
 * anondiff's shim for the anon_vma code cut from a kernel tree.
 *
 * Customised (anondiff's own, with only the fields and behaviour the cut code uses):
 * struct vm_area_struct, struct mm_struct, the maple-state and VMA-iterator lookups (over
 * a window of the mm that Python sets per call), locks (checked, never contended), slab
 * caches (one object per page, poisoned and never reused), WARN/BUG (recorded as events,
 * execution continues).  Duplicated from the tree at build time, never stored here:
 * struct anon_vma, struct anon_vma_chain, the rbtree and interval-tree code.
 */
#ifndef KT_SHIM_H
#define KT_SHIM_H

#include "ktbase.h"
#include <linux/rbtree.h>
#include <linux/rbtree_augmented.h>
#include <linux/interval_tree_generic.h>

#define CONFIG_MMU 1
#define CONFIG_DEBUG_VM 1
#define CONFIG_PER_VMA_LOCK 1

#define PAGE_SHIFT	12
#define ENOMEM		12

/* WARN and BUG: recorded with the tree's file:line (the unit has #line directives). */
void kt_event(const char *kind, const char *file, int line, const char *cond);

#define KT_CHECK(kind, cond) ({						\
	int __kt_c = !!(cond);						\
	if (unlikely(__kt_c))						\
		kt_event(kind, __FILE__, __LINE__, #cond);		\
	__kt_c;								\
})
#define WARN_ON(cond)			KT_CHECK("WARN_ON", cond)
#define WARN_ON_ONCE(cond)		KT_CHECK("WARN_ON_ONCE", cond)
#define VM_WARN_ON(cond)		((void)KT_CHECK("VM_WARN_ON", cond))
#define VM_WARN_ON_ONCE(cond)		((void)KT_CHECK("VM_WARN_ON_ONCE", cond))
#define VM_WARN_ON_VMA(cond, vma)	((void)KT_CHECK("VM_WARN_ON_VMA", cond))
#define VM_WARN_ON_ONCE_VMA(cond, vma)	((void)KT_CHECK("VM_WARN_ON_ONCE_VMA", cond))
#define BUG_ON(cond)			((void)KT_CHECK("BUG_ON", cond))
#define VM_BUG_ON(cond)			((void)KT_CHECK("VM_BUG_ON", cond))
#define VM_BUG_ON_VMA(cond, vma)	((void)KT_CHECK("VM_BUG_ON_VMA", cond))
#define might_sleep()			do { } while (0)

/* Atomics: one thread. */
typedef struct {
	int counter;
} atomic_t;

#define atomic_set(v, i)	((v)->counter = (i))
#define atomic_read(v)		READ_ONCE((v)->counter)
#define atomic_inc(v)		((v)->counter++)
#define atomic_dec_and_test(v)	(--(v)->counter == 0)

/* Locks: report recursion and unbalanced releases. */
struct rw_semaphore {
	int writer;
	int readers;
};

void kt_lock_event(const char *what, const char *file, int line);
#define init_rwsem(s)		((s)->writer = 0, (s)->readers = 0)
#define rwsem_is_locked(s)	((s)->writer || (s)->readers)
#define down_write(s)		do {						\
		if ((s)->writer || (s)->readers)				\
			kt_lock_event("down_write on a held rwsem", __FILE__, __LINE__); \
		(s)->writer = 1;						\
	} while (0)
#define up_write(s)		do {						\
		if (!(s)->writer)						\
			kt_lock_event("up_write of an rwsem not held", __FILE__, __LINE__); \
		(s)->writer = 0;						\
	} while (0)
#define down_read(s)		((s)->readers++)
#define up_read(s)		((s)->readers--)

typedef struct {
	int locked;
} spinlock_t;

#define spin_lock(l)		do {						\
		if ((l)->locked)						\
			kt_lock_event("spin_lock on a held lock", __FILE__, __LINE__); \
		(l)->locked = 1;						\
	} while (0)
#define spin_unlock(l)		((l)->locked = 0)

/* Lists, as include/linux/list.h behaves. */
struct list_head {
	struct list_head *next, *prev;
};

#define LIST_POISON1	((void *)0xdead000000000100UL)
#define LIST_POISON2	((void *)0xdead000000000122UL)

static inline void INIT_LIST_HEAD(struct list_head *list)
{
	list->next = list;
	list->prev = list;
}

static inline void list_add(struct list_head *new, struct list_head *head)
{
	struct list_head *next = head->next;

	next->prev = new;
	new->next = next;
	new->prev = head;
	head->next = new;
}

static inline void list_del(struct list_head *entry)
{
	entry->next->prev = entry->prev;
	entry->prev->next = entry->next;
	entry->next = LIST_POISON1;
	entry->prev = LIST_POISON2;
}

static inline int list_empty(const struct list_head *head)
{
	return READ_ONCE(head->next) == head;
}

static inline int list_is_singular(const struct list_head *head)
{
	return !list_empty(head) && (head->next == head->prev);
}

#define list_entry(ptr, type, member)	container_of(ptr, type, member)
#define list_first_entry(ptr, type, member)	list_entry((ptr)->next, type, member)
#define list_last_entry(ptr, type, member)	list_entry((ptr)->prev, type, member)
#define list_next_entry(pos, member)	\
	list_entry((pos)->member.next, __typeof__(*(pos)), member)
#define list_prev_entry(pos, member)	\
	list_entry((pos)->member.prev, __typeof__(*(pos)), member)
#define list_entry_is_head(pos, head, member)	(&(pos)->member == (head))
#define list_for_each_entry(pos, head, member)				\
	for (pos = list_first_entry(head, __typeof__(*pos), member);	\
	     !list_entry_is_head(pos, head, member);			\
	     pos = list_next_entry(pos, member))
#define list_for_each_entry_reverse(pos, head, member)			\
	for (pos = list_last_entry(head, __typeof__(*pos), member);	\
	     !list_entry_is_head(pos, head, member);			\
	     pos = list_prev_entry(pos, member))
#define list_for_each_entry_safe(pos, n, head, member)			\
	for (pos = list_first_entry(head, __typeof__(*pos), member),	\
		n = list_next_entry(pos, member);			\
	     !list_entry_is_head(pos, head, member);			\
	     pos = n, n = list_next_entry(n, member))

/* Slab: see glue.c. */
#define GFP_KERNEL		0x1u
#define GFP_NOWAIT		0x2u
#define __GFP_NOWARN		0x4u
#define SLAB_TYPESAFE_BY_RCU	0x1ul
#define SLAB_PANIC		0x2ul
#define SLAB_ACCOUNT		0x4ul

struct kmem_cache;
struct kmem_cache *kmem_cache_create(const char *name, unsigned int size,
				     unsigned int align, unsigned long flags,
				     void (*ctor)(void *obj));
#define KMEM_CACHE(s, flags)	\
	kmem_cache_create(#s, sizeof(struct s), 0, (flags), NULL)
void *kmem_cache_alloc(struct kmem_cache *cachep, gfp_t flags);
void kmem_cache_free(struct kmem_cache *cachep, void *objp);

/* vm_flags: anondiff's own bit numbers. */
enum {
	VMA_READ_BIT, VMA_WRITE_BIT, VMA_EXEC_BIT, VMA_SHARED_BIT,
	VMA_DONTCOPY_BIT, VMA_ACCOUNT_BIT, VMA_WIPEONFORK_BIT, VMA_SOFTDIRTY_BIT,
};

#define VM_READ		(1UL << VMA_READ_BIT)
#define VM_WRITE	(1UL << VMA_WRITE_BIT)
#define VM_EXEC		(1UL << VMA_EXEC_BIT)
#define VM_SHARED	(1UL << VMA_SHARED_BIT)
#define VM_DONTCOPY	(1UL << VMA_DONTCOPY_BIT)
#define VM_ACCOUNT	(1UL << VMA_ACCOUNT_BIT)
#define VM_WIPEONFORK	(1UL << VMA_WIPEONFORK_BIT)
#define VM_SOFTDIRTY	(1UL << VMA_SOFTDIRTY_BIT)
#define VM_ACCESS_FLAGS	(VM_READ | VM_WRITE | VM_EXEC)

typedef unsigned long vm_flags_t;
typedef struct {
	unsigned long __vma_flags[1];
} vma_flags_t;

static inline vma_flags_t kt_mk_vma_flags(const int *bits, int nr)
{
	vma_flags_t flags = { { 0 } };

	while (nr--)
		flags.__vma_flags[0] |= 1UL << bits[nr];
	return flags;
}

#define mk_vma_flags(...)						\
	kt_mk_vma_flags((const int[]){ __VA_ARGS__ },			\
			sizeof((const int[]){ __VA_ARGS__ }) / sizeof(int))
#define VMA_ACCESS_FLAGS	mk_vma_flags(VMA_READ_BIT, VMA_WRITE_BIT, VMA_EXEC_BIT)
#define VMA_IGNORE_MERGE_FLAGS	mk_vma_flags(VMA_SOFTDIRTY_BIT)

static inline vma_flags_t vma_flags_diff_pair(const vma_flags_t *a, const vma_flags_t *b)
{
	vma_flags_t diff = { { a->__vma_flags[0] ^ b->__vma_flags[0] } };

	return diff;
}

static inline void vma_flags_clear_mask(vma_flags_t *flags, vma_flags_t mask)
{
	flags->__vma_flags[0] &= ~mask.__vma_flags[0];
}

static inline bool vma_flags_empty(const vma_flags_t *flags)
{
	return !flags->__vma_flags[0];
}

/* The mm and its VMAs: only the fields the cut code reads. */
struct maple_tree {
	int kt_unused;
};

struct file;
struct anon_vma;

struct mm_struct {
	struct maple_tree mm_mt;
	spinlock_t page_table_lock;
	int kt_mmap_lock;			/* 0 none, 1 read, 2 write */
	struct vm_area_struct **kt_window;	/* the VMAs the lookup sees, ascending */
	int kt_nr_window;
};

struct vm_area_struct {
	unsigned long vm_start;
	unsigned long vm_end;
#ifdef KT_VMA_LIST
	/* the VMA list of trees before the maple tree (v6.0 and older), from the window */
	struct vm_area_struct *vm_next, *vm_prev;
#endif
	struct mm_struct *vm_mm;
	union {
		vm_flags_t vm_flags;
		vma_flags_t flags;
	};
	unsigned long vm_pgoff;
	struct file *vm_file;
	struct anon_vma *anon_vma;
	struct list_head anon_vma_chain;
	int kt_attached;
	int kt_nr;		/* the number Python knows it by (glue.c: kt_vma_id()) */
};

struct mempolicy;
#define vma_policy(vma)		((struct mempolicy *)NULL)
#define mpol_equal(a, b)	((a) == (b))
#define vma_is_attached(vma)	((vma)->kt_attached)

void kt_mmap_assert(struct mm_struct *mm, int write, const char *file, int line);
#define mmap_assert_locked(mm)		kt_mmap_assert(mm, 0, __FILE__, __LINE__)
#define mmap_assert_write_locked(mm)	kt_mmap_assert(mm, 1, __FILE__, __LINE__)

/* 6.1's maple state and 6.12+'s VMA iterator, over the window (older trees: vm_prev/vm_next). */
struct ma_state {
	struct mm_struct *kt_mm;
	unsigned long index;
	int kt_slot;		/* 2 * i + 1: at VMA i; 2 * i: in the gap below VMA i */
};

struct vma_iterator {
	struct ma_state mas;
};

static inline struct ma_state kt_ma_state(struct mm_struct *mm, unsigned long index)
{
	struct ma_state mas = { mm, index, -1 };

	return mas;
}

#define MA_STATE(name, mt, first, end)	\
	struct ma_state name = kt_ma_state(container_of(mt, struct mm_struct, mm_mt), first)
#define VMA_ITERATOR(name, mm, addr)	\
	struct vma_iterator name = { .mas = kt_ma_state(mm, addr) }

void *mas_walk(struct ma_state *mas);
void *mas_prev(struct ma_state *mas, unsigned long min);
#define vma_iter_load(vmi)	((struct vm_area_struct *)mas_walk(&(vmi)->mas))
#define vma_prev(vmi)		((struct vm_area_struct *)mas_prev(&(vmi)->mas, 0))

/* 7.x is_mergeable_anon_vma() reads these of struct vma_merge_struct. */
struct vma_merge_struct {
	struct vm_area_struct *prev;
	struct vm_area_struct *middle;
	struct vm_area_struct *next;
	struct vm_area_struct *copied_from;
	struct anon_vma *anon_vma;
};

struct anon_vma_chain;
void anon_vma_interval_tree_insert(struct anon_vma_chain *node, struct rb_root_cached *root);
void anon_vma_interval_tree_remove(struct anon_vma_chain *node, struct rb_root_cached *root);
struct anon_vma *find_mergeable_anon_vma(struct vm_area_struct *vma);

#endif
