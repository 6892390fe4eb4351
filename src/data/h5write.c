/* h5write.c - the file driver every HDF5 file Thorax writes goes through
 * (th_h5_create_tmp): POSIX pread/pwrite, as HDF5's default sec2 driver,
 * except that a failed write (a full disk, a quota) never reaches HDF5.
 *
 * Why: HDF5 1.10 does not survive a failed write. After a flush fails, its
 * metadata cache stays half-way through the flush, every later flush and
 * close of the file fails ("slist already enabled?"), the file stays open,
 * and HDF5's exit handler (or MPI_Finalize's) crashes closing it: a correct
 * error message followed by SIGSEGV. So the first failed write is remembered
 * with its errno, that write and every later one are dropped (reported as
 * done), the file closes cleanly, and th_h5_commit fails with the system's
 * reason and leaves the temporary file for the caller to remove. Reads of
 * dropped bytes give zeros; the file is thrown away anyway.
 */
#define _GNU_SOURCE /* pread, pwrite */
#include "thorax/data.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    H5FD_t pub; /* first: HDF5 sees this */
    int fd;
    haddr_t eoa, eof;
    dev_t dev;
    ino_t ino;
    int failed; /* errno of the first failed write or truncate, 0 if none */
} sink_file;

static H5FD_t *sink_open(const char *name, unsigned flags, hid_t fapl, haddr_t maxaddr)
{
    (void)fapl;
    if (!name || !*name || maxaddr == 0 || maxaddr == HADDR_UNDEF) return NULL;
    int o = flags & H5F_ACC_RDWR ? O_RDWR : O_RDONLY;
    if (flags & H5F_ACC_TRUNC) o |= O_TRUNC;
    if (flags & H5F_ACC_CREAT) o |= O_CREAT;
    if (flags & H5F_ACC_EXCL) o |= O_EXCL;
    int fd = open(name, o | O_CLOEXEC, 0666);
    if (fd < 0) return NULL;
    struct stat st;
    sink_file *f = fstat(fd, &st) ? NULL : calloc(1, sizeof *f);
    if (!f) {
        close(fd);
        return NULL;
    }
    f->fd = fd;
    f->eof = (haddr_t)st.st_size;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    return &f->pub;
}

static herr_t sink_close(H5FD_t *file)
{
    sink_file *f = (sink_file *)file;
    int rc = close(f->fd);
    free(f);
    return rc ? -1 : 0;
}

static int sink_cmp(const H5FD_t *a, const H5FD_t *b)
{
    const sink_file *x = (const sink_file *)a, *y = (const sink_file *)b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    return 0;
}

static herr_t sink_query(const H5FD_t *file, unsigned long *flags)
{
    (void)file;
    /* sec2's features: HDF5 gathers small metadata and raw writes as it does there. */
    *flags = H5FD_FEAT_AGGREGATE_METADATA | H5FD_FEAT_ACCUMULATE_METADATA | H5FD_FEAT_DATA_SIEVE |
             H5FD_FEAT_AGGREGATE_SMALLDATA;
    return 0;
}

static haddr_t sink_get_eoa(const H5FD_t *file, H5FD_mem_t type)
{
    (void)type;
    return ((const sink_file *)file)->eoa;
}

static herr_t sink_set_eoa(H5FD_t *file, H5FD_mem_t type, haddr_t addr)
{
    (void)type;
    ((sink_file *)file)->eoa = addr;
    return 0;
}

static haddr_t sink_get_eof(const H5FD_t *file, H5FD_mem_t type)
{
    (void)type;
    return ((const sink_file *)file)->eof;
}

/* The handle is the driver's own record: th_h5_write_error reads it. */
static herr_t sink_get_handle(H5FD_t *file, hid_t fapl, void **handle)
{
    (void)fapl;
    *handle = file;
    return 0;
}

static herr_t sink_read(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size, void *buf)
{
    (void)type, (void)dxpl;
    sink_file *f = (sink_file *)file;
    char *p = buf;
    while (size > 0) {
        ssize_t n = pread(f->fd, p, size, (off_t)addr);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        if (n == 0) break; /* past the end (or dropped): zeros */
        p += n, addr += (haddr_t)n, size -= (size_t)n;
    }
    memset(p, 0, size);
    return 0;
}

static herr_t sink_write(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size, const void *buf)
{
    (void)type, (void)dxpl;
    sink_file *f = (sink_file *)file;
    haddr_t end = addr + size;
    const char *p = buf;
    while (size > 0 && !f->failed) {
        ssize_t n = pwrite(f->fd, p, size, (off_t)addr);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            f->failed = n < 0 ? errno : ENOSPC;
            break;
        }
        p += n, addr += (haddr_t)n, size -= (size_t)n;
    }
    if (end > f->eof) f->eof = end;
    return 0;
}

static herr_t sink_truncate(H5FD_t *file, hid_t dxpl, hbool_t closing)
{
    (void)dxpl, (void)closing;
    sink_file *f = (sink_file *)file;
    if (f->eoa == f->eof) return 0;
    if (!f->failed && ftruncate(f->fd, (off_t)f->eoa)) f->failed = errno;
    f->eof = f->eoa;
    return 0;
}

static const H5FD_class_t sink_class = {
    .name = "thorax_sink",
    .maxaddr = (haddr_t)INT64_MAX,
    .fc_degree = H5F_CLOSE_WEAK,
    .open = sink_open,
    .close = sink_close,
    .cmp = sink_cmp,
    .query = sink_query,
    .get_eoa = sink_get_eoa,
    .set_eoa = sink_set_eoa,
    .get_eof = sink_get_eof,
    .get_handle = sink_get_handle,
    .read = sink_read,
    .write = sink_write,
    .truncate = sink_truncate,
    .fl_map = H5FD_FLMAP_DICHOTOMY,
};

/* The driver's ID. HDF5 1.10 registers a fresh copy of a class at every
 * H5FDregister, so it is registered once per HDF5 session (the ID stays
 * valid until HDF5 shuts down): process state, as HDF5's own driver IDs. */
static hid_t sink_driver = -1;

static hid_t sink_id(void)
{
    if (sink_driver < 0 || H5Iis_valid(sink_driver) <= 0) sink_driver = H5FDregister(&sink_class);
    return sink_driver;
}

hid_t th_h5_write_fapl(void)
{
    hid_t driver = sink_id();
    hid_t fapl = driver < 0 ? -1 : H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0 && H5Pset_driver(fapl, driver, NULL) < 0) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

int th_h5_write_error(hid_t file)
{
    if (H5Iget_type(file) != H5I_FILE) return 0;
    hid_t fapl = H5Fget_access_plist(file);
    int ours = fapl >= 0 && H5Pget_driver(fapl) == sink_id();
    if (fapl >= 0) H5Pclose(fapl);
    void *handle = NULL;
    if (!ours || H5Fget_vfd_handle(file, H5P_DEFAULT, &handle) < 0 || !handle) return 0;
    return ((sink_file *)handle)->failed;
}
