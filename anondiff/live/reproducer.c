// SPDX-License-Identifier: GPL-2.0
/*
 * The fixed part of every reproducer anondiff writes: a tiny harness compatible with the
 * kselftest one (FIXTURE, TEST_F, ASSERT_*, TAP output) and the scenario processes, each a
 * loop performing the commands the test sends it over a pipe.  Nothing here needs root, BPF
 * or kernel headers: the checks read /proc/PID/maps, which shows every merge and split.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
/* as tools/include/linux/compiler.h: a store the compiler may not drop or merge */
#define WRITE_ONCE(x, val)	(*(volatile typeof(x) *)&(x) = (val))

#ifndef MADV_WIPEONFORK
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#define MADV_WIPEONFORK 18
#define MADV_KEEPONFORK 19
#endif

/* -- harness ----------------------------------------------------------------------------- */
struct __test_metadata {
	const char *name;
	void (*fn)(struct __test_metadata *_metadata);
	int passed;
	jmp_buf env;
	struct __test_metadata *next;
};

static struct __test_metadata *__tests, **__tests_tail = &__tests;

static void __register_test(struct __test_metadata *t)
{
	*__tests_tail = t;
	__tests_tail = &t->next;
}

#define FIXTURE(f)		struct _fixture_##f
#define FIXTURE_DATA(f)		struct _fixture_##f
#define __maybe_unused		__attribute__((unused))
#define FIXTURE_SETUP(f)	static void f##_setup(				\
		struct __test_metadata __maybe_unused *_metadata, struct _fixture_##f *self)
#define FIXTURE_TEARDOWN(f)	static void f##_teardown(			\
		struct __test_metadata __maybe_unused *_metadata, struct _fixture_##f *self)
