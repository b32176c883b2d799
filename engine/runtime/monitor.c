/*
 * pydock's compiled per-process monitor: the same program as shim.py, in C.
 *
 * Why it exists: a Python monitor holds 6-10 MiB of private memory for the
 * container's whole life, and with hundreds of idle containers that is most
 * of the host memory pydock uses. This one holds a few hundred KiB and starts
 * in about a millisecond.
 *
 * It speaks exactly shim.py's protocol and writes exactly its files (read
 * shim.py's docstring for the whole contract): the state directory comes as
 * argv[1], or, for a spare the daemon starts ahead of need (argv[1] "-", see
 * receive_dir) or the spare before it forked (fork_next_spare), as a line on
 * stdin; shim.json describes the process;
 * the ready line {"pid": n} or {"error": ...} goes to the fd named by
 * PYDOCK_SHIM_READY; STATE_DIR/shim.sock takes one JSON op line a connection
 * (start, wait, resize, kill, attach); the json-file log, its rotation and
 * compression, exit.json, shim.pid, shim.lock and shim.log are shim.py's. Either
 * monitor may run any container; the daemon does not care which.
 *
 * Single-threaded, poll(2)-driven, no dependency beyond libc: the daemon
 * compiles it with `cc -O2` on first use (engine/runtime/monitorbuild.py).
 * Compression forks a child that runs `gzip -1`, as shim.py forks one that
 * gzips, so the container's output keeps flowing meanwhile.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX (16 * 1024)
#define START_TIMEOUT_MS 120000LL
#define EARLY_INPUT_MAX (1 << 20) /* input attached clients send before the process runs, kept for it */
#define DRAIN_TIMEOUT_MS 2000LL
#define READ_CHUNK 65536
#define HEADER_MAX 65536

extern char **environ;

/* ---- growable byte buffer -------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
} buf_t;

static void buf_reserve(buf_t *b, size_t more) {
    if (b->len + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        fputs("monitor: out of memory\n", stderr);
        _exit(1);
    }
    b->p = p;
    b->cap = cap;
}

static void buf_add(buf_t *b, const void *data, size_t n) {
    buf_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void buf_str(buf_t *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_fmt(buf_t *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    buf_add(b, tmp, n < 0 ? 0 : (size_t)n >= sizeof tmp ? sizeof tmp - 1 : (size_t)n);
}

static void buf_drop_front(buf_t *b, size_t n) {
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

static void buf_free(buf_t *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- JSON: a small parser for shim.json and op lines ------------------ */

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct json {
    int type;
    double num; /* J_NUM, J_BOOL (0/1) */
    char *str;  /* J_STR: NUL-terminated UTF-8 */
    struct json *items; /* J_ARR, J_OBJ values */
    char **keys;        /* J_OBJ */
    size_t n;
} json;

typedef struct {
    const char *s, *end;
    int depth;
} jparser;

static int jp_value(jparser *p, json *out);

static void jp_ws(jparser *p) {
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
        p->s++;
}

