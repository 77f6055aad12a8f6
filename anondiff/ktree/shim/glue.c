// SPDX-License-Identifier: GPL-2.0
/*
 * anondiff's glue: compiled at the end of the unit of code cut from a kernel tree, so that
 * its entry point can call the tree's static functions.  Python (anondiff.ktree.binding)
 * calls kt_call() once per operation; it passes the VMAs involved (geometry, flags, file,
 * anon_vma, attached state) and reads back a stream of records: interval-tree insertions and
 * removals, anon_vma allocations and frees, WARN/BUG events, then the chain of every VMA
 * involved and the state of every anon_vma touched.
 *
 * Slab objects get a page each (a window of KT_PAGE_SLOTS, then packed: each cache's objects
 * at their own size, 8-aligned, in an arena of its own, as a slab packs them), are filled
 * with 0x5a before the constructor, poisoned with 0x6b when freed and never reused; a freed
 * page becomes PROT_NONE, so a use after free faults at a known object.  A fault inside the
 * tree's code is caught (SIGSEGV/SIGBUS handler, siglongjmp) and reported as a crash, and so
 * are abort() (SIGABRT), a trap or an invalid instruction (SIGILL), an arithmetic exception
 * (SIGFPE) and a call that runs longer than kt_set_timeout()'s CPU seconds (an endless loop:
 * SIGVTALRM from ITIMER_VIRTUAL, armed for each call; when it fires inside the glue's own
 * malloc/realloc it is taken at the next safe point, so that no malloc lock is left held).
 */
#include <setjmp.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>

#define KT_PAGE		4096L
#define KT_PAGE_SLOTS	4096L
#define KT_PACK_SIZE	256L
#define KT_PACK_SLOTS	(1L << 21)
/* a cache's packed objects: an arena each (anon_vma's first), objects at their own size */
#define KT_ARENAS	4
#define KT_ARENA_BYTES	(KT_PACK_SLOTS * KT_PACK_SIZE)
#define KT_SLOTS	(KT_PAGE_SLOTS + KT_ARENAS * KT_PACK_SLOTS)

enum kt_op {
	KT_OP_PREPARE = 1, KT_OP_FORK, KT_OP_CLONE, KT_OP_UNLINK, KT_OP_REKEY,
	KT_OP_DUP_ANON_VMA, KT_OP_MERGEABLE, KT_OP_ATTACH, KT_OP_FIND, KT_OP_ANON_VMA_MERGE,
};

/* (4, KT_R_ALLOC, is no longer written: kt_av_allocated() answers) */
enum kt_record {
	KT_R_NEWVMA = 1, KT_R_INS, KT_R_DEL, KT_R_FREE = 5, KT_R_EVENT, KT_R_VMA,
	KT_R_AV, KT_R_CRASH, KT_R_RESULT, KT_R_PAIR, KT_R_NOMEM,
};

enum kt_slot_state { KT_SLOT_UNUSED, KT_SLOT_LIVE, KT_SLOT_FREED };

struct kmem_cache {
	const char *name;
	unsigned int size;
	void (*ctor)(void *obj);
	int is_anon_vma;
	int arena;
};

struct kt_event {
	const char *kind;
	const char *file;
	int line;
	const char *cond;
};

static char *kt_pages, *kt_packed;
static long kt_used_pages;
/* per arena: objects taken, their stride (the object's size, 8-aligned), 2^64 / stride */
static long kt_arena_used[KT_ARENAS], kt_arena_stride[KT_ARENAS];
static unsigned long kt_arena_magic[KT_ARENAS];
static unsigned char *kt_state;
/* per slab slot: 1 when an anon_vma was allocated there (kt_av_allocated()) */
static unsigned char *kt_av_slot;
static unsigned int *kt_mark;
static unsigned int kt_gen;
static long *kt_out;
static long kt_out_len, kt_out_cap;
static struct kt_event *kt_events;
static long kt_nr_events, kt_cap_events;
static struct mm_struct **kt_mms;
static long kt_nr_mms;
static long kt_nr_vmas;
/* the VMAs' memory, KT_VMA_CHUNK at a time (zeroed) */
#define KT_VMA_CHUNK	4096L
static struct vm_area_struct **kt_vma_chunks;
static long kt_nr_vma_chunks, kt_cap_vma_chunks;
static struct kmem_cache *kt_caches[8];
static int kt_nr_caches;
static struct anon_vma **kt_dirty;
static long kt_nr_dirty, kt_cap_dirty;
/*
 * per slab slot: the number Python knows this anon_vma_chain by, plus one (0: not told of it
 * yet).  Chains are numbered 0, 1, ... in the order the records first name them, so that
 * Python keeps them in a list (appending each new one) rather than a map from pointers.
 * (Four bytes: a replay has fewer than KT_SLOTS chains in the slab.)
 */
static unsigned int *kt_known;
static long kt_nr_known;
/* kt_fork_all(): did an insertion re-insert a known chain, or a chain hold an unknown one? */
static int kt_surprise;
/* kt_fork_all()'s records, split by kind (kt_fork_split()) */
static long *kt_fast;
static long kt_fast_cap;

static sigjmp_buf kt_jmp;
static void *volatile kt_fault_addr;
static volatile int kt_fault_code;
static char kt_altstack[65536];
static volatile sig_atomic_t kt_in_alloc, kt_late_timeout, kt_batch;
static struct timeval kt_timeout = { 30, 0 };

/* malloc and friends, with a timer that fires meanwhile taken when they return */
static void kt_alloc_begin(void)
{
	kt_in_alloc = 1;
}

static void kt_alloc_end(void)
{
	kt_in_alloc = 0;
	if (kt_late_timeout) {
		kt_late_timeout = 0;
		raise(SIGVTALRM);
	}
}

static void *kt_grow(void *p, long *cap, long need, size_t size)
{
	if (need <= *cap)
		return p;
	while (*cap < need)
		*cap = *cap ? *cap * 2 : 1024;
	kt_alloc_begin();
	p = realloc(p, *cap * size);
	if (!p)
		abort();
	kt_alloc_end();
	return p;
}

static void *kt_calloc(size_t n, size_t size)
{
	void *p;

	kt_alloc_begin();
	p = calloc(n, size);
	if (!p)
		abort();
	kt_alloc_end();
	return p;
}

/* The CPU seconds one call may take before it is stopped as an endless loop. */
void kt_set_timeout(double seconds)
{
	kt_timeout.tv_sec = (long)seconds;
	kt_timeout.tv_usec = (long)((seconds - (long)seconds) * 1e6);
}

static void kt_arm(int on)
{
	struct itimerval it = { { 0, 0 }, { 0, 0 } };

	if (on)
		it.it_value = kt_timeout;
	setitimer(ITIMER_VIRTUAL, &it, NULL);
}

static inline void kt_emit(long v)
{
	if (kt_out_len == kt_out_cap)
		kt_out = kt_grow(kt_out, &kt_out_cap, kt_out_len + 1, sizeof(long));
	kt_out[kt_out_len++] = v;
}

static inline void kt_emit3(long a, long b, long c)
{
	if (kt_out_len + 3 > kt_out_cap)
		kt_out = kt_grow(kt_out, &kt_out_cap, kt_out_len + 3, sizeof(long));
	kt_out[kt_out_len] = a;
	kt_out[kt_out_len + 1] = b;
	kt_out[kt_out_len + 2] = c;
	kt_out_len += 3;
}

void kt_event(const char *kind, const char *file, int line, const char *cond)
{
	kt_events = kt_grow(kt_events, &kt_cap_events, kt_nr_events + 1, sizeof(*kt_events));
	kt_events[kt_nr_events] = (struct kt_event){ kind, file, line, cond };
	kt_emit(KT_R_EVENT);
	kt_emit(kt_nr_events++);
}

void kt_lock_event(const char *what, const char *file, int line)
{
	kt_event("LOCKDEP", file, line, what);
}

void kt_mmap_assert(struct mm_struct *mm, int write, const char *file, int line)
{
	if (mm->kt_mmap_lock < 1 + write)
		kt_event(write ? "mmap_assert_write_locked" : "mmap_assert_locked", file, line,
			 write ? "mmap lock not held for writing" : "mmap lock not held");
}

static void kt_emit_av(struct anon_vma *av);
static inline long kt_av_id(const struct anon_vma *av);
/* -- slab ---------------------------------------------------------------------------- */