#define TEST_F(f, t)								\
	static void f##_##t(struct __test_metadata *_metadata, struct _fixture_##f *self); \
	static void __wrapper_##f##_##t(struct __test_metadata *_metadata)	\
	{									\
		FIXTURE_DATA(f) self;						\
		memset(&self, 0, sizeof(self));					\
		if (!setjmp(_metadata->env)) {					\
			f##_setup(_metadata, &self);				\
			f##_##t(_metadata, &self);				\
		}								\
		f##_teardown(_metadata, &self);					\
	}									\
	static struct __test_metadata __object_##f##_##t = {			\
		.name = #f "." #t, .fn = __wrapper_##f##_##t, .passed = 1,	\
	};									\
	static void __attribute__((constructor)) __register_##f##_##t(void)	\
	{									\
		__register_test(&__object_##f##_##t);				\
	}									\
	static void f##_##t(struct __test_metadata *_metadata, struct _fixture_##f *self)

#define __ASSERT(cond, fmt, ...) do {						\
	if (!(cond)) {								\
		printf("# %s:%d:" fmt "\n", __FILE__, __LINE__, ##__VA_ARGS__);	\
		_metadata->passed = 0;						\
		longjmp(_metadata->env, 1);					\
	}									\
} while (0)
#define ASSERT_EQ(expected, seen)						\
	__ASSERT((long long)(expected) == (long long)(seen),			\
		 "Expected %s (%lld) == %s (%lld)", #expected,			\
		 (long long)(expected), #seen, (long long)(seen))
#define ASSERT_NE(expected, seen)						\
	__ASSERT((long long)(expected) != (long long)(seen),			\
		 "Expected %s (%lld) != %s (%lld)", #expected,			\
		 (long long)(expected), #seen, (long long)(seen))
#define ASSERT_TRUE(cond)	__ASSERT(cond, "Expected %s to be true", #cond)

int main(void)
{
	struct __test_metadata *t;
	int n = 0, i = 0, failed = 0;

	for (t = __tests; t; t = t->next)
		n++;
	printf("TAP version 13\n1..%d\n", n);
	for (t = __tests; t; t = t->next) {
		pid_t pid;
		int status = 1;

		printf("#  RUN           %s ...\n", t->name);
		fflush(stdout);
		pid = fork();
		if (pid == 0) {
			t->fn(t);
			fflush(stdout);
			_exit(t->passed ? 0 : 1);
		}
		waitpid(pid, &status, 0);
		i++;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			printf("#            OK  %s\nok %d %s\n", t->name, i, t->name);
		} else {
			printf("#          FAIL  %s\nnot ok %d %s\n", t->name, i, t->name);
			failed++;
		}
	}
	printf("# Totals: pass:%d fail:%d\n", n - failed, failed);
	return failed ? 1 : 0;
}

/* -- the scenario processes --------------------------------------------------------------- */
enum op {
	OP_MMAP, OP_MUNMAP, OP_MPROTECT, OP_MADVISE, OP_WRITE, OP_FORCE_WRITE, OP_FORK, OP_EXIT,
	OP_MREMAP,
};

struct cmd {
	int op;
	int arg;		/* fork: the child's index; mmap: the file's index, or -1 */
	unsigned long addr;
	unsigned long len;
	int prot;		/* mmap, mprotect: PROT_*; madvise: MADV_* */
	int flags;		/* mmap: MAP_*; mremap: MREMAP_* */
	unsigned long off;	/* mmap of a file: the offset; mremap: the new length */
	unsigned long to;	/* mremap: the new address (0: none) */
};

struct proc {
	pid_t pid;
	int cmd[2];
	int reply[2];
};

struct vma_want {
	unsigned long start;
	unsigned long end;
	const char *perms;
	const char *name;
};

static long perform(int *memfds, int *me, const struct cmd *c)
{
	void *p;
	pid_t pid;
	int fd;

	switch (c->op) {
	case OP_MMAP:
		fd = c->arg < 0 ? -1 : memfds[c->arg];
		p = mmap((void *)c->addr, c->len, c->prot, c->flags | MAP_FIXED_NOREPLACE, fd,
			 fd < 0 ? 0 : c->off);
		if (p == MAP_FAILED)
			return -errno;
		return p == (void *)c->addr ? 0 : -EEXIST;
	case OP_MUNMAP:
		return munmap((void *)c->addr, c->len) ? -errno : 0;
	case OP_MPROTECT:
		return mprotect((void *)c->addr, c->len, c->prot) ? -errno : 0;
	case OP_MADVISE:
		return madvise((void *)c->addr, c->len, c->prot) ? -errno : 0;
	case OP_WRITE:
		WRITE_ONCE(*(char *)c->addr, 0x5a);
		return 0;
	case OP_FORCE_WRITE:
		/* a FOLL_FORCE write, as ptrace does; opened anew: after fork an open file still
		 * refers to the parent's mm
		 */
		fd = open("/proc/self/mem", O_RDWR);
		if (fd < 0)
			return -errno;
		if (pwrite(fd, "\x5a", 1, c->addr) != 1) {
			close(fd);
			return -EFAULT;
		}
		close(fd);
		return 0;
	case OP_FORK:
		pid = fork();
		if (pid < 0)
			return -errno;
		if (pid == 0) {
			*me = c->arg;
			return getpid();
		}
		return pid;
	case OP_EXIT:
		_exit(0);
	case OP_MREMAP:
		/* 0 when the mapping is where the policy put it: at the new address with
		 * MREMAP_FIXED or MREMAP_DONTUNMAP, else in place
		 */
		p = (void *)syscall(SYS_mremap, c->addr, c->len, c->off, c->flags, c->to);
		if (p == MAP_FAILED)
			return -errno;
		return p == (void *)(c->flags & (MREMAP_FIXED | MREMAP_DONTUNMAP) ? c->to : c->addr)
			? 0 : -EEXIST;
	}
	return -EINVAL;
}

static void serve(struct proc *procs, int *memfds, int me)
{
	struct cmd c;
	long ret;

	/* children are reaped at once; the test waits for their pids to go */
	signal(SIGCHLD, SIG_IGN);
	for (;;) {
		alarm(60);	/* never outlive a test that was killed */
		if (read(procs[me].cmd[0], &c, sizeof(c)) != sizeof(c))
			_exit(1);
		ret = perform(memfds, &me, &c);
		if (write(procs[me].reply[1], &ret, sizeof(ret)) != sizeof(ret))
			_exit(1);
	}
}

static long request(struct proc *procs, int who, int op, int arg, unsigned long addr,
		    unsigned long len, int prot, int flags, unsigned long off)
{
	struct cmd c = { op, arg, addr, len, prot, flags, off, 0 };
	long ret;

	if (write(procs[who].cmd[1], &c, sizeof(c)) != sizeof(c))
		return -EPIPE;
	if (op == OP_EXIT)
		return 0;
	if (op == OP_FORK) {
		/* the parent answers on its pipe with the pid, the child on its own */
		if (read(procs[who].reply[0], &ret, sizeof(ret)) != sizeof(ret))
			return -EPIPE;
		procs[arg].pid = ret;
		if (read(procs[arg].reply[0], &ret, sizeof(ret)) != sizeof(ret))
			return -EPIPE;
		return ret == procs[arg].pid ? 0 : -ECHILD;
	}
	if (read(procs[who].reply[0], &ret, sizeof(ret)) != sizeof(ret))
		return -EPIPE;
	return ret;
}

static long __attribute__((unused))
request_mremap(struct proc *procs, int who, unsigned long addr,
	       unsigned long old_len, unsigned long new_len, int flags, unsigned long to)
{
	struct cmd c = { OP_MREMAP, 0, addr, old_len, 0, flags, new_len, to };
	long ret;

	if (write(procs[who].cmd[1], &c, sizeof(c)) != sizeof(c))
		return -EPIPE;
	if (read(procs[who].reply[0], &ret, sizeof(ret)) != sizeof(ret))
		return -EPIPE;
	return ret;
}

static int start_proc(struct proc *procs, int *memfds, int who)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0)
		serve(procs, memfds, who);
	procs[who].pid = pid;
	return 0;
}

