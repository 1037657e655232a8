/* The hash chain's fast path: verify a window of stored events without creating a Python object per event.
 *
 * `verify_copy` walks the output of PostgreSQL's binary COPY of
 *     SELECT position::int8, stream_id, stream_version::int8, event_type, schema_version::int8, actor,
 *            recorded_at, effective_date, canonical, hash, prev_hash FROM event ... ORDER BY position
 * and, for each row, checks what `registry.eventlog.verify.ChainVerifier` checks: the position is the
 * next one, SHA-256 of the stored bytes is the stored hash, prev_hash is the previous event's hash,
 * the bytes are exactly the canonical encoding of an event, and the indexed columns equal the values
 * in the hashed document.
 *
 * It only ever accepts: a row it does not fully understand (a float, an escaped key, an offset other
 * than Z, a field the event shape does not have, ...) stops the walk, and the caller verifies that
 * window with the Python verifier, which names the first bad position and its problem. So this file
 * can make verification faster but never more lenient: every byte string it accepts as canonical is
 * one that msgspec's decoder reads as a CanonicalEvent and its sorted encoder writes back unchanged
 * (tests/unit/test_fastchain.py checks this on generated and mutated events).
 *
 * `verify_lines` does the same for the lines of a JSON Lines export (registry.audit.export), where
 * the columns are the line's own position and hashes, and also returns each event's RFC 6962 leaf
 * hash; `frontier_extend` grows a Merkle frontier by many leaf hashes at once. These three release
 * the GIL while they work, so threads can run them side by side.
 *
 * SHA-256 is OpenSSL's, from the libcrypto that Python's hashlib already loads.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

/* ---- SHA-256 from libcrypto ------------------------------------------------------------------- */

typedef struct { _Alignas(16) unsigned char opaque[512]; } sha_ctx; /* larger than OpenSSL's SHA256_CTX */

static int (*sha_init)(void *);
static int (*sha_update)(void *, const void *, size_t);
static int (*sha_final)(unsigned char *, void *);

static int load_sha(void) {
    const char *names[] = {"libcrypto.so.3", "libcrypto.so", "libcrypto.so.1.1", NULL};
    for (int i = 0; names[i]; i++) {
        void *lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (!lib) continue;
        sha_init = (int (*)(void *))dlsym(lib, "SHA256_Init");
        sha_update = (int (*)(void *, const void *, size_t))dlsym(lib, "SHA256_Update");
        sha_final = (int (*)(unsigned char *, void *))dlsym(lib, "SHA256_Final");
        if (sha_init && sha_update && sha_final) return 0;
    }
    return -1;
}

static int sha256(const unsigned char *prefix, size_t prefix_len, const unsigned char *data, size_t len,
                  unsigned char out[32]) {
    sha_ctx ctx;
    if (sha_init(&ctx) != 1) return -1;
    if (prefix_len && sha_update(&ctx, prefix, prefix_len) != 1) return -1;
    if (sha_update(&ctx, data, len) != 1) return -1;
    return sha_final(out, &ctx) == 1 ? 0 : -1;
}

/* ---- canonical JSON, exactly as msgspec's sorted encoder writes it ---------------------------- */

typedef struct {
    const unsigned char *p, *end;
} cursor;

typedef struct {
    const unsigned char *s;
    size_t n;
    int escaped;
} span;

#define MAX_DEPTH 64

static inline int lit(cursor *c, const char *text, size_t n) {
    /* a byte loop, not memcmp: n is a small constant here, and a libc call per literal costs more */
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, text, n) != 0) return -1;
    c->p += n;
    return 0;
}
#define LIT(c, text) lit((c), (text), sizeof(text) - 1)

static int hexval(unsigned char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1; /* msgspec writes lowercase hex only */
}

/* A string: printable ASCII except '"' and '\', valid UTF-8 beyond ASCII, and only the escapes msgspec
 * writes (\" \\ \b \t \n \f \r, and \u00XX for the other control characters). */