/*
 * The slot of the object holding p, -1 for none: the first KT_PAGE_SLOTS objects a page each,
 * then each cache's in its arena, at its stride (a multiplication by 2^64 / stride for the
 * division, exact for offsets below 2^32).  The arenas are tried first: past the first
 * KT_PAGE_SLOTS objects, a fork's are all there.  (Offsets as unsigned differences: one
 * comparison a range.)
 */
static inline long kt_slot_of(const void *p)
{
	unsigned long off = (unsigned long)p - (unsigned long)kt_packed, j;
	long a;

	if (kt_packed && off < KT_ARENAS * KT_ARENA_BYTES) {
		a = off / KT_ARENA_BYTES;
		off %= KT_ARENA_BYTES;
		if (!kt_arena_stride[a])
			return -1;
		j = (unsigned long)(((unsigned __int128)off * kt_arena_magic[a]) >> 64);
		return j < KT_PACK_SLOTS ? KT_PAGE_SLOTS + a * KT_PACK_SLOTS + j : -1;
	}
	off = (unsigned long)p - (unsigned long)kt_pages;
	if (kt_pages && off < KT_PAGE_SLOTS * KT_PAGE)
		return off / KT_PAGE;
	return -1;
}

/*
 * The numbers Python knows VMAs and anon_vmas by, small and in creation order so that Python
 * keeps its objects in lists indexed by them (and each object its own number) rather than in
 * maps from pointers: a VMA's is its place in the chunks plus one (kept in the shim's struct);
 * an anon_vma's its slab slot plus one.  NULL is 0.  A pointer to no slab object's start (one
 * the tree's code left dangling or uninitialised) gets a negative number of its own, from
 * kt_foreign, and tells kt_fork_all() to hand its records over one by one.
 */
static void **kt_foreign;
static long kt_nr_foreign, kt_cap_foreign;

static inline const char *kt_slot_addr(long slot)
{
	long a, j;

	if (slot < KT_PAGE_SLOTS)
		return kt_pages + slot * KT_PAGE;
	a = (slot - KT_PAGE_SLOTS) / KT_PACK_SLOTS;
	j = (slot - KT_PAGE_SLOTS) % KT_PACK_SLOTS;
	return kt_packed + a * KT_ARENA_BYTES + j * kt_arena_stride[a];
}

static inline long kt_vma_id(const struct vm_area_struct *vma)
{
	return vma ? vma->kt_nr : 0;
}

static inline struct vm_area_struct *kt_vma_at(long id)
{
	return id > 0 && id <= kt_nr_vmas ?
	       kt_vma_chunks[(id - 1) / KT_VMA_CHUNK] + (id - 1) % KT_VMA_CHUNK : NULL;
}

static long kt_av_foreign(const struct anon_vma *av);

/* (inline: a fork asks it several times a pair; a pointer to no slab object's start is rare) */
static inline long kt_av_id(const struct anon_vma *av)
{
	long slot = kt_slot_of(av);

	if (!av)
		return 0;
	if (slot >= 0 && kt_slot_addr(slot) == (const char *)av)
		return slot + 1;
	return kt_av_foreign(av);
}

static __attribute__((noinline)) long kt_av_foreign(const struct anon_vma *av)
{
	long i;

	kt_surprise = 1;
	for (i = 0; i < kt_nr_foreign; i++)
		if (kt_foreign[i] == av)
			return -(i + 1);
	kt_foreign = kt_grow(kt_foreign, &kt_cap_foreign, kt_nr_foreign + 1, sizeof(*kt_foreign));
	kt_foreign[kt_nr_foreign++] = (void *)av;
	return -kt_nr_foreign;
}

static struct anon_vma *kt_av_at(long id)
{
	if (id > 0)
		return (struct anon_vma *)kt_slot_addr(id - 1);
	if (id < 0 && -id <= kt_nr_foreign)
		return kt_foreign[-id - 1];
	return NULL;
}

/* Was the anon_vma numbered id allocated from the anon_vma cache (in this replay)? */
long kt_av_allocated(long id)
{
	return id > 0 && id <= KT_SLOTS && kt_av_slot[id - 1];
}

/* The number of the slab object that holds an address (a crash's), 0 for none. */
long kt_addr_av(long addr)
{
	return kt_slot_of((const void *)addr) + 1;
}

struct kmem_cache *kmem_cache_create(const char *name, unsigned int size,
				     unsigned int align, unsigned long flags,
				     void (*ctor)(void *))
{
	struct kmem_cache *c = calloc(1, sizeof(*c));
	int i;

	if (!c || size > KT_PACK_SIZE)
		abort();
	c->name = name;
	c->size = size;
	c->ctor = ctor;
	c->is_anon_vma = !strcmp(name, "anon_vma");
	/*
	 * anon_vma's arena is the first (the numbers Python knows anon_vmas by are their slots:
	 * dense), the others' follow; an object's stride is its size, 8-aligned (the kernel's
	 * slab minimum alignment; no cache here asks for SLAB_HWCACHE_ALIGN)
	 */
	c->arena = 0;
	if (!c->is_anon_vma)
		for (i = 0, c->arena = 1; i < kt_nr_caches; i++)
			c->arena += !kt_caches[i]->is_anon_vma;
	if (c->arena >= KT_ARENAS || kt_nr_caches >= (int)(sizeof(kt_caches) / sizeof(*kt_caches)))
		abort();
	kt_arena_stride[c->arena] = (size + 7) & ~7UL;
	kt_arena_magic[c->arena] = ~0UL / kt_arena_stride[c->arena] + 1;
	kt_caches[kt_nr_caches++] = c;
	return c;
}

/*
 * Fault injection, the step's ``enomem: N`` (like /proc/self/fail-nth): while kt_fail_nth is
 * set, every allocation from the slab caches (anon_vma, anon_vma_chain) is counted, and the
 * kt_fail_nth-th returns NULL (a KT_R_NOMEM record: which cache, its number, the caller).  A
 * failed GFP_NOWAIT try and the GFP_KERNEL retry that follows it (anon_vma_clone() before the
 * 2026 rework) are one allocation, as in the Python model: the retry fails too, uncounted.
 */
static long kt_fail_nth, kt_fail_count;
static int kt_fail_retry;

void kt_set_fail_nth(long nth)
{
	kt_fail_nth = nth;
	kt_fail_count = 0;
	kt_fail_retry = 0;
}

long kt_fail_allocs(void)
{
	return kt_fail_count;
}

void *kmem_cache_alloc(struct kmem_cache *c, gfp_t flags)
{
	char *p;
	long slot;

	if (kt_fail_nth) {
		if (kt_fail_retry) {
			kt_fail_retry = 0;
			return NULL;
		}
		if (++kt_fail_count == kt_fail_nth) {
			kt_emit3(KT_R_NOMEM, c->is_anon_vma ? 0 : 1, kt_fail_count);
			kt_emit((long)__builtin_return_address(0));
			kt_fail_retry = (flags & GFP_NOWAIT) != 0;
			return NULL;
		}
	}
	if (kt_used_pages < KT_PAGE_SLOTS) {
		slot = kt_used_pages++;
		p = kt_pages + slot * KT_PAGE;
		if (mprotect(p, KT_PAGE, PROT_READ | PROT_WRITE))
			abort();
	} else if (kt_arena_used[c->arena] < KT_PACK_SLOTS) {
		long j = kt_arena_used[c->arena]++;

		slot = KT_PAGE_SLOTS + c->arena * KT_PACK_SLOTS + j;
		p = kt_packed + c->arena * KT_ARENA_BYTES + j * kt_arena_stride[c->arena];
	} else {
		return NULL;
	}
	memset(p, 0x5a, c->size);	/* slab memory is not zeroed */
	if (c->ctor)
		c->ctor(p);
	/*
	 * The slot's entries are written here, before anything reads them: a page of these tables
	 * that a read touches first is mapped twice, the zero page and then its own page.
	 */
	kt_state[slot] = KT_SLOT_LIVE;
	kt_av_slot[slot] = c->is_anon_vma;
	kt_known[slot] = 0;
	if (c->is_anon_vma)
		kt_mark[slot] = 0;	/* below any call's kt_gen */
	return p;
}

