/* The kernel's share of batch identification, with nothing else: N threads of one process
 * (or one thread each, with -p, in N processes) each open, pread the first 8 KiB of, and close
 * its share of the files listed on stdin, ROUNDS times; prints files per second. What
 * identify_many cannot beat on the same files (benches/NOTES.md).
 *
 *   cc -O2 -pthread benches/batch_floor.c -o /tmp/batch_floor
 *   find bench-data/corpus-10000 -name '*-*' -type f | /tmp/batch_floor 2      # 2 threads
 *   find bench-data/corpus-10000 -name '*-*' -type f | /tmp/batch_floor 2 -p   # 2 processes
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 10

static char **paths;
static size_t npaths;

struct share {
    size_t first, step;
};

static void *run(void *arg)
{
    const struct share *s = arg;
    static __thread char buf[8192];
    for (int r = 0; r < ROUNDS; r++)
        for (size_t i = s->first; i < npaths; i += s->step) {
            int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
            if (fd < 0 || pread(fd, buf, sizeof buf, 0) < 0) {
                perror(paths[i]);
                exit(1);
            }
            close(fd);
        }
    return NULL;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1;
    int procs = argc > 2 && strcmp(argv[2], "-p") == 0;
    if (n < 1 || n > 64) {
        fprintf(stderr, "usage: batch_floor N [-p] < list-of-files\n");
        return 2;
    }
    size_t cap = 1024;
    char line[4096];
    paths = malloc(cap * sizeof *paths);
    while (paths && fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (npaths == cap)
            paths = realloc(paths, (cap *= 2) * sizeof *paths);
        if (paths)
            paths[npaths++] = strdup(line);
    }
    if (!paths || npaths == 0) {
        fprintf(stderr, "no files on stdin\n");
        return 2;
    }
    struct share shares[64];
    pthread_t threads[64];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < n; i++) {
        shares[i] = (struct share){i, n};
        if (procs) {
            if (fork() == 0) {
                run(&shares[i]);
                _exit(0);
            }
        } else {
            pthread_create(&threads[i], NULL, run, &shares[i]);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (procs)
            wait(NULL);
        else
            pthread_join(threads[i], NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%zu %s: %zu files x %d rounds: %.0f files/s\n", n, procs ? "processes" : "threads", npaths, ROUNDS,
           (double)npaths * ROUNDS / s);
    return 0;
}