static int string(cursor *c, span *out) {
    if (c->p >= c->end || *c->p != '"') return -1;
    const unsigned char *p = ++c->p, *end = c->end;
    out->s = p;
    out->escaped = 0;
    while (p < end) {
        unsigned char ch = *p;
        if (ch == '"') {
            out->n = (size_t)(p - out->s);
            c->p = p + 1;
            return 0;
        }
        if (ch < 0x20) return -1;
        if (ch < 0x80) {
            if (ch == '\\') {
                out->escaped = 1;
                if (p + 1 >= end) return -1;
                unsigned char e = p[1];
                if (e == '"' || e == '\\' || e == 'b' || e == 't' || e == 'n' || e == 'f' || e == 'r') {
                    p += 2;
                    continue;
                }
                if (e != 'u' || end - p < 6 || p[2] != '0' || p[3] != '0') return -1;
                int hi = hexval(p[4]), lo = hexval(p[5]);
                if (hi < 0 || lo < 0) return -1;
                int code = hi * 16 + lo;
                if (code >= 0x20 || code == 0x08 || code == 0x09 || code == 0x0a || code == 0x0c || code == 0x0d)
                    return -1;
                p += 6;
                continue;
            }
            p++;
            continue;
        }
        /* UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF */
        if (ch >= 0xc2 && ch <= 0xdf) {
            if (end - p < 2 || (p[1] & 0xc0) != 0x80) return -1;
            p += 2;
        } else if (ch >= 0xe0 && ch <= 0xef) {
            if (end - p < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) return -1;
            if (ch == 0xe0 && p[1] < 0xa0) return -1;
            if (ch == 0xed && p[1] >= 0xa0) return -1;
            p += 3;
        } else if (ch >= 0xf0 && ch <= 0xf4) {
            if (end - p < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80) return -1;
            if (ch == 0xf0 && p[1] < 0x90) return -1;
            if (ch == 0xf4 && p[1] >= 0x90) return -1;
            p += 4;
        } else {
            return -1;
        }
    }
    return -1;
}

/* An integer as msgspec writes one: -?(0|[1-9][0-9]*), never -0; at most 18 digits (fits int64);
 * a fraction or exponent after it would make it a float, which the fast path does not take. */
static int integer(cursor *c, int64_t *value) {
    const unsigned char *p = c->p, *end = c->end;
    int negative = 0;
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    if (p >= end || *p < '0' || *p > '9') return -1;
    if (*p == '0') {
        if (negative) return -1;
        p++;
        if (p < end && *p >= '0' && *p <= '9') return -1;
        *value = 0;
    } else {
        int64_t v = 0;
        int digits = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (++digits > 18) return -1;
            v = v * 10 + (*p++ - '0');
        }
        *value = negative ? -v : v;
    }
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) return -1;
    c->p = p;
    return 0;
}

static int value(cursor *c, int depth);

/* An object whose keys are unescaped and strictly increasing (code point order, which is UTF-8 byte
 * order): what sorting a dict's keys writes, with no key twice. */
static int object(cursor *c, int depth) {
    if (depth > MAX_DEPTH || LIT(c, "{")) return -1;
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return 0;
    }
    span previous = {NULL, 0, 0};
    for (;;) {
        span key;
        if (string(c, &key) || key.escaped) return -1;
        if (previous.s) {
            size_t n = previous.n < key.n ? previous.n : key.n;
            int order = memcmp(previous.s, key.s, n);
            if (order > 0 || (order == 0 && previous.n >= key.n)) return -1;
        }
        previous = key;
        if (LIT(c, ":") || value(c, depth + 1)) return -1;
        if (c->p >= c->end) return -1;
        if (*c->p == '}') {
            c->p++;
            return 0;
        }
        if (*c->p++ != ',') return -1;
    }
}