static void utf8_put(buf_t *b, unsigned cp) {
    char u[4];
    if (cp < 0x80) {
        u[0] = (char)cp;
        buf_add(b, u, 1);
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        buf_add(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        buf_add(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | cp >> 18);
        u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        buf_add(b, u, 4);
    }
}

static int jp_hex4(jparser *p, unsigned *out) {
    if (p->end - p->s < 4)
        return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    p->s += 4;
    *out = v;
    return 0;
}

static int jp_string(jparser *p, char **out) {
    buf_t b = {0};
    p->s++; /* opening quote */
    while (p->s < p->end && *p->s != '"') {
        unsigned char c = (unsigned char)*p->s++;
        if (c < 0x20)
            goto bad;
        if (c != '\\') {
            buf_add(&b, &c, 1);
            continue;
        }
        if (p->s >= p->end)
            goto bad;
        char e = *p->s++;
        unsigned cp;
        switch (e) {
        case '"': case '\\': case '/': buf_add(&b, &e, 1); break;
        case 'b': buf_add(&b, "\b", 1); break;
        case 'f': buf_add(&b, "\f", 1); break;
        case 'n': buf_add(&b, "\n", 1); break;
        case 'r': buf_add(&b, "\r", 1); break;
        case 't': buf_add(&b, "\t", 1); break;
        case 'u':
            if (jp_hex4(p, &cp))
                goto bad;
            if (cp >= 0xD800 && cp < 0xDC00 && p->end - p->s >= 6 && p->s[0] == '\\' && p->s[1] == 'u') {
                jparser save = *p;
                unsigned lo;
                p->s += 2;
                if (!jp_hex4(p, &lo) && lo >= 0xDC00 && lo < 0xE000)
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else
                    *p = save;
            }
            utf8_put(&b, cp);
            break;
        default:
            goto bad;
        }
    }
    if (p->s >= p->end)
        goto bad;
    p->s++;
    buf_add(&b, "", 1);
    *out = b.p;
    return 0;
bad:
    buf_free(&b);
    return -1;
}

static void json_free(json *v) {
    if (v->type == J_STR)
        free(v->str);
    if (v->type == J_ARR || v->type == J_OBJ) {
        for (size_t i = 0; i < v->n; i++) {
            json_free(&v->items[i]);
            if (v->keys)
                free(v->keys[i]);
        }
        free(v->items);
        free(v->keys);
    }
    memset(v, 0, sizeof *v);
}

static int jp_container(jparser *p, json *out, int obj) {
    char close = obj ? '}' : ']';
    out->type = obj ? J_OBJ : J_ARR;
    p->s++;
    if (++p->depth > 64)
        return -1;
    jp_ws(p);
    if (p->s < p->end && *p->s == close) {
        p->s++;
        p->depth--;
        return 0;
    }
    for (;;) {
        char *key = NULL;
        jp_ws(p);
        if (obj) {
            if (p->s >= p->end || *p->s != '"' || jp_string(p, &key))
                return -1;
            jp_ws(p);
            if (p->s >= p->end || *p->s != ':') {
                free(key);
                return -1;
            }
            p->s++;
        }
        json *items = realloc(out->items, (out->n + 1) * sizeof *items);
        char **keys = obj ? realloc(out->keys, (out->n + 1) * sizeof *keys) : NULL;
        if (!items || (obj && !keys)) {
            free(key);
            if (items)
                out->items = items;
            return -1;
        }
        out->items = items;
        if (obj)
            out->keys = keys, keys[out->n] = key;
        memset(&items[out->n], 0, sizeof *items);
        out->n++;
        if (jp_value(p, &items[out->n - 1]))
            return -1;
        jp_ws(p);
        if (p->s < p->end && *p->s == ',') {
            p->s++;
            continue;
        }
        if (p->s < p->end && *p->s == close) {
            p->s++;
            p->depth--;
            return 0;
        }
        return -1;
    }
}

static int jp_value(jparser *p, json *out) {
    jp_ws(p);
    if (p->s >= p->end)
        return -1;
    char c = *p->s;
    if (c == '{' || c == '[')
        return jp_container(p, out, c == '{');
    if (c == '"') {
        out->type = J_STR;
        return jp_string(p, &out->str);
    }
    static const struct { const char *word; int type; double num; } words[] = {
        {"true", J_BOOL, 1}, {"false", J_BOOL, 0}, {"null", J_NULL, 0}};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        size_t n = strlen(words[i].word);
        if ((size_t)(p->end - p->s) >= n && !memcmp(p->s, words[i].word, n)) {
            p->s += n;
            out->type = words[i].type;
            out->num = words[i].num;
            return 0;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        char tmp[64];
        size_t n = 0;
        while (p->s + n < p->end && n < sizeof tmp - 1 && strchr("+-0123456789.eE", p->s[n]))
            n++;
        memcpy(tmp, p->s, n);
        tmp[n] = 0;
        char *endp;
        out->num = strtod(tmp, &endp);
        if (endp != tmp + n)
            return -1;
        out->type = J_NUM;
        p->s += n;
        return 0;
    }
    return -1;
}

/* Parse `len` bytes as one JSON value; 0 on success (the caller frees `out`). */
static int json_parse(const char *s, size_t len, json *out) {
    jparser p = {s, s + len, 0};
    memset(out, 0, sizeof *out);
    if (jp_value(&p, out) == 0) {
        jp_ws(&p);
        if (p.s == p.end)
            return 0;
    }
    json_free(out);
    return -1;
}

static const json *jget(const json *obj, const char *key) {
    if (!obj || obj->type != J_OBJ)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (!strcmp(obj->keys[i], key))
            return &obj->items[i];
    return NULL;
}

/* Python's truthiness, which shim.py applies to flags such as "stdin". */
static int jtruthy(const json *v) {
    if (!v)
        return 0;
    switch (v->type) {
    case J_BOOL: case J_NUM: return v->num != 0;
    case J_STR: return v->str[0] != 0;
    case J_ARR: case J_OBJ: return v->n != 0;
    default: return 0;
    }
}

static const char *jstr(const json *obj, const char *key) {
    const json *v = jget(obj, key);
    return v && v->type == J_STR ? v->str : "";
}

static long long jint(const json *obj, const char *key) {
    const json *v = jget(obj, key);
    return v && (v->type == J_NUM || v->type == J_BOOL) ? (long long)v->num : 0;
}

/* Python's int() of a JSON value: numbers, booleans and decimal strings. */
static int jto_int(const json *v, long long *out) {
    if (v && (v->type == J_NUM || v->type == J_BOOL)) {
        if (!(v->num > -9e18 && v->num < 9e18)) /* NaN, infinities and what no long long holds */
            return -1;
        *out = (long long)v->num;
        return 0;
    }
    if (v && v->type == J_STR) {
        char *end;
        errno = 0;
        long long n = strtoll(v->str, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\n')
            end++;
        if (!errno && end != v->str && !*end) {
            *out = n;
            return 0;
        }
    }
    return -1;
}

/*
 * Append `s` as a JSON string the way Python's json.dumps(ensure_ascii=False)
 * writes bytes decoded with errors="replace": invalid UTF-8 becomes U+FFFD,
 * one per maximal invalid subsequence, as Python's decoder replaces it.
 */
static void json_put_str(buf_t *b, const unsigned char *s, size_t n) {
    static const char fffd[] = "\xEF\xBF\xBD";
    buf_reserve(b, n + 2);
    buf_add(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            const char *esc = NULL;
            switch (c) {
            case '"': esc = "\\\""; break;
            case '\\': esc = "\\\\"; break;
            case '\n': esc = "\\n"; break;
            case '\r': esc = "\\r"; break;
            case '\t': esc = "\\t"; break;
            case '\b': esc = "\\b"; break;
            case '\f': esc = "\\f"; break;
            }
            if (esc)
                buf_str(b, esc);
            else if (c < 0x20)
                buf_fmt(b, "\\u%04x", c);
            else
                buf_add(b, &c, 1);
            i++;
            continue;
        }
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            buf_add(b, fffd, 3);
            i++;
            continue;
        }
        size_t k = 1;
        for (; k <= need && i + k < n; k++) {
            unsigned char d = s[i + k];
            if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF))
                break;
        }
        if (k == need + 1) {
            buf_add(b, s + i, k);
        } else {
            buf_add(b, fffd, 3);
        }
        i += k;
    }
    buf_add(b, "\"", 1);
}

static void json_put_cstr(buf_t *b, const char *s) { json_put_str(b, (const unsigned char *)s, strlen(s)); }

/* ---- small helpers ----------------------------------------------------- */

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static long long wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* RFC 3339 UTC with nanoseconds, as Docker writes log and exit times. */
static void rfc3339_ns(long long ns, char out[40]) {
    time_t secs = (time_t)(ns / 1000000000LL);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%09lldZ", ns % 1000000000LL);
}

/* Write all of `data` to a file, pipe or socket (a client gone is an error, not SIGPIPE: run ignores it). */
static int write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p)
        _exit(1);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void set_blocking(int fd, int blocking) {
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK);
}

static int mkdirs(const char *path) {
    char tmp[PATH_MAX];
    if (strlen(path) >= sizeof tmp)
        return -1;
    strcpy(tmp, path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0777) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    return mkdir(tmp, 0777) && errno != EEXIST ? -1 : 0;
}

/* Readers see all or nothing; no fsync, as shim.py explains (the exec root does not outlive a reboot). */
static int atomic_write(const char *path, const char *data, size_t n) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        return -1;
    int rc = write_all(fd, data, n);
    close(fd);
    return rc ? -1 : rename(tmp, path);
}

/* ---- the log ------------------------------------------------------------ */

/* A container's json-lines log, rotated as shim.py's LogWriter rotates it (see there). */
typedef struct {
    char *path;
    long long max_size, max_file;
    int compress;
    int fd; /* -1: closed (a rotation that could not even reopen it) */
    long long size;
    pid_t compressor; /* the child gzipping name.1 */
    long long last_ns; /* the latest line's time: each line gets a later one */
} logw_t;

static void log_open(logw_t *l, int truncate) {
    l->fd = open(l->path, O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : O_APPEND), 0666);
    struct stat st;
    l->size = l->fd >= 0 && fstat(l->fd, &st) == 0 ? st.st_size : 0;
}

