/* fuzz_config.c - libFuzzer target: the experiment loader.
 *
 * Input: YAML text, then optionally up to four `--set` overrides, each after
 * a NUL byte ("name: x\0train.epochs=3\0data.labels=[A,B]"), so that the
 * override grafting is fuzzed along with the file. Loading may fail (that is
 * the point); it must not crash, and a config that loads must survive the
 * round trip its run directory relies on: its resolved YAML loads again, to
 * the same configuration.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thorax/config.h"
#include "thorax/train.h"

#define MAX_SETS 4

static th_config cfg, again;    /* large: kept off the stack */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    const char *sets[MAX_SETS];
    int n_sets = 0;
    for (char *p = text + strlen(text); p < text + size && n_sets < MAX_SETS; p += strlen(p)) sets[n_sets++] = ++p;

    th_err err;
    if (th_run_config_load_string(&cfg, text, "fuzz.yaml", sets, n_sets, &err) == 0) {
        char *yaml = th_config_to_yaml(&cfg);
        if (!yaml) abort();
        static const char *const all[] = {"name", "seed", "data", "model", "train", "eval", "runtime", NULL};
        if (th_run_config_load_string(&again, yaml, "resolved.yaml", NULL, 0, &err) ||
            th_config_compare(&cfg, &again, all, &err)) {
            fprintf(stderr, "the resolved configuration does not reload as itself: %s\n--- resolved:\n%s", err.msg,
                    yaml);
            abort();
        }
        free(yaml);
    }
    free(text);
    return 0;
}