static int array(cursor *c, int depth) {
    if (depth > MAX_DEPTH || LIT(c, "[")) return -1;
    if (c->p < c->end && *c->p == ']') {
        c->p++;
        return 0;
    }
    for (;;) {
        if (value(c, depth + 1)) return -1;
        if (c->p >= c->end) return -1;
        if (*c->p == ']') {
            c->p++;
            return 0;
        }
        if (*c->p++ != ',') return -1;
    }
}

static int value(cursor *c, int depth) {
    if (c->p >= c->end) return -1;
    span s;
    int64_t i;
    switch (*c->p) {
    case '{': return object(c, depth);
    case '[': return array(c, depth);
    case '"': return string(c, &s);
    case 't': return LIT(c, "true");
    case 'f': return LIT(c, "false");
    case 'n': return LIT(c, "null");
    default: return integer(c, &i);
    }
}

/* ---- dates and times -------------------------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) { /* days since 1970-01-01 */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static const int64_t PG_EPOCH_DAYS = 10957; /* 2000-01-01, PostgreSQL's epoch, in days since 1970 */

static int digits(const unsigned char *p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

/* YYYY-MM-DD, a real calendar day in years 1..9999: days since 2000-01-01. */
static int date_at(const unsigned char *p, int64_t *days) {
    int y, m, d;
    if (digits(p, 4, &y) || p[4] != '-' || digits(p + 5, 2, &m) || p[7] != '-' || digits(p + 8, 2, &d)) return -1;
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || m < 1 || m > 12 || d < 1) return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > month_days[m - 1] + (m == 2 && leap)) return -1;
    *days = days_from_civil(y, m, d) - PG_EPOCH_DAYS;
    return 0;
}

static int date_string(cursor *c, int64_t *days) {
    if (c->end - c->p < 12 || c->p[0] != '"' || c->p[11] != '"' || date_at(c->p + 1, days)) return -1;
    c->p += 12;
    return 0;
}

/* "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" as msgspec writes a UTC datetime (six fraction digits, none when the
 * microsecond is 0): microseconds since 2000-01-01 UTC, as PostgreSQL stores timestamptz. */
static int utc_datetime(cursor *c, int64_t *micros) {
    const unsigned char *p = c->p;
    int64_t days;
    int hh, mm, ss, us = 0;
    if (c->end - p < 22 || p[0] != '"' || date_at(p + 1, &days) || p[11] != 'T' || digits(p + 12, 2, &hh) ||
        p[14] != ':' || digits(p + 15, 2, &mm) || p[17] != ':' || digits(p + 18, 2, &ss))
        return -1;
    if (hh > 23 || mm > 59 || ss > 59) return -1;
    p += 20;
    if (*p == '.') {
        if (c->end - p < 9 || digits(p + 1, 6, &us) || us == 0) return -1;
        p += 7;
    }
    if (c->end - p < 2 || p[0] != 'Z' || p[1] != '"') return -1;
    c->p = p + 2;
    *micros = ((days * 24 + hh) * 60 + mm) * 60 * 1000000LL + ss * 1000000LL + us;
    return 0;
}

/* ---- the event document ----------------------------------------------------------------------- */

typedef struct {
    int64_t position, version, schema, recorded_at, effective_date;
    int has_effective_date;
    span stream, type, actor;
    const unsigned char *prev_hash; /* 64 lowercase hex digits inside the document */
} event_doc;

static const char HEX_DIGITS[] = "0123456789abcdef";

static void to_hex(const unsigned char in[32], unsigned char out[64]) {
    for (int i = 0; i < 32; i++) {
        out[2 * i] = (unsigned char)HEX_DIGITS[in[i] >> 4];
        out[2 * i + 1] = (unsigned char)HEX_DIGITS[in[i] & 15];
    }
}