static void log_wait_compressor(logw_t *l) {
    if (l->compressor) {
        while (waitpid(l->compressor, NULL, 0) < 0 && errno == EINTR)
            ;
        l->compressor = 0;
    }
}

static void close_from(int lowest) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        for (int fd = lowest; fd < 1024; fd++)
            close(fd);
        return;
    }
    int dfd = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (fd >= lowest && fd != dfd && e->d_name[0] != '.')
            close(fd);
    }
    closedir(d);
}

/* Fork a child that turns `path` into `path.gz` (through `gzip -1`); it first closes every inherited
 * descriptor, so it holds no container pipe or client socket open. */
static pid_t spawn_gzip(const char *path) {
    pid_t pid = fork();
    if (pid != 0)
        return pid < 0 ? 0 : pid;
    close_from(3);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    char gz[PATH_MAX + 16], tmp[PATH_MAX + 16];
    snprintf(gz, sizeof gz, "%s.gz", path);
    snprintf(tmp, sizeof tmp, "%s.gz.tmp", path);
    int in = open(path, O_RDONLY), out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (in < 0 || out < 0)
        _exit(1);
    pid_t gzip = fork();
    if (gzip == 0) {
        dup2(in, 0);
        dup2(out, 1);
        execlp("gzip", "gzip", "-1", "-c", (char *)NULL);
        execl("/bin/gzip", "gzip", "-1", "-c", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (gzip > 0 && waitpid(gzip, &status, 0) < 0 && errno == EINTR)
        ;
    if (gzip < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || close(out) || rename(tmp, gz)) {
        unlink(tmp);
        _exit(1);
    }
    unlink(path);
    _exit(0);
}

static void log_shift(logw_t *l) {
    char older[PATH_MAX], newer[PATH_MAX];
    log_wait_compressor(l);
    for (long long i = l->max_file - 1; i > 1; i--) {
        static const char *const suffixes[] = {"", ".gz"}; /* an uncompressed .1 left by a crash mid-compression */
        for (int s = 0; s < 2; s++) {
            snprintf(older, sizeof older, "%s.%lld%s", l->path, i - 1, suffixes[s]);
            snprintf(newer, sizeof newer, "%s.%lld%s", l->path, i, suffixes[s]);
            if (access(older, F_OK) == 0 && rename(older, newer))
                return;
        }
    }
    snprintf(newer, sizeof newer, "%s.1", l->path);
    if (rename(l->path, newer))
        return;
    if (l->compress)
        l->compressor = spawn_gzip(newer);
}

/* Start a new file; whatever goes wrong on the way, the log stays open for writing. */
static void log_rotate(logw_t *l) {
    if (l->fd >= 0)
        close(l->fd);
    if (l->max_file >= 2)
        log_shift(l);
    log_open(l, l->max_file < 2);
}

static void log_error(const char *what) {
    fprintf(stderr, "writing the log failed: %s: %s\n", what, strerror(errno));
}

/* Write `n` encoded lines (lines[i] .. lines[i+1] in `data`); the size check happens before each line. */
static void log_write(logw_t *l, const char *data, const size_t *ends, size_t n) {
    if (l->fd < 0)
        log_open(l, 0);
    size_t from = 0, start = 0;
    for (size_t i = 0; i < n; i++) {
        if (l->max_size && l->size >= l->max_size) {
            if (l->fd >= 0 && write_all(l->fd, data + from, start - from))
                log_error(l->path);
            from = start;
            log_rotate(l);
        }
        l->size += (long long)(ends[i] - start);
        start = ends[i];
    }
    if (l->fd < 0 || write_all(l->fd, data + from, start - from))
        log_error(l->path);
}

/* ---- the monitor's state ------------------------------------------------ */

enum { OP_NONE, OP_START, OP_WAIT, OP_RESIZE, OP_KILL, OP_ATTACH, OP_OTHER };

typedef struct {
    int fd;
    int reading; /* still polled for input (an attach whose client closed its side is not) */
    buf_t header;
    int op;
    int stdin_, stdout_, stderr_, close_stdin;
} client_t;

static struct {
    char *dir, *id, *runc, *runc_root, *bundle, *cgroup_path;
    char runc_exe[32]; /* the daemon's sealed copy of runc, as /proc/self/fd/N (see sealedexe.py); "" for none */
    int runc_fd;       /* that N when a spare was handed it (receive_dir); -1 else */
    int tty, want_stdin, exec_mode;
    int has_log;
    logw_t log;
    buf_t partial[2]; /* stdout, stderr: the line not yet ended */
    int out_fd[2];    /* the process's stdout and stderr (with a TTY, the pty as stdout); -1 once closed */
    int stdin_w, pty;
    unsigned short rows, cols;
    pid_t init_pid;
    int exited, exit_code;
    long long drain_deadline, start_deadline; /* ms, monotonic; start_deadline 0: none */
    int started;
    int start_tried;   /* runc ran for the process: a container may need deleting */
    buf_t early_input; /* stdin from attached clients before the process runs, kept for it */
    int early_close;   /* and their EOF */
    int ready_fd;      /* the ready pipe, watched until `start`: the daemon's end closing first means it died */
    buf_t exit_json;
    client_t **clients;
    size_t nclients;
    int wake_r, wake_w;
} M = {.stdin_w = -1, .pty = -1, .out_fd = {-1, -1}, .wake_r = -1, .wake_w = -1, .ready_fd = -1, .runc_fd = -1};

static const char *const STREAMS[2] = {"stdout", "stderr"};

/* What one read of a process's output or of a client brings; the handlers never nest, so they share it. */
static char chunk[READ_CHUNK];

/* ---- runc ---------------------------------------------------------------- */

/* The message of the last error or fatal entry of runc's JSON log. */
static void last_runc_error(const char *log, buf_t *msg) {
    msg->len = 0;
    buf_str(msg, "runc failed");
    FILE *f = fopen(log, "re");
    if (!f)
        goto done;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        json entry;
        if (json_parse(line, (size_t)n, &entry))
            continue;
        const char *level = jstr(&entry, "level");
        const json *m = jget(&entry, "msg");
        if ((!strcmp(level, "error") || !strcmp(level, "fatal")) && m && m->type == J_STR) {
            msg->len = 0;
            buf_str(msg, m->str);
        }
        json_free(&entry);
    }
    free(line);
    fclose(f);
done:
    buf_add(msg, "", 1);
    msg->len--;
}

/* Run runc with `args` (NULL-ended) and the given stdio (or /dev/null); its exit code, and its error
 * message in `err` if it failed. */
static int runc_v(const int *stdio, buf_t *err, const char *const *args) {
    const char *argv[32];
    char *log = path_join(M.dir, "runc.log");
    int argc = 0;
    argv[argc++] = M.runc;
    argv[argc++] = "--root";
    argv[argc++] = M.runc_root;
    argv[argc++] = "--log";
    argv[argc++] = log;
    argv[argc++] = "--log-format";
    argv[argc++] = "json";
    for (; *args && argc < 31; args++)
        argv[argc++] = *args;
    argv[argc] = NULL;
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    int fds[3] = {devnull, devnull, devnull};
    if (stdio)
        memcpy(fds, stdio, sizeof fds);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    for (int i = 0; i < 3; i++)
        posix_spawn_file_actions_adddup2(&fa, fds[i], i);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawn(&pid, M.runc_exe[0] ? M.runc_exe : M.runc, &fa, &attr, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (devnull >= 0)
        close(devnull);
    int code;
    if (rc) {
        code = 1;
        if (err) {
            err->len = 0;
            buf_fmt(err, "[Errno %d] %s: '%s'", rc, strerror(rc), M.runc);
        }
    } else {
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (code && err)
            last_runc_error(log, err);
    }
    free(log);
    return code;
}

#define RUNC(stdio, err, ...) runc_v(stdio, err, (const char *const[]){__VA_ARGS__, NULL})

static void set_size(unsigned short h, unsigned short w) {
    M.rows = h; /* an exec's terminal only exists once it runs */
    M.cols = w;
    if (M.pty >= 0) {
        struct winsize ws = {.ws_row = h, .ws_col = w};
        ioctl(M.pty, TIOCSWINSZ, &ws);
    }
}

static void add_output(int fd, int stream) {
    set_blocking(fd, 0);
    M.out_fd[stream] = fd;
}

static void close_stdin(void) {
    if (M.stdin_w >= 0) {
        close(M.stdin_w);
        M.stdin_w = -1;
    }
}

/* The pty runc sends over the console socket; -1 if none came within 10 s. */
static int receive_pty(int console) {
    struct pollfd pfd = {.fd = console, .events = POLLIN};
    if (poll(&pfd, 1, 10000) <= 0)
        return -1;
    int conn = accept4(console, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0)
        return -1;
    char data[1024];
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = data, .iov_len = sizeof data};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    int fd = -1;
    pfd.fd = conn;
    if (poll(&pfd, 1, 10000) > 0 && recvmsg(conn, &msg, MSG_CMSG_CLOEXEC) >= 0) {
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            memcpy(&fd, CMSG_DATA(c), sizeof fd);
    }
    close(conn);
    return fd;
}

/* Run `runc run --detach` or `runc exec --detach` (`action`: NULL-ended, at most 4 arguments) with the
 * process's stdio held here; 0, or -1 with `err` set. */
static int spawn(const char *const *action, buf_t *err) {
    char *pidfile = path_join(M.dir, "init.pid");
    char *console_path = path_join(M.dir, "console.sock");
    const char *args[12];
    int n = 0, code;
    for (; *action && n < 4; action++)
        args[n++] = *action;
    args[n++] = "--pid-file";
    args[n++] = pidfile;
    if (M.tty) {
        args[n++] = "--console-socket";
        args[n++] = console_path;
    }
    args[n++] = M.id;
    args[n] = NULL;
    if (M.tty) {
        int console = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (console < 0 || strlen(console_path) >= sizeof sa.sun_path) {
            err->len = 0;
            buf_fmt(err, "console socket %s: %s", console_path, strerror(console < 0 ? errno : ENAMETOOLONG));
            if (console >= 0)
                close(console);
            free(console_path);
            free(pidfile);
            return -1;
        }
        strcpy(sa.sun_path, console_path);
        if (bind(console, (struct sockaddr *)&sa, sizeof sa) || listen(console, 1)) {
            err->len = 0;
            buf_fmt(err, "console socket %s: %s", console_path, strerror(errno));
            close(console);
            free(console_path);
            free(pidfile);
            return -1;
        }
        code = runc_v(NULL, err, args);
        if (code == 0) {
            M.pty = receive_pty(console);
            if (M.pty < 0) {
                code = 1;
                err->len = 0;
                buf_str(err, "timed out");
            } else {
                set_size(M.rows, M.cols);
                add_output(M.pty, 0);
            }
        }
        close(console);
        unlink(console_path);
    } else {
        int stdin_r = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (M.want_stdin) {
            int p[2];
            if (pipe2(p, O_CLOEXEC) == 0) {
                close(stdin_r);
                stdin_r = p[0];
                M.stdin_w = p[1];
            }
        }
        int out[2] = {-1, -1}, errp[2] = {-1, -1};
        if (pipe2(out, O_CLOEXEC) || pipe2(errp, O_CLOEXEC)) {
            err->len = 0;
            buf_fmt(err, "pipe: %s", strerror(errno));
            code = 1;
        } else {
            int stdio[3] = {stdin_r, out[1], errp[1]};
            code = runc_v(stdio, err, args);
        }
        for (int i = 0; i < 2; i++) {
            int w = i ? errp[1] : out[1], r = i ? errp[0] : out[0];
            if (w >= 0)
                close(w);
            if (r < 0)
                continue;
            if (code == 0)
                add_output(r, i);
            else
                close(r);
        }
        close(stdin_r);
        if (code != 0)
            close_stdin();
    }
    if (code == 0) {
        FILE *f = fopen(pidfile, "re");
        long pid = 0;
        if (!f || fscanf(f, "%ld", &pid) != 1 || pid <= 0) {
            code = 1;
            err->len = 0;
            buf_fmt(err, "reading %s failed", pidfile);
        }
        if (f)
            fclose(f);
        M.init_pid = (pid_t)pid;
    }
    free(pidfile);
    free(console_path);
    return code ? -1 : 0;
}

/* ---- output ----------------------------------------------------------- */

/* Encode the lines into log entries, each with its own, strictly later time, and write them. */
static void emit(int stream, const char *data, const size_t *ends, size_t n) {
    if (!n || !M.has_log)
        return;
    buf_t out = {0};
    size_t *out_ends = malloc(n * sizeof *out_ends);
    if (!out_ends)
        _exit(1);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        long long ns = wall_ns();
        if (ns <= M.log.last_ns)
            ns = M.log.last_ns + 1;
        M.log.last_ns = ns;
        char when[40];
        rfc3339_ns(ns, when);
        buf_str(&out, "{\"log\":");
        json_put_str(&out, (const unsigned char *)data + start, ends[i] - start);
        buf_fmt(&out, ",\"stream\":\"%s\",\"time\":\"%s\"}\n", STREAMS[stream], when);
        out_ends[i] = out.len;
        start = ends[i];
    }
    log_write(&M.log, out.p, out_ends, n);
    free(out_ends);
    buf_free(&out);
}

