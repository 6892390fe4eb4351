/* ingest_labels.c - label cells that are not 0/1 (uncertain -1, blank) and
 * the CheXpert layout's patient and metadata columns (see thorax/data.h).
 *
 * Kept apart from ingest.c, which calls these per cell and per column.
 */
#include "thorax/data.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static const char *const UNCERTAIN_NAMES[] = {"refuse", "ones", "zeros", "ignore"};

const char *th_ingest_uncertain_name(th_ingest_uncertain u)
{
    return u >= TH_UNCERTAIN_REFUSE && u <= TH_UNCERTAIN_IGNORE ? UNCERTAIN_NAMES[u] : "refuse";
}

int th_ingest_uncertain_parse(const char *s, th_ingest_uncertain *u)
{
    for (int k = TH_UNCERTAIN_REFUSE; k <= TH_UNCERTAIN_IGNORE; k++)
        if (!strcasecmp(s, UNCERTAIN_NAMES[k])) {
            *u = (th_ingest_uncertain)k;
            return 0;
        }
    return -1;
}

/* pandas writes "1.0" for a column that had blanks, so each value has a
 * float spelling too. */
static int is_value(const char *s, const char *v)
{
    size_t n = strlen(v);
    return !strncmp(s, v, n) && (s[n] == '\0' || !strcmp(s + n, ".0"));
}

int th_ingest_label_value(const char *s, th_ingest_uncertain u, int blank_zeros, uint8_t *v)
{
    if (!*s) {
        *v = blank_zeros ? 0 : TH_LABEL_UNKNOWN;
        return 0;
    }
    if (is_value(s, "0")) {
        *v = 0;
        return 0;
    }
    if (is_value(s, "1")) {
        *v = 1;
        return 0;
    }
    if (!is_value(s, "-1")) return -1;
    switch (u) {
    case TH_UNCERTAIN_ONES: *v = 1; return 0;
    case TH_UNCERTAIN_ZEROS: *v = 0; return 0;
    case TH_UNCERTAIN_IGNORE: *v = TH_LABEL_UNKNOWN; return 0;
    default: return -2;
    }
}

int th_ingest_chexpert_patient(const char *path, char *out, size_t n)
{
    /* A whole path component: "patient" then digits, then '/' or the end. */
    for (const char *p = path; (p = strstr(p, "patient")) != NULL; p++) {
        if (p != path && p[-1] != '/') continue;
        size_t len = 7;
        while (isdigit((unsigned char)p[len])) len++;
        if (len == 7 || (p[len] && p[len] != '/')) continue;
        if (len + 1 > n) return -1;
        memcpy(out, p, len);
        out[len] = '\0';
        return 0;
    }
    return -1;
}

int th_ingest_chexpert_meta(const char *column)
{
    static const char *const META[] = {"Sex", "Age", "Frontal/Lateral", "AP/PA"};
    for (size_t k = 0; k < sizeof META / sizeof META[0]; k++)
        if (!strcasecmp(column, META[k])) return 1;
    return 0;
}