void kmem_cache_free(struct kmem_cache *c, void *p)
{
	long slot = kt_slot_of(p);

	if (!p)
		return;
	if (slot < 0 || kt_state[slot] != KT_SLOT_LIVE) {
		kt_event("BUG", "mm/slab", 0, slot < 0 ? "kmem_cache_free of a foreign pointer"
						  : "double free");
		return;
	}
	if (c->is_anon_vma)
		kt_emit_av(p);		/* its last state, as the Python model keeps it */
	kt_state[slot] = KT_SLOT_FREED;
	memset(p, 0x6b, c->size);
	if (slot < KT_PAGE_SLOTS)
		mprotect(p, KT_PAGE, PROT_NONE);
	if (c->is_anon_vma) {
		kt_emit(KT_R_FREE);
		kt_emit(kt_av_id(p));
	}
}

static int kt_live(const void *p)
{
	long slot = kt_slot_of(p);

	return slot >= 0 && kt_state[slot] == KT_SLOT_LIVE;
}

/* -- the maple-state stand-in over the window ------------------------------------------ */

void *mas_walk(struct ma_state *mas)
{
	struct mm_struct *mm = mas->kt_mm;
	int i;

	for (i = 0; i < mm->kt_nr_window; i++) {
		struct vm_area_struct *v = mm->kt_window[i];

		if (mas->index < v->vm_start) {
			mas->kt_slot = 2 * i;
			return NULL;
		}
		if (mas->index < v->vm_end) {
			mas->kt_slot = 2 * i + 1;
			return v;
		}
	}
	mas->kt_slot = 2 * mm->kt_nr_window;
	return NULL;
}

void *mas_prev(struct ma_state *mas, unsigned long min)
{
	int i = mas->kt_slot / 2 - 1;	/* the VMA below the current slot, gaps skipped */

	if (mas->kt_slot < 0 || i < 0 || mas->kt_mm->kt_window[i]->vm_end <= min) {
		mas->kt_slot = 0;
		return NULL;
	}
	mas->kt_slot = 2 * i + 1;
	return mas->kt_mm->kt_window[i];
}

/* -- the interval tree, logged --------------------------------------------------------- */

/* The number of a chain in the records (see kt_known); a new one when Python does not know
 * it yet (a chain outside the slab, which the tree's code should never make: each time). */
static long kt_avc_id(const void *avc, int *known)
{
	long slot = kt_slot_of(avc);

	if (slot >= 0 && kt_known[slot]) {
		*known = 1;
		return kt_known[slot] - 1;
	}
	*known = 0;
	if (slot >= 0)
		kt_known[slot] = (unsigned int)(kt_nr_known + 1);
	return kt_nr_known++;
}

void anon_vma_interval_tree_insert(struct anon_vma_chain *node, struct rb_root_cached *root)
{
	int known;
	long id = kt_avc_id(node, &known);

	kt_surprise |= known;		/* a re-insertion */
	kt_emit3(KT_R_INS, id, kt_av_id(node->anon_vma));
	kt_emit(kt_vma_id(node->vma));
	kt_cut_anon_vma_interval_tree_insert(node, root);
}

void anon_vma_interval_tree_remove(struct anon_vma_chain *node, struct rb_root_cached *root)
{
	int known;

	kt_emit3(KT_R_DEL, kt_avc_id(node, &known), kt_av_id(node->anon_vma));
	kt_cut_anon_vma_interval_tree_remove(node, root);
}

/* -- state ----------------------------------------------------------------------------- */

/*
 * The per-slot tables of the slots the last replay used back to zero (the slots are taken in
 * order, from the start of the page slots and of each arena).  kt_mark holds generations,
 * always below the next call's, and kmem_cache_alloc() sets kt_known: they need no clearing.
 */
static void kt_clear_slots(long from, long nr)
{
	memset(kt_state + from, 0, nr);
	memset(kt_av_slot + from, 0, nr);
}

/*
 * Forget the last replay.  The per-slot tables and the VMAs' chunks are kept for the next one
 * (cleared where they were used): tables of KT_SLOTS entries and chunks calloc()ed again for
 * each replay meant a page fault for each page of them a replay touched (a fork of 65,024
 * VMAs: about 1,700 for the child's VMAs alone).
 */
static void kt_release(void)
{
	long i;

	if (kt_state) {
		kt_clear_slots(0, kt_used_pages);
		for (i = 0; i < KT_ARENAS; i++)
			kt_clear_slots(KT_PAGE_SLOTS + i * KT_PACK_SLOTS, kt_arena_used[i]);
	}
	for (i = 0; i < kt_nr_mms; i++) {
		free(kt_mms[i]->kt_window);
		free(kt_mms[i]);
	}
	free(kt_mms);
	for (i = 0; i < kt_nr_caches; i++)
		free(kt_caches[i]);
	kt_nr_caches = 0;
	kt_mms = NULL;
	kt_nr_mms = kt_nr_vmas = 0;
	kt_nr_foreign = 0;
}

static void kt_install_handlers(void);