/* Split the stream into lines (ended by \n, or LOG_LINE_MAX long) and log them; keep the rest. */
static void write_log(int stream, const char *data, size_t n) {
    buf_t *b = &M.partial[stream];
    buf_add(b, data, n);
    size_t count = 0, cap = 16, start = 0;
    size_t *ends = malloc(cap * sizeof *ends);
    if (!ends)
        _exit(1);
    for (;;) {
        /* As dockerd: a line longer than 16 KiB becomes entries of 16 KiB, the last with its newline,
         * whether or not its end arrived in the same read. */
        size_t window = b->len - start < LOG_LINE_MAX ? b->len - start : LOG_LINE_MAX;
        char *nl = memchr(b->p + start, '\n', window);
        size_t end;
        if (nl)
            end = (size_t)(nl - b->p) + 1;
        else if (b->len - start >= LOG_LINE_MAX)
            end = start + LOG_LINE_MAX;
        else
            break;
        if (count == cap) {
            cap *= 2;
            ends = realloc(ends, cap * sizeof *ends);
            if (!ends)
                _exit(1);
        }
        ends[count++] = end;
        start = end;
    }
    emit(stream, b->p, ends, count);
    buf_drop_front(b, start);
    free(ends);
}

static void drop(client_t *c);

static void on_output(int stream) {
    char *data = chunk;
    int fd = M.out_fd[stream];
    ssize_t n = read(fd, data, READ_CHUNK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) { /* EOF, or EIO from a pty whose other side closed */
        close(fd);
        M.out_fd[stream] = -1;
        if (fd == M.pty)
            M.pty = -1;
        return;
    }
    if (M.has_log)
        write_log(stream, data, (size_t)n);
    unsigned char header[8] = {stream == 0 ? 1 : 2, 0, 0, 0,
                               (unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8),
                               (unsigned char)n};
    for (size_t i = 0; i < M.nclients; i++) {
        client_t *c = M.clients[i];
        if (c->fd < 0 || c->op != OP_ATTACH || !(stream == 0 ? c->stdout_ : c->stderr_))
            continue;
        if ((!M.tty && write_all(c->fd, header, 8)) || write_all(c->fd, data, (size_t)n))
            drop(c);
    }
}

