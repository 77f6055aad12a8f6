// SPDX-License-Identifier: MIT
/*
 * The live kernel's fork() of the layout the engine benchmark forks: one private anonymous
 * mapping of N pages, every page written (one anon_vma, N faulted pages), split into N VMAs
 * by mprotect() of every other page to read-only.  Prints the best CPU time of fork() alone
 * (CLOCK_THREAD_CPUTIME_ID: what the forking thread spent, kernel time included, so that other
 * load on the machine counts little), then the best wall-clock time, in nanoseconds, over ROUNDS
 * forks (the child exits at once; waiting for it is not timed).
 *
 * usage: forkbench N [ROUNDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long page = sysconf(_SC_PAGESIZE);
	long n, i, rounds;
	long long best = -1, best_wall = -1;
	char *base;

	if (argc < 2) {
		fprintf(stderr, "usage: %s N [ROUNDS]\n", argv[0]);
		return 2;
	}
	n = atol(argv[1]);
	rounds = argc > 2 ? atol(argv[2]) : 5;
	base = mmap(NULL, n * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (i = 0; i < n; i++)
		base[i * page] = 1;
	for (i = 1; i < n; i += 2) {
		if (mprotect(base + i * page, page, PROT_READ)) {
			perror("mprotect (vm.max_map_count?)");
			return 1;
		}
	}
	for (i = 0; i < rounds; i++) {
		long long t0, t1, w0, w1;
		pid_t pid;

		w0 = now_ns(CLOCK_MONOTONIC);
		t0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
		pid = fork();
		if (pid == 0)
			_exit(0);
		t1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
		w1 = now_ns(CLOCK_MONOTONIC);
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		waitpid(pid, NULL, 0);
		if (best < 0 || t1 - t0 < best)
			best = t1 - t0;
		if (best_wall < 0 || w1 - w0 < best_wall)
			best_wall = w1 - w0;
	}
	printf("%lld %lld\n", best, best_wall);
	return 0;
}
