/* SPDX-License-Identifier: GPL-2.0 */
/*
 * anondiff's shim: the little of the kernel's base headers that the rbtree, interval-tree
 * and anon_vma code cut from a tree needs, for a userspace build.  Customised, not
 * duplicated: every definition here is anondiff's own.
 */
#ifndef KT_BASE_H
#define KT_BASE_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

/* glibc's sys/cdefs.h has one too; the kernel's is the same (compiler_attributes.h) */
#undef __always_inline
#define __always_inline		inline __attribute__((__always_inline__))
#define __init
#define __rcu
#define __force
#define __bitwise
#define __must_check
#define likely(x)		__builtin_expect(!!(x), 1)
#define unlikely(x)		__builtin_expect(!!(x), 0)
#define READ_ONCE(x)		(*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, val)	(*(volatile __typeof__(x) *)&(x) = (val))
#define smp_store_release(p, v)	WRITE_ONCE(*(p), (v))
#define rcu_assign_pointer(p, v)	WRITE_ONCE((p), (v))
#define rcu_dereference_raw(p)	READ_ONCE(p)
#define container_of(ptr, type, member)	\
	((type *)((char *)(ptr) - offsetof(type, member)))
#define EXPORT_SYMBOL(sym)
#define EXPORT_SYMBOL_GPL(sym)

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef unsigned int gfp_t;
typedef unsigned long pgoff_t;

#endif