/* ---- clients -------------------------------------------------------------- */

static void on_accept(int listener) {
    int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    client_t *c = calloc(1, sizeof *c);
    client_t **all = realloc(M.clients, (M.nclients + 1) * sizeof *all);
    if (!c || !all)
        _exit(1);
    c->fd = fd;
    c->reading = 1;
    M.clients = all;
    M.clients[M.nclients++] = c;
}

/* Closes the connection; the entry is freed by the main loop (its fd -1 marks it gone). */
static void drop(client_t *c) {
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
        c->reading = 0;
    }
}

static void reap_dropped(void) {
    size_t j = 0;
    for (size_t i = 0; i < M.nclients; i++) {
        if (M.clients[i]->fd < 0) {
            buf_free(&M.clients[i]->header);
            free(M.clients[i]);
        } else {
            M.clients[j++] = M.clients[i];
        }
    }
    M.nclients = j;
}

static void reply(client_t *c, buf_t *b) {
    buf_add(b, "\n", 1);
    if (write_all(c->fd, b->p, b->len))
        drop(c);
    buf_free(b);
}

static void reply_error(client_t *c, const char *msg) {
    buf_t b = {0};
    buf_str(&b, "{\"error\": ");
    json_put_cstr(&b, msg);
    buf_str(&b, "}");
    reply(c, &b);
}

static void reply_ok(client_t *c) {
    buf_t b = {0};
    buf_str(&b, "{\"ok\": true}");
    reply(c, &b);
}

static void write_stdin(const char *data, size_t n) {
    int fd = M.tty ? M.pty : M.stdin_w;
    if (fd < 0)
        return;
    set_blocking(fd, 1);
    write_all(fd, data, n);
    if (fd == M.pty)
        set_blocking(fd, 0);
}

static void to_stdin(client_t *c, const char *data, size_t n) {
    if (c->op != OP_ATTACH || !c->stdin_)
        return;
    if (!M.started) {
        if (M.early_input.len + n <= EARLY_INPUT_MAX)
            buf_add(&M.early_input, data, n);
        return;
    }
    write_stdin(data, n);
}

/* An attached client's EOF: stdin closes, once the process runs. */
static void client_stdin_eof(void) {
    if (M.started)
        close_stdin();
    else
        M.early_close = 1;
}

/* Stop watching the ready pipe: the daemon has started the process (or is gone). */
static void release_ready(void) {
    if (M.ready_fd >= 0) {
        close(M.ready_fd);
        M.ready_fd = -1;
    }
}

static void exited(int code) {
    M.exited = 1;
    M.exit_code = code;
    M.drain_deadline = now_ms() + DRAIN_TIMEOUT_MS;
}

/* Start the process; 0 when it runs, else -1 with runc's error in `err`. */
static int start(buf_t *err) {
    M.start_tried = 1;
    if (M.exec_mode) {
        char *process = path_join(M.dir, "process.json");
        int rc = spawn((const char *const[]){"exec", "--detach", "--process", process, NULL}, err);
        free(process);
        return rc;
    }
    return spawn((const char *const[]){"run", "--detach", "--bundle", M.bundle, NULL}, err);
}

static void handle_op(client_t *c, const json *op) {
    buf_t b = {0};
    switch (c->op) {
    case OP_START:
        if (!M.started && start(&b)) {
            buf_add(&b, "", 1);
            reply_error(c, b.p);
            buf_free(&b);
            exited(255); /* nothing runs: the daemon reports the error, not this code */
            return;
        }
        buf_free(&b);
        if (!M.started) {
            M.started = 1;
            release_ready();
            if (M.early_input.len)
                write_stdin(M.early_input.p, M.early_input.len);
            buf_free(&M.early_input);
            if (M.early_close)
                close_stdin();
        }
        buf_fmt(&b, "{\"ok\": true, \"pid\": %d}", (int)M.init_pid);
        reply(c, &b);
        /* An exec's exit goes to the connection that started it: a separate wait could come after
         * a short-lived process and its monitor are gone. */
        if (M.exec_mode)
            c->op = OP_WAIT;
        return;
    case OP_WAIT:
        if (M.exit_json.len) {
            buf_add(&b, M.exit_json.p, M.exit_json.len);
            reply(c, &b);
        }
        return;
    case OP_RESIZE: {
        long long h, w;
        if (jto_int(jget(op, "h"), &h)) {
            reply_error(c, jget(op, "h") ? "invalid h" : "'h'");
        } else if (jto_int(jget(op, "w"), &w)) {
            reply_error(c, jget(op, "w") ? "invalid w" : "'w'");
        } else if (h < 0 || h > 65535 || w < 0 || w > 65535) {
            reply_error(c, "ushort format requires 0 <= number <= 65535");
        } else {
            set_size((unsigned short)h, (unsigned short)w);
            reply_ok(c);
        }
        return;
    }
    case OP_KILL:
        if (!M.exited && M.init_pid) { /* not reaped yet: the PID is still the process's */
            long long sig = SIGKILL;
            const json *s = jget(op, "signal");
            if (s && jto_int(s, &sig)) {
                reply_error(c, "invalid signal");
                return;
            }
            if (sig < INT_MIN || sig > INT_MAX || kill(M.init_pid, (int)sig)) {
                int e = sig < INT_MIN || sig > INT_MAX ? EINVAL : errno;
                buf_fmt(&b, "[Errno %d] %s", e, strerror(e));
                buf_add(&b, "", 1);
                reply_error(c, b.p);
                buf_free(&b);
                return;
            }
        }
        reply_ok(c);
        return;
    case OP_ATTACH:
        reply_ok(c);
        return;
    default: {
        const json *kind = jget(op, "op");
        if (kind && kind->type == J_STR)
            buf_fmt(&b, "unknown op '%.200s'", kind->str);
        else
            buf_str(&b, "unknown op None");
        buf_add(&b, "", 1);
        reply_error(c, b.p);
        buf_free(&b);
    }
    }
}