/* A JSON string of 64 lowercase hex digits; *hex points at the digits. */
static int hex64(cursor *c, const unsigned char **hex) {
    if (c->end - c->p < 66 || c->p[0] != '"' || c->p[65] != '"') return -1;
    int bad = 0;
    for (int i = 1; i <= 64; i++) {
        unsigned char ch = c->p[i];
        bad |= !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'));
    }
    if (bad) return -1;
    *hex = c->p + 1;
    c->p += 66;
    return 0;
}

/* The whole canonical document of a CanonicalEvent: its ten fields in sorted order, EventMeta's fields
 * in sorted order with the optional ones present only as strings (omit_defaults drops a None). */
static int event_document(const unsigned char *bytes, size_t n, event_doc *e) {
    cursor c = {bytes, bytes + n};
    span s;
    if (LIT(&c, "{\"data\":") || object(&c, 1) || LIT(&c, ",\"effective_date\":")) return -1;
    if (c.p < c.end && *c.p == 'n') {
        if (LIT(&c, "null")) return -1;
        e->has_effective_date = 0;
    } else {
        if (date_string(&c, &e->effective_date)) return -1;
        e->has_effective_date = 1;
    }
    if (LIT(&c, ",\"meta\":{\"actor\":") || string(&c, &e->actor) || LIT(&c, ",\"command\":") || string(&c, &s))
        return -1;
    if (c.p < c.end && LIT(&c, ",\"idempotency_key\":") == 0 && string(&c, &s)) return -1;
    if (c.p < c.end && LIT(&c, ",\"reason\":") == 0 && string(&c, &s)) return -1;
    if (c.p < c.end && LIT(&c, ",\"request_id\":") == 0 && string(&c, &s)) return -1;
    if (LIT(&c, ",\"role\":") || string(&c, &s) || LIT(&c, "},\"position\":") || integer(&c, &e->position) ||
        LIT(&c, ",\"prev_hash\":") || hex64(&c, &e->prev_hash) || LIT(&c, ",\"recorded_at\":") ||
        utc_datetime(&c, &e->recorded_at) || LIT(&c, ",\"schema\":") || integer(&c, &e->schema) ||
        LIT(&c, ",\"stream\":") || string(&c, &e->stream) || LIT(&c, ",\"type\":") || string(&c, &e->type) ||
        LIT(&c, ",\"version\":") || integer(&c, &e->version) || LIT(&c, "}"))
        return -1;
    return c.p == c.end ? 0 : -1;
}

/* ---- PostgreSQL binary COPY rows -------------------------------------------------------------- */

static const unsigned char COPY_SIGNATURE[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};

static uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int64_t be64(const unsigned char *p) { return (int64_t)(((uint64_t)be32(p) << 32) | be32(p + 4)); }

typedef struct {
    const unsigned char *s;
    int32_t n; /* -1: NULL */
} field;

#define FIELDS 11

enum { OK = 0, STOP = 1 };

static int same_text(field f, span s) {
    return f.n >= 0 && !s.escaped && (size_t)f.n == s.n && memcmp(f.s, s.s, s.n) == 0;
}

static int int8_field(field f, int64_t *v) {
    if (f.n != 8) return -1;
    *v = be64(f.s);
    return 0;
}

enum { MORE = 2 }; /* verify_rows: every complete row verified; the rest is an unfinished row */

/* Verify the rows of binary COPY output, from its header when `header` (else from a row boundary);
 * *position and previous advance past each accepted row and *consumed past its bytes. Returns OK when
 * the trailer was reached (and nothing follows it), MORE when the data ends inside a row (the caller
 * passes data[*consumed:] again with more appended), STOP at the first row not accepted. */