/* Forget everything: a new replay starts. */
int kt_reset(void)
{
	int i;

	kt_release();
	/*
	 * The arenas are mapped once and kept: a new replay takes the slots from the start again
	 * (each object is filled with 0x5a when allocated), the page slots it used made
	 * inaccessible again and the packed ones left to the kernel to take back when it needs
	 * memory (MADV_FREE): another replay's objects land on pages mapped already, without
	 * a page fault each.
	 */
	if (!kt_pages) {
		kt_pages = mmap(NULL, KT_PAGE_SLOTS * KT_PAGE, PROT_NONE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		kt_packed = mmap(NULL, KT_ARENAS * KT_ARENA_BYTES, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (kt_pages == MAP_FAILED || kt_packed == MAP_FAILED) {
			kt_pages = kt_packed = NULL;
			return -ENOMEM;
		}
	} else {
		if (kt_used_pages &&
		    mprotect(kt_pages, kt_used_pages * KT_PAGE, PROT_NONE))
			return -ENOMEM;
		for (i = 0; i < KT_ARENAS; i++)
			if (kt_arena_used[i])
				madvise(kt_packed + i * KT_ARENA_BYTES,
					kt_arena_used[i] * kt_arena_stride[i], MADV_FREE);
	}
	kt_used_pages = 0;
	memset(kt_arena_used, 0, sizeof(kt_arena_used));
	memset(kt_arena_stride, 0, sizeof(kt_arena_stride));
	if (!kt_state) {
		kt_state = calloc(KT_SLOTS, 1);
		kt_av_slot = calloc(KT_SLOTS, 1);
		kt_mark = calloc(KT_SLOTS, sizeof(*kt_mark));
		kt_known = calloc(KT_SLOTS, sizeof(*kt_known));
		if (!kt_state || !kt_av_slot || !kt_mark || !kt_known) {
			free(kt_state);
			free(kt_av_slot);
			free(kt_mark);
			free(kt_known);
			kt_state = kt_av_slot = NULL;
			kt_mark = NULL;
			kt_known = NULL;
			return -ENOMEM;
		}
	}
	kt_nr_known = 0;
	kt_nr_events = 0;
	kt_out_len = 0;
	kt_install_handlers();
	anon_vma_init();
	return 0;
}

static struct mm_struct *kt_mm(long id)
{
	while (kt_nr_mms <= id) {
		struct mm_struct *mm = kt_calloc(1, sizeof(*mm));

		kt_alloc_begin();
		kt_mms = realloc(kt_mms, (kt_nr_mms + 1) * sizeof(*kt_mms));
		if (!kt_mms)
			abort();
		kt_alloc_end();
		mm->kt_window = kt_calloc(3, sizeof(*mm->kt_window));
		kt_mms[kt_nr_mms++] = mm;
	}
	return kt_mms[id];
}

static struct vm_area_struct *kt_vma_new(void)
{
	struct vm_area_struct *vma;

	/* (a chunk a replay before this one used is taken again: zeroed here, VMA by VMA) */
	if (kt_nr_vmas / KT_VMA_CHUNK == kt_nr_vma_chunks) {
		kt_vma_chunks = kt_grow(kt_vma_chunks, &kt_cap_vma_chunks, kt_nr_vma_chunks + 1,
					sizeof(*kt_vma_chunks));
		kt_vma_chunks[kt_nr_vma_chunks++] = kt_calloc(KT_VMA_CHUNK, sizeof(*vma));
	}
	vma = kt_vma_chunks[kt_nr_vmas / KT_VMA_CHUNK] + kt_nr_vmas % KT_VMA_CHUNK;
	memset(vma, 0, sizeof(*vma));
	INIT_LIST_HEAD(&vma->anon_vma_chain);
	vma->kt_nr = ++kt_nr_vmas;
	return vma;
}

/*
 * the anon_vmas kt_dirty_add() saw last, in this call (a fork's parent's, over and over, and
 * the new one of each child: two at a time)
 */
static const struct anon_vma *kt_dirty_last, *kt_dirty_last2;

static void kt_dirty_add(struct anon_vma *av)
{
	long slot;

	if (av == kt_dirty_last || av == kt_dirty_last2)
		return;
	kt_dirty_last2 = kt_dirty_last;
	kt_dirty_last = av;
	slot = kt_slot_of(av);
	if (slot < 0 || kt_mark[slot] == kt_gen)
		return;
	kt_mark[slot] = kt_gen;
	kt_dirty = kt_grow(kt_dirty, &kt_cap_dirty, kt_nr_dirty + 1, sizeof(*kt_dirty));
	kt_dirty[kt_nr_dirty++] = av;
}

static void kt_dirty_chain(struct vm_area_struct *vma)
{
	struct anon_vma_chain *avc;

	if (vma->anon_vma)
		kt_dirty_add(vma->anon_vma);
	list_for_each_entry(avc, &vma->anon_vma_chain, same_vma)
		if (kt_live(avc))
			kt_dirty_add(avc->anon_vma);
}

static void kt_emit_vma(struct vm_area_struct *vma)
{
	struct anon_vma_chain *avc;
	long n = 0, at;

	kt_emit3(KT_R_VMA, kt_vma_id(vma), kt_av_id(vma->anon_vma));
	at = kt_out_len;
	kt_emit(0);
	list_for_each_entry(avc, &vma->anon_vma_chain, same_vma) {
		int known;
		long id = kt_avc_id(avc, &known);

		kt_surprise |= !known;	/* Python makes a chain it was not told of */
		kt_emit(id);
		kt_emit(kt_av_id(avc->anon_vma));
		n++;
	}
	kt_out[at] = n;
}

static void kt_emit_av(struct anon_vma *av)
{
	kt_emit3(KT_R_AV, kt_av_id(av), atomic_read(&av->refcount));
	kt_emit(kt_av_id(av->root));
	kt_emit(kt_av_id(av->parent));
#ifdef KT_SPLIT_COUNTERS
	kt_emit((long)av->num_children);
	kt_emit((long)av->num_active_vmas);
#else
	kt_emit((long)av->degree);
	kt_emit(0);
#endif
}

static void kt_attach(struct vm_area_struct *vma, struct anon_vma *anon_vma)
{
	/* The tail of __anon_vma_prepare(), for a starting layout's VMAs sharing one. */
	struct anon_vma_chain *avc = anon_vma_chain_alloc(GFP_KERNEL);

	vma->anon_vma = anon_vma;
#ifdef KT_CHAIN_LINK
	anon_vma_chain_link(vma, avc, anon_vma);
#else
	anon_vma_chain_assign(vma, avc, anon_vma);
	anon_vma_interval_tree_insert(avc, &anon_vma->rb_root);
#endif
#ifdef KT_SPLIT_COUNTERS
	anon_vma->num_active_vmas++;
#else
	anon_vma->degree++;
#endif
}

static long kt_mergeable(struct vm_area_struct *src, struct vm_area_struct *tgt, long merge_next)
{
#ifdef KT_MERGEABLE_VMG
	struct vma_merge_struct vmg = {
		.middle = src, .anon_vma = src->anon_vma,
	};

	if (merge_next)
		vmg.next = tgt;
	else
		vmg.prev = tgt;
	return is_mergeable_anon_vma(&vmg, merge_next);
#else
	return is_mergeable_anon_vma(src->anon_vma, tgt->anon_vma, tgt);
#endif
}

#ifdef KT_CLONE_HAS_OP
/* anondiff's VmaOp, in its order: split, merge of an unfaulted VMA, remap, fork. */
static const enum vma_operation kt_vma_ops[] = {
	VMA_OP_SPLIT, VMA_OP_MERGE_UNFAULTED, VMA_OP_REMAP, VMA_OP_FORK,
};
#endif

static long kt_do(long op, struct vm_area_struct **v, const long *arg)
{
	switch (op) {
	case KT_OP_PREPARE:	/* arg[2]: the VMA's index in the window */
		return v[arg[2]]->anon_vma ? 0 : __anon_vma_prepare(v[arg[2]]);
	case KT_OP_FORK:
		return anon_vma_fork(v[0], v[1]);
	case KT_OP_CLONE:
#ifdef KT_CLONE_HAS_OP
		return anon_vma_clone(v[0], v[1], kt_vma_ops[arg[0]]);
#else
		return anon_vma_clone(v[0], v[1]);
#endif
	case KT_OP_UNLINK:
		unlink_anon_vmas(v[0]);
		return 0;
	case KT_OP_DUP_ANON_VMA:
		if (v[1]->anon_vma && !v[0]->anon_vma) {
			v[0]->anon_vma = v[1]->anon_vma;
#ifdef KT_CLONE_HAS_OP
			return anon_vma_clone(v[0], v[1], VMA_OP_MERGE_UNFAULTED);
#else
			return anon_vma_clone(v[0], v[1]);
#endif
		}
		return 0;
	case KT_OP_MERGEABLE:
		return kt_mergeable(v[0], v[1], arg[0]);
	case KT_OP_FIND:	/* arg[2]: the VMA's index in the window */
		return kt_av_id(find_mergeable_anon_vma(v[arg[2]]));
	case KT_OP_ATTACH:
		kt_attach(v[0], kt_av_at(arg[0]));
		return 0;
	case KT_OP_REKEY:
		anon_vma_interval_tree_post_update_vma(v[0]);
		return 0;
	case KT_OP_ANON_VMA_MERGE:	/* vma_merge() removing v[1] into v[0] */
#ifdef KT_ANON_VMA_MERGE
		anon_vma_merge(v[0], v[1]);
#else
		unlink_anon_vmas(v[1]);
#endif
		return 0;
	}
	return 0;
}

/* The signals a call's failure can raise, and what was installed for each before. */
static const int kt_signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGVTALRM };
#define KT_NR_SIGNALS	(sizeof(kt_signals) / sizeof(kt_signals[0]))
static struct sigaction kt_old[KT_NR_SIGNALS];
static volatile int kt_in_call;

static void kt_on_fault(int sig, siginfo_t *si, void *uc)
{
	unsigned int i;

	if (!kt_in_call) {
		if (sig == SIGVTALRM) {
			if (kt_batch)	/* between two pairs of kt_fork_all(): at the next */
				kt_late_timeout = 1;
			return;		/* else a timer of a call that ended meanwhile */
		}
		/* not ours: give the signal back to whoever handled it before (faulthandler) */
		for (i = 0; i < KT_NR_SIGNALS; i++)
			if (kt_signals[i] == sig)
				sigaction(sig, &kt_old[i], NULL);
		return;
	}
	if (sig == SIGVTALRM && kt_in_alloc) {
		kt_late_timeout = 1;
		return;
	}
	kt_in_call = 0;
	kt_in_alloc = 0;
	kt_arm(0);
	kt_fault_addr = sig == SIGVTALRM || sig == SIGABRT ? NULL : si->si_addr;
	kt_fault_code = sig == SIGVTALRM ? (int)(kt_timeout.tv_sec * 1000 + kt_timeout.tv_usec / 1000)
					 : si->si_code;
	siglongjmp(kt_jmp, sig);
}

/* Installed at each reset (syscalls are dear per call), chaining when not in a call. */
static void kt_install_handlers(void)
{
	struct sigaction sa, cur;
	stack_t ss;
	unsigned int i;

	sigaction(SIGSEGV, NULL, &cur);
	if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == kt_on_fault)
		return;
	ss.ss_sp = kt_altstack;
	ss.ss_size = sizeof(kt_altstack);
	ss.ss_flags = 0;
	sigaltstack(&ss, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = kt_on_fault;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < KT_NR_SIGNALS; i++)
		sigaction(kt_signals[i], &sa, &kt_old[i]);
}

#define KT_DESC	9
#define KT_MAX_VMAS	3

static void kt_emit_dirty(void)
{
	long i;

	for (i = 0; i < kt_nr_dirty; i++) {
		struct anon_vma *av = kt_dirty[i];

		if (!kt_live(av))
			continue;
		kt_emit_av(av);
		kt_dirty_add(av->root);
		kt_dirty_add(av->parent);
	}
}

/*
 * A crash (signal sig at kt_fault_addr): the anon_vmas as the crash left them, then the
 * KT_R_CRASH record.  What the code did before it crashed stays done, as in a Python policy
 * that raises midway.
 */