static int op_kind(const char *name) {
    static const struct { const char *name; int op; } ops[] = {
        {"start", OP_START}, {"wait", OP_WAIT}, {"resize", OP_RESIZE}, {"kill", OP_KILL}, {"attach", OP_ATTACH}};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
        if (!strcmp(name, ops[i].name))
            return ops[i].op;
    return OP_OTHER;
}

static void on_client(client_t *c) {
    char *data = chunk;
    ssize_t n = recv(c->fd, data, READ_CHUNK, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0)
        n = 0;
    if (c->op == OP_NONE) {
        if (!n) {
            drop(c);
            return;
        }
        buf_add(&c->header, data, (size_t)n);
        char *nl = memchr(c->header.p, '\n', c->header.len);
        if (!nl) {
            if (c->header.len > HEADER_MAX)
                drop(c);
            return;
        }
        json op;
        size_t line = (size_t)(nl - c->header.p);
        if (json_parse(c->header.p, line, &op) || op.type != J_OBJ) {
            if (op.type)
                json_free(&op);
            drop(c);
            return;
        }
        const json *kind = jget(&op, "op");
        c->op = kind && kind->type == J_STR ? op_kind(kind->str) : OP_OTHER;
        c->stdin_ = jtruthy(jget(&op, "stdin"));
        c->stdout_ = jtruthy(jget(&op, "stdout"));
        c->stderr_ = jtruthy(jget(&op, "stderr"));
        c->close_stdin = jtruthy(jget(&op, "close_stdin"));
        handle_op(c, &op);
        json_free(&op);
        if (c->fd >= 0 && c->header.len > line + 1)
            to_stdin(c, c->header.p + line + 1, c->header.len - line - 1);
        buf_free(&c->header);
        return;
    }
    if (c->op != OP_ATTACH) {
        if (!n)
            drop(c);
        return;
    }
    if (!n) {
        c->reading = 0;
        if (c->close_stdin)
            client_stdin_eof();
        return;
    }
    to_stdin(c, data, (size_t)n);
}

/* ---- lifecycle -------------------------------------------------------------- */

/* Collect exited children, noting the monitored process's exit. */
static void reap(void) {
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        if (pid == M.log.compressor)
            M.log.compressor = 0;
        if (pid == M.init_pid)
            exited(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
}

static int oom_killed(void) {
    /* no cgroup of its own (rootless on cgroup v1): the kernel's counters would be someone else's */
    if (!M.cgroup_path || !*M.cgroup_path)
        return 0;
    char paths[2][PATH_MAX];
    snprintf(paths[0], PATH_MAX, "/sys/fs/cgroup/memory%s/memory.oom_control", M.cgroup_path);
    snprintf(paths[1], PATH_MAX, "/sys/fs/cgroup%s/memory.events", M.cgroup_path);
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(paths[i], "re");
        if (!f)
            continue;
        char name[64];
        long long value;
        int found = 0;
        while (fscanf(f, "%63s %lld", name, &value) == 2)
            if (!strcmp(name, "oom_kill") && value > 0)
                found = 1;
        fclose(f);
        if (found)
            return 1;
    }
    return 0;
}

/* Send the ready line; 0 if the daemon is no longer there to read it. */
static int report(int ready_fd, buf_t *msg) {
    buf_add(msg, "\n", 1);
    int ok = write_all(ready_fd, msg->p, msg->len) == 0;
    buf_free(msg);
    return ok;
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                char *p = path_join(dir, e->d_name);
                unlink(p);
                free(p);
            }
        }
        closedir(d);
    }
    rmdir(dir);
}

static void finish(int listener, const char *sock_path) {
    if (M.has_log) {
        for (int s = 0; s < 2; s++) {
            if (M.partial[s].len) {
                size_t end = M.partial[s].len;
                emit(s, M.partial[s].p, &end, 1);
            }
        }
        log_wait_compressor(&M.log);
        if (M.log.fd >= 0)
            close(M.log.fd);
    }
    int oom = !M.exec_mode && oom_killed();
    char when[40];
    rfc3339_ns(wall_ns(), when);
    buf_fmt(&M.exit_json, "{\"ExitCode\": %d, \"FinishedAt\": \"%s\", \"OOMKilled\": %s}", M.exit_code, when,
            oom ? "true" : "false");
    if (!M.exec_mode) { /* an exec's exit must not delete its container */
        char *path = path_join(M.dir, "exit.json");
        atomic_write(path, M.exit_json.p, M.exit_json.len);
        free(path);
    }
    close(listener);
    unlink(sock_path);
    for (size_t i = 0; i < M.nclients; i++) { /* before attach streams end, whose clients then ask for the exit */
        client_t *c = M.clients[i];
        if (c->fd >= 0 && c->op == OP_WAIT) {
            buf_t b = {0};
            buf_add(&b, M.exit_json.p, M.exit_json.len);
            reply(c, &b);
        }
    }
    for (size_t i = 0; i < M.nclients; i++)
        drop(M.clients[i]);
    /* After the replies, so the daemon tears down network and mounts meanwhile; its cleanup waits
     * for shim.lock, which this process holds until it exits. */
    if (!M.exec_mode && M.start_tried)
        RUNC(NULL, NULL, "delete", "--force", M.id);
    /* Only the daemon that started an exec wanted its state, and has just been told; a restarted
     * daemon has forgotten the exec, as Docker does. */
    if (M.exec_mode)
        remove_dir(M.dir);
}

