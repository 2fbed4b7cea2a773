/* Fault injection for tests/faults.rs, loaded with LD_PRELOAD into a real `p2p` process.
 *
 * Each fault is off unless its variable is set; a fault on "part" files hits only file
 * descriptors whose path holds ".p2p-part" (a download's partial file), so the resume record,
 * the hash cache and everything else keep working.
 *
 *   P2P_FAULT_FSYNC_PART=ERRNO        fsync() of a partial file fails (the final flush)
 *   P2P_FAULT_FDATASYNC_PART=ERRNO    fdatasync() of a partial file fails (checkpoints)...
 *   P2P_FAULT_FDATASYNC_PART_AFTER=N  ...after the first N calls succeeded
 *   P2P_FAULT_PWRITE_PART=ERRNO       pwrite() to a partial file fails...
 *   P2P_FAULT_PWRITE_PART_AFTER=N     ...after the first N calls succeeded
 *   P2P_FAULT_LINKAT=ERRNO            link()/linkat() fail (publishing the finished file)
 *   P2P_FAULT_FREE_BYTES=N            statvfs() reports N bytes available
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

static long env_long(const char *name, long dflt) {
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : dflt;
}

static int is_part(int fd) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    return strstr(path, ".p2p-part") != NULL;
}

/* Whether this call on a partial file should fail: returns the errno to fail with, or 0. */
static int part_fault(int fd, const char *var, const char *after_var, long *calls) {
    long err = env_long(var, 0);
    if (err == 0 || !is_part(fd)) return 0;
    long n = __atomic_add_fetch(calls, 1, __ATOMIC_SEQ_CST);
    return n > env_long(after_var, 0) ? (int)err : 0;
}

#define REAL(name, type) ((type)dlsym(RTLD_NEXT, name))

int fsync(int fd) {
    static long calls;
    int err = part_fault(fd, "P2P_FAULT_FSYNC_PART", "P2P_FAULT_FSYNC_PART_AFTER", &calls);
    if (err) { errno = err; return -1; }
    return REAL("fsync", int (*)(int))(fd);
}

int fdatasync(int fd) {
    static long calls;
    int err = part_fault(fd, "P2P_FAULT_FDATASYNC_PART", "P2P_FAULT_FDATASYNC_PART_AFTER", &calls);
    if (err) { errno = err; return -1; }
    return REAL("fdatasync", int (*)(int))(fd);
}

static long pwrite_calls;

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off) {
    int err = part_fault(fd, "P2P_FAULT_PWRITE_PART", "P2P_FAULT_PWRITE_PART_AFTER", &pwrite_calls);
    if (err) { errno = err; return -1; }
    return REAL("pwrite64", ssize_t (*)(int, const void *, size_t, off_t))(fd, buf, len, off);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off) {
    int err = part_fault(fd, "P2P_FAULT_PWRITE_PART", "P2P_FAULT_PWRITE_PART_AFTER", &pwrite_calls);
    if (err) { errno = err; return -1; }
    return REAL("pwrite", ssize_t (*)(int, const void *, size_t, off_t))(fd, buf, len, off);
}

int linkat(int olddirfd, const char *old, int newdirfd, const char *new_, int flags) {
    long err = env_long("P2P_FAULT_LINKAT", 0);
    if (err) { errno = (int)err; return -1; }
    return REAL("linkat", int (*)(int, const char *, int, const char *, int))(
        olddirfd, old, newdirfd, new_, flags);
}

int link(const char *old, const char *new_) {
    long err = env_long("P2P_FAULT_LINKAT", 0);
    if (err) { errno = (int)err; return -1; }
    return REAL("link", int (*)(const char *, const char *))(old, new_);
}

static void fake_free(struct statvfs *st) {
    long free_bytes = env_long("P2P_FAULT_FREE_BYTES", -1);
    if (free_bytes >= 0 && st->f_frsize > 0) {
        st->f_bavail = (fsblkcnt_t)free_bytes / st->f_frsize;
    }
}

int statvfs(const char *path, struct statvfs *st) {
    int r = REAL("statvfs", int (*)(const char *, struct statvfs *))(path, st);
    if (r == 0) fake_free(st);
    return r;
}

int statvfs64(const char *path, struct statvfs64 *st) {
    int r = REAL("statvfs64", int (*)(const char *, struct statvfs64 *))(path, st);
    long free_bytes = env_long("P2P_FAULT_FREE_BYTES", -1);
    if (r == 0 && free_bytes >= 0 && st->f_frsize > 0) {
        st->f_bavail = (fsblkcnt64_t)free_bytes / st->f_frsize;
    }
    return r;
}