static void kt_emit_crash(int sig)
{
	long slot = kt_slot_of(kt_fault_addr);

	kt_emit_dirty();
	kt_emit3(KT_R_CRASH, sig, (long)kt_fault_addr);
	kt_emit(slot >= 0 ? kt_state[slot] : -1);
	kt_emit(kt_fault_code);
}

/*
 * in: op, nr of VMAs, the op's two arguments, the window index of the VMA the lookup is
 * for (or -1), then per VMA: its number (kt_vma_id(); 0: a new one, a vm_area_dup()), mm id,
 * start, end, pgoff (pages), flags, file id, anon_vma (kt_av_id()), attached.  Returns the length of the record
 * stream, read with kt_records().
 */
long kt_call(const long *in)
{
	struct vm_area_struct *v[KT_MAX_VMAS];
	long op = in[0], nr = in[1], i, rc = 0;
	const long *d;
	int sig;

	kt_out_len = 0;
	kt_nr_dirty = 0;
	kt_gen++;
	kt_dirty_last = kt_dirty_last2 = NULL;
	if (nr > KT_MAX_VMAS)
		abort();
	for (i = 0; i < nr; i++) {
		d = in + 5 + i * KT_DESC;
		v[i] = d[0] ? kt_vma_at(d[0]) : kt_vma_new();
		if (!d[0])
			kt_emit3(KT_R_NEWVMA, i, kt_vma_id(v[i]));
	}

	sig = sigsetjmp(kt_jmp, 0);
	if (!sig) {
		kt_in_call = 1;
		kt_arm(1);
		for (i = 0; i < nr; i++)
			kt_dirty_chain(v[i]);
		if (op == KT_OP_REKEY)
			anon_vma_interval_tree_pre_update_vma(v[0]);
		for (i = 0; i < nr; i++) {
			struct mm_struct *mm;

			d = in + 5 + i * KT_DESC;
			mm = kt_mm(d[1]);
			v[i]->vm_mm = mm;
			v[i]->vm_start = (unsigned long)d[2] << PAGE_SHIFT;
			v[i]->vm_end = (unsigned long)d[3] << PAGE_SHIFT;
			v[i]->vm_pgoff = d[4];
			v[i]->vm_flags = d[5];
			v[i]->vm_file = (struct file *)d[6];
			v[i]->anon_vma = kt_av_at(d[7]);
			v[i]->kt_attached = d[8];
			mm->kt_mmap_lock = op == KT_OP_PREPARE || op == KT_OP_FIND ? 1 : 2;
			mm->kt_nr_window = 0;
		}
#ifdef KT_VMA_LIST
		for (i = 0; i < nr; i++)
			v[i]->vm_prev = v[i]->vm_next = NULL;
#endif
		if (in[4] >= 0) {
			struct mm_struct *mm = v[in[4]]->vm_mm;

			/*
			 * The window is the VMA and its neighbours in address order: the maple
			 * tree of 6.x (mas_walk(), vma_iter_load()) and the VMA list of older
			 * trees (find_mergeable_anon_vma() reading vma->vm_next and vm_prev).
			 */
			for (i = 0; i < nr; i++) {
				mm->kt_window[mm->kt_nr_window++] = v[i];
#ifdef KT_VMA_LIST
				v[i]->vm_prev = i ? v[i - 1] : NULL;
				v[i]->vm_next = i + 1 < nr ? v[i + 1] : NULL;
#endif
			}
		}
		rc = kt_do(op, v, in + 2);
		for (i = 0; i < nr; i++) {
			/* anon_vma_fork() and anon_vma_clone() only read their source VMA */
			if (i == 1 && (op == KT_OP_FORK || op == KT_OP_CLONE))
				continue;
			kt_emit_vma(v[i]);
			kt_dirty_chain(v[i]);
		}
		kt_emit_dirty();
		kt_in_call = 0;
		kt_arm(0);
		kt_emit(KT_R_RESULT);
		kt_emit(rc);
	} else {
		kt_emit_crash(sig);
	}
	return kt_out_len;
}


/*
 * kt_fork_all()'s record stream split by kind, for a reader that applies each kind in bulk
 * (anondiff.ktree.binding.Binding._apply_fork): kt_fast[0] is 1 when the stream holds nothing
 * but pairs, new VMAs, insertions of chains Python was not told of, the children's chains (of
 * chains it was told of) and the anon_vmas' state; 2 when only the first pairs (their count
 * below) are there, without the anon_vmas' state, their records dropped (kt_inc_partial()):
 * the stream holds the rest; else 0 and nothing more (the reader takes the stream record by
 * record).  Then the counts: insertions, pairs, chain entries,
 * anon_vmas, new VMAs; kt_fast[KT_F_OWN], 1 when each child's chain, tail first, is the
 * chains inserted during its fork, in order, each for it (list_add() at the head, as
 * anon_vma_chain_link() does) and the caller let the reader take the chains from there; the
 * highest VMA number there is and the highest anon_vma number an insertion names (the reader
 * makes room for them at once); the number of the first chain inserted (the others follow in
 * order).  Then, for each section (enum kt_sect), its offset in kt_fast_bytes and its length.
 *
 * KT_F_OWN 1: the pairs as runs (KT_S_RUNS).  A pair is the vector (the child's number, its
 * anon_vma, the anon_vma of each insertion in order); a run, consecutive pairs with as many
 * insertions whose vectors each differ from the one before by the same differences (a fork of
 * like neighbours is one run: each child the next number, sharing the parent's anon_vmas and
 * given a new one at the next slab slots).  Per run: its pairs, its insertions per pair, the
 * first vector (each value against the last vector written), and when it has more than one
 * pair, the differences.  KT_F_OWN 0: per insertion its anon_vma (KT_S_INS_AV) and its VMA
 * (KT_S_INS_VMA); per pair the child, its anon_vma, its chain's length and the number of
 * insertions its fork made (KT_S_PAIRS); the chains of the children in order, each tail first
 * (KT_S_CHAIN).  Either way: the anon_vmas' state as runs of (number, refcount, root,
 * parent, two counters) vectors (KT_S_AVS, as the pairs: a fork's new anon_vmas share their
 * root and parent, and follow each other); per new VMA its pair's index and number (KT_S_NEW).
 *
 * Each value is written as its difference from the previous value of its field, zigzag
 * (0, -1, 1, -2, ... as 0, 1, 2, 3, ...), in LEB128 (7 bits a byte, low first, the high bit
 * set on all but the last): a fork's runs of like records then take a byte a value, which
 * Python reads without making an int object of each (readback.Varints).  An insertion's
 * anon_vma is a field per place in its pair's insertions (up to KT_POS): the place of the
 * parent's anon_vma, of the new one, ... each follows its own.  A run's counts and
 * differences are written as they are (against 0).
 */
enum { KT_F_INS = 1, KT_F_PAIRS, KT_F_CHAIN, KT_F_AVS, KT_F_NEW, KT_F_OWN, KT_F_MAX_VMA,
       KT_F_MAX_AV, KT_F_FIRST, KT_F_SECT };

enum kt_sect { KT_S_INS_AV, KT_S_INS_VMA, KT_S_PAIRS, KT_S_CHAIN, KT_S_AVS, KT_S_NEW,
	       KT_S_RUNS, KT_NR_SECTS };

#define KT_F_HEAD	(KT_F_SECT + 2 * KT_NR_SECTS)
#define KT_POS		8
/* a state vector: number, refcount, root, parent, two counters */
#define KT_AV_LEN	6

static unsigned char *kt_fast_bytes;
static long kt_fast_bytes_cap;
/* each section's bytes as they are written, a buffer each (kt_sect_join() puts them end to end) */
static unsigned char *kt_sect_b[KT_NR_SECTS];
static long kt_sect_len[KT_NR_SECTS], kt_sect_cap[KT_NR_SECTS];

/* v as its difference from *prev, zigzag, LEB128, at the end of section sect; *prev becomes v. */
static inline void kt_put(int sect, long v, long *prev)
{
	unsigned long zz = ((unsigned long)(v - *prev) << 1) ^ (unsigned long)((v - *prev) >> 63);
	long at = kt_sect_len[sect];
	unsigned char *b;

	*prev = v;
	if (at + 10 > kt_sect_cap[sect])	/* (10 bytes: the longest value) */
		kt_sect_b[sect] = kt_grow(kt_sect_b[sect], &kt_sect_cap[sect], at + 10, 1);
	b = kt_sect_b[sect];
	while (zz >= 128) {
		b[at++] = (unsigned char)(zz | 128);
		zz >>= 7;
	}
	b[at++] = (unsigned char)zz;
	kt_sect_len[sect] = at;
}