static void on_signal(int sig) {
    (void)sig;
    int saved = errno;
    if (write(M.wake_w, "x", 1) < 0) {
        /* the pipe is full: a wake-up is pending anyway */
    }
    errno = saved;
}

static int load_config(buf_t *err) {
    char *path = path_join(M.dir, "shim.json");
    buf_t text = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0) {
        buf_fmt(err, "shim.json: %s", strerror(errno));
        return -1;
    }
    char chunk[4096];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0)
        buf_add(&text, chunk, (size_t)n);
    close(fd);
    json cfg;
    if (json_parse(text.p ? text.p : "", text.len, &cfg) || cfg.type != J_OBJ) {
        buf_str(err, "shim.json: invalid JSON");
        buf_free(&text);
        return -1;
    }
    buf_free(&text);
    M.id = strdup(jstr(&cfg, "id"));
    M.runc = strdup(jstr(&cfg, "runc"));
    M.runc_root = strdup(jstr(&cfg, "runc_root"));
    M.bundle = strdup(jstr(&cfg, "bundle"));
    M.cgroup_path = strdup(jstr(&cfg, "cgroup_path"));
    M.tty = jtruthy(jget(&cfg, "tty"));
    M.want_stdin = jtruthy(jget(&cfg, "stdin"));
    M.exec_mode = !strcmp(jstr(&cfg, "mode"), "exec");
    const json *size = jget(&cfg, "console_size");
    M.rows = 24;
    M.cols = 80;
    if (size && size->type == J_ARR && size->n == 2 && size->items[0].type == J_NUM && size->items[1].type == J_NUM) {
        M.rows = (unsigned short)size->items[0].num;
        M.cols = (unsigned short)size->items[1].num;
    }
    const json *log = jget(&cfg, "log");
    const char *log_path = jstr(log, "path");
    if (*log_path) {
        M.has_log = 1;
        M.log.path = strdup(log_path);
        M.log.max_size = jint(log, "max_size");
        M.log.max_file = jint(log, "max_file");
        if (M.log.max_file < 1)
            M.log.max_file = 1;
        M.log.compress = jtruthy(jget(log, "compress"));
        char *dir = strdup(log_path), *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = 0;
            mkdirs(dir);
        }
        free(dir);
        log_open(&M.log, 0);
        if (M.log.fd < 0) {
            buf_fmt(err, "[Errno %d] %s: '%s'", errno, strerror(errno), log_path);
            json_free(&cfg);
            return -1;
        }
    }
    json_free(&cfg);
    return 0;
}

