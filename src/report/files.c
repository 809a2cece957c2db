/* Files written through a temporary name renamed into place. */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report.h"

gcam_status gc_afile_open(gc_afile *a, const char *path, gc_err *err) {
    memset(a, 0, sizeof *a);
    size_t len = strlen(path) + 16;
    a->path = gc_strdup(path);
    a->tmp = malloc(len);
    if (!a->path || !a->tmp) {
        gc_afile_abort(a);
        return gc_fail(err, GCAM_E_NOMEM, "%s: out of memory", path);
    }
    snprintf(a->tmp, len, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(a->tmp);
    if (fd < 0) {
        int e = errno;
        free(a->tmp);
        a->tmp = NULL;
        gc_afile_abort(a);
        return gc_fail(err, GCAM_E_IO, "%s: cannot create a file there: %s", path, strerror(e));
    }
    /* mkstemp makes 0600; a report is normally readable like any other file */
    mode_t um = umask(0);
    umask(um);
    (void)fchmod(fd, 0666 & ~um);
    a->f = fdopen(fd, "wb");
    if (!a->f) {
        int e = errno;
        close(fd);
        gc_afile_abort(a);
        return gc_fail(err, GCAM_E_IO, "%s: %s", path, strerror(e));
    }
    return GCAM_OK;
}

void gc_afile_write(gc_afile *a, const void *data, size_t n) {
    if (!a->f || a->failed || n == 0) return;
    if (fwrite(data, 1, n, a->f) != n) a->failed = errno ? errno : EIO;
}

void gc_afile_write_buf(gc_afile *a, gc_buf *b) {
    if (b->oom) a->failed = ENOMEM;
    else gc_afile_write(a, b->p, b->n);
    gc_buf_clear(b);
}

gcam_status gc_afile_commit(gc_afile *a, gc_err *err) {
    if (!a->f) {
        gc_afile_abort(a);
        return gc_fail(err, GCAM_E_STATE, "file not open");
    }
    int e = a->failed;
    if (fflush(a->f) != 0 && !e) e = errno ? errno : EIO;
    if (fclose(a->f) != 0 && !e) e = errno ? errno : EIO;
    a->f = NULL;
    if (!e && rename(a->tmp, a->path) != 0) e = errno ? errno : EIO;
    if (e) {
        gc_fail(err, e == ENOMEM ? GCAM_E_NOMEM : GCAM_E_IO, "%s: cannot write: %s", a->path, strerror(e));
        gc_afile_abort(a);
        return err->code;
    }
    free(a->tmp);
    free(a->path);
    memset(a, 0, sizeof *a);
    return GCAM_OK;
}

void gc_afile_abort(gc_afile *a) {
    if (a->f) fclose(a->f);
    if (a->tmp) unlink(a->tmp);
    free(a->tmp);
    free(a->path);
    memset(a, 0, sizeof *a);
}

gcam_status gc_write_file_atomic(const char *path, const void *data, size_t n, gc_err *err) {
    gc_afile a;
    gcam_status rc = gc_afile_open(&a, path, err);
    if (rc) return rc;
    gc_afile_write(&a, data, n);
    return gc_afile_commit(&a, err);
}