/* v as it is (against 0) in section sect */
static inline void kt_put_raw(int sect, long v)
{
	long zero = 0;

	kt_put(sect, v, &zero);
}

/* The sections end to end in kt_fast_bytes, each one's offset and length in f (KT_F_SECT). */
static void kt_sect_join(long *f)
{
	long i, len = 0;

	for (i = 0; i < KT_NR_SECTS; i++)
		len += kt_sect_len[i];
	kt_fast_bytes = kt_grow(kt_fast_bytes, &kt_fast_bytes_cap, len + 1, 1);
	for (i = 0, len = 0; i < KT_NR_SECTS; len += kt_sect_len[i++]) {
		if (kt_sect_len[i])
			memcpy(kt_fast_bytes + len, kt_sect_b[i], kt_sect_len[i]);
		f[KT_F_SECT + 2 * i] = len;
		f[KT_F_SECT + 2 * i + 1] = kt_sect_len[i];
	}
}

/*
 * A run being gathered: its first vector, the last one, their differences (from the second
 * vector on) and how many vectors it holds; flush() writes it.
 */
struct kt_run {
	long nr, len, cap;
	long *first, *last, *step;
	void (*flush)(struct kt_run *run);
};

/* The last values written by the runs' flushes (the first vectors are written against them) */
static long kt_run_prev[2 + KT_POS], kt_av_prev[KT_AV_LEN];

static void kt_run_flush(struct kt_run *run)
{
	if (run->nr)
		run->flush(run);
	run->nr = 0;
}

/* Add the vector v (len values) to the run, which it continues or ends (then one starts). */
static void kt_run_push(struct kt_run *run, const long *v, long len)
{
	long j;

	if (run->nr && len == run->len) {
		if (run->nr == 1) {
			for (j = 0; j < len; j++)
				run->step[j] = v[j] - run->last[j];
			goto take;
		}
		for (j = 0; j < len && v[j] - run->last[j] == run->step[j]; j++)
			;
		if (j == len)
			goto take;
	}
	kt_run_flush(run);
	if (len > run->cap) {
		long cap = run->cap;

		run->first = kt_grow(run->first, &cap, len, sizeof(long));
		cap = run->cap;
		run->last = kt_grow(run->last, &cap, len, sizeof(long));
		cap = run->cap;
		run->step = kt_grow(run->step, &cap, len, sizeof(long));
		run->cap = cap;
	}
	run->len = len;
	memcpy(run->first, v, len * sizeof(long));
take:
	memcpy(run->last, v, len * sizeof(long));
	run->nr++;
}

/* A run of pairs: count, insertions per pair, the first vector, the differences. */
static void kt_flush_pairs(struct kt_run *run)
{
	long q;

	kt_put_raw(KT_S_RUNS, run->nr);
	kt_put_raw(KT_S_RUNS, run->len - 2);
	kt_put(KT_S_RUNS, run->first[0], &kt_run_prev[0]);
	kt_put(KT_S_RUNS, run->first[1], &kt_run_prev[1]);
	for (q = 0; q < run->len - 2; q++)
		kt_put(KT_S_RUNS, run->first[2 + q], &kt_run_prev[2 + (q < KT_POS ? q : KT_POS - 1)]);
	if (run->nr > 1)
		for (q = 0; q < run->len; q++)
			kt_put_raw(KT_S_RUNS, run->step[q]);
}

/* A run of anon_vma states: count, the first vector, the differences. */
static void kt_flush_avs(struct kt_run *run)
{
	long q;

	kt_put_raw(KT_S_AVS, run->nr);
	for (q = 0; q < KT_AV_LEN; q++)
		kt_put(KT_S_AVS, run->first[q], &kt_av_prev[q]);
	if (run->nr > 1)
		for (q = 0; q < KT_AV_LEN; q++)
			kt_put_raw(KT_S_AVS, run->step[q]);
}

static struct kt_run kt_pair_runs = { .flush = kt_flush_pairs };
static struct kt_run kt_av_runs = { .flush = kt_flush_avs };
/* a pair's vector as its records come */
static long *kt_pair_vec;
static long kt_pair_vec_cap;

/* The length of the record at r, in words (0: a kind kt_fork_split() does not take). */
static long kt_fork_rec_len(const long *r)
{
	switch (r[0]) {
	case KT_R_PAIR:
	case KT_R_NEWVMA:
		return 3;
	case KT_R_INS:
		return 4;
	case KT_R_VMA:
		return 4 + 2 * r[3];
	case KT_R_AV:
		return 7;
	}
	return 0;
}

/* own_ok: may the reader take each child's chain from its insertions (KT_F_OWN)? */
static void kt_fork_split(long npairs, int own_ok)
{
	long cnt[KT_F_SECT] = { 0 }, i, j, len, *f;
	long pair = -1, child = 0, pos = 0, own = 1, pair_ins = 0, max_av = 0, first = -1, nins = 0;
	long prev_av[KT_POS] = { 0 }, prev[KT_NR_SECTS][6] = { { 0 } }, max_chain = 0;

	kt_fast[0] = 0;
	if (kt_surprise)
		return;
	for (i = 0; i < kt_out_len; i += len) {
		len = kt_fork_rec_len(kt_out + i);
		switch (kt_out[i]) {
		case KT_R_PAIR:
			pair = kt_out[i + 1];
			child = kt_out[i + 2];
			pair_ins = i + 3;
			break;
		case KT_R_NEWVMA:
			cnt[KT_F_NEW]++;
			break;
		case KT_R_INS:
			cnt[KT_F_INS]++;
			if (first < 0)
				first = kt_out[i + 1];
			if (kt_out[i + 2] > max_av)
				max_av = kt_out[i + 2];
			break;
		case KT_R_VMA:	/* the child of the current pair, once */
			if (pair != cnt[KT_F_PAIRS] || kt_out[i + 1] != child)
				return;
			if (own) {	/* the records since the pair began: its insertions? */
				long k = pair_ins, nr = 0;

				for (; k < i && own; k += kt_fork_rec_len(kt_out + k)) {
					if (kt_out[k] != KT_R_INS)
						continue;
					own = nr < kt_out[i + 3] && kt_out[k + 3] == child &&
					      kt_out[k + 1] == kt_out[i + 4 + 2 * (kt_out[i + 3] - 1 - nr)];
					nr++;
				}
				own = own && nr == kt_out[i + 3];
			}
			cnt[KT_F_PAIRS]++;
			cnt[KT_F_CHAIN] += kt_out[i + 3];
			if (kt_out[i + 3] > max_chain)
				max_chain = kt_out[i + 3];
			break;
		case KT_R_AV:
			cnt[KT_F_AVS]++;
			break;
		default:
			return;
		}
	}
	if (cnt[KT_F_PAIRS] != npairs)
		return;
	own = own && own_ok;
	memset(kt_sect_len, 0, sizeof(kt_sect_len));
	kt_fast = kt_grow(kt_fast, &kt_fast_cap, KT_F_HEAD, sizeof(long));
	kt_pair_vec = kt_grow(kt_pair_vec, &kt_pair_vec_cap, 2 + max_chain, sizeof(long));
	memset(kt_run_prev, 0, sizeof(kt_run_prev));
	memset(kt_av_prev, 0, sizeof(kt_av_prev));
	kt_pair_runs.nr = kt_av_runs.nr = 0;
	f = kt_fast;
	for (i = 1; i < KT_F_OWN; i++)
		f[i] = cnt[i];
	pair = -1;
	for (i = 0; i < kt_out_len; i += len) {
		const long *r = kt_out + i;

		len = kt_fork_rec_len(r);
		switch (r[0]) {
		case KT_R_PAIR:
			pair = r[1];
			pos = nins = 0;
			break;
		case KT_R_NEWVMA:
			kt_put(KT_S_NEW, pair, &prev[KT_S_NEW][0]);
			kt_put(KT_S_NEW, r[2], &prev[KT_S_NEW][1]);
			break;
		case KT_R_INS:
			if (own) {	/* (as many as the chain has: checked above) */
				kt_pair_vec[2 + nins++] = r[2];
				break;
			}
			kt_put(KT_S_INS_AV, r[2], &prev_av[pos]);
			if (pos < KT_POS - 1)
				pos++;
			nins++;
			kt_put(KT_S_INS_VMA, r[3], &prev[KT_S_INS_VMA][0]);
			break;
		case KT_R_VMA:
			if (own) {
				kt_pair_vec[0] = r[1];
				kt_pair_vec[1] = r[2];
				kt_run_push(&kt_pair_runs, kt_pair_vec, 2 + nins);
				break;
			}
			for (j = 0; j < 3; j++)
				kt_put(KT_S_PAIRS, r[1 + j], &prev[KT_S_PAIRS][j]);
			kt_put(KT_S_PAIRS, nins, &prev[KT_S_PAIRS][3]);
			for (j = r[3] - 1; j >= 0; j--)		/* tail first */
				kt_put(KT_S_CHAIN, r[4 + 2 * j], &prev[KT_S_CHAIN][0]);
			break;
		case KT_R_AV:
			kt_run_push(&kt_av_runs, r + 1, KT_AV_LEN);
			break;
		}
	}
	kt_run_flush(&kt_pair_runs);
	kt_run_flush(&kt_av_runs);
	kt_sect_join(f);
	f[KT_F_OWN] = own;
	f[KT_F_MAX_VMA] = kt_nr_vmas;
	f[KT_F_MAX_AV] = max_av;
	f[KT_F_FIRST] = first;
	f[0] = 1;
}

