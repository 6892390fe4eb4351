/* names.c - labels and column names as file-name and column-name parts (see
 * thorax/util.h): roc_<label>.csv, metrics.csv's val_auc_<label>, by_<column>.json. */
#include "thorax/util.h"

#include <stdio.h>
#include <string.h>

int th_safe_name(const char *s, char *out, size_t cap)
{
    size_t n = strlen(s);
    if (cap < 2 || n + 1 > cap) return -1;
    if (n == 0) {
        strcpy(out, "_");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                 c == '-';
        out[i] = ok ? c : '_';
    }
    out[n] = '\0';
    return 0;
}

int th_safe_names(int n, const char *const *s, char (*out)[TH_SAFE_NAME_MAX], th_err *err)
{
    for (int k = 0; k < n; k++) {
        if (th_safe_name(s[k], out[k], sizeof out[k]))
            return th_errf(err, "name %d is too long for a file name (%zu bytes)", k, strlen(s[k]));
        for (int clash = 1; clash;) {
            clash = 0;
            for (int j = 0; j < k && !clash; j++) clash = strcmp(out[j], out[k]) == 0;
            if (!clash) break;
            size_t len = strlen(out[k]);
            if (snprintf(out[k] + len, sizeof out[k] - len, "_%d", k) >= (int)(sizeof out[k] - len))
                return th_errf(err, "name %d: cannot make a distinct file name", k);
        }
    }
    return 0;
}
