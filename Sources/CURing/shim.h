// features.h first: liburing defines _XOPEN_SOURCE before glibc otherwise,
// which hides fd_set's __fds_bits on a clean build.
#include <features.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <sys/eventfd.h>
#include <malloc.h>

// Sets the per-request RWF_* flags of a read or write (the field sits in an anonymous union).
static inline void blockgate_sqe_set_rw_flags(struct io_uring_sqe *sqe, int flags) {
    sqe->rw_flags = flags;
}

// Makes the kernel run an entry on one of its workers instead of in the submitting thread
// (IOSQE_ASYNC is a shift of an enum constant, which does not import).
static inline void blockgate_sqe_set_async(struct io_uring_sqe *sqe) { sqe->flags |= IOSQE_ASYNC; }

// Links an entry to the next one: the kernel starts that one when this one completes in full,
// and fails it (and the rest of the chain) with ECANCELED otherwise.
static inline void blockgate_sqe_set_link(struct io_uring_sqe *sqe) { sqe->flags |= IOSQE_IO_LINK; }

// RWF_DSYNC as a plain int (the kernel header's cast keeps the macro from importing).
static inline int blockgate_rwf_dsync(void) { return (int)RWF_DSYNC; }

#include <sys/uio.h>

// preadv2(2) of one buffer with RWF_NOWAIT: the bytes the page cache holds now, or -1 with
// errno EAGAIN when reading them would wait for the disk (declared by glibc only with _GNU_SOURCE).
ssize_t preadv2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags);
static inline long blockgate_pread_nowait(int fd, void *buffer, size_t length, long long offset) {
    struct iovec vector = {.iov_base = buffer, .iov_len = length};
    return (long)preadv2(fd, &vector, 1, (off_t)offset, (int)RWF_NOWAIT);
}

#include <unistd.h>
#include <sys/syscall.h>

// fallocate(2) without depending on _GNU_SOURCE being set for glibc's declaration.
static inline int blockgate_fallocate(int fd, int mode, long long offset, long long length) {
    return (int)syscall(SYS_fallocate, fd, mode, offset, length);
}

// lseek(2) whence values for sparse files (Linux), hidden by glibc without _GNU_SOURCE.
static inline int blockgate_seek_data(void) { return 3; }
static inline int blockgate_seek_hole(void) { return 4; }

#include <fcntl.h>

// O_DIRECT, hidden by glibc without _GNU_SOURCE (its value differs between architectures).
static inline int blockgate_o_direct(void) { return __O_DIRECT; }

#include <stdint.h>

// cachestat(2) (Linux 6.5): how many pages of a range the page cache holds now, or -1 with
// errno set when the kernel cannot say (ENOSYS before 6.5, or EPERM under seccomp).
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif
static inline long long blockgate_cached_pages(int fd, long long offset, long long length) {
    struct { uint64_t off, len; } range = {(uint64_t)offset, (uint64_t)length};
    struct { uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted; } stat;
    if (syscall(__NR_cachestat, fd, &range, &stat, 0) != 0) return -1;
    return (long long)stat.nr_cache;
}