/*
 * kt_fork_split()'s work for KT_F_OWN done pair by pair, as kt_fork_all() goes (the records of
 * a pair just written, read once while they are at hand, rather than the whole stream twice
 * at the end) and the anon_vmas' state put into their runs without records: the same sections.
 * kt_inc is 1 while every pair so far went into the runs, whose records are then dropped; a
 * pair that does not go there (a record of another kind, a chain not the pair's own
 * insertions, a surprise) ends it, and the stream keeps that pair's records and the rest
 * (kt_inc_partial()).  When the first pair does not, kt_fork_split() reads the whole stream
 * at the end, as without it.
 */
static int kt_inc;
/* the pairs whose records kt_inc_pair() took and dropped (the first ones of the fork) */
static long kt_inc_kept;
static long kt_inc_cnt[KT_F_OWN], kt_inc_max_av, kt_inc_first, kt_inc_new[2];
static const long **kt_inc_ins;
static long kt_inc_ins_cap;

static void kt_inc_start(void)
{
	memset(kt_sect_len, 0, sizeof(kt_sect_len));
	memset(kt_run_prev, 0, sizeof(kt_run_prev));
	memset(kt_av_prev, 0, sizeof(kt_av_prev));
	memset(kt_inc_cnt, 0, sizeof(kt_inc_cnt));
	kt_inc_new[0] = kt_inc_new[1] = 0;
	kt_pair_runs.nr = kt_av_runs.nr = 0;
	kt_inc_max_av = 0;
	kt_inc_first = -1;
	kt_inc_kept = 0;
}

/*
 * The records of pair number pair, from p0 (its KT_R_PAIR) to the end of the stream, into the
 * sections as kt_fork_split() puts them with KT_F_OWN; 0 (nothing more done) when it would not
 * take them so.
 */
static int kt_inc_pair(long p0, long pair)
{
	const long *r = kt_out + p0, *end = kt_out + kt_out_len, *vma = NULL, *newvma = NULL;
	long child = r[2], nins = 0, len, q, n;

	if (kt_surprise || r[0] != KT_R_PAIR || r[1] != pair)
		return 0;
	for (r += 3; r < end; r += len) {
		switch (r[0]) {
		case KT_R_NEWVMA:	/* (written once the pair is taken) */
			if (newvma)
				return 0;
			newvma = r;
			len = 3;
			break;
		case KT_R_INS:
			if (vma)
				return 0;
			kt_inc_ins = kt_grow(kt_inc_ins, &kt_inc_ins_cap, nins + 1, sizeof(*kt_inc_ins));
			kt_inc_ins[nins++] = r;
			len = 4;
			break;
		case KT_R_VMA:
			if (vma)
				return 0;
			vma = r;
			len = 4 + 2 * r[3];
			break;
		default:
			return 0;
		}
	}
	if (!vma || vma[1] != child)
		return 0;
	n = vma[3];
	if (nins != n)
		return 0;
	/* the child's chain, head to tail, is its insertions from the last to the first */
	for (q = 0; q < n; q++)
		if (kt_inc_ins[q][3] != child || kt_inc_ins[q][1] != vma[4 + 2 * (n - 1 - q)])
			return 0;
	kt_pair_vec = kt_grow(kt_pair_vec, &kt_pair_vec_cap, 2 + n, sizeof(long));
	kt_pair_vec[0] = child;
	kt_pair_vec[1] = vma[2];
	for (q = 0; q < n; q++) {
		long av = kt_inc_ins[q][2];

		kt_pair_vec[2 + q] = av;
		if (av > kt_inc_max_av)
			kt_inc_max_av = av;
	}
	if (n && kt_inc_first < 0)
		kt_inc_first = kt_inc_ins[0][1];
	if (newvma) {
		kt_put(KT_S_NEW, pair, &kt_inc_new[0]);
		kt_put(KT_S_NEW, newvma[2], &kt_inc_new[1]);
		kt_inc_cnt[KT_F_NEW]++;
	}
	kt_run_push(&kt_pair_runs, kt_pair_vec, 2 + n);
	kt_inc_cnt[KT_F_INS] += n;
	kt_inc_cnt[KT_F_PAIRS]++;
	kt_inc_cnt[KT_F_CHAIN] += n;
	return 1;
}

/* kt_emit_dirty() into the anon_vmas' runs (KT_S_AVS) rather than records */
static void kt_push_dirty(void)
{
	long i, v[KT_AV_LEN];

	for (i = 0; i < kt_nr_dirty; i++) {
		struct anon_vma *av = kt_dirty[i];

		if (!kt_live(av))
			continue;
		v[0] = kt_av_id(av);
		v[1] = atomic_read(&av->refcount);
		v[2] = kt_av_id(av->root);
		v[3] = kt_av_id(av->parent);
#ifdef KT_SPLIT_COUNTERS
		v[4] = (long)av->num_children;
		v[5] = (long)av->num_active_vmas;
#else
		v[4] = (long)av->degree;
		v[5] = 0;
#endif
		kt_run_push(&kt_av_runs, v, KT_AV_LEN);
		kt_inc_cnt[KT_F_AVS]++;
		kt_dirty_add(av->root);
		kt_dirty_add(av->parent);
	}
}

/* The runs flushed, the sections joined and kt_fork_split()'s head written, kind at [0]. */
static void kt_inc_head(long kind)
{
	long *f = kt_fast, i;

	kt_run_flush(&kt_pair_runs);
	kt_run_flush(&kt_av_runs);
	for (i = 1; i < KT_F_OWN; i++)
		f[i] = kt_inc_cnt[i];
	kt_sect_join(f);
	f[KT_F_OWN] = 1;
	f[KT_F_MAX_VMA] = kt_nr_vmas;
	f[KT_F_MAX_AV] = kt_inc_max_av;
	f[KT_F_FIRST] = kt_inc_first;
	f[0] = kind;
}

/*
 * The end of a kt_fork_all() whose pairs all went into the runs: the anon_vmas' state, then
 * the head.  0 when a surprise came with the state (a root or parent at no slab object): then
 * nothing is written, and the caller ends with kt_inc_partial().
 */
static int kt_inc_finish(long npairs)
{
	if (kt_inc_cnt[KT_F_PAIRS] != npairs)
		return 0;
	kt_push_dirty();
	if (kt_surprise)
		return 0;
	kt_inc_head(1);
	return 1;
}

/*
 * The fork ends with its first kt_inc_kept pairs in the runs and their records dropped (the
 * pair after them was not one kt_inc_pair() takes, it crashed, or the state came with a
 * surprise): the runs of those pairs without the anon_vmas' state (kt_fork_fast()[0] 2), and
 * the records of the rest, then every anon_vma's state, follow in the stream.
 */
static void kt_inc_partial(void)
{
	kt_av_runs.nr = 0;		/* (a state kt_push_dirty() began: in the records) */
	kt_sect_len[KT_S_AVS] = 0;
	kt_inc_cnt[KT_F_AVS] = 0;
	kt_inc_head(2);
}

/* kt_fork_all()'s fields of a parent (anondiff.ktree.readback.FORK_COLUMNS), a byte each */
enum kt_fork_col {
	KT_C_VMA, KT_C_START, KT_C_PAGES, KT_C_PGOFF, KT_C_FLAGS, KT_C_FILE, KT_C_ANON_VMA,
	KT_NR_COLS
};

