/* replay.c - runs a libFuzzer target on files, without libFuzzer.
 *
 *   fuzz_replay_TARGET PATH...
 * Each PATH is an input file (NAME.hex decoded, see inputs.h) or a directory
 * of them. Linked with one fuzz_*.c in the ordinary build (gcc, no
 * sanitizer required), so that ctest replays the seed corpus and every
 * crash ever found; a crash shows as the test failing, and the last
 * "replaying" line names its input.
 */
#include <stdint.h>
#include <stdio.h>

#include "inputs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static void replay(const char *path, const uint8_t *data, size_t len, void *ctx)
{
    fprintf(stderr, "replaying %s (%zu bytes)\n", path, len);
    LLVMFuzzerTestOneInput(data, len);
}

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    int total = 0;
    for (int i = 1; i < argc; i++) {
        int n = fuzz_each_input(argv[i], replay, NULL);
        if (n < 0) return 1;
        total += n;
    }
    printf("%s: replayed %d inputs\n", argv[0], total);
    return 0;
}