static int verify_rows(const unsigned char *data, size_t len, int header, int64_t *position,
                       unsigned char previous[32], unsigned char *leaves, size_t *consumed) {
    static const unsigned char LEAF_PREFIX = 0x00;
    const unsigned char *p = data, *end = data + len;
    *consumed = 0;
    if (header) {
        if (memcmp(p, COPY_SIGNATURE, len < 11 ? len : 11) != 0) return STOP;
        if (len < 19) return MORE;
        uint32_t extension = be32(p + 15);
        if ((size_t)(end - p - 19) < extension) return MORE;
        p += 19 + extension;
        *consumed = (size_t)(p - data);
    }
    for (;;) {
        if (end - p < 2) return MORE;
        int16_t count = (int16_t)((p[0] << 8) | p[1]);
        if (count == -1) {
            if (p + 2 != end) return STOP;
            *consumed = len;
            return OK;
        }
        if (count != FIELDS) return STOP;
        const unsigned char *q = p + 2;
        field f[FIELDS];
        for (int i = 0; i < FIELDS; i++) {
            if (end - q < 4) return MORE;
            int32_t n = (int32_t)be32(q);
            q += 4;
            if (n < -1) return STOP;
            if (n > 0 && end - q < n) return MORE;
            f[i].s = q;
            f[i].n = n;
            if (n > 0) q += n;
        }
        int64_t column_position, version, schema, recorded_at;
        if (int8_field(f[0], &column_position) || column_position != *position) return STOP;
        if (int8_field(f[2], &version) || int8_field(f[4], &schema) || int8_field(f[6], &recorded_at)) return STOP;
        field canonical = f[8], hash = f[9], prev_hash = f[10];
        if (canonical.n < 0 || hash.n != 32 || prev_hash.n != 32) return STOP;
        if (memcmp(prev_hash.s, previous, 32) != 0) return STOP;
        unsigned char digest[32];
        if (sha256(NULL, 0, canonical.s, (size_t)canonical.n, digest) || memcmp(digest, hash.s, 32) != 0)
            return STOP;
        event_doc e;
        if (event_document(canonical.s, (size_t)canonical.n, &e)) return STOP;
        unsigned char prev_hex[64];
        to_hex(prev_hash.s, prev_hex);
        if (e.position != column_position || e.version != version || e.schema != schema ||
            e.recorded_at != recorded_at || memcmp(e.prev_hash, prev_hex, 64) != 0 ||
            !same_text(f[1], e.stream) || !same_text(f[3], e.type) || !same_text(f[5], e.actor))
            return STOP;
        if (e.has_effective_date) {
            if (f[7].n != 4 || (int32_t)be32(f[7].s) != e.effective_date) return STOP;
        } else if (f[7].n != -1) {
            return STOP;
        }
        if (leaves) {
            if (sha256(&LEAF_PREFIX, 1, canonical.s, (size_t)canonical.n, leaves)) return STOP;
            leaves += 32;
        }
        memcpy(previous, hash.s, 32);
        (*position)++;
        p = q;
        *consumed = (size_t)(p - data);
    }
}

/* ---- export lines (registry.audit.export) ------------------------------------------------------ */

/* The canonical bytes inside an export line's JSON string, unescaped into `out` (which holds at least
 * as many bytes as the string). Only the escapes msgspec writes for a str are taken. */
static int unescape(cursor *c, unsigned char *out, size_t *n) {
    if (c->p >= c->end || *c->p != '"') return -1;
    const unsigned char *p = c->p + 1, *end = c->end;
    unsigned char *o = out;
    while (p < end) {
        unsigned char ch = *p;
        if (ch == '"') {
            *n = (size_t)(o - out);
            c->p = p + 1;
            return 0;
        }
        if (ch < 0x20) return -1;
        if (ch != '\\') {
            *o++ = ch;
            p++;
            continue;
        }
        if (p + 1 >= end) return -1;
        switch (p[1]) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case 'b': *o++ = '\b'; break;
        case 't': *o++ = '\t'; break;
        case 'n': *o++ = '\n'; break;
        case 'f': *o++ = '\f'; break;
        case 'r': *o++ = '\r'; break;
        case 'u': {
            if (end - p < 6 || p[2] != '0' || p[3] != '0') return -1;
            int hi = hexval(p[4]), lo = hexval(p[5]);
            if (hi < 0 || lo < 0 || hi * 16 + lo >= 0x20) return -1;
            *o++ = (unsigned char)(hi * 16 + lo);
            p += 6;
            continue;
        }
        default: return -1;
        }
        p += 2;
    }
    return -1;
}