/* a field's byte that says: the value is the next one of the wide values */
#define KT_WIDE	255

/* A number written as odd(number - last) (0: none): the number, 0 for none; *last follows. */
static inline long kt_col_num(long w, long *last)
{
	if (!w)
		return 0;
	*last += (w - 1) / 2;
	return *last;
}

/*
 * One dup_mmap(): anon_vma_fork(child, parent) for each pair, in order, as kt_call() would
 * do it pair by pair, except that the state of the anon_vmas touched is emitted once, at the
 * end (or before a free, by kmem_cache_free()): a KT_R_PAIR record (its index and the child's
 * number), the records of the fork, the child's chain; then the anon_vmas.
 * in: the number of pairs n, the parent's mm id, the child's mm id, 1 when the reader may
 * take each child's chain from its insertions (kt_fork_split(): KT_F_OWN), then what the
 * first parent's number, start and anon_vma are written against (below), then 1 when the
 * reader takes the split stream (kt_fork_fast()) where there is one: with in[3], the split is
 * then made pair by pair (kt_inc_pair()) and the anon_vmas' state goes to it without records
 * when every pair went there (the stream then ends with the last pair's records; 0: the
 * whole stream, split afterwards as well where it can be).  packed: a word per
 * parent, its fields (enum kt_fork_col) a byte each from the lowest, written as
 * readback.fork_columns() says: the VMA's number and its anon_vma's as odd(number - the
 * previous number given) (0: a VMA C has not seen, a NULL anon_vma), the start as the
 * distance from the previous start, the length, the pgoff's distance from the start, the
 * flag word, the file id; a byte KT_WIDE stands for the next value of wide.  Parent VMAs are
 * attached; each child is its parent's vm_area_dup() in the child's mm, not attached.  A
 * crash ends the stream, after the anon_vmas' state as the crash left it.  The stream is also
 * split by kind into kt_fork_fast() (see kt_fork_split()).
 */
long kt_fork_all(const long *in, const unsigned long *packed, const long *wide)
{
	long n = in[0], last_num = in[4], last_start = in[5], last_av = in[6], wi = 0;
	struct mm_struct *pmm, *cmm;
	volatile long at;
	int sig;

	kt_out_len = 0;
	kt_nr_dirty = 0;
	kt_gen++;
	kt_dirty_last = kt_dirty_last2 = NULL;
	kt_late_timeout = 0;
	kt_surprise = 0;
	kt_inc_kept = 0;
	kt_batch = 1;
	kt_fast = kt_grow(kt_fast, &kt_fast_cap, KT_F_HEAD, sizeof(long));
	kt_fast[0] = 0;
	kt_inc = in[3] && in[7];
	if (kt_inc)
		kt_inc_start();
	pmm = kt_mm(in[1]);
	cmm = kt_mm(in[2]);
	kt_arm(1);
	for (at = 0; at < n; at++) {
		struct vm_area_struct *pv, *cv;
		unsigned long w = packed[at];
		long rc, num, f[KT_NR_COLS], j, p0;

		for (j = 0; j < KT_NR_COLS; j++, w >>= 8)
			f[j] = (w & 255) == KT_WIDE ? wide[wi++] : (long)(w & 255);
		num = kt_col_num(f[KT_C_VMA], &last_num);
		last_start += f[KT_C_START];
		cv = kt_vma_new();
		p0 = kt_out_len;
		kt_emit3(KT_R_PAIR, at, kt_vma_id(cv));
		pv = num ? kt_vma_at(num) : kt_vma_new();
		if (!num)
			kt_emit3(KT_R_NEWVMA, 1, kt_vma_id(pv));
		sig = sigsetjmp(kt_jmp, 0);
		if (sig) {
			kt_batch = 0;
			if (kt_inc_kept)
				kt_inc_partial();
			kt_emit_crash(sig);
			return kt_out_len;
		}
		kt_in_call = 1;
		if (kt_late_timeout) {	/* fired in the glue's malloc between two pairs */
			kt_late_timeout = 0;
			raise(SIGVTALRM);
		}
		kt_dirty_chain(pv);
		pv->vm_mm = pmm;
		pv->vm_start = (unsigned long)last_start << PAGE_SHIFT;
		pv->vm_end = (unsigned long)(last_start + f[KT_C_PAGES]) << PAGE_SHIFT;
		pv->vm_pgoff = last_start + f[KT_C_PGOFF];
		pv->vm_flags = f[KT_C_FLAGS];
		pv->vm_file = (struct file *)f[KT_C_FILE];
		pv->anon_vma = kt_av_at(kt_col_num(f[KT_C_ANON_VMA], &last_av));
		pv->kt_attached = 1;
#ifdef KT_VMA_LIST
		pv->vm_prev = pv->vm_next = NULL;	/* anon_vma_fork() reads neither */
#endif
		cv->vm_mm = cmm;
		cv->vm_start = pv->vm_start;
		cv->vm_end = pv->vm_end;
		cv->vm_pgoff = pv->vm_pgoff;
		cv->vm_flags = pv->vm_flags;
		cv->vm_file = pv->vm_file;
		cv->anon_vma = pv->anon_vma;
		cv->kt_attached = 0;
#ifdef KT_VMA_LIST
		cv->vm_prev = cv->vm_next = NULL;	/* vm_area_dup() of v5.6+ clears them */
#endif
		pmm->kt_mmap_lock = cmm->kt_mmap_lock = 2;
		pmm->kt_nr_window = cmm->kt_nr_window = 0;
		rc = anon_vma_fork(cv, pv);
		kt_emit_vma(cv);
		kt_dirty_chain(cv);
		kt_in_call = 0;
		if (rc) {
			kt_emit(KT_R_RESULT);
			kt_emit(rc);
		}
		/* a pair in the runs: its records are not kept (in a fork of 65,024 VMAs, 10 MB) */
		if (kt_inc && (kt_inc = kt_inc_pair(p0, at))) {
			kt_out_len = p0;
			kt_inc_kept = at + 1;
		}
	}
	kt_arm(0);
	kt_batch = 0;
	kt_late_timeout = 0;
	if (kt_inc && kt_inc_finish(n))
		return kt_out_len;
	if (kt_inc_kept) {
		kt_inc_partial();
		kt_emit_dirty();
		return kt_out_len;
	}
	kt_emit_dirty();
	kt_fork_split(n, in[3]);
	return kt_out_len;
}

/* The split records of the last kt_fork_all() (kt_fork_split()); kt_fast[0] 0: none. */
const long *kt_fork_fast(void)
{
	return kt_fast;
}

/* The sections of the last kt_fork_all() (kt_fork_split()): kt_fast says where each is. */
const unsigned char *kt_fork_fast_bytes(void)
{
	return kt_fast_bytes;
}

/*
 * Section sect (enum kt_sect) of the last kt_fork_all() as the differences it holds, one long
 * each, in out (room for as many as the section has bytes); returns their number.  (For a
 * reader that is not compiled: one call here costs it less than a loop over the bytes.)
 */
long kt_fork_deltas(long sect, long *out)
{
	const unsigned char *b = kt_fast_bytes + kt_fast[KT_F_SECT + 2 * sect];
	long len = kt_fast[KT_F_SECT + 2 * sect + 1], i = 0, n = 0;

	while (i < len) {
		unsigned long zz = 0;
		int shift = 0;

		do {
			zz |= (unsigned long)(b[i] & 127) << shift;
			shift += 7;
		} while (b[i++] & 128);
		out[n++] = (long)(zz >> 1) ^ -(long)(zz & 1);
	}
	return n;
}

const long *kt_records(void)
{
	return kt_out;
}

const char *kt_event_field(long i, long field)
{
	static char line[32];

	switch (field) {
	case 0:
		return kt_events[i].kind;
	case 1:
		return kt_events[i].file;
	case 2:
		snprintf(line, sizeof(line), "%d", kt_events[i].line);
		return line;
	}
	return kt_events[i].cond;
}

/* The interval tree of an anon_vma (its number) in order (for tests: the log must agree). */
long kt_tree(long id, long *buf, long max)
{
	const struct anon_vma *av = kt_av_at(id);
	struct rb_node *node;
	long n = 0;

	for (node = rb_first_cached(&av->rb_root); node; node = rb_next(node)) {
		int known;

		if (n < max)
			buf[n] = kt_avc_id(rb_entry(node, struct anon_vma_chain, rb), &known);
		n++;
	}
	return n;
}