/* Returns when the process is gone: its mm has been torn down by exit_mmap() */
static __maybe_unused int wait_gone(struct proc *procs, int who)
{
	struct timespec ts = { 0, 1000000 };
	int i;

	waitpid(procs[who].pid, NULL, 0);	/* a first process is our child */
	for (i = 0; i < 10000; i++) {
		if (kill(procs[who].pid, 0) && errno == ESRCH) {
			procs[who].pid = 0;
			return 0;
		}
		nanosleep(&ts, NULL);
	}
	return -ETIMEDOUT;
}

/* /proc/PID/maps between lo and hi against the predicted VMAs; differences printed */
static int maps_match(pid_t pid, const char *who, const char *when, unsigned long lo,
		      unsigned long hi, const struct vma_want *want, int n)
{
	char path[64], line[512], perms[8];
	unsigned long start, end;
	int i = 0, ok = 1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "r");
	if (!f) {
		printf("# %s: %s: cannot open %s\n", when, who, path);
		return 0;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3)
			continue;
		if (end <= lo || start >= hi)
			continue;
		if (i >= n || start != want[i].start || end != want[i].end ||
		    strcmp(perms, want[i].perms)) {
			printf("# %s: %s: maps has %lx-%lx %s", when, who, start, end, perms);
			if (i < n)
				printf(", expected %s %lx-%lx %s\n", want[i].name, want[i].start,
				       want[i].end, want[i].perms);
			else
				printf(", expected nothing more\n");
			ok = 0;
		}
		i++;
	}
	fclose(f);
	for (; i < n; i++) {
		printf("# %s: %s: maps lacks %s %lx-%lx %s\n", when, who, want[i].name,
		       want[i].start, want[i].end, want[i].perms);
		ok = 0;
	}
	return ok;
}