/* Lines `{"position":N,"canonical":"...","hash":"<hex>","prev_hash":"<hex>"}\n` as the exporter writes
 * them. Complete lines are checked in order until the data ends (a partial last line is left for the
 * next call) or a line is not accepted; *consumed counts the bytes of accepted lines, and each
 * accepted event's leaf hash SHA-256(0x00 ‖ bytes) is written to `leaves` when it is given. */
static int verify_lines(const unsigned char *data, size_t len, int64_t *position, unsigned char previous[32],
                        size_t *consumed, unsigned char *leaves, unsigned char *scratch) {
    static const unsigned char LEAF_PREFIX = 0x00;
    const unsigned char *line = data, *end = data + len;
    *consumed = 0;
    while (line < end) {
        /* A line is parsed in place; one that does not parse is either unfinished (no newline yet: it
         * is finished in the next chunk) or not accepted. A parsed line ends at its own newline: no
         * part of it can run past one (strings hold no raw control characters). */
        cursor c = {line, end};
        int64_t line_position;
        size_t n;
        const unsigned char *hash_hex, *prev_hex;
        unsigned char digest[32], digest_hex[64], previous_hex[64];
        if (LIT(&c, "{\"position\":") || integer(&c, &line_position) || line_position != *position ||
            LIT(&c, ",\"canonical\":") || unescape(&c, scratch, &n) || LIT(&c, ",\"hash\":") ||
            hex64(&c, &hash_hex) || LIT(&c, ",\"prev_hash\":") || hex64(&c, &prev_hex) || LIT(&c, "}\n"))
            return memchr(line, '\n', (size_t)(end - line)) ? STOP : OK;
        to_hex(previous, previous_hex);
        if (memcmp(prev_hex, previous_hex, 64) != 0) return STOP;
        if (sha256(NULL, 0, scratch, n, digest)) return STOP;
        to_hex(digest, digest_hex);
        if (memcmp(digest_hex, hash_hex, 64) != 0) return STOP;
        event_doc e;
        if (event_document(scratch, n, &e) || e.position != line_position || memcmp(e.prev_hash, prev_hex, 64) != 0)
            return STOP;
        if (leaves) {
            if (sha256(&LEAF_PREFIX, 1, scratch, n, leaves)) return STOP;
            leaves += 32;
        }
        memcpy(previous, digest, 32);
        (*position)++;
        line = c.p;
        *consumed = (size_t)(line - data);
    }
    return OK;
}

/* RFC 6962 tree growth, as registry.audit.merkle.Frontier.append does it: peaks are the complete
 * subtrees of a tree of `size` leaves, largest first. */
static int frontier_append(unsigned char (*peaks)[32], int *count, uint64_t *size, const unsigned char leaf[32]) {
    static const unsigned char NODE_PREFIX = 0x01;
    unsigned char h[32], pair[64];
    memcpy(h, leaf, 32);
    uint64_t index = *size;
    while (index & 1) {
        memcpy(pair, peaks[--*count], 32);
        memcpy(pair + 32, h, 32);
        if (sha256(&NODE_PREFIX, 1, pair, 64, h)) return -1;
        index >>= 1;
    }
    memcpy(peaks[(*count)++], h, 32);
    (*size)++;
    return 0;
}

/* ---- Python ----------------------------------------------------------------------------------- */