static void run(int ready_fd) {
    char *sock_path = path_join(M.dir, "shim.sock");
    buf_t msg = {0};
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (listener < 0 || strlen(sock_path) >= sizeof sa.sun_path) {
        buf_fmt(&msg, "shim socket %s: ", sock_path);
        buf_str(&msg, strerror(listener < 0 ? errno : ENAMETOOLONG));
        goto fail_early;
    }
    strcpy(sa.sun_path, sock_path);
    if (bind(listener, (struct sockaddr *)&sa, sizeof sa)) {
        buf_fmt(&msg, "shim socket %s: ", sock_path);
        buf_str(&msg, strerror(errno));
        goto fail_early;
    }
    listen(listener, 64);
    /* Held until exit (released by the kernel however it ends): the daemon's cleanup takes it to know
     * this monitor is done with its container and its state directory. */
    int lock = open("shim.lock", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0 || flock(lock, LOCK_EX)) {
        buf_fmt(&msg, "shim.lock: %s", strerror(errno));
        goto fail_early;
    }
    int wake[2];
    if (pipe2(wake, O_CLOEXEC | O_NONBLOCK)) {
        buf_fmt(&msg, "pipe: %s", strerror(errno));
        goto fail_early;
    }
    M.wake_r = wake[0];
    M.wake_w = wake[1];
    struct sigaction sa_chld = {.sa_handler = on_signal, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
    sigemptyset(&sa_chld.sa_mask);
    sigaction(SIGCHLD, &sa_chld, NULL);
    signal(SIGPIPE, SIG_IGN);
    M.start_deadline = now_ms() + START_TIMEOUT_MS;
    if (load_config(&msg)) {
        /* any failure is reported to the daemon, then cleaned up */
        buf_t line = {0};
        buf_add(&msg, "", 1);
        buf_str(&line, "{\"error\": ");
        json_put_cstr(&line, msg.p);
        buf_str(&line, "}");
        buf_free(&msg);
        report(ready_fd, &line);
        close(ready_fd);
        close(listener);
        unlink(sock_path);
        free(sock_path);
        return;
    }
    char pid_text[32];
    int n = snprintf(pid_text, sizeof pid_text, "%d", (int)getpid());
    int pidfd = open("shim.pid", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (pidfd >= 0) {
        write_all(pidfd, pid_text, (size_t)n);
        close(pidfd);
    }
    /* The process runs at `start`. Until then the daemon holds the read end of the ready pipe, which
     * closes early only if it died: then nobody will start the process, and the monitor gives up. */
    M.ready_fd = ready_fd;
    buf_str(&msg, "{\"pid\": 0}");
    if (!report(ready_fd, &msg))
        M.start_deadline = now_ms(); /* the daemon died already: give up now */
    struct pollfd *pfds = NULL;
    client_t **polled = NULL;
    for (;;) {
        if (!M.exited)
            reap();
        if (M.exited && ((M.out_fd[0] < 0 && M.out_fd[1] < 0) || now_ms() > M.drain_deadline))
            break;
        if (M.start_deadline && !M.started && now_ms() > M.start_deadline) {
            M.start_deadline = 0; /* nobody started it: the daemon is gone, do not linger */
            release_ready();
            exited(255);
        }
        reap_dropped();
        size_t cap = 5 + M.nclients, k = 0;
        pfds = realloc(pfds, cap * sizeof *pfds);
        polled = realloc(polled, cap * sizeof *polled);
        if (!pfds || !polled)
            _exit(1);
        pfds[k] = (struct pollfd){.fd = listener, .events = POLLIN};
        polled[k++] = NULL;
        pfds[k] = (struct pollfd){.fd = M.wake_r, .events = POLLIN};
        polled[k++] = NULL;
        for (int s = 0; s < 2; s++) {
            pfds[k] = (struct pollfd){.fd = M.out_fd[s], .events = POLLIN};
            polled[k++] = NULL;
        }
        pfds[k] = (struct pollfd){.fd = M.ready_fd, .events = 0}; /* only its POLLERR: see above */
        polled[k++] = NULL;
        for (size_t i = 0; i < M.nclients; i++) {
            if (M.clients[i]->reading) {
                pfds[k] = (struct pollfd){.fd = M.clients[i]->fd, .events = POLLIN};
                polled[k++] = M.clients[i];
            }
        }
        if (poll(pfds, k, 500) <= 0)
            continue;
        for (size_t i = 0; i < k; i++) {
            if (!pfds[i].revents || pfds[i].fd < 0)
                continue;
            if (i == 0) {
                on_accept(listener);
            } else if (i == 1) {
                char drain[64];
                while (read(M.wake_r, drain, sizeof drain) > 0)
                    ;
            } else if (i < 4) {
                if (M.out_fd[i - 2] == pfds[i].fd)
                    on_output((int)i - 2);
            } else if (i == 4) {
                release_ready();
                if (!M.started)
                    M.start_deadline = now_ms();
            } else if (polled[i]->fd >= 0 && polled[i]->reading) {
                on_client(polled[i]);
            }
        }
    }
    free(pfds);
    free(polled);
    finish(listener, sock_path);
    free(sock_path);
    return;
fail_early:
    buf_add(&msg, "", 1);
    {
        buf_t line = {0};
        buf_str(&line, "{\"error\": ");
        json_put_cstr(&line, msg.p);
        buf_str(&line, "}\n");
        write_all(ready_fd, line.p, line.len);
        buf_free(&line);
    }
    buf_free(&msg);
    if (listener >= 0)
        close(listener);
    free(sock_path);
}

/* A spare's state directory: one line on stdin, a unix socket. Its message may carry descriptors (SCM_RIGHTS):
 * first the daemon's sealed copy of the runtime, which is how a spare started before its container's runtime
 * was known gets it, then (from a daemon that asks for it) the next spare's stdin and ready pipe, for
 * fork_next_spare. 0 when the line came; -1 when the daemon closed the socket without one (a spare it no
 * longer needs, or a daemon that went away). */
static int receive_dir(char *dir, size_t cap, int next[2]) {
    size_t len = 0;
    for (;;) {
        union {
            struct cmsghdr h;
            char space[CMSG_SPACE(3 * sizeof(int))];
        } control;
        struct iovec iov = {.iov_base = dir + len, .iov_len = cap - 1 - len};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof control};
        ssize_t n = recvmsg(0, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            int fds[3], count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            if (count < 1 || count > 3)
                continue;
            memcpy(fds, CMSG_DATA(c), (size_t)count * sizeof(int));
            if (count != 2) {
                M.runc_fd = fds[0];
                snprintf(M.runc_exe, sizeof M.runc_exe, "/proc/self/fd/%d", M.runc_fd);
            }
            if (count >= 2) {
                next[0] = fds[count - 2];
                next[1] = fds[count - 1];
            }
        }
        len += (size_t)n;
        char *end = memchr(dir, '\n', len);
        if (end) {
            *end = 0;
            return *dir ? 0 : -1;
        }
        if (len >= cap - 1)
            return -1;
    }
}

/* Start the daemon's next spare, forked from this one as it takes its container: that costs the daemon no
 * process start of its own (a fork and exec, and the new program's dynamic linking: about a millisecond of
 * CPU and of the interpreter's lock on every `docker run`). The child forks the spare and exits at once, so
 * the spare, like every monitor, is orphaned to init (this monitor becomes a subreaper only afterwards) and
 * starts a session of its own. Returns in the spare (1, with `ready_fd` its own) and in this monitor (0);
 * if the fork fails the daemon finds its next spare gone and starts one itself. */
static int fork_next_spare(const int next[2], int *ready_fd) {
    pid_t child = fork();
    if (child == 0) {
        pid_t spare = fork();
        if (spare != 0)
            _exit(spare < 0);
        setsid();
        if (M.runc_fd >= 0) { /* the runtime copy is this container's: the spare's comes with its own */
            close(M.runc_fd);
            M.runc_fd = -1;
            M.runc_exe[0] = 0;
        }
        close(*ready_fd);
        *ready_fd = next[1];
        if (dup2(next[0], 0) < 0)
            _exit(1);
        close(next[0]);
        return 1;
    }
    close(next[0]);
    close(next[1]);
    if (child > 0)
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
            ;
    return 0;
}

int main(int argc, char **argv) {
    /* The daemon names the state directory in argv, or "-" for a spare that waits for it on stdin; an
     * empty one asks for nothing (the daemon's check that it runs). */
    if (argc < 2 || !argv[1][0])
        return 0;
    int spare = !strcmp(argv[1], "-");
    if (strlen(argv[1]) >= PATH_MAX)
        return 2;
    const char *ready = getenv("PYDOCK_SHIM_READY");
    if (!ready) {
        fputs("monitor: PYDOCK_SHIM_READY is not set\n", stderr);
        return 2;
    }
    int ready_fd = atoi(ready);
    fcntl(ready_fd, F_SETFD, FD_CLOEXEC);
    /* runc runs from the daemon's sealed copy of it, which runc does not copy again; close-on-exec here, as
     * the kernel opens /proc/self/fd/N before such descriptors close, so nothing runc starts inherits it */
    const char *runtime_fd = getenv("PYDOCK_RUNTIME_FD");
    if (runtime_fd && *runtime_fd && fcntl(atoi(runtime_fd), F_SETFD, FD_CLOEXEC) == 0)
        snprintf(M.runc_exe, sizeof M.runc_exe, "/proc/self/fd/%d", atoi(runtime_fd));
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid > 0)
        _exit(0); /* the daemon reaps this parent at once; the monitor is orphaned to init */
    setsid();
    static char dir[PATH_MAX];
    if (spare) {
        /* forked already, so handing it a container costs the daemon one message and the ready line */
        for (;;) {
            int next[2] = {-1, -1};
            if (receive_dir(dir, sizeof dir, next))
                return 0;
            if (next[0] < 0 || !fork_next_spare(next, &ready_fd))
                break;
            /* the next spare: wait for its own container */
        }
    } else {
        strcpy(dir, argv[1]);
    }
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    M.dir = dir;
    int devnull = open("/dev/null", O_RDWR);
    char *log = path_join(M.dir, "shim.log");
    int err = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    free(log);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        if (devnull > 2)
            close(devnull);
    }
    if (err >= 0) {
        dup2(err, 2);
        if (err > 2)
            close(err);
    }
    setvbuf(stderr, NULL, _IONBF, 0);
    if (chdir(M.dir)) {
        buf_t line_msg = {0};
        buf_str(&line_msg, "{\"error\": ");
        json_put_cstr(&line_msg, strerror(errno));
        buf_str(&line_msg, "}");
        report(ready_fd, &line_msg);
        return 1;
    }
    run(ready_fd);
    return 0;
}