PyDoc_STRVAR(verify_copy_doc,
"verify_copy(data, position, previous_hash, leaves=False, header=True)\n"
"    -> (state, next_position, last_hash, consumed, leaf_hashes)\n\n"
"Verify the rows of binary COPY output (see the module source for the columns) as the chain continues\n"
"from `position` after `previous_hash`; `header`: the data starts with the COPY header, else at a row.\n"
"state 'done': every row verified up to the trailer. 'more': every complete row verified; the data\n"
"ends inside a row, so pass data[consumed:] again with what follows (and header=False). 'stop': a row\n"
"was not accepted (next_position names it) and the caller must verify from there with the Python\n"
"verifier, which says what, if anything, is wrong. With `leaves`, leaf_hashes holds the accepted\n"
"events' RFC 6962 leaf hashes, 32 bytes each.");

static PyObject *verify_copy(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer data, previous;
    long long position;
    int want_leaves = 0, header = 1;
    if (!PyArg_ParseTuple(args, "y*Ly*|pp", &data, &position, &previous, &want_leaves, &header)) return NULL;
    PyObject *result = NULL;
    unsigned char *leaves = NULL;
    if (previous.len != 32) {
        PyErr_SetString(PyExc_ValueError, "previous_hash must be 32 bytes");
        goto done;
    }
    /* a COPY row of an event is far longer than 64 bytes: one leaf hash per 64 bytes is enough */
    if (want_leaves && !(leaves = PyMem_RawMalloc(((size_t)data.len / 64 + 1) * 32))) {
        PyErr_NoMemory();
        goto done;
    }
    unsigned char hash[32];
    memcpy(hash, previous.buf, 32);
    int64_t next = position;
    size_t consumed = 0;
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = verify_rows((const unsigned char *)data.buf, (size_t)data.len, header, &next, hash, leaves, &consumed);
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("(sLy#ny#)", status == OK ? "done" : status == MORE ? "more" : "stop", (long long)next,
                           (const char *)hash, (Py_ssize_t)32, (Py_ssize_t)consumed,
                           leaves ? (const char *)leaves : "", (Py_ssize_t)(leaves ? (next - position) * 32 : 0));
done:
    PyMem_RawFree(leaves);
    PyBuffer_Release(&data);
    PyBuffer_Release(&previous);
    return result;
}

PyDoc_STRVAR(is_canonical_event_doc,
"is_canonical_event(data) -> bool\n\n"
"True only if the bytes are exactly the canonical encoding of an event that the fast path accepts.\n"
"False does not mean they are not canonical, only that the Python verifier must decide.");

static PyObject *is_canonical_event(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*", &data)) return NULL;
    event_doc e;
    int ok = event_document((const unsigned char *)data.buf, (size_t)data.len, &e) == 0;
    PyBuffer_Release(&data);
    return PyBool_FromLong(ok);
}

PyDoc_STRVAR(verify_lines_doc,
"verify_lines(data, position, previous_hash, leaves) -> (complete, next_position, last_hash, consumed, leaf_hashes)\n\n"
"Verify the complete export lines at the start of `data` (bytes of a JSON Lines export) as the chain\n"
"continues from `position` after `previous_hash`. complete is False when a line was not accepted: the\n"
"caller verifies from data[consumed:] with the Python verifier. True: every complete line verified and\n"
"data[consumed:] is an unfinished last line. With `leaves`, leaf_hashes holds the accepted events'\n"
"RFC 6962 leaf hashes, 32 bytes each; otherwise it is empty.");

static PyObject *py_verify_lines(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer data, previous;
    long long position;
    int want_leaves;
    if (!PyArg_ParseTuple(args, "y*Ly*p", &data, &position, &previous, &want_leaves)) return NULL;
    PyObject *result = NULL;
    unsigned char *scratch = NULL, *leaves = NULL;
    if (previous.len != 32) {
        PyErr_SetString(PyExc_ValueError, "previous_hash must be 32 bytes");
        goto done;
    }
    /* an accepted line is over 250 bytes (two hashes in hex, the event's own prev_hash, the keys),
     * so one leaf hash per 128 bytes of input is more than enough */
    size_t most = (size_t)data.len / 128 + 1;
    scratch = PyMem_RawMalloc((size_t)data.len + 1);
    leaves = want_leaves ? PyMem_RawMalloc(most * 32) : NULL;
    if (!scratch || (want_leaves && !leaves)) {
        PyErr_NoMemory();
        goto done;
    }
    unsigned char hash[32];
    memcpy(hash, previous.buf, 32);
    int64_t next = position;
    size_t consumed = 0;
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = verify_lines((const unsigned char *)data.buf, (size_t)data.len, &next, hash, &consumed, leaves, scratch);
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("(OLy#ny#)", status == OK ? Py_True : Py_False, (long long)next, (const char *)hash,
                           (Py_ssize_t)32, (Py_ssize_t)consumed, leaves ? (const char *)leaves : "",
                           (Py_ssize_t)(want_leaves ? (next - position) * 32 : 0));
done:
    PyMem_RawFree(scratch);
    PyMem_RawFree(leaves);
    PyBuffer_Release(&data);
    PyBuffer_Release(&previous);
    return result;
}

PyDoc_STRVAR(frontier_extend_doc,
"frontier_extend(size, peaks, leaf_hashes) -> (size, peaks)\n\n"
"Append leaf hashes (32 bytes each, concatenated) to an RFC 6962 tree given by its size and peaks,\n"
"exactly as registry.audit.merkle.Frontier.append does one at a time.");

static PyObject *frontier_extend(PyObject *Py_UNUSED(self), PyObject *args) {
    unsigned long long size;
    PyObject *peak_list;
    Py_buffer leaves;
    if (!PyArg_ParseTuple(args, "KO!y*", &size, &PyList_Type, &peak_list, &leaves)) return NULL;
    unsigned char peaks[65][32];
    int count = (int)PyList_GET_SIZE(peak_list);
    PyObject *result = NULL;
    if (count != __builtin_popcountll(size) || leaves.len % 32) {
        PyErr_SetString(PyExc_ValueError, "peaks do not match the size, or leaf hashes are not 32 bytes each");
        goto done;
    }
    for (int i = 0; i < count; i++) {
        PyObject *peak = PyList_GET_ITEM(peak_list, i);
        if (!PyBytes_Check(peak) || PyBytes_GET_SIZE(peak) != 32) {
            PyErr_SetString(PyExc_ValueError, "a peak is not 32 bytes");
            goto done;
        }
        memcpy(peaks[i], PyBytes_AS_STRING(peak), 32);
    }
    int failed = 0;
    uint64_t grown = size;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t at = 0; at < leaves.len && !failed; at += 32)
        failed = frontier_append(peaks, &count, &grown, (const unsigned char *)leaves.buf + at);
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed");
        goto done;
    }
    PyObject *out = PyList_New(count);
    if (!out) goto done;
    for (int i = 0; i < count; i++) {
        PyObject *peak = PyBytes_FromStringAndSize((const char *)peaks[i], 32);
        if (!peak) {
            Py_DECREF(out);
            goto done;
        }
        PyList_SET_ITEM(out, i, peak);
    }
    result = Py_BuildValue("(KN)", (unsigned long long)grown, out);
done:
    PyBuffer_Release(&leaves);
    return result;
}

static PyMethodDef methods[] = {
    {"verify_copy", verify_copy, METH_VARARGS, verify_copy_doc},
    {"is_canonical_event", is_canonical_event, METH_VARARGS, is_canonical_event_doc},
    {"verify_lines", py_verify_lines, METH_VARARGS, verify_lines_doc},
    {"frontier_extend", frontier_extend, METH_VARARGS, frontier_extend_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastchain",
    "Fast path of the hash-chain verifier (see registry.eventlog.verify for the rules).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastchain(void) {
    if (load_sha()) {
        PyErr_SetString(PyExc_ImportError, "libcrypto's SHA-256 is not available");
        return NULL;
    }
    return PyModule_Create(&module);
}
